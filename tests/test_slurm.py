"""dtb under a real (one-node) Slurm: a submitted job equals a local run; a job warned of its time
limit checkpoints, requeues itself, resumes, and ends with identical spikes."""

import subprocess
import time

import pytest

from conftest import ROOT, SMALL_NETWORK, assert_same_spikes, run_dtb
from local_slurm import LocalSlurm


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


def submit(slurm, args) -> str:
    p = run_dtb(["cluster", "job", *args, "--submit"], env_extra={"SLURM_CONF": slurm.env["SLURM_CONF"]})
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("submitted job "))
    return line.split()[-1]


def test_job_equals_local_run(slurm, tmp_path):
    cfg = ROOT / "dtb" / "examples" / "whole_brain.toml"
    job = submit(slurm, [str(cfg), "--ranks", "2", "--duration", "1 s", "--out", str(tmp_path / "job")])
    text = (tmp_path / "job" / "job.sh").read_text()
    assert "srun --mpi=pmi2" in text and "#SBATCH --signal=B:USR1@120" in text and "#SBATCH --requeue" in text
    info = slurm.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=400)
    log = next((tmp_path / "job" / "results").glob("slurm-*.out")).read_text()
    assert info["JobState"] == "COMPLETED", log
    assert "on 2 rank(s)" in log
    p = run_dtb(["run", str(cfg), "--duration", "1 s", "--out", str(tmp_path / "local"), "--no-plots", "-q"], ranks=2)
    assert p.returncode == 0, p.stderr
    assert_same_spikes(tmp_path / "local" / "run.h5", tmp_path / "job" / "results" / "run.h5")


def test_time_limit_warning_checkpoints_requeues_and_resumes(slurm, tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    job = submit(slurm, [str(cfg), "--ranks", "2", "--duration", "25 s", "--out", str(tmp_path / "job")])
    slurm.wait_state(job, ("RUNNING",), timeout=120)
    log_dir = tmp_path / "job" / "results"
    deadline = time.time() + 120
    while time.time() < deadline:     # wait until the ranks are simulating
        logs = list(log_dir.glob("slurm-*.out"))
        if logs and "built" in logs[0].read_text():
            break
        time.sleep(0.5)
    time.sleep(2)
    # what Slurm does at --signal=B:USR1@120, now
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, env=slurm.env)
    # the job checkpoints and requeues itself; Slurm holds a requeued job for a while: release it
    deadline = time.time() + 120
    while time.time() < deadline and slurm.job(job).get("Restarts", "0") == "0":
        time.sleep(0.5)
    assert slurm.job(job)["Restarts"] == "1"
    # release it (retrying: the update is refused while the job is still completing its first run).
    # Not within the second of the requeue: slurmd revokes the first run's job credential with a
    # one-second resolution, and a restart in that same second is killed as "Job credential
    # revoked" (the job then ends FAILED; seen in slurmctld.log). Slurm itself holds requeued jobs
    # far longer; this test only shortens the hold.
    time.sleep(3)
    deadline = time.time() + 150
    while time.time() < deadline and slurm.job(job).get("JobState") not in ("RUNNING", "COMPLETED", "FAILED"):
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=slurm.env, capture_output=True)
        time.sleep(1)
    info = slurm.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=300)
    log = next(log_dir.glob("slurm-*.out")).read_text()
    assert info["JobState"] == "COMPLETED", log
    assert "checkpoint written; requeueing" in log and "(restart 1)" in log and "resumed from" in log
    p = run_dtb(["run", str(cfg), "--duration", "25 s", "--out", str(tmp_path / "local"), "--no-plots", "-q"])
    assert p.returncode == 0, p.stderr
    assert_same_spikes(tmp_path / "local" / "run.h5", log_dir / "run.h5")
    # (c) the checkpoint the 2-rank job wrote at the signal, resumed here on 1 rank
    import shutil
    shutil.copytree(log_dir / "checkpoint", tmp_path / "one" / "checkpoint")
    manifest = next((tmp_path / "one" / "checkpoint").glob("step-*/manifest.json")).read_text()
    assert '"n_ranks": 2' in manifest
    p = run_dtb(["run", "--resume", str(tmp_path / "one"), "--out", str(tmp_path / "one"), "--no-plots", "-q"])
    assert p.returncode == 0, p.stderr
    assert_same_spikes(tmp_path / "local" / "run.h5", tmp_path / "one" / "run.h5")
