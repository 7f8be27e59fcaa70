"""Held-out forecast baselines and scores (assimilation.forecast): fitted on the training part
only, never peeking at or after a target, checked against processes with known answers."""

import numpy as np
import pytest

from assimilation import forecast as fc
from assimilation.data import preprocess

HORIZONS = (1, 2, 5, 10)
TR = 0.72


def ar_process(coef, n, regions, rng, burn=200):
    """x[t] = sum_i coef[i] x[t-1-i] + e[t], one independent series per region."""
    p = len(coef)
    x = np.zeros((n + burn, regions))
    e = rng.standard_normal((n + burn, regions))
    for t in range(p, n + burn):
        x[t] = sum(coef[i] * x[t - 1 - i] for i in range(p)) + e[t]
    return x[burn:]


def smooth_series(rng, n=300, regions=6):
    """Band-limited noise through the causal preprocessing, like HCP BOLD."""
    return preprocess(np.cumsum(rng.standard_normal((n, regions)), axis=0), TR, True, (0.01, 0.1), True,
                      fit_rows=n // 2)


def test_origins_cover_the_held_out_part():
    o = fc.origins(150, 300, 5)
    assert o[0] == 149 and o[-1] == 294 and np.all(np.diff(o) == 5)
    with pytest.raises(ValueError):
        fc.origins(300, 300, 1)


def test_ar2_recovers_its_coefficients_and_bic_its_order():
    rng = np.random.default_rng(1)
    x = ar_process([1.2, -0.5], 4000, 3, rng)
    coef = fc.fit_ar(x, 2)
    np.testing.assert_allclose(coef[1:], [[1.2] * 3, [-0.5] * 3], atol=0.04)
    assert np.all(np.abs(coef[0]) < 0.1)
    assert list(fc.ar_orders_bic(x)) == [2, 2, 2]


def test_mvar1_recovers_a_coupled_system():
    rng = np.random.default_rng(2)
    a = np.array([[0.8, 0.15, 0.0], [0.0, 0.7, -0.2], [0.1, 0.0, 0.6]])
    x = np.zeros((6000, 3))
    for t in range(1, len(x)):
        x[t] = a @ x[t - 1] + rng.standard_normal(3)
    c, a_hat = fc.fit_mvar1(x, 1e-6)
    np.testing.assert_allclose(a_hat, a, atol=0.04)
    assert fc.choose_mvar_penalty(x) <= 0.1             # plenty of data: little shrinkage chosen


def test_iterated_ar_forecast_equals_the_closed_form():
    """AR(1) without noise forecasts phi^h x[o] h steps ahead."""
    z = np.linspace(1, 2, 40)[:, None] * np.ones((1, 2))
    coef = np.array([[0.0, 0.0], [0.9, 0.9]])
    o = np.array([10, 20])
    f = fc.ar_forecast(z, o, HORIZONS, coef)
    for k, h in enumerate(HORIZONS):
        np.testing.assert_allclose(f[:, k], 0.9 ** h * z[o], rtol=1e-12)


def test_kalman_multi_step_matches_its_one_step_forecast():
    from assimilation.reference import fit_kalman, kalman_forecasts, kalman_pass
    rng = np.random.default_rng(3)
    z = smooth_series(rng)
    fit = fit_kalman(z[:150], TR)
    one_step, _, _ = kalman_pass(z, fit["F"], fit["Q"], fit["C"], fit["phi"])
    o = fc.origins(150, 300, 3)
    f = kalman_forecasts(z, o, (1, 2), fit)
    np.testing.assert_allclose(f[:, 0], one_step[o + 1], rtol=1e-10, atol=1e-12)


def test_scores_see_amplitude_and_persistence_has_no_skill():
    rng = np.random.default_rng(4)
    z = smooth_series(rng)
    o = fc.origins(150, 300, 1)
    ref = fc.persistence(z, o, HORIZONS)
    s = fc.score(ref, z, o, HORIZONS, ref)
    np.testing.assert_array_equal(s["skill"], 0.0)
    halved = fc.score(0.5 * ref, z, o, HORIZONS, ref)
    np.testing.assert_allclose(halved["r"], s["r"], rtol=1e-12)        # r cannot tell them apart
    assert np.all(halved["skill"] != 0.0)                              # the skill can
    truth = np.stack([z[np.minimum(o + h, len(z) - 1)] for h in HORIZONS], axis=1)
    perfect = fc.score(truth, z, o, HORIZONS, ref)
    np.testing.assert_allclose(perfect["skill"], 1.0)
    assert list(s["n"]) == [150, 149, 146, 141]                         # targets beyond the data are not scored


def test_no_baseline_peeks_at_or_after_its_target():
    """Change every sample from row j on: no forecast issued at an origin before j changes."""
    rng = np.random.default_rng(5)
    z = smooth_series(rng)
    o = fc.origins(150, 300, 1)
    mask = np.ones((z.shape[1],) * 2, dtype=bool)            # with the linear model on the EC too
    base, _ = fc.baseline_forecasts(z, 150, o, HORIZONS, TR, mask)
    j = 200
    z2 = z.copy()
    z2[j:] = rng.standard_normal(z2[j:].shape) * 3
    moved, _ = fc.baseline_forecasts(z2, 150, o, HORIZONS, TR, mask)
    assert set(base) == set(fc.BASELINES)
    early = o < j
    for name in fc.BASELINES:
        np.testing.assert_array_equal(base[name][early], moved[name][early], err_msg=name)
        assert not np.allclose(base[name][~early], moved[name][~early]), name


def test_baselines_are_fitted_on_the_training_part_only():
    """A series whose held-out part is another regime: the baselines keep the training part's
    fit (a model fitted on all the data scores visibly better on the held-out part)."""
    rng = np.random.default_rng(6)
    train = ar_process([1.5, -0.7], 300, 4, rng)
    test = ar_process([0.2, 0.3], 300, 4, rng)
    z = np.concatenate([train, test])
    o = fc.origins(300, 600, 1)
    base, fitted = fc.baseline_forecasts(z, 300, o, HORIZONS, TR)
    np.testing.assert_array_equal(base["AR(2)"], fc.ar_forecast(z, o, HORIZONS, fc.fit_ar(train, 2)))
    ref = base["persistence"]
    honest = fc.score(base["AR(2)"], z, o, HORIZONS, ref)
    leaky = fc.score(fc.ar_forecast(z, o, HORIZONS, fc.fit_ar(z, 2)), z, o, HORIZONS, ref)
    assert leaky["skill"][0] > honest["skill"][0] + 0.1
    assert set(fitted["ar_orders"]) <= {2, 3}          # the training regime's order


def test_white_noise_cannot_be_forecast():
    """The held-out part is white noise: an honest forecast has r near 0 (one that peeked would
    have r near 1)."""
    rng = np.random.default_rng(7)
    z = np.concatenate([smooth_series(rng)[:150], rng.standard_normal((150, 6))])
    o = fc.origins(150, 300, 1)
    scores, _ = fc.compare(z, 150, o, HORIZONS, TR, {})
    for name, s in scores.items():
        assert np.all(np.abs(s["r"]) < 0.2), (name, s["r"])


def test_causal_preprocessing_keeps_later_data_out_of_earlier_samples():
    rng = np.random.default_rng(8)
    x = np.cumsum(rng.standard_normal((300, 4)), axis=0)
    y = x.copy()
    y[220:] += 5 * rng.standard_normal((80, 4))
    a = preprocess(x, TR, True, (0.01, 0.1), True, causal=True, fit_rows=150)
    b = preprocess(y, TR, True, (0.01, 0.1), True, causal=True, fit_rows=150)
    np.testing.assert_array_equal(a[:220], b[:220])
    assert np.allclose(a[:150].mean(axis=0), 0) and np.allclose(a[:150].std(axis=0), 1)
    zero_phase = preprocess(y, TR, True, (0.01, 0.1), True, causal=False, fit_rows=150)
    assert not np.allclose(zero_phase[:220], preprocess(x, TR, True, (0.01, 0.1), True, causal=False, fit_rows=150)[:220])


def test_the_default_config_filters_causally():
    from assimilation.settings import AssimilationSettings
    assert AssimilationSettings().band_pass_causal is True


def test_r2_is_one_minus_sse_over_the_targets_variance():
    """R^2 (Nozari et al. 2024) against its definition: 1 for a perfect forecast, 0 for each
    region's mean target, and 1 - SSE / SST for a noisy one."""
    rng = np.random.default_rng(8)
    z = smooth_series(rng)
    o = fc.origins(150, 300, 5)
    ref = fc.persistence(z, o, HORIZONS)
    truth = np.stack([z[np.minimum(o + h, len(z) - 1)] for h in HORIZONS], axis=1)
    inside = (o[:, None] + np.asarray(HORIZONS)[None, :]) < len(z)
    np.testing.assert_allclose(fc.score(truth, z, o, HORIZONS, ref)["r2"], 1.0)
    means = np.stack([np.broadcast_to(truth[inside[:, h], h].mean(axis=0), truth[:, h].shape)
                      for h in range(len(HORIZONS))], axis=1)
    np.testing.assert_allclose(fc.score(means, z, o, HORIZONS, ref)["r2"], 0.0, atol=1e-12)
    noisy = truth + rng.standard_normal(truth.shape)
    s = fc.score(noisy, z, o, HORIZONS, ref)
    for h in range(len(HORIZONS)):
        t, f = truth[inside[:, h], h], noisy[inside[:, h], h]
        assert s["r2"][h] == pytest.approx(1 - np.sum((f - t) ** 2) / np.sum((t - t.mean(axis=0)) ** 2))


def test_too_few_origins_say_why_there_is_no_score():
    """A held-out part too short for three forecast origins: no number in the table, one line
    per horizon saying why and what gives more."""
    z = np.random.default_rng(0).standard_normal((24, 3))
    o = fc.origins(20, 24, 5)
    scores, _ = fc.compare(z, 20, o, (1, 2), 0.72, {})
    text = fc.table(scores, (1, 2))
    assert "nan" not in text and "n/a" in text
    assert "1 TR ahead: no score, only 1 forecast origin(s)" in text and "forecast_stride" in text
