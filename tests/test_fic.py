"""Feedback inhibition control (assimilation.fic): the loop converges on a rate law with noise,
lengthening its window as it nears the target, and on a real small network every region's
excitatory rate ends within the tolerance of the target."""

import numpy as np
import pytest

from assimilation import fic


def test_the_loop_converges_on_a_steep_noisy_rate_law():
    """rate = a_r scale^-2.6 with 2 % noise per unit window (1/sqrt(seconds) smaller in longer
    windows), regions 10-fold apart at scale 1: every region ends within 10 % of 3 Hz."""
    rng = np.random.default_rng(0)
    a = np.geomspace(10.0, 100.0, 20)
    state = {}
    seen = []

    def measure(seconds):
        seen.append(seconds)
        return a * state["s"] ** -2.6 * np.exp(0.05 / np.sqrt(seconds) * rng.standard_normal(len(a)))
    res = fic.calibrate(measure, lambda s: state.update(s=s.copy()), np.ones(len(a)), 3.0, 0.1, 60, window=1.0)
    assert res.converged and res.within == 1.0
    assert np.all(np.abs(res.rates / 3.0 - 1.0) <= 0.1)
    assert np.allclose(res.scale, (a / 3.0) ** (1 / 2.6), rtol=0.1)
    assert res.history.shape[1:] == (2, len(a)) and len(res.history) == len(seen)
    assert seen[0] == 1.0 and max(seen) > 1.0                     # the window lengthened near the target


def test_a_loop_that_cannot_reach_the_target_says_so():
    res = fic.calibrate(lambda seconds: np.full(3, 10.0), lambda s: None, np.ones(3), 3.0, 0.1, 5, window=1.0)
    assert not res.converged and res.within == 0.0 and len(res.history) == 5


def test_the_counting_window_sets_the_noise():
    assert fic.counting_window(np.array([100.0, 40.0]), 3.0, 0.1) == pytest.approx(1600 / 120)


@pytest.mark.slow
def test_fic_reaches_its_target_on_a_small_network():
    """Four regions of 250 neurons (two members), coupled as the HCP twin is (long-range input to
    both E and I, 0.6 to I): from scale 1 (about 20 Hz) FIC brings every region's excitatory
    rate within 10 % of 3 Hz, and a longer run afterwards confirms it within 15 %."""
    import dataclasses

    from assimilation.structure import TwinStructure, prior_x, twin_simulation
    from dtb.engine.kernel import world_comm
    from tests.test_effective import small_atlas
    spec = small_atlas(4, long_range_inhibitory=0.6, dt=1e-3, min_delay=1e-3)
    spec = dataclasses.replace(spec, bold=_bold(), assimilation=_settings())
    sim, a = twin_simulation(spec, TwinStructure(), 2, world_comm(), np.zeros((1, 4)), free=True,
                             x0=prior_x(spec, 2), n_assimilate=0)

    def set_factors(f):
        a.scales["gabaa"] = f
        a.apply()
    res = fic.run_calibration(sim, spec, 2, 3.0, 0.1, 2.0, 40, set_factors)
    assert res.converged, res.rates
    assert res.history[0, 1].mean() > 6.0                          # it started well above the target
    check = fic.ExcitatoryRates(sim, spec, 2)
    sim.run(20.0)
    rates = check.window()
    assert np.all(np.abs(rates / 3.0 - 1.0) <= 0.15), rates


def _bold():
    from dtb.bold import BoldSettings
    return BoldSettings(tr=1.0, drive="rate")


def _settings():
    from assimilation.settings import AssimilationSettings
    return AssimilationSettings(members=2, hyperparameters=("gabaa",))


def test_the_update_takes_larger_steps_far_from_the_target():
    near = fic.update(np.array([2.0, 0.5]))
    np.testing.assert_allclose(near, [2.0 ** fic.EXPONENT, 0.5 ** fic.EXPONENT])
    far = fic.update(np.array([40.0, 0.25, 1e-9]))
    np.testing.assert_allclose(far, [fic.FAR_LIMIT, 0.5, 1.0 / fic.FAR_LIMIT])
