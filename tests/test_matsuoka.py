"""Matsuoka half-center oscillator: frequency against Matsuoka's formula where it holds
(tau_a = 2 tau_r), flexor and extensor in antiphase, and the Brian2 group against the RK4
integration."""

import numpy as np
import pytest

from dtb.models.matsuoka import (BRIAN2_EQUATIONS, MatsuokaParameters, measured_frequency, natural_frequency,
                                 simulate)


@pytest.mark.parametrize("tau_r, tau_a, beta, w", [(0.25, 0.5, 2.5, 2.5), (0.1, 0.2, 2.5, 2.5),
                                                   (0.05, 0.1, 2.5, 2.0)])
def test_frequency_matches_matsuoka_formula(tau_r, tau_a, beta, w):
    p = MatsuokaParameters(tau_r, tau_a, beta, w)
    period = 1 / natural_frequency(p)
    t, y = simulate(p, 12 * period, dt=period / 2000)
    f = measured_frequency(t, y[:, 0] - y[:, 1], skip=3 * period)
    assert f == pytest.approx(natural_frequency(p), rel=0.05)


def test_flexor_and_extensor_alternate():
    p = MatsuokaParameters()
    t, y = simulate(p, 10.0, dt=5e-4)
    y = y[t > 3]
    # never both strongly active; correlation clearly negative
    assert np.corrcoef(y[:, 0], y[:, 1])[0, 1] < -0.5
    # the extensor's bursts lag the flexor's by half a period
    f = natural_frequency(p)
    a, b = y[:, 0] - y[:, 0].mean(), y[:, 1] - y[:, 1].mean()
    lags = np.arange(1, int(1 / f / 5e-4))
    xc = [np.dot(a[:-k], b[k:]) for k in lags]
    lag = lags[int(np.argmax(xc))] * 5e-4
    assert lag * f == pytest.approx(0.5, abs=0.05)


def test_no_oscillation_without_adaptation():
    p = MatsuokaParameters(beta=0.0, w=0.5)
    t, y = simulate(p, 5.0, dt=1e-3)
    assert np.ptp(y[t > 3, 0]) < 1e-3          # settles to a fixed point


def test_brian2_group_oscillates_like_the_integration():
    import brian2 as b2
    from dtb.engine.brian_setup import configure_brian
    configure_brian()
    p = MatsuokaParameters()
    b2.start_scope()
    b2.defaultclock.dt = 0.1 * b2.ms
    G = b2.NeuronGroup(3, BRIAN2_EQUATIONS, method="rk4")
    G.tau_r, G.tau_a, G.beta, G.w, G.u = p.tau_r * b2.second, p.tau_a * b2.second, p.beta, p.w, p.drive
    G.x1 = 0.1
    m = b2.StateMonitor(G, ["y1", "y2"], record=[0])
    b2.run(8 * b2.second)
    t = np.asarray(m.t_)
    f = measured_frequency(t, m.y1[0] - m.y2[0], skip=2.0)
    t_ref, y_ref = simulate(p, 8.0, dt=1e-4)
    assert f == pytest.approx(measured_frequency(t_ref, y_ref[:, 0] - y_ref[:, 1], skip=2.0), rel=0.01)
