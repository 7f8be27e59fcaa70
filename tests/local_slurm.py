"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd with a private
slurm.conf (the node line from ``slurmd -C``), started and stopped by a fixture.

Debian packages Slurm: ``apt-get install slurmctld slurmd slurm-client munge``. Where the
daemons are missing and apt-get can install them (root), the fixture installs them; under
``CI=true`` a missing Slurm is a failure, elsewhere (no apt-get, not root) the tests skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
BINARIES = ("slurmctld", "slurmd", "sbatch", "scontrol", "munged")


def _have_binaries() -> bool:
    return all(shutil.which(b) or Path(f"/usr/sbin/{b}").exists() for b in BINARIES)


def ensure_installed() -> None:
    if _have_binaries():
        return
    can_apt = shutil.which("apt-get") is not None and os.geteuid() == 0
    if not can_apt:
        if os.environ.get("CI") == "true":
            pytest.fail("Slurm is not installed and apt-get cannot install it (CI must install it)")
        pytest.skip("Slurm not installed and apt-get unavailable: apt-get install " + " ".join(PACKAGES))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env, capture_output=True)


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class LocalSlurm:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`env` points clients at it."""

    def __init__(self, root: Path, port: int = 6917):
        self.root = Path(root)
        self.port = port
        self.env = dict(os.environ, SLURM_CONF=str(self.root / "slurm.conf"))
        self._started_munged = False

    def write_config(self) -> None:
        node = subprocess.run([_sbin("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
        node_line = next(line for line in node.splitlines() if line.startswith("NodeName="))
        host = re.match(r"NodeName=(\S+)", node_line).group(1)
        for d in ("spool", "state", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        r = self.root
        (r / "slurm.conf").write_text(f"""ClusterName=dtbtest
SlurmctldHost={host}
SlurmctldPort={self.port}
SlurmdPort={self.port + 1}
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ReturnToService=2
JobRequeue=1
MpiDefault=none
{node_line.split(' UpTime')[0]} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")

    def start(self) -> None:
        ensure_installed()
        self.write_config()
        self._start_munged()
        conf = str(self.root / "slurm.conf")
        subprocess.run([_sbin("slurmctld"), "-f", conf], check=True, env=self.env)
        subprocess.run([_sbin("slurmd"), "-f", conf], check=True, env=self.env)
        deadline = time.time() + 60
        while time.time() < deadline:
            p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env)
            if p.returncode == 0 and p.stdout.strip() in ("idle", "mix", "alloc"):
                return
            time.sleep(0.5)
        self.stop()                        # leave nothing behind for the next session
        raise RuntimeError(f"Slurm did not come up; see {self.root / 'log'}")

    def _start_munged(self) -> None:
        """Start munged unless one is serving its socket; wait until it does. (A munged that a
        previous session stopped may still be exiting: wait for it first.)"""
        if _munged_running() and MUNGE_SOCKET.exists():
            return
        deadline = time.time() + 15
        while _munged_running() and time.time() < deadline:
            time.sleep(0.2)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _sbin("munged")], check=True)
        self._started_munged = True
        deadline = time.time() + 15
        while not MUNGE_SOCKET.exists() and time.time() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True)
        pids = []
        for name in ("slurmd", "slurmctld"):
            pid_file = self.root / f"{name}.pid"
            if pid_file.exists():
                try:
                    pid = int(pid_file.read_text().strip())
                    os.kill(pid, signal.SIGTERM)
                    pids.append(pid)
                except (ProcessLookupError, ValueError):
                    pass
        # wait for the daemons to exit (a next session's daemons must not meet them on the ports)
        deadline = time.time() + 15
        while pids and time.time() < deadline:
            pids = [p for p in pids if _alive(p)]
            time.sleep(0.2)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._started_munged:
            subprocess.run(["pkill", "-x", "munged"], capture_output=True)
            deadline = time.time() + 15
            while _munged_running() and time.time() < deadline:
                time.sleep(0.2)

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, ExitCode, ...)."""
        p = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, env=self.env)
        return dict(kv.split("=", 1) for kv in p.stdout.split() if "=" in kv)

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 300) -> dict[str, str]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} did not reach {states}: {self.job(job_id)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                   # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _munged_running() -> bool:
    return subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0
