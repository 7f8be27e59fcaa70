"""cluster: partitions and their plan (checked against the synapses a run really builds), the cost
model's fit (against costs it must recover), job scripts and their errors."""

import json

import numpy as np
import pytest

from conftest import SMALL_NETWORK, run_dtb
from cluster.scaling import UnitCosts, Workload, fit, predict, predict_run, projection, Interconnect, Node
from dtb.partition import Partition, make_partition, partition_regions, plan
from dtb.spec import load_spec, spec_from_dict

ATLAS = {"simulation": {"duration": "10 ms"}, "atlas": {"neurons": 20_000, "indegree": 100}}


def test_partition_segments_roundtrip():
    owner = np.array([0, 0, 1, 1, 1, 0, 2, 2])
    p = Partition.from_owner(owner, 3)
    assert p.starts == (0, 2, 5, 6, 8) and p.owners == (0, 1, 0, 2)
    np.testing.assert_array_equal(p.owner_array(), owner)
    np.testing.assert_array_equal(p.owned(0), [0, 1, 5])
    np.testing.assert_array_equal(p.owner(np.array([7, 2, 5])), [2, 1, 0])
    np.testing.assert_array_equal(p.counts(), [3, 3, 2])


@pytest.mark.parametrize("ranks", [2, 5, 16])
def test_region_partition_keeps_regions_and_balances(ranks):
    spec = spec_from_dict(ATLAS)
    part = partition_regions(spec, ranks)
    owner = part.owner_array()
    assert len(owner) == spec.n_neurons and set(np.unique(owner)) == set(range(ranks))
    rows, tot = plan(spec, part)
    assert tot["imbalance"] <= 0.05
    _, rr = plan(spec, make_partition(spec, ranks, "round-robin"))
    share = spec.n_neurons / ranks
    assert tot["cross_fraction"] <= 0.5 * rr["cross_fraction"]
    # regions stay whole, but for the ones larger than half a rank's share and about one per rank
    # cut by the balancing pass
    region_of = np.repeat([spec.regions.index(p.region) for p in spec.populations], [p.size for p in spec.populations])
    split = sum(len(np.unique(owner[region_of == r])) > 1 for r in range(len(spec.regions)))
    big = sum(len(np.flatnonzero(region_of == r)) > share / 2 for r in range(len(spec.regions)))
    assert split <= big + ranks


def test_plan_matches_the_synapses_a_run_builds(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    spec = load_spec(cfg)
    for method in ("contiguous", "round-robin"):
        _, tot = plan(spec, make_partition(spec, 3, method))
        p = run_dtb(["run", str(cfg), "--ranks", "3", "--partition", method, "--duration", "5 ms", "--out",
                     str(tmp_path / method), "--no-plots", "-q"])
        assert p.returncode == 0, p.stderr
        s = json.loads((tmp_path / method / "summary.json").read_text())
        measured = s["synapses_remote"] / s["synapses"]
        assert abs(tot["synapses"] - s["synapses"]) / s["synapses"] < 0.02
        assert abs(tot["cross_fraction"] - measured) < 0.02, (method, tot["cross_fraction"], measured)


def test_fit_recovers_known_costs():
    true = UnitCosts(c_step=2e-6, c_neuron=3e-8, c_event=6e-8, c_round=2e-4, c_spike=0.0, m0=1.5e8, m_neuron=500.0,
                     m_synapse=30.0)
    runs = []
    for n, k, r in ((10_000, 100, 1), (20_000, 100, 1), (10_000, 300, 1), (10_000, 100, 2)):
        w = Workload(neurons=n, indegree=k, rate_hz=7.0)
        pred = predict(true, w, r)
        runs.append({"ranks": r, "neurons": n, "synapses": n * k, "spikes": 7.0 * n, "duration_s": 1.0, "dt": 1e-4,
                     "wall_s": pred.wall_s, "exchange_s": pred.exchange_s, "exchange_rounds": 1000 if r > 1 else 0,
                     "peak_rss": true.m0 + n * true.m_neuron + n * k * true.m_synapse, "min_delay_s": 1e-3})
    got = fit(runs)
    for name in ("c_step", "c_neuron", "c_event", "m0", "m_neuron", "m_synapse"):
        assert getattr(got, name) == pytest.approx(getattr(true, name), rel=1e-6), name
    # the exchange fit sees a micro-measured per-spike cost; the total exchange time is still reproduced
    assert predict_run(got, runs[-1]) == pytest.approx(runs[-1]["wall_s"], rel=0.02)


def test_projection_scales_sensibly():
    c = UnitCosts(c_step=0, c_neuron=2.5e-8, c_event=5e-8, c_round=2e-4, c_spike=1.6e-7, m0=1.8e8, m_neuron=400,
                  m_synapse=100)
    rows = projection(c, [1e6, 1e9, 8.6e10], Node(), Interconnect())
    assert [r["nodes"] for r in rows] == sorted(r["nodes"] for r in rows)
    assert all(r["memory_per_node_GB"] <= 512 for r in rows)
    # an allgather cannot scale: every rank sees every spike; a targeted exchange stays bounded
    assert rows[-1]["rtf_allgather"] > 100 * rows[-1]["rtf_targeted"] / 2
    assert rows[-1]["rtf_targeted"] < 2 * rows[1]["rtf_targeted"]


def test_cluster_commands(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    p = run_dtb(["cluster", "plan", str(cfg), "--ranks", "4", "--per-rank"])
    assert p.returncode == 0, p.stderr
    assert "regions" in p.stdout and "round-robin" in p.stdout and "rank    3" in p.stdout
    p = run_dtb(["cluster", "scale", "--neurons", "1e6", "8.6e10", "--png", str(tmp_path / "s.png")])
    assert p.returncode == 0, p.stderr
    assert "8.6e+10" in p.stdout and (tmp_path / "s.png").stat().st_size > 10_000
    p = run_dtb(["cluster", "job", str(cfg), "--ranks", "2", "--out", str(tmp_path / "job"), "--time", "00:10:00",
                 "--checkpoint-every", "1 s", "--partition", "gpu"])
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "job" / "job.sh").read_text()
    assert "#SBATCH --time=00:10:00" in text and "#SBATCH --partition=gpu" in text and "--checkpoint-every '1 s'" in text
    assert (tmp_path / "job" / "net.toml").read_text() == SMALL_NETWORK
    for args, msg in ((["--ranks", "2", "--time", "ten minutes"], "--time"),
                      (["--ranks", "2", "--nodes", "3"], "--nodes"),
                      (["--ranks", "2", "--checkpoint-every", "5 parsecs"], "--checkpoint-every")):
        p = run_dtb(["cluster", "job", str(cfg), "--out", str(tmp_path / "bad"), *args])
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = run_dtb(["cluster", "scale", "--costs", str(cfg)])
    assert p.returncode == 2 and "not a costs file" in p.stderr
