"""Neuron models: equations with units next to their documented default parameters."""

from dtb.models.lif import LIF_DEFAULTS, LIF_PARAMETER_DIMENSIONS, RECEPTORS, lif_equations

MODELS = {"lif_cond": LIF_DEFAULTS}

__all__ = ["LIF_DEFAULTS", "LIF_PARAMETER_DIMENSIONS", "MODELS", "RECEPTORS", "lif_equations"]
