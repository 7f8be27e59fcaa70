"""Runs that a bad value or a full disk cannot break: sizes and overflows refused before anything
is allocated, a corpus of bad configs with one-line errors and no traceback, a full checkpoint
disk that leaves the previous checkpoint resumable, and the leftovers of killed runs cleaned."""

import copy
import hashlib
import json
import subprocess
import tomllib
from pathlib import Path

import h5py
import pytest

from atlas import toml
from conftest import SMALL_NETWORK, run_dtb
from dtb.cli import main

BASE = tomllib.loads(SMALL_NETWORK)


def with_value(path: str, value):
    """BASE with the field at ``path`` ("projections[0].weight", "simulation.seed") set to
    ``value`` (None: removed)."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        name, _, index = part.partition("[")
        node = node.setdefault(name, {}) if not index else node[name][int(index[:-1])]
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return toml.dumps(data)


MUTATIONS = [
    ("simulation.dt", "0 ms"), ("simulation.dt", "-1 ms"), ("simulation.dt", "1 mV"), ("simulation.dt", 5),
    ("simulation.dt", [1]), ("simulation.duration", "0 s"), ("simulation.duration", "soon"),
    ("simulation.duration", True), ("simulation.seed", -1), ("simulation.seed", 2**64), ("simulation.seed", "1"),
    ("simulation.seed", 1.5), ("simulation.weight_quantum", "0 nS"), ("simulation.weight_quantum", "1 ms"),
    ("simulation.exchange", "fast"), ("simulation.scale", 0), ("simulation.scale", "big"),
    ("simulation.speed", 1), ("populations[0].size", 0), ("populations[0].size", -5), ("populations[0].size", 1.5),
    ("populations[0].size", "10"), ("populations[0].size", 3_000_000_000), ("populations[0].kind", "glial"),
    ("populations[0].name", "A_I"), ("populations[0].params", {"t_ref": "2 mV"}),
    ("populations[0].params", {"V_th": "-80 mV"}), ("populations[0].params", {"nope": 1}),
    ("projections[0].source", "ghost"), ("projections[0].indegree", -1), ("projections[0].indegree", 10**12),
    ("projections[0].indegree", "many"), ("projections[0].rule", "all_to_all"),
    ("projections[0].receptor", "glutamate"), ("projections[0].weight", "1 ms"),
    ("projections[0].weight", {"distribution": "normal"}),
    ("projections[0].weight", {"distribution": "normal", "mean": "1 nS", "std": "-1 nS"}),
    ("projections[0].weight", "1e9 nS"), ("projections[0].delay", "0 ms"), ("projections[0].delay", "-1 ms"),
    ("projections[0].delay", "1 nS"), ("projections[2].probability", 1.5), ("projections[2].probability", -0.1),
    ("stimuli[0].rate", "-1 Hz"), ("stimuli[0].rate", "3 ms"), ("stimuli[0].weight", "1e6 nS"),
    ("stimuli[0].weight", "-1 nS"), ("stimuli[0].type", "laser"), ("stimuli[4].stop", "50 ms"),
    ("stimuli[0].population", "ghost"), ("monitors.rate_bin", "0 ms"),
    ("monitors.state", [{"population": "ghost", "indices": [0], "variables": ["v"]}]),
    ("monitors.state", [{"population": "A_E", "indices": [9999], "variables": ["v"]}]),
    ("bold.tr", "0 s"), ("bold.preset", "nope"), ("assimilation.members", 1),
    ("assimilation.band_pass", [0.1, 0.01]), ("assimilation.forecast_horizons", [0]),
    ("assimilation.forecast_stride", 0), ("bridge.motor", ["ghost"]),
]

TEXTS = {
    "empty": "",
    "not TOML": "[simulation\ndt = ",
    "deeply nested": "a = " + "[" * 10_000 + "]" * 10_000,
    "no populations": "[simulation]\ndt = \"0.1 ms\"\n",
    "populations not a list": 'populations = "x"\n',
    "unknown section": SMALL_NETWORK + "\n[telepathy]\non = true\n",
}


def check_rejects(path: Path, capsys) -> str:
    """``dtb check PATH`` in this process: exit 2 and one error line naming the file."""
    rc = main(["check", str(path)])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dtb: error: ") and str(path) in lines[0], err
    return lines[0]


@pytest.mark.parametrize("field, value", MUTATIONS, ids=[f"{f}={v!r}"[:60] for f, v in MUTATIONS])
def test_bad_values_are_one_line_errors(tmp_path, capsys, field, value):
    path = tmp_path / "bad.toml"
    path.write_text(with_value(field, value))
    line = check_rejects(path, capsys)
    assert field.split(".")[0].split("[")[0] in line


@pytest.mark.parametrize("name", list(TEXTS))
def test_bad_files_are_one_line_errors(tmp_path, capsys, name):
    path = tmp_path / "bad.toml"
    path.write_text(TEXTS[name])
    check_rejects(path, capsys)


def test_binary_garbage_and_folders_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "garbage.toml"
    path.write_bytes(bytes(range(256)) * 4)
    assert "not a text file" in check_rejects(path, capsys)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    assert "is a folder" in check_rejects(folder, capsys)


def test_the_corpus_is_large():
    assert len(MUTATIONS) + len(TEXTS) + 2 >= 50


def test_sizes_are_checked_before_anything_is_allocated(tmp_path, capsys):
    """10**12 synapses (or 10**9 neurons) are refused at once, naming the memory they would need."""
    path = tmp_path / "huge.toml"
    path.write_text(with_value("projections[0].indegree", 10**12))
    line = check_rejects(path, capsys)
    assert "synapses on one of 1 rank(s)" in line and "lower simulation.scale" in line
    path.write_text(with_value("populations[0].size", 10**9))
    assert "populations[0] with 1000000000 neurons" in check_rejects(path, capsys)
    path.write_text(with_value("populations[0].size", 10**7))      # 8e8 synapses: 10^2 GB, not here
    line = check_rejects(path, capsys)
    assert "GB per rank" in line and "available" in line
    import resource
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 3 * 2**20      # KB: no gid array was built


def test_seed_override_and_units_of_duration(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    p = run_dtb(["run", str(cfg), "--seed", str(2**64), "--out", str(tmp_path / "o")])
    assert p.returncode == 2 and "--seed must be in 0 .. 2**63 - 1" in p.stderr and "Traceback" not in p.stderr
    p = run_dtb(["run", str(cfg), "--duration", "0.3", "--out", str(tmp_path / "o")])
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "'0.3' has no unit" in p.stderr and '"0.3 s"' in p.stderr
    assert not (tmp_path / "o" / "run.h5").exists()


def small_filesystem(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` (root only); None where it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return path if p.returncode == 0 else None


def test_full_checkpoint_disk_is_a_clear_error_and_the_last_checkpoint_resumes(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    ck = tmp_path / "ck"
    mounted = small_filesystem(ck, "200k")
    # about 60 kB per checkpoint: the first fits, the second does not (tmpfs), or the disk is
    # simulated full after the first one (where no tmpfs can be mounted)
    env = {} if mounted else {"DTB_TEST_DISK_FREE": f"{ck}:100000"}
    try:
        p = run_dtb(["run", str(cfg), "--out", str(tmp_path / "out"), "--checkpoint-dir", str(ck),
                     "--checkpoint-every", "100 ms", "--no-plots", "-q", "--duration", "1 s"], env_extra=env)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "no space left on device" in lines[0] and "is intact" in lines[0], p.stderr
        assert (ck / "LATEST").read_text().strip() == "step-000000001000"
        assert not list(ck.glob(".tmp-*"))
        p = run_dtb(["run", "--resume", str(ck), "--out", str(tmp_path / "resumed"), "--no-plots", "-q",
                     "--duration", "0.3 s"])
        assert p.returncode == 0, p.stderr
    finally:
        if mounted:
            subprocess.run(["umount", str(ck)])
    full = tmp_path / "full"
    p = run_dtb(["run", str(cfg), "--out", str(full), "--no-plots", "-q"])
    from conftest import assert_same_spikes
    assert_same_spikes(full / "run.h5", tmp_path / "resumed" / "run.h5", at_least=500)


def test_output_folder_without_room_is_refused_before_the_run(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK.replace('duration = "300 ms"', 'duration = "100 s"'))
    out = tmp_path / "out"
    p = run_dtb(["run", str(cfg), "--out", str(out), "-q"], env_extra={"DTB_TEST_DISK_FREE": f"{out.parent}:1000000"})
    assert p.returncode == 2 and "the results need about" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK.replace('duration = "300 ms"', 'duration = "50 ms"'))
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".tmp-999999999-run.h5"              # no such process
    stale.write_bytes(b"half a file")
    p = run_dtb(["run", str(cfg), "--out", str(out), "--no-plots", "-q"])
    assert p.returncode == 0, p.stderr
    assert not stale.exists() and (out / "run.h5").exists()


def test_a_resigned_damaged_checkpoint_is_a_clear_error(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    out = tmp_path / "out"
    p = run_dtb(["run", str(cfg), "--out", str(out), "--no-plots", "-q", "--duration", "100 ms",
                 "--checkpoint-every", "50 ms"])
    assert p.returncode == 0, p.stderr
    step = out / "checkpoint" / (out / "checkpoint" / "LATEST").read_text().strip()
    rank_file = step / "rank-00000.h5"
    with h5py.File(rank_file, "a") as f:
        del f["neurons/v"]
    manifest = json.loads((step / "manifest.json").read_text())
    manifest["files"]["rank-00000.h5"] = hashlib.sha256(rank_file.read_bytes()).hexdigest()
    (step / "manifest.json").write_text(json.dumps(manifest))
    p = run_dtb(["run", "--resume", str(out), "--no-plots", "-q"])
    assert p.returncode == 2 and "does not fit this network or is damaged" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_bold_of_a_run_with_a_zero_interval_is_a_clear_error(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK.replace('duration = "300 ms"', 'duration = "50 ms"'))
    p = run_dtb(["run", str(cfg), "--out", str(tmp_path / "out"), "--no-plots", "-q"])
    assert p.returncode == 0, p.stderr
    run = tmp_path / "out" / "run.h5"
    with h5py.File(run, "a") as f:
        f["regions"].attrs["interval_ms"] = 0.0
    p = run_dtb(["bold", str(run), "--tr", "10 ms", "--out", str(tmp_path / "b")])
    assert p.returncode == 2 and "positive sampling interval" in p.stderr and "Traceback" not in p.stderr
