"""Conductance-based leaky integrate-and-fire neuron with four synaptic receptors, as in the Digital Twin Brain.

    C_m dv/dt = g_L (E_L - v) + sum_r g_r (E_r - v) + I_ext            (not while refractory)
    dg_r/dt   = -g_r / tau_r            r in AMPA, NMDA, GABAa, GABAb
    v > V_th  ->  spike, v = V_reset, refractory for t_ref

Synaptic events arrive as integer multiples of a weight quantum (``acc_r``, see
:mod:`dtb.engine.kernel`): integer sums do not depend on the order in which
synapses deliver, which keeps spike trains bitwise identical for any rank count.
Each neuron carries a dimensionless scale per receptor (``scale_r``, default 1):
the data assimilation sets it from region hyperparameters.

Default parameters (SI units) and their sources:

* Time constants tau_AMPA 2 ms, tau_NMDA 40 ms, tau_GABAa 10 ms, tau_GABAb 50 ms; V_th -50 mV,
  V_reset -65 mV, E_L (V_L) -75 mV, t_ref 5 ms: the Digital Twin Brain code
  (DTB-consortium/Digital_twin_brain-open, ``generation/initialize_params.py``; Lu et al. 2024,
  "Simulation and assimilation of the digital human brain", Nat. Comput. Sci.).
* Reversal potentials E_AMPA = E_NMDA = 0 mV, E_GABAa -70 mV, E_GABAb -100 mV: Lu et al. 2024 (Methods),
  the usual values for these receptors.
* The DTB uses C = 1 and g_L = 0.03 in its own units, i.e. a membrane time constant
  C/g_L = 33.3 ms. We keep that time constant with a cell of C_m = 500 pF, g_L = 15 nS.
  NMDA is modelled, as in the DTB, as a plain exponential conductance (no Mg2+ block).
"""

from __future__ import annotations

RECEPTORS: tuple[str, ...] = ("ampa", "nmda", "gabaa", "gabab")

#: Default parameters in SI units (seconds, volts, siemens, farads, amperes).
LIF_DEFAULTS: dict[str, float] = {
    "C_m": 500e-12,
    "g_L": 15e-9,
    "E_L": -75e-3,
    "V_th": -50e-3,
    "V_reset": -65e-3,
    "t_ref": 5e-3,
    "E_ampa": 0.0,
    "E_nmda": 0.0,
    "E_gabaa": -70e-3,
    "E_gabab": -100e-3,
    "tau_ampa": 2e-3,
    "tau_nmda": 40e-3,
    "tau_gabaa": 10e-3,
    "tau_gabab": 50e-3,
    "I_ext": 0.0,
}
# ``v_init`` (initial membrane potential) may also be given; without it each neuron starts at a
# counter-based uniform draw between V_reset and V_th, keyed by its global id.

#: The physical dimension of every parameter, used to parse "500 pF"-style config values.
LIF_PARAMETER_DIMENSIONS: dict[str, str] = {
    "C_m": "capacitance", "g_L": "conductance", "E_L": "voltage", "V_th": "voltage",
    "V_reset": "voltage", "t_ref": "time", "I_ext": "current", "v_init": "voltage",
    **{f"E_{r}": "voltage" for r in RECEPTORS},
    **{f"tau_{r}": "time" for r in RECEPTORS},
}

_BRIAN_UNITS = {"capacitance": "farad", "conductance": "siemens", "voltage": "volt",
                "time": "second", "current": "amp"}


def lif_equations() -> str:
    """The Brian2 equation string of the model, with units.

    Per-neuron bookkeeping variables besides the model's own:
    ``gid`` (global id), ``region`` (region index), ``acc_r`` (this step's synaptic input in
    weight quanta), ``scale_r`` (conductance scale), ``lam_r``/``wq_r`` (Poisson background:
    expected events per step and weight in quanta), ``Q_exc``/``Q_inh`` (synaptic charge since
    the last regional sample).
    """
    syn = " + ".join(f"g_{r}*(E_{r} - v)" for r in RECEPTORS)
    lines = [
        "dv/dt = (g_L*(E_L - v) + I_syn + I_ext) / C_m : volt (unless refractory)",
        f"I_syn = {syn} : amp",
        "I_exc = g_ampa*(E_ampa - v) + g_nmda*(E_nmda - v) : amp",
        "I_inh = g_gabaa*(E_gabaa - v) + g_gabab*(E_gabab - v) : amp",
    ]
    for r in RECEPTORS:
        lines += [
            f"dg_{r}/dt = -g_{r} / tau_{r} : siemens",
            f"acc_{r} : integer",
            f"scale_{r} : 1",
            f"lam_{r} : 1",
            f"wq_{r} : integer",
        ]
    for name, dim in LIF_PARAMETER_DIMENSIONS.items():
        if name in ("I_ext", "v_init"):
            continue
        lines.append(f"{name} : {_BRIAN_UNITS[dim]} (constant)")
    lines += [
        "I_ext : amp",
        "Q_exc : coulomb",
        "Q_inh : coulomb",
        "gid : integer (constant)",
        "region : integer (constant)",
        "w_quantum : siemens (shared, constant)",
        "noise_seed : integer (shared, constant)",
    ]
    return "\n".join(lines)


def fold_code() -> str:
    """Code run every step after the synapses: add the background Poisson input (counter-based,
    rank independent), fold the integer accumulators into the conductances, and integrate the
    excitatory and inhibitory synaptic charge for the regional activity recorder."""
    lines = []
    for k, r in enumerate(RECEPTORS):
        lines.append(f"acc_{r} += wq_{r} * dtb_poisson(noise_seed, {k}, gid, t_in_timesteps, lam_{r})")
        lines.append(f"g_{r} += acc_{r} * w_quantum * scale_{r}")
        lines.append(f"acc_{r} = 0")
    lines.append("Q_exc += I_exc * dt")
    lines.append("Q_inh += I_inh * dt")
    return "\n".join(lines)
