"""The EnKF against the Kalman filter on a linear-Gaussian problem, and its helpers."""

import numpy as np
import pytest

from assimilation.enkf import (ar1_forecast, enkf_analysis, kalman_update, neighbours, random_walk, region_domains,
                               pearson_per_column, revert, to_bounded, to_unbounded)

MEAN = np.array([1.0, -0.5, 2.0])
COV = np.array([[1.0, 0.3, 0.1], [0.3, 0.5, -0.2], [0.1, -0.2, 0.8]])
H = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
Y = np.array([2.0, 0.3])
R = np.array([0.4, 0.2])


def _enkf_moments(M, seed):
    rng = np.random.default_rng(seed)
    X = rng.multivariate_normal(MEAN, COV, size=M)
    Xa = enkf_analysis(X, X @ H.T, Y, R, rng)
    return Xa.mean(axis=0), np.cov(Xa.T)


def test_enkf_approaches_the_kalman_filter_as_members_grow():
    m_kf, c_kf = kalman_update(MEAN, COV, H, Y, R)
    errors = []
    for M in (20, 200, 2000, 20000):
        errs = [np.abs(_enkf_moments(M, s)[0] - m_kf).max() + np.abs(_enkf_moments(M, s)[1] - c_kf).max()
                for s in range(5)]
        errors.append(np.mean(errs))
    assert errors[-1] < 0.03
    # Monte Carlo error shrinks like 1/sqrt(M): a factor ~10 over 100x members
    assert errors[0] > 5 * errors[-1]
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_kalman_update_is_bayes():
    # scalar case: posterior precision = prior precision + 1/r
    m, c = kalman_update(np.array([0.0]), np.array([[2.0]]), np.array([[1.0]]), np.array([1.0]), 0.5)
    assert c[0, 0] == pytest.approx(1 / (1 / 2.0 + 1 / 0.5))
    assert m[0] == pytest.approx(c[0, 0] * (1.0 / 0.5))


def test_localisation_and_inflation():
    rng = np.random.default_rng(1)
    X = rng.multivariate_normal(MEAN, COV, size=500)
    rho = np.ones((3, 2))
    rho[2, :] = 0.0                      # the third variable sees no observation
    Xa = enkf_analysis(X, X @ H.T, Y, R, np.random.default_rng(2), rho_xy=rho)
    np.testing.assert_allclose(Xa[:, 2], X[:, 2])
    assert not np.allclose(Xa[:, 0], X[:, 0])
    # inflation widens the forecast spread before the update, so the analysis keeps more spread
    a1 = enkf_analysis(X, X @ H.T, Y, R, np.random.default_rng(3))
    a2 = enkf_analysis(X, X @ H.T, Y, R, np.random.default_rng(3), inflation=1.5)
    assert a2.std(axis=0)[2] > 1.4 * a1.std(axis=0)[2]


