"""The analytic references: the linearised balloon model against the nonlinear one, its Kalman
filter on data it generated, and the linear stochastic network (its FC analytically and through
the haemodynamics)."""

import numpy as np
import pytest

from assimilation.enkf import ar1_forecast, pearson_per_column
from assimilation.reference import best_kalman_forecast, kalman_forecast, linear_balloon, linear_fc, linear_network_bold
from dtb.models.balloon import preset, simulate_bold

TR = 0.72


def test_linearised_balloon_matches_the_nonlinear_model_for_small_drive():
    p = preset("dtb")
    tau_u, eps = 1.0, 1e-4
    F, Q, C = linear_balloon(p, tau_u, TR)
    # unscaled observation row, from the scaled one and the model's own BOLD of a tiny input
    dt = 1e-3
    t = np.arange(int(20 / dt)) * dt
    u = eps * np.exp(-t / tau_u)[:, None]               # the OU state's mean path from u(0) = eps
    bold, _ = simulate_bold(u, dt, p, every=int(round(TR / dt)))
    x = np.array([eps, 0, 0, 0, 0.0])
    lin = []
    for _ in range(len(bold)):
        x = F @ x
        lin.append(C @ x)
    lin = np.array(lin)
    scale = bold[:, 0] @ lin / (lin @ lin)              # C is normalised to unit variance
    assert np.corrcoef(bold[:, 0], lin)[0, 1] > 0.999
    assert np.max(np.abs(bold[:, 0] - scale * lin)) < 0.02 * np.max(np.abs(bold[:, 0]))
    assert np.all(np.linalg.eigvals(Q) > -1e-12)


def test_kalman_reference_fits_and_beats_persistence_on_data_from_its_model():
    p = preset("dtb")
    F, Q, C = linear_balloon(p, 3.0, TR)
    rng = np.random.default_rng(0)
    T, R, phi = 400, 6, 0.6
    x = np.zeros((5, R))
    ys = []
    L = np.linalg.cholesky(Q + 1e-15 * np.eye(5))
    for t in range(T + 100):
        x = F @ x + L @ rng.standard_normal((5, R))
        ys.append(np.sqrt(phi) * (C @ x) + np.sqrt(1 - phi) * rng.standard_normal(R))
    y = np.array(ys[100:])
    y = (y - y.mean(axis=0)) / y.std(axis=0)
    f, info = best_kalman_forecast(y, TR, p)
    assert info["tau_u"] == 3.0 and info["phi"] == pytest.approx(0.6, abs=0.15)
    r_kf = np.mean(pearson_per_column(f[1:], y[1:]))
    r_persistence = np.mean(pearson_per_column(y[:-1], y[1:]))
    r_ar1 = np.mean(pearson_per_column(ar1_forecast(y, y), y[1:]))
    assert r_kf > max(r_persistence, r_ar1) + 0.015     # measured: 0.580 vs 0.553 (optimal, but a small margin)
    # the likelihood prefers the true signal fraction to a wrong one
    assert kalman_forecast(y, F, Q, C, 0.6)[1] > kalman_forecast(y, F, Q, C, 0.99)[1]


def test_linear_fc_is_the_analytic_correlation_and_matches_a_simulation():
    # two regions, W = [[0, 1], [1, 0]]: P = (I - gW)^-1 / 2, so their correlation is the gain itself
    for g in (0.0, 0.3, 0.8):
        assert linear_fc(np.array([[0, 1.0], [1.0, 0]]), g)[0, 1] == pytest.approx(g)
    # an asymmetric 4-region connectome: Euler-Maruyama of dx = (-x + g W x / rho) dt + dW
    w = np.array([[0, 2.0, 0.5, 0], [1.0, 0, 0, 0.2], [0, 1.5, 0, 1.0], [0.3, 0, 2.0, 0]])
    g, dt, n = 0.7, 0.02, 2_000_000
    fc = linear_fc(w, g)
    a = -np.eye(4) + g * w / np.max(np.abs(np.linalg.eigvals(w)))
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((n, 4)) * np.sqrt(dt)
    x, xs = np.zeros(4), np.empty((n, 4))
    step = np.eye(4) + dt * a
    for t in range(n):
        x = step @ x + noise[t]
        xs[t] = x
    sim = np.corrcoef(xs[1000:].T)
    np.testing.assert_allclose(fc, sim, atol=0.03)
    assert np.abs(fc - np.eye(4)).max() > 0.3                     # not trivially uncorrelated
    with pytest.raises(ValueError, match="gain"):
        linear_fc(w, 1.2)


def test_linear_network_bold_matches_the_slow_limit_of_two_coupled_regions():
    # W = [[0, 1], [1, 0]]: the modes x1 + x2 and x1 - x2 relax at (1 -+ g) / tau, far faster than
    # the haemodynamics (tau = 20 ms), so BOLD sees their zero-frequency power, 2 tau / (1 -+ g)^2,
    # and the two regions' BOLD correlate by ((1+g)^2 - (1-g)^2) / ((1+g)^2 + (1-g)^2) = 2g / (1 + g^2)
    w = np.array([[0, 1.0], [1.0, 0]])
    for g in (0.0, 0.5, 0.8):
        b = linear_network_bold(w, g, n_tr=100, tr=1.0, runs=200, seed=1)
        assert b.shape == (200, 100, 2) and np.all(np.isfinite(b))
        b = b - b.mean(axis=1, keepdims=True)
        r = np.sum(b[..., 0] * b[..., 1]) / np.sqrt(np.sum(b[..., 0] ** 2) * np.sum(b[..., 1] ** 2))
        assert r == pytest.approx(2 * g / (1 + g * g), abs=0.02)
    with pytest.raises(ValueError, match="whole multiple"):
        linear_network_bold(w, 0.5, n_tr=10, tr=0.721, dt=0.004)
    with pytest.raises(ValueError, match="gain"):
        linear_network_bold(w, 1.0, n_tr=10, tr=0.72)
