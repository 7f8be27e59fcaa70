"""The command line: --help everywhere, the run outputs and their documented layout."""

import json

import h5py
import numpy as np
import pytest

from conftest import SMALL_NETWORK, run_dtb
from dtb.partition import partition_contiguous
from dtb.spec import spec_from_dict


@pytest.mark.parametrize("cmd", [[], ["run"], ["check"], ["bold"], ["atlas"], ["atlas", "info"], ["atlas", "build"]])
def test_help(cmd):
    p = run_dtb([*cmd, "--help"])
    assert p.returncode == 0 and "usage: dtb" in p.stdout


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    cfg = d / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    p = run_dtb(["run", str(cfg), "--ranks", "2", "--out", str(d / "out"), "--duration", "200 ms", "--seed", "5"])
    assert p.returncode == 0, p.stderr
    return d / "out", p


def test_run_prints_summary(run_dir):
    out, p = run_dir
    assert "560 neurons" in p.stdout and "2 rank(s)" in p.stdout and "s of wall time per biological second (" in p.stdout
    for pop in ("A_E", "A_I", "B_E", "B_I"):
        assert pop in p.stdout


def test_run_outputs_and_layout(run_dir):
    out, _ = run_dir
    assert sorted(x.name for x in out.iterdir()) == ["raster.png", "regions.png", "run.h5", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 5 and summary["n_ranks"] == 2 and summary["duration_s"] == pytest.approx(0.2)
    with h5py.File(out / "run.h5") as f:
        assert f.attrs["n_ranks"] == 2 and f.attrs["seed"] == 5 and f.attrs["dt_ms"] == pytest.approx(0.1)
        assert "[simulation]" in f.attrs["config"]
        assert "brian2" in json.loads(f.attrs["versions"])
        pops = f["network/populations"][()]
        assert [p["size"] for p in pops] == [240, 60, 200, 60]
        rates = f["rates"][()]
        assert rates.shape == (40, 4) and f["rates"].attrs["bin_ms"] == pytest.approx(5)
        total = sum(len(f["spikes"][n]["node_ids"]) for n in ("A_E", "A_I", "B_E", "B_I"))
        # the rate table and the spike report describe the same spikes
        assert rates.sum(axis=0) @ np.array([240, 60, 200, 60]) * 5e-3 == pytest.approx(total)
        assert f["regions/I_exc"].shape == (100, 2)


def test_spike_report_is_sonata(run_dir):
    libsonata = pytest.importorskip("libsonata")
    out, _ = run_dir
    reader = libsonata.SpikeReader(str(out / "run.h5"))
    assert sorted(reader.get_population_names()) == ["A_E", "A_I", "B_E", "B_I"]
    pop = reader["B_E"]
    assert pop.sorting == "by_time"
    spikes = pop.get()
    with h5py.File(out / "run.h5") as f:
        assert len(spikes) == len(f["spikes/B_E/node_ids"])
    assert all(0 <= node < 200 and 0 <= t < 200 for node, t in spikes)


def test_check_command(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    p = run_dtb(["check", str(cfg), "--ranks", "3"])
    assert p.returncode == 0 and "560 neurons" in p.stdout and "rank 2" in p.stdout


def test_partition_any_rank_count():
    spec = spec_from_dict({"populations": [{"name": "a", "size": 10, "kind": "excitatory"},
                                           {"name": "b", "size": 7, "kind": "inhibitory"}]})
    for n in (1, 2, 3, 5, 17):
        part = partition_contiguous(spec, n)
        sizes = part.counts()
        assert part.starts[0] == 0 and part.starts[-1] == 17 and len(sizes) == n
        assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1


@pytest.mark.mpi
def test_ranks_run_the_package_whatever_the_working_folder(tmp_path):
    """Started from a folder that holds a directory named dtb (a user's clone, say), the ranks
    still import the installed package (they are launched with python -P)."""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import SMALL_NETWORK
    (tmp_path / "dtb").mkdir()
    (tmp_path / "dtb" / "__init__.py").write_text("raise SystemExit('imported the wrong dtb')\n")
    (tmp_path / "net.toml").write_text(SMALL_NETWORK)
    exe = Path(sys.executable).parent / "dtb"
    p = subprocess.run([str(exe), "run", "net.toml", "--ranks", "2", "--duration", "50 ms", "--no-plots", "-q",
                        "--out", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "wrong dtb" not in p.stderr and (tmp_path / "out" / "run.h5").exists()


def test_check_and_cluster_plan_agree_on_memory(tmp_path):
    from conftest import SMALL_NETWORK, run_dtb
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    check = run_dtb(["check", str(cfg), "--ranks", "2"])
    plan = run_dtb(["cluster", "plan", str(cfg), "--ranks", "2"])
    assert check.returncode == 0 and plan.returncode == 0, check.stderr + plan.stderr
    import re
    per_rank = max(int(m) for m in re.findall(r"~(\d+) MB at the build's peak", check.stdout))
    contiguous = next(line for line in plan.stdout.splitlines() if line.startswith("contiguous"))
    assert f" {per_rank} MB" in contiguous, (check.stdout, plan.stdout)
