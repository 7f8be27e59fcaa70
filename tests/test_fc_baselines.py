"""The FC baselines' helpers (assimilation.fc_baselines): BOLD resampled at the TR, and the Hopf
model's FCD against the data's."""

import numpy as np
import pytest

from assimilation.fc_baselines import hopf_available, hopf_bold, hopf_fc_r, on_tr_grid


def test_bold_sampled_every_2_s_resamples_at_the_tr():
    """A 0.05 Hz sine (inside the data's 0.01-0.1 Hz band) sampled every 2 s comes back at 0.72 s
    within 1 % of its amplitude, and no row lies past the last sample."""
    t2 = 2.0 * np.arange(60)
    sig = np.stack([np.sin(2 * np.pi * 0.05 * t2), np.cos(2 * np.pi * 0.03 * t2)], axis=1)
    out = on_tr_grid(sig, 2.0, 0.72, 500)
    t = 0.72 * np.arange(len(out))
    assert t[-1] <= t2[-1] < t[-1] + 0.72
    want = np.stack([np.sin(2 * np.pi * 0.05 * t), np.cos(2 * np.pi * 0.03 * t)], axis=1)
    assert np.abs(out - want).max() < 0.01


@pytest.mark.skipif(not hopf_available(), reason="neurolib not installed")
def test_hopf_fcd_is_compared_on_the_datas_windows():
    """On a small connectome: the Hopf entries are there and the FCD KS distance is a distance
    (in [0, 1]); data with no FC dynamics at all (white noise: FCD values near 0) sit far from
    the Hopf model's FCD, data drawn from the Hopf model itself near it."""
    rng = np.random.default_rng(0)
    R, T, tr = 6, 200, 0.72
    w = rng.random((R, R)) * (rng.random((R, R)) < 0.7)
    np.fill_diagonal(w, 0)
    lengths = 20 + 60 * rng.random((R, R))
    lengths = (lengths + lengths.T) / 2

    def prep(b, _tr):
        return (b - b.mean(axis=0)) / b.std(axis=0)
    noise = rng.standard_normal((T, R))
    got = hopf_fc_r(w, lengths, noise, noise, tr, 3, prep)
    assert set(got) == {"hopf_K", "fc_hopf_runs", "fc_hopf", "fcd_ks_hopf"}
    assert 0.0 <= got["fcd_ks_hopf"] <= 1.0
    like = on_tr_grid(prep(hopf_bold(w, lengths, got["hopf_K"], 9, 2.0 * np.ceil((10 + T * tr) / 2)), 2.0), 2.0, tr, T)
    near = hopf_fc_r(w, lengths, like, like, tr, 3, prep)["fcd_ks_hopf"]
    print(f"\nFCD KS: Hopf vs white noise {got['fcd_ks_hopf']:.3f}, vs another Hopf run {near:.3f}")
    assert near < got["fcd_ks_hopf"]


@pytest.mark.skipif(not hopf_available(), reason="neurolib not installed")
def test_a_diverging_hopf_run_is_none_and_silent(caplog):
    """A coupling strong enough to diverge gives None, and neurolib's "nan in model output!"
    (logged at ERROR on the root logger) does not reach the user; the root logger is left as it was."""
    import logging
    rng = np.random.default_rng(0)
    R = 6
    w = rng.random((R, R)) * (rng.random((R, R)) < 0.7)
    np.fill_diagonal(w, 0)
    lengths = 20 + 60 * rng.random((R, R))
    filters = list(logging.getLogger().filters)
    with caplog.at_level(logging.DEBUG):
        assert hopf_bold(w, (lengths + lengths.T) / 2, 100.0, 1, 20.0) is None
    assert not [r for r in caplog.records if "nan" in r.getMessage()], caplog.text
    assert logging.getLogger().filters == filters


def test_subject_specificity_uses_held_out_rows_only():
    """Each subject's held-out rows preprocessed on their own: the training rows of any subject
    can be anything without changing a model's specificity; a model whose FC is subject 0's
    ranks subject 0 first, with a positive differential identifiability."""
    from types import SimpleNamespace as NS

    from assimilation.settings import AssimilationSettings
    from assimilation.validation import heldout_alone, identifiability
    rng = np.random.default_rng(3)
    spec = NS(assimilation=AssimilationSettings(band_pass=(0.01, 0.1)), bold=NS(tr=0.72))
    mixing = [rng.standard_normal((8, 8)) for _ in range(4)]
    raw = [rng.standard_normal((300, 8)) @ m for m in mixing]
    model = {"twin": np.corrcoef((rng.standard_normal((5000, 8)) @ mixing[0]).T)}
    first = identifiability(model, [heldout_alone(r, 150, spec) for r in raw])
    changed = [np.concatenate([rng.standard_normal((150, 8)) * 50, r[150:]]) for r in raw]
    again = identifiability(model, [heldout_alone(r, 150, spec) for r in changed])
    assert first == again
    assert first["id_twin_rank"] == 1 and first["id_twin_diff"] > 0.2 and first["id_subjects"] == 4
