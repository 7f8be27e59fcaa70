"""Conductance-based leaky integrate-and-fire neuron with four synaptic receptors, as in the Digital Twin Brain.

    C_m dv/dt = g_L (E_L - v) + sum_r g_r (E_r - v) + I_ext            (not while refractory)
    dg_r/dt   = -g_r / tau_r            r in AMPA, NMDA, GABAa, GABAb
    v > V_th  ->  spike, v = V_reset, refractory for t_ref

Integration, once per step of dt, in one compiled pass over the neurons (:mod:`dtb.engine.neuron_kernel`):
  1. g_r += (synaptic events of the previous step + this step's background Poisson events)
     x weight quantum x scale_r  (integer accumulators ``acc_r``, then reset);
  2. v by exponential Euler: exact for the linear membrane with the conductances held at these
     values over the step, v <- v_inf + (v - v_inf) exp(-dt g_tot / C_m), skipped while refractory
     (computed as v + (drive - v g_tot) (dt/C_m) (1 - exp(-y))/y, y = dt g_tot / C_m, with the
     last factor from its series: no division, the same bits on every machine);
  3. g_r <- g_r exp(-dt/tau_r), the exact decay (the factor is computed once per neuron at build
     time, so per-population time constants cost no exp() per step).
This is the same scheme as Brian2's ``exponential_euler`` state updater followed by ``g += w``
synapses, followed by the threshold and the reset; one pass instead of four saves sweeps over
memory every step.

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


def lif_equations(shared: frozenset[str] | set[str] = frozenset(), synaptic: tuple[str, ...] = RECEPTORS) -> str:
    """The Brian2 variables of the model, with units (the dynamics are in :mod:`dtb.engine.neuron_kernel`).

    ``shared``: parameters with one value for every neuron of the rank's group, declared
    ``(shared, constant)`` so the update reads a scalar instead of an array (the per-step
    update is memory bound). May contain model parameters, ``decay_r``, ``scale_r`` and ``I_ext``.
    ``synaptic``: receptors that projections use; their accumulators ``acc_r`` are linked to the
    rank's input-slot group (see :mod:`dtb.engine.kernel`), so one ``Synapses`` object can feed
    every receptor.

    Per-neuron bookkeeping variables besides the model's own:
    ``gid`` (global id), ``region`` (region index), ``acc_r`` (synaptic input in weight quanta,
    folded in at the next step; linked), ``scale_r`` (conductance scale, default 1; set by the data
    assimilation), ``lam_r``/``p0_r``/``wq_r`` (Poisson background: expected events per step,
    exp(-lam), weight in quanta; the noise keys are the neuron pass's), ``Q_exc``/``Q_inh`` (synaptic
    charge since the last regional sample).
    """
    syn = " + ".join(f"g_{r}*(E_{r} - v)" for r in RECEPTORS)
    lines = [
        "v : volt",
        f"I_syn = {syn} : amp",
        "I_exc = g_ampa*(E_ampa - v) + g_nmda*(E_nmda - v) : amp",
        "I_inh = g_gabaa*(E_gabaa - v) + g_gabab*(E_gabab - v) : amp",
    ]
    def flag(name: str, constant: bool = True) -> str:
        if name in shared:
            return " (shared, constant)"
        return " (constant)" if constant else ""

    for r in RECEPTORS:
        lines += [
            f"g_{r} : siemens",
            f"decay_{r} : 1{flag(f'decay_{r}')}",
            f"scale_{r} : 1{flag(f'scale_{r}', constant=False)}",
            f"lam_{r} : 1",
            f"p0_{r} : 1",
            f"wq_{r} : integer",
        ]
        if r in synaptic:
            lines.append(f"acc_{r} : integer (linked)")
    for name, dim in LIF_PARAMETER_DIMENSIONS.items():
        if name in ("I_ext", "v_init"):
            continue
        lines.append(f"{name} : {_BRIAN_UNITS[dim]}{flag(name)}")
    lines += [
        f"I_ext : amp{flag('I_ext', constant=False)}",
        "Q_exc : coulomb",
        "Q_inh : coulomb",
        "gid : integer (constant)",
        "region : integer (constant)",
        "w_quantum : siemens (shared, constant)",
    ]
    return "\n".join(lines)
