"""Spike trains are bitwise identical on 1, 2 and 3 ranks (global id and time step)."""

import h5py
import numpy as np
import pytest

from conftest import SMALL_NETWORK, run_dtb
from dtb.results import read_spikes


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("repro")
    cfg = d / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    out = {}
    for n in (1, 2, 3):
        p = run_dtb(["run", str(cfg), "--out", str(d / f"r{n}"), "--no-plots", "-q"], ranks=n)
        assert p.returncode == 0, p.stderr
        out[n] = d / f"r{n}" / "run.h5"
    # a tiny exchange block: early windows overflow and take the second, blocking path (the block
    # then grows)
    p = run_dtb(["run", str(cfg), "--out", str(d / "overflow"), "--no-plots", "-q"], ranks=2,
                env_extra={"DTB_EXCHANGE_BLOCK": "3"})
    assert p.returncode == 0, p.stderr
    out["overflow"] = d / "overflow" / "run.h5"
    # overlapping (non-blocking) exchange
    cfg2 = d / "overlap.toml"
    cfg2.write_text(SMALL_NETWORK.replace('seed = 99', 'seed = 99\nexchange = "overlap"'))
    p = run_dtb(["run", str(cfg2), "--out", str(d / "overlap"), "--no-plots", "-q"], ranks=3)
    assert p.returncode == 0, p.stderr
    out["overlap"] = d / "overlap" / "run.h5"
    # targeted exchange: each spike only to the ranks holding its targets
    cfg3 = d / "targeted.toml"
    cfg3.write_text(SMALL_NETWORK.replace('seed = 99', 'seed = 99\nexchange = "targeted"'))
    p = run_dtb(["run", str(cfg3), "--out", str(d / "targeted"), "--no-plots", "-q", "--partition", "round-robin"],
                ranks=3)
    assert p.returncode == 0, p.stderr
    out["targeted"] = d / "targeted" / "run.h5"
    # other partitions: regions kept together by METIS, and round-robin (many segments per rank)
    for method, n in (("regions", 2), ("round-robin", 3)):
        p = run_dtb(["run", str(cfg), "--out", str(d / method), "--no-plots", "-q", "--partition", method], ranks=n)
        assert p.returncode == 0, p.stderr
        out[method] = d / method / "run.h5"
    return out


def test_network_is_active_and_crosses_ranks(runs):
    gids, t = read_spikes(runs[1])
    # every population fires, so the comparison below is not between empty rasters
    with h5py.File(runs[1]) as f:
        for pop in ("A_E", "A_I", "B_E", "B_I"):
            assert len(f["spikes"][pop]["node_ids"]) > 50, pop
    with h5py.File(runs[3]) as f:
        assert f.attrs["n_ranks"] == 3
        # on 3 ranks many synapses have their source on another rank
        assert f["summary"].attrs["synapses_remote"] > 5000


@pytest.mark.parametrize("n", [2, 3, "overflow", "overlap", "regions", "round-robin", "targeted"])
def test_spikes_bitwise_identical(runs, n):
    g1, t1 = read_spikes(runs[1])
    gn, tn = read_spikes(runs[n])
    assert len(g1) > 1000
    np.testing.assert_array_equal(g1, gn)
    np.testing.assert_array_equal(t1, tn)


@pytest.mark.parametrize("n", [2, 3])
def test_regional_activity_identical(runs, n):
    with h5py.File(runs[1]) as a, h5py.File(runs[n]) as b:
        for name in ("I_exc", "I_inh"):
            x, y = a["regions"][name][()], b["regions"][name][()]
            assert x.shape == (150, 2)
            np.testing.assert_array_equal(x, y)
        exc, inh = a["regions/I_exc"][()], a["regions/I_inh"][()]
        assert np.all(exc > 0) and np.all(inh <= 0) and inh[50:].mean() < -10  # pA


ONE_POPULATION = """
[simulation]
duration = "150 ms"
seed = 5

[[populations]]
name = "P"
size = 300
kind = "excitatory"

[[projections]]
source = "P"
target = "P"
rule = "fixed_probability"
probability = 0.05
receptor = "ampa"
weight = "0.4 nS"
delay = {distribution = "uniform", low = "0.5 ms", high = "2.5 ms"}

[[stimuli]]
type = "poisson"
population = "P"
rate = "3800 Hz"
weight = "1.2 nS"
"""


def test_more_ranks_than_populations(tmp_path):
    cfg = tmp_path / "one.toml"
    cfg.write_text(ONE_POPULATION)
    spikes = {}
    for n in (1, 3):
        p = run_dtb(["run", str(cfg), "--out", str(tmp_path / f"r{n}"), "--no-plots", "-q"], ranks=n)
        assert p.returncode == 0, p.stderr
        spikes[n] = read_spikes(tmp_path / f"r{n}" / "run.h5")
    assert len(spikes[1][0]) > 200
    np.testing.assert_array_equal(spikes[1][0], spikes[3][0])
    np.testing.assert_array_equal(spikes[1][1], spikes[3][1])
