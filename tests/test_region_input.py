"""The region input of the assimilation (assimilation.region_input): the rates it sets per
member and region, its Ornstein-Uhlenbeck forecast, and the settings that turn it on."""

import numpy as np
import pytest

from assimilation.region_input import RegionInput
from dtb.spec import PoissonStimulus


class _Spec:
    """The little of a NetworkSpec RegionInput reads."""

    def __init__(self):
        from types import SimpleNamespace as NS
        self.regions = ["A", "B"]
        self.populations = [NS(name="A.E", region="A", kind="excitatory"), NS(name="B.E", region="B", kind="excitatory"),
                            NS(name="B.I", region="B", kind="inhibitory")]
        self.stimuli = tuple(PoissonStimulus(population=p, rate=r, weight=1e-9)
                             for p, r in (("A.E", 1000.0), ("B.E", 2000.0), ("B.I", 500.0)))


class _Sim:
    def __init__(self):
        self.rates = {}

    def set_stimulus_rates(self, rates):
        self.rates.update(rates)


def test_region_input_scales_its_regions_backgrounds_per_member():
    inp = RegionInput(_Spec(), M=2, std=0.3, tau=5.0, tr=1.0)
    inp.u = np.array([[0.0, np.log(2.0)], [np.log(0.5), 0.0]])
    sim = _Sim()
    inp.apply(sim)
    # ensemble stimulus index = member * 3 + base index
    assert sim.rates == pytest.approx({0: 1000.0, 1: 4000.0, 2: 1000.0, 3: 500.0, 4: 2000.0, 5: 500.0})
    only_e = RegionInput(_Spec(), M=2, std=0.3, tau=5.0, tr=1.0, populations="excitatory")
    only_e.u = inp.u
    sim = _Sim()
    only_e.apply(sim)
    assert sim.rates == pytest.approx({0: 1000.0, 1: 4000.0, 3: 500.0, 4: 2000.0})   # B.I's background left alone


def test_the_common_part_is_shared_by_every_region_and_keeps_its_std():
    """Each region's own part (its std per region) plus a part common to a member's regions:
    the stationary stds and the correlation between regions they imply, and a free run's
    noise keyed by TR so that it is the same whatever runs it."""
    inp = RegionInput(_Spec(), M=20_000, std=np.array([0.1, 0.2]), tau=2.0, tr=1.0, common_std=0.2)
    rng = np.random.default_rng(4)
    inp.start(rng)
    for _ in range(10):
        inp.relax(rng)
    total = inp.total()
    assert total[:, 0].std() == pytest.approx(np.sqrt(0.1 ** 2 + 0.2 ** 2), rel=0.03)
    assert total[:, 1].std() == pytest.approx(np.sqrt(0.2 ** 2 + 0.2 ** 2), rel=0.03)
    expected = 0.2 ** 2 / np.sqrt((0.1 ** 2 + 0.04) * (0.2 ** 2 + 0.04))
    assert np.corrcoef(total.T)[0, 1] == pytest.approx(expected, abs=0.02)

    class Hooked(_Sim):
        spec = type("S", (), {"bold": type("B", (), {"tr": 1.0})})

        def add_hook(self, period, fn):
            self.hook = fn
    runs = []
    for _ in range(2):
        sim = Hooked()
        drv = RegionInput(_Spec(), M=3, std=0.1, tau=2.0, tr=1.0, common_std=0.05)
        drv.drive(sim, seed=9, stream=1)
        sim.hook(sim)
        runs.append(drv.total().copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_region_input_relaxes_with_its_time_constant_and_keeps_its_stationary_std():
    inp = RegionInput(_Spec(), M=4000, std=0.3, tau=5.0, tr=1.0)
    inp.u[:] = 1.0
    inp.relax()
    np.testing.assert_allclose(inp.u, np.exp(-1 / 5.0))            # no noise without a generator
    rng = np.random.default_rng(2)
    inp.u = 0.3 * rng.standard_normal(inp.u.shape)
    for _ in range(20):
        inp.relax(rng)
    # 8,000 draws: the sd's standard error is ~0.8 %
    assert inp.u.std() == pytest.approx(0.3, rel=0.04)
    lag = RegionInput(_Spec(), M=4000, std=0.3, tau=5.0, tr=1.0)
    lag.u = inp.u.copy()
    inp.relax(rng)
    r = np.corrcoef(lag.u.ravel(), inp.u.ravel())[0, 1]
    assert r == pytest.approx(np.exp(-1 / 5.0), abs=0.02)


def test_settings_read_the_region_input():
    from dtb.config import spec_from_dict
    s = spec_from_dict({"atlas": {"neurons": 1400, "min_neurons": 20}, "bold": {"tr": "1 s"},
                        "assimilation": {"input_std": 0.2, "input_tau": "8 s"}}).assimilation
    assert (s.input_std, s.input_tau) == (0.2, 8.0)
