"""Checkpoint and resume: identical spikes and recordings to an uninterrupted run, on any rank
count; a signal checkpoints and stops; a crash while writing keeps the previous checkpoint;
corrupt, foreign and other-version checkpoints are refused with a clear error."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import MPIEXEC, SMALL_NETWORK, assert_same_spikes, run_dtb
from dtb.engine.checkpoint import EXIT_CHECKPOINTED

# the small network with BOLD and a state monitor, so every recorder is checkpointed
NETWORK = SMALL_NETWORK.replace("""[monitors]
region_interval = "2 ms"
""", """[monitors]
region_interval = "2 ms"
state = [{population = "A_E", indices = [0, 5, 200], variables = ["v", "g_ampa"], interval = "0.5 ms"},
         {population = "B_I", indices = [3], variables = ["v"]}]

[bold]
tr = "20 ms"
""")


def assert_same_run(a, b):
    assert_same_spikes(a, b)
    with h5py.File(a) as f, h5py.File(b) as g:
        for k in ("I_exc", "I_inh", "rate"):
            np.testing.assert_array_equal(f["regions"][k][()], g["regions"][k][()])
        np.testing.assert_array_equal(f["bold/signal"][()], g["bold/signal"][()])
        assert len(f["bold/signal"]) == 15
        for k in f["state"]:
            fa, ga_ = f["state"][k], g["state"][k]
            order_a, order_b = np.argsort(fa["gids"][()]), np.argsort(ga_["gids"][()])
            np.testing.assert_array_equal(fa["t_ms"][()], ga_["t_ms"][()])
            for v in fa:
                if v not in ("gids", "t_ms"):
                    np.testing.assert_array_equal(fa[v][()][:, order_a], ga_[v][()][:, order_b])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    cfg = d / "net.toml"
    cfg.write_text(NETWORK)
    p = run_dtb(["run", str(cfg), "--out", str(d / "full"), "--no-plots", "-q"], ranks=2)
    assert p.returncode == 0, p.stderr
    # a run cut at 130.2 ms (mid-TR, mid regional sample interval) with a checkpoint there
    p = run_dtb(["run", str(cfg), "--out", str(d / "part"), "--no-plots", "-q", "--duration", "130.2 ms",
                 "--checkpoint-every", "65.1 ms"], ranks=2)
    assert p.returncode == 0, p.stderr
    return d


def test_checkpoint_layout(base):
    ck = base / "part" / "checkpoint"
    latest = (ck / "LATEST").read_text().strip()
    assert latest == "step-000000001302"
    assert sorted(x.name for x in ck.iterdir()) == ["LATEST", "step-000000000651", latest]   # the last two
    m = json.loads((ck / latest / "manifest.json").read_text())
    assert m["n_ranks"] == 2 and m["step"] == 1302 and set(m["files"]) == {"rank-00000.h5", "rank-00001.h5"}


@pytest.mark.parametrize("ranks,partition", [(1, "contiguous"), (2, "contiguous"), (3, "round-robin")])
def test_resume_on_any_rank_count_is_identical(base, ranks, partition):
    out = base / f"resumed{ranks}"
    p = run_dtb(["run", "--resume", str(base / "part"), "--duration", "300 ms", "--out", str(out), "--no-plots",
                 "-q", "--partition", partition], ranks=ranks)
    assert p.returncode == 0, p.stderr
    assert_same_run(base / "full" / "run.h5", out / "run.h5")


def test_signal_checkpoints_stops_and_resumes(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK.replace('duration = "300 ms"', 'duration = "30 s"'))
    env = dict(os.environ)
    env.pop("DTB_UNDER_MPI", None)
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "dtb", "run", str(cfg), "--out", str(tmp_path / "sig"),
           "--no-plots", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(signal.SIGUSR1)             # mpiexec forwards it to the ranks
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_CHECKPOINTED, err
    assert "dtb run --resume" in err
    assert not (tmp_path / "sig" / "run.h5").exists()
    step = json.loads(next((tmp_path / "sig" / "checkpoint").glob("step-*/manifest.json")).read_text())["step"]
    assert 0 < step < 300_000
    p = run_dtb(["run", "--resume", str(tmp_path / "sig"), "--no-plots", "-q"])
    assert p.returncode == 0, p.stderr
    p = run_dtb(["run", str(cfg), "--out", str(tmp_path / "full"), "--no-plots", "-q"])
    assert p.returncode == 0, p.stderr
    assert_same_spikes(tmp_path / "full" / "run.h5", tmp_path / "sig" / "run.h5")


def test_rank_killed_while_writing_keeps_previous_checkpoint(base):
    cfg = base / "net.toml"
    out = base / "crash"
    # rank 1 is killed (SIGKILL) halfway through its second checkpoint file
    tmp = base / "tmp-of-killed-run"
    tmp.mkdir()
    p = run_dtb(["run", str(cfg), "--out", str(out), "--no-plots", "-q", "--checkpoint-every", "100 ms"], ranks=2,
                env_extra={"DTB_TEST_KILL_IN_CHECKPOINT": "1:2", "TMPDIR": str(tmp)})
    assert p.returncode != 0
    # Brian2's debug log and script copy, which it deletes only at a clean exit, are gone already
    # (its brian_stdout/stderr files stay: it reads them back to report a compiler error)
    left = sorted(tmp.glob("brian_debug_*")) + sorted(tmp.glob("brian_script_*"))
    assert not left, left
    ck = out / "checkpoint"
    assert (ck / "LATEST").read_text().strip() == "step-000000001000"
    assert (ck / ".tmp-step-000000002000").exists()          # the abandoned attempt
    p = run_dtb(["run", "--resume", str(out), "--no-plots", "-q", "--checkpoint-every", "100 ms"], ranks=2)
    assert p.returncode == 0, p.stderr
    assert not (ck / ".tmp-step-000000002000").exists()      # cleaned up when the resumed run started
    assert_same_run(base / "full" / "run.h5", out / "run.h5")


def _copy_checkpoint(base, name):
    dst = base / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(base / "part", dst)
    return dst, dst / "checkpoint" / "step-000000001302"


def test_corrupt_checkpoint_is_detected(base):
    run_dir, step_dir = _copy_checkpoint(base, "corrupt")
    f = step_dir / "rank-00001.h5"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    p = run_dtb(["run", "--resume", str(run_dir), "--no-plots", "-q"], ranks=2)
    assert p.returncode == 2
    assert "rank-00001.h5: checksum mismatch" in p.stderr and "Traceback" not in p.stderr
    assert not (run_dir / "run.h5").exists() or (run_dir / "run.h5").stat().st_mtime < f.stat().st_mtime


def test_checkpoint_of_another_config_or_version_is_refused(base, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(NETWORK.replace('indegree = 30', 'indegree = 31'))
    p = run_dtb(["run", str(other), "--resume", str(base / "part"), "--out", str(tmp_path / "o"), "--no-plots"])
    assert p.returncode == 2 and "belongs to another network or seed" in p.stderr, p.stderr
    p = run_dtb(["run", "--resume", str(base / "part"), "--seed", "5", "--out", str(tmp_path / "o"), "--no-plots"])
    assert p.returncode == 2 and "belongs to another network or seed" in p.stderr
    run_dir, step_dir = _copy_checkpoint(base, "oldversion")
    m = json.loads((step_dir / "manifest.json").read_text())
    m["dtb_version"] = "0.0.1"
    (step_dir / "manifest.json").write_text(json.dumps(m))
    p = run_dtb(["run", "--resume", str(run_dir), "--no-plots"])
    assert p.returncode == 2 and "written by dtb 0.0.1" in p.stderr
    p = run_dtb(["run", "--resume", str(tmp_path), "--no-plots"])
    assert p.returncode == 2 and "no checkpoint here" in p.stderr
