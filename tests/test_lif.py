"""The LIF neuron against analytic solutions and an independent ODE integration."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dtb.engine import Simulation
from dtb.results import gather_results
from dtb.spec import spec_from_dict


def _one_neuron(params: dict, stimuli: list, duration: str, variables=("v",), projections=(), extra_pops=(),
                dt="0.1 ms"):
    data = {
        "simulation": {"dt": dt, "duration": duration, "seed": 1},
        "populations": [{"name": "n", "size": 1, "kind": "excitatory", "params": params}, *extra_pops],
        "projections": list(projections),
        "stimuli": stimuli,
        "monitors": {"state": [{"population": "n", "indices": [0], "variables": list(variables)}]},
    }
    spec = spec_from_dict(data)
    sim = Simulation(spec)
    sim.run(spec.simulation.duration)
    res = gather_results(sim)
    _, gids, t, values = res.states[0]
    return res, t, {k: v[:, 0] for k, v in values.items()}


def test_membrane_matches_analytic_solution_between_spikes():
    # constant current from rest: v(t) = v_inf + (v0 - v_inf) exp(-t g_L / C_m), no spike (v_inf < V_th)
    C, gL, EL, I = 500e-12, 15e-9, -75e-3, 300e-12
    res, t, rec = _one_neuron({"v_init": "-75 mV", "I_ext": "300 pA"}, [], "200 ms")
    v_inf = EL + I / gL
    analytic = v_inf + (EL - v_inf) * np.exp(-t * gL / C)
    assert len(res.spike_gids) == 0
    assert np.max(np.abs(rec["v"] - analytic)) < 1e-9   # volts: exact up to rounding


def test_spike_times_match_analytic_first_passage():
    # suprathreshold current: each interspike interval is t_ref + tau_m ln((v_inf - V_reset)/(v_inf - V_th))
    C, gL, EL, I = 500e-12, 15e-9, -75e-3, 600e-12
    Vth, Vr, tref = -50e-3, -65e-3, 5e-3
    res, t, rec = _one_neuron({"v_init": "-65 mV", "I_ext": "600 pA"}, [], "300 ms")
    v_inf = EL + I / gL
    T = C / gL * np.log((v_inf - Vr) / (v_inf - Vth))
    times = res.spike_times
    assert len(times) >= 5
    # the first spike: time to threshold from V_reset, within one step
    assert times[0] == pytest.approx(T, abs=1.01e-4)
    isi = np.diff(times)
    assert np.all(np.abs(isi - (T + tref)) <= 2.01e-4)


def _psp_error(dt: str):
    """Max |v - reference| after one 3 nS AMPA event into a resting neuron, and the PSP peak."""
    w, tau, E = 3e-9, 2e-3, 0.0
    C, gL, EL = 500e-12, 15e-9, -75e-3
    pre = {"name": "src", "size": 1, "kind": "excitatory", "params": {"v_init": "-65 mV"}}
    proj = {"source": "src", "target": "n", "rule": "one_to_one", "receptor": "ampa", "weight": "3 nS", "delay": "1 ms"}
    stim = [{"type": "current", "population": "src", "amplitude": "4 nA", "start": "0 ms", "stop": "3 ms"}]
    res, t, rec = _one_neuron({"v_init": "-75 mV"}, stim, "60 ms", variables=("v", "g_ampa"),
                              projections=[proj], extra_pops=[pre], dt=dt)
    assert len(res.spike_times[res.spike_gids == 1]) == 1
    # the event enters the update that starts one record before the first record holding it
    t_on = t[np.flatnonzero(rec["g_ampa"] > 0)[0] - 1]

    def rhs(_, y):
        v, g = y
        return [(gL * (EL - v) + g * (E - v)) / C, -g / tau]

    sol = solve_ivp(rhs, (t_on, t[-1]), [EL, w], method="LSODA", rtol=1e-10, atol=1e-14, dense_output=True)
    sel = t >= t_on
    ref = sol.sol(t[sel])[0]
    after = t > t_on
    np.testing.assert_allclose(rec["g_ampa"][after], w * np.exp(-(t[after] - t_on) / tau), rtol=1e-9, atol=1e-20)
    return np.max(np.abs(rec["v"][sel] - ref)), np.max(ref) - EL


def test_conductance_input_matches_independent_ode_solution():
    # scipy's LSODA (rtol 1e-10) on the same ODE is the reference. Exponential Euler holds the
    # conductance at its step-start value, a first-order error of about dt / (2 tau_AMPA) = 2.5 %
    # of the PSP at dt = 0.1 ms; it must halve when dt halves.
    err1, peak = _psp_error("0.1 ms")
    err2, _ = _psp_error("0.05 ms")
    assert peak > 5e-4
    assert err1 < 0.03 * peak
    assert 0.4 < err2 / err1 < 0.6


def _network_spec(seed=4):
    return spec_from_dict({
        "simulation": {"dt": "0.1 ms", "duration": "100 ms", "seed": seed},
        "populations": [{"name": "E", "size": 200, "kind": "excitatory"},
                        {"name": "I", "size": 50, "kind": "inhibitory"}],
        "projections": [
            {"source": "E", "target": "E", "rule": "fixed_indegree", "indegree": 20, "receptor": "ampa",
             "weight": "0.5 nS", "delay": "1.5 ms"},
            {"source": "E", "target": "I", "rule": "fixed_indegree", "indegree": 20, "receptor": "ampa",
             "weight": "0.5 nS", "delay": "1 ms"},
            {"source": "I", "target": "E", "rule": "fixed_indegree", "indegree": 10, "receptor": "gabaa",
             "weight": "3 nS", "delay": "1 ms"}],
        "stimuli": [{"type": "poisson", "population": "E", "rate": "3700 Hz", "weight": "1.2 nS"},
                    {"type": "poisson", "population": "I", "rate": "3500 Hz", "weight": "1.2 nS"}],
    })


def test_run_in_chunks_equals_one_run():
    """run() can be called repeatedly (one fMRI TR at a time) with the same result as one call."""
    a = Simulation(_network_spec())
    a.run(0.1)
    b = Simulation(_network_spec())
    for _ in range(4):
        b.run(0.025)
    ga, sa = a.local_spikes()
    gb, sb = b.local_spikes()
    assert len(ga) > 100
    np.testing.assert_array_equal(ga, gb)
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(np.array(a.region_rows), np.array(b.region_rows))


def test_conductance_scales_change_the_dynamics():
    """Per-neuron conductance scales (what the data assimilation sets) act from the next step."""
    base = Simulation(_network_spec(), per_neuron_scales=True)
    base.run(0.05)
    scaled = Simulation(_network_spec(), per_neuron_scales=True)
    scaled.run(0.05)
    state = scaled.neuron_state()
    np.testing.assert_array_equal(state["v"], base.neuron_state()["v"])
    scaled.set_conductance_scale("gabaa", state["gid"], np.full(len(state["gid"]), 3.0))
    base.run(0.05)
    scaled.run(0.05)
    n_base, n_scaled = len(base.local_spikes()[0]), len(scaled.local_spikes()[0])
    assert n_scaled < n_base          # three times the inhibition: fewer spikes
    with pytest.raises(RuntimeError, match="per_neuron_scales"):
        Simulation(_network_spec()).set_conductance_scale("ampa", np.arange(3), np.ones(3))
