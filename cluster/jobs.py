"""SLURM batch jobs for dtb runs: a readable script users can edit, checkpointing before the
time limit and requeueing itself until the run is done.

How the script works (see :func:`job_script`):

* ``#SBATCH --signal=B:USR1@S`` makes Slurm send SIGUSR1 to the batch shell S seconds before the
  time limit; ``--requeue`` lets the job go back to the queue.
* The shell starts the ranks with ``srun --mpi=pmi2`` (the pip ``mpich`` build speaks PMI2), in
  the background, and forwards USR1/TERM to srun, which passes it to every rank. dtb then
  checkpoints at the next spike exchange and exits with status 75.
* On 75 the script calls ``scontrol requeue``; the restarted job (``SLURM_RESTART_COUNT`` > 0)
  finds ``OUT/checkpoint/LATEST`` and continues with ``dtb run --resume``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dtb.engine.checkpoint import EXIT_CHECKPOINTED
from dtb.errors import DtbError
from dtb.files import atomic_path

_TIME = re.compile(r"^(?:(\d+)-)?(?:(\d{1,2}):)?(\d{1,2}):(\d{2})$|^\d+$")


@dataclass
class JobSettings:
    ranks: int
    nodes: int | None = None
    time: str = "01:00:00"           # Slurm's [D-]HH:MM:SS
    partition: str | None = None
    account: str | None = None
    signal_seconds: int = 120        # USR1 this long before the time limit (checkpoint time)
    checkpoint_every: str | None = None   # e.g. "10 s" of biological time, passed to dtb run
    duration: str | None = None           # override the config's duration
    seed: int | None = None
    extra_args: tuple[str, ...] = ()


def check_settings(s: JobSettings) -> None:
    if s.ranks < 1:
        raise DtbError(f"--ranks must be at least 1, got {s.ranks}")
    if s.nodes is not None and not 1 <= s.nodes <= s.ranks:
        raise DtbError(f"--nodes must be between 1 and the number of ranks ({s.ranks}), got {s.nodes}")
    if not _TIME.match(s.time):
        raise DtbError(f"--time {s.time!r}: expected Slurm's time format, e.g. 01:30:00, 2-00:00:00 or minutes")
    if s.signal_seconds < 10:
        raise DtbError(f"--signal-seconds must leave time to checkpoint (at least 10 s), got {s.signal_seconds}")


def job_script(config: Path, out: Path, s: JobSettings, python: str = sys.executable, name: str = "dtb") -> str:
    """The text of the batch script (bash)."""
    sb = [f"#SBATCH --job-name={name}", f"#SBATCH --ntasks={s.ranks}"]
    if s.nodes:
        sb.append(f"#SBATCH --nodes={s.nodes}")
    sb.append(f"#SBATCH --time={s.time}")
    if s.partition:
        sb.append(f"#SBATCH --partition={s.partition}")
    if s.account:
        sb.append(f"#SBATCH --account={s.account}")
    sb += [f"#SBATCH --output={out}/slurm-%j.out",
           "#SBATCH --open-mode=append",
           "#SBATCH --requeue",
           f"#SBATCH --signal=B:USR1@{s.signal_seconds}    # USR1 to this script {s.signal_seconds} s before the limit"]
    opts = ["--no-progress"]
    if s.checkpoint_every:
        opts += ["--checkpoint-every", s.checkpoint_every]
    if s.duration:
        opts += ["--duration", s.duration]
    if s.seed is not None:
        opts += ["--seed", str(s.seed)]
    opts += list(s.extra_args)
    q = shlex.quote
    return f"""#!/bin/bash
# dtb on Slurm: {config.name} on {s.ranks} rank(s). Written by `dtb cluster job`; edit freely.
# Before the time limit Slurm sends USR1; dtb checkpoints, the job requeues itself and resumes.
{chr(10).join(sb)}

set -u
PYTHON={q(python)}
CONFIG={q(str(config))}
OUT={q(str(out))}
OPTIONS=({' '.join(q(o) for o in opts)})

if [ -f "$OUT/checkpoint/LATEST" ]; then
    ARGS=(run "$CONFIG" --out "$OUT" --resume "$OUT" "${{OPTIONS[@]}}")
else
    ARGS=(run "$CONFIG" --out "$OUT" "${{OPTIONS[@]}}")
fi
echo "dtb job ${{SLURM_JOB_ID:-?}} (restart ${{SLURM_RESTART_COUNT:-0}}) on ${{SLURM_NTASKS:-?}} rank(s): dtb ${{ARGS[*]}}"

# the ranks run in the background so that this shell can pass signals on to them
srun --mpi=pmi2 "$PYTHON" -P -m dtb "${{ARGS[@]}}" &
SRUN=$!
trap 'echo "dtb job: time limit near, checkpointing"; kill -USR1 $SRUN' USR1
trap 'kill -TERM $SRUN' TERM
while true; do
    wait $SRUN
    RC=$?
    kill -0 $SRUN 2>/dev/null || break     # wait was interrupted by a trapped signal
done

if [ $RC -eq {EXIT_CHECKPOINTED} ]; then
    echo "dtb job: checkpoint written; requeueing ${{SLURM_JOB_ID}}"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
fi
exit $RC
"""


def write_job(config: str | Path, job_dir: str | Path, s: JobSettings, python: str = sys.executable) -> Path:
    """Copy the config into ``job_dir`` and write ``job_dir/job.sh``; returns the script's path.

    The copy is what the job runs. A config that names other files by relative path (an atlas,
    an events file) is run from its original place instead, so those paths keep working."""
    from dtb.spec import load_spec

    check_settings(s)
    config = Path(config).resolve()
    spec = load_spec(config)                         # refuse a broken config now, not in the queue
    job_dir = Path(job_dir).resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    copy = job_dir / config.name
    if copy != config:
        shutil.copyfile(config, copy)
    try:
        load_spec(copy)
        used = copy
    except DtbError:
        used = config
    out = job_dir / "results"
    out.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", config.stem)
    text = job_script(used, out, s, python=python, name=f"dtb-{stem}")
    path = job_dir / "job.sh"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        tmp.chmod(0o755)
    del spec
    return path


def submit(script: Path) -> str:
    """``sbatch`` the script; returns the job id."""
    exe = shutil.which("sbatch")
    if exe is None:
        raise DtbError("sbatch not found: submit from a Slurm login node, or run the script with bash")
    p = subprocess.run([exe, "--parsable", str(script)], capture_output=True, text=True, cwd=script.parent)
    if p.returncode != 0:
        raise DtbError(f"sbatch refused {script}: {p.stderr.strip()}")
    return p.stdout.strip().split(";")[0]
