"""Cerebellar parallel-fibre -> Purkinje-cell plasticity (see :class:`dtb.spec.Plasticity`).

Brian2 code for the engine, and :func:`pf_pc_weight`, the rule's closed form for given spike
times (the reference the tests hold the engine to).

Per synapse (weights in integer weight quanta ``q``):

* parallel-fibre spike at t:   deliver w; w <- w + ltp/q; the trace gains the spike
* climbing-fibre spike at t_c: w <- w - round(ltd/q · K(t_c + dt))      (one step later)

always clipped to [w_min, w_max], with the eligibility K(t) = Σ_{PF spikes t_i <= t} k(t - t_i)
and the kernel k(s) = (s/tau) exp(1 - s/tau), which peaks (at 1) when the parallel fibre fired
``tau`` before the climbing fibre. This is the rule of Luque et al. (2011) and Garrido et al.
(2013): LTD = ltd · Σ k(t_c - t_pf), LTP = ltp per parallel-fibre spike; their kernel also peaks
about 100-150 ms before the climbing-fibre spike (they use exp(-s) sin(s)^20), which makes the
depression hit the parallel fibres active when the motor command that caused an error was sent.

K is kept in two numbers per synapse, updated only at the synapse's events: with
a = Σ exp(-(t - t_i)/tau) and b = Σ ((t - t_i)/tau) exp(-(t - t_i)/tau), a time step of d
(since the last parallel-fibre spike) maps (a, b) to (a, (b + a d/tau)) exp(-d/tau); K = e b.
"""

from __future__ import annotations

import numpy as np

#: per input slot of the neuron group (one per neuron and receptor): pending input ``acc``, the
#: climbing-fibre events of this step ``cf`` and the rule's parameters (weight quanta)
PLASTIC_SLOT_EQUATIONS = """
acc : integer
cf : integer
tau_e : second (constant)
ltp_q : integer (constant)
ltd_q : 1 (constant)
wmin_q : integer (constant)
wmax_q : integer (constant)
"""

PLASTIC_SYNAPSE_MODEL = """
w : integer
elig_a : 1
elig_b : 1
tlast : second
"""

#: the per-synapse state a checkpoint holds
PLASTIC_STATE = ("w", "elig_a", "elig_b", "tlast")

PLASTIC_ON_PRE = """
acc_post += w
elig_b = (elig_b + elig_a * (t - tlast) / tau_e_post) * exp(-(t - tlast) / tau_e_post)
elig_a = elig_a * exp(-(t - tlast) / tau_e_post) + 1
tlast = t
w = clip(w + ltp_q_post, wmin_q_post, wmax_q_post)
"""

PLASTIC_ON_POST = ("\nw = clip(w - int(ltd_q_post * exp(1.0) * (elig_b + elig_a * (t - tlast) / tau_e_post)"
                   " * exp(-(t - tlast) / tau_e_post) + 0.5), wmin_q_post, wmax_q_post)\n")   # one Brian2 statement


def kernel(s: np.ndarray, tau: float) -> np.ndarray:
    """k(s) = (s/tau) exp(1 - s/tau) for s >= 0: the eligibility of a parallel-fibre spike s
    seconds before the climbing-fibre spike (peak 1 at s = tau)."""
    s = np.asarray(s, dtype=float)
    return np.where(s >= 0, (s / tau) * np.exp(1.0 - s / tau), 0.0)


def pf_pc_weight(w0: float, pf_times: np.ndarray, cf_times: np.ndarray, *, tau: float, ltp: float, ltd: float,
                 w_min: float, w_max: float, dt: float, quantum: float) -> float:
    """The weight (S) after parallel-fibre spikes ``pf_times`` and climbing-fibre spikes
    ``cf_times`` reach the synapse (s, multiples of dt), by the rule's definition: events in time
    order, a climbing-fibre spike acting one step after it arrives, every change rounded to the
    weight quantum. The reference for the engine's synapses (tests)."""
    events = [(round(t / dt), 0, t) for t in pf_times] + [(round(t / dt) + 1, 1, t + dt) for t in cf_times]
    w = round(w0 / quantum)
    lo, hi = round(w_min / quantum), round(w_max / quantum)
    ltp_q, ltd_q = round(ltp / quantum), ltd / quantum
    pf = np.sort(np.asarray(pf_times, dtype=float))
    for _, kind, t in sorted(events):
        if kind == 0:
            w = min(max(w + ltp_q, lo), hi)
        else:
            before = pf[pf <= t + 1e-12]
            elig = float(np.sum(kernel(t - before, tau)))
            w = min(max(w - int(ltd_q * elig + 0.5), lo), hi)
    return w * quantum