def test_bounded_transform_and_localisation_mask():
    hp = np.array([0.51, 1.0, 1.99])
    np.testing.assert_allclose(to_bounded(to_unbounded(hp, 0.5, 2.0), 0.5, 2.0), hp)
    assert to_bounded(np.array([-1e3, 1e3]), 0.5, 2.0).tolist() == [0.5, 2.0]
    with pytest.raises(ValueError):
        to_unbounded(np.array([2.0]), 0.5, 2.0)
    # a bound reached by a saturated sigmoid: the largest finite x, and back to the bound
    x = to_unbounded(np.array([2.0, 0.5, 1.0]), 0.5, 2.0, saturated=True)
    assert np.all(np.isfinite(x)) and x[0] > 30 and x[1] < -30
    np.testing.assert_allclose(to_bounded(x, 0.5, 2.0), [2.0, 0.5, 1.0])
    assert to_bounded(np.array([40.0]), 0.5, 2.0)[0] == 2.0      # how a run gets there
    with pytest.raises(ValueError):
        to_unbounded(np.array([2.1]), 0.5, 2.0, saturated=True)
    sc = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float)
    reach = neighbours(sc, hops=1)
    np.testing.assert_array_equal(reach, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(neighbours(sc, hops=0), np.eye(3, dtype=bool))
    doms = region_domains(reach, lambda i: [2 * i, 2 * i + 1])
    assert [d[1].tolist() for d in doms] == [[0, 1], [0, 1], [2]]


def test_centred_random_walk_keeps_the_ensemble_mean_and_the_step_variance():
    X = np.random.default_rng(0).standard_normal((24, 4000))
    std = np.array([0.5, 0.1] * 2000)
    plain = random_walk(X, std, np.random.default_rng(1)) - X
    centred = random_walk(X, std, np.random.default_rng(1), centered=True) - X
    np.testing.assert_allclose(centred.mean(axis=0), 0.0, atol=1e-12)      # the mean does not move
    assert np.abs(plain.mean(axis=0)[::2]).mean() == pytest.approx(0.5 * np.sqrt(2 / np.pi / 24), rel=0.05)
    for s in (0.5, 0.1):                                    # the ensemble's sample variance grows by std^2
        var = centred[:, std == s].var(axis=0, ddof=1).mean()
        assert var == pytest.approx(s ** 2, rel=0.02)
        assert plain[:, std == s].var(axis=0, ddof=1).mean() == pytest.approx(s ** 2, rel=0.02)


def test_reverting_random_walk_is_the_ar1_with_its_stationary_variance():
    """revert then random_walk, iterated: x_t = c + a (x_{t-1} - c) + s e_t, whose stationary
    variance is s^2 / (1 - a^2) and lag-1 correlation a, whatever the start (here far off, at
    the sigmoid's flat end, where the plain walk would leave a member)."""
    a, s, c = np.exp(-0.72 / 20.0), 0.5, 0.4
    rng = np.random.default_rng(3)
    x = np.full((1, 2000), 8.0)
    trace = []
    for _ in range(1200):
        x = random_walk(revert(x, c, a), s, rng)
        trace.append(x[0])
    tail = np.array(trace[600:])                         # past 600 steps of 0.96: started 8 away, now < 1e-10
    assert tail.mean() == pytest.approx(c, abs=0.1)
    assert tail.var() == pytest.approx(s ** 2 / (1 - a ** 2), rel=0.03)
    lag1 = np.mean((tail[1:] - c) * (tail[:-1] - c)) / np.mean((tail - c) ** 2)
    assert lag1 == pytest.approx(a, abs=0.005)
    np.testing.assert_allclose(revert(x, c, 1.0), x, atol=1e-12)   # keep 1: no reversion


def test_settings_read_the_hyperparameters_reversion():
    from dtb.config import spec_from_dict
    from dtb.errors import DtbError
    base = {"atlas": {"neurons": 1400, "min_neurons": 20}, "bold": {"tr": "1 s"}}
    assert spec_from_dict({**base, "assimilation": {}}).assimilation.random_walk_reversion == 0.0
    s = spec_from_dict({**base, "assimilation": {"random_walk_reversion": "20 s"}}).assimilation
    assert (s.random_walk_reversion, s.random_walk_reversion_to) == (20.0, "prior")
    s = spec_from_dict({**base, "assimilation": {"random_walk_reversion_to": "mean"}}).assimilation
    assert s.random_walk_reversion_to == "mean"
    with pytest.raises(DtbError, match="random_walk_reversion_to"):
        spec_from_dict({**base, "assimilation": {"random_walk_reversion_to": "median"}})
    with pytest.raises(DtbError, match="random_walk_reversion"):
        spec_from_dict({**base, "assimilation": {"random_walk_reversion": "-1 s"}})


def test_domain_localisation_uses_only_local_observations():
    """With domains, a variable moves only with the observations of its domain, and with few
    members and many observations the update stays bounded (no spurious far correlations)."""
    rng = np.random.default_rng(5)
    M, p = 5, 40
    X = rng.standard_normal((M, p))
    HX = X.copy()                                    # observe every variable directly
    y = np.zeros(p)
    y[0] = 3.0                                       # one surprising observation
    doms = [(np.array([i]), np.array([i])) for i in range(p)]
    Xa = enkf_analysis(X, HX, y, 0.5, np.random.default_rng(6), domains=doms)
    glob = enkf_analysis(X, HX, y, 0.5, np.random.default_rng(6))
    assert np.abs(Xa).max() < 10
    # variable 0 moves toward its observation; in the global update far variables move too
    assert Xa[:, 0].mean() > X[:, 0].mean()
    far = np.abs((glob - X)[:, 1:].mean(axis=0)).mean()
    other = enkf_analysis(X, HX, np.where(np.arange(p) == 0, 0.0, y), 0.5, np.random.default_rng(6), domains=doms)
    near = np.abs((Xa - X)[:, 1:].mean(axis=0) - (other - X)[:, 1:].mean(axis=0)).max()
    assert near < 1e-12 < far


def test_ar1_baseline_recovers_the_process():
    rng = np.random.default_rng(4)
    phi, T = 0.8, 5000
    y = np.zeros((T, 2))
    for t in range(1, T):
        y[t] = phi * y[t - 1] + rng.standard_normal(2)
    f = ar1_forecast(y[: T // 2], y)
    r = pearson_per_column(f, y[1:])
    assert np.all(np.abs(r - phi) < 0.03)      # the AR(1) one-step forecast correlates at phi


def test_causal_band_pass_uses_only_earlier_samples():
    from assimilation.data import preprocess
    x = np.random.default_rng(3).standard_normal((400, 3)).cumsum(axis=0)
    full = preprocess(x, 0.72, False, (0.01, 0.1), False, causal=True)
    head = preprocess(x[:250], 0.72, False, (0.01, 0.1), False, causal=True)
    assert np.allclose(full[:250], head)
    zero_phase = preprocess(x, 0.72, False, (0.01, 0.1), False, causal=False)
    assert not np.allclose(zero_phase[:250], preprocess(x[:250], 0.72, False, (0.01, 0.1), False, causal=False))
    # the same magnitude response: the two differ in phase, not in power
    assert np.std(full[100:]) == pytest.approx(np.std(zero_phase[100:]), rel=0.3)


def test_fcd_tells_switching_from_stationary_connectivity():
    from assimilation.enkf import fcd_values, ks_distance
    rng = np.random.default_rng(0)
    T, R = 400, 20
    a, b = rng.standard_normal((T, 1)), rng.standard_normal((T, 1))
    stationary = rng.standard_normal((T, R))          # two modules, always coupled
    stationary[:, :10] += a
    stationary[:, 10:] += b
    a, b = rng.standard_normal((T, 1)), rng.standard_normal((T, 1))
    on = (np.arange(T) // 80) % 2 == 0                # one module at a time, switching every 80 samples
    switching = rng.standard_normal((T, R))
    switching[on, :10] += 1.5 * a[on]
    switching[~on, 10:] += 1.5 * b[~on]
    f_stat, f_switch = fcd_values(stationary, 30, 5), fcd_values(switching, 30, 5)
    n_windows = (T - 30) // 5 + 1
    assert len(f_stat) == n_windows * (n_windows - 1) // 2
    # a stationary pattern: every window alike (FCD high and narrow); switching: windows in
    # different states are dissimilar, so the FCD values spread (measured std 0.09 vs 0.44)
    assert np.mean(f_stat) > 0.6 and np.std(f_switch) > 2.5 * np.std(f_stat)
    assert ks_distance(f_stat, f_stat) == 0.0
    assert ks_distance(f_stat, f_switch) > 0.3
    assert len(fcd_values(stationary[:20], 30, 5)) == 0


def test_the_filter_reverts_towards_the_ensemble_mean_or_the_prior():
    from types import SimpleNamespace as NS

    from assimilation.runner import Assimilator
    from assimilation.settings import AssimilationSettings
    X = 1.0 + 3.0 * np.random.default_rng(2).standard_normal((8, 6))
    keep = np.exp(-1.0 / 10.0)                               # TR 1 s, tau 10 s

    def reverted(to, tau=10.0):
        fake = NS(s=AssimilationSettings(random_walk_reversion=tau, random_walk_reversion_to=to),
                  base=NS(bold=NS(tr=1.0)))
        return Assimilator._reverted(fake, X)
    to_mean = reverted("mean")
    np.testing.assert_allclose(to_mean.mean(axis=0), X.mean(axis=0), atol=1e-12)   # the mean stays
    np.testing.assert_allclose(to_mean.std(axis=0), keep * X.std(axis=0), rtol=1e-12)
    centre = np.log(0.5)                                     # the prior 1.0 in (0.5, 2.0): x = logit(1/3)
    np.testing.assert_allclose(reverted("prior"), centre + keep * (X - centre), rtol=1e-12)
    assert reverted("prior", tau=0.0) is X                   # 0: no reversion
