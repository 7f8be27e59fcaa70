"""What every dtb command shares: one-line errors, the common options (defined once here),
logging, launching ranks under mpiexec, and checks of output folders."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from dtb.errors import DtbError
from dtb.units import UnitError, parse_quantity

log = logging.getLogger("dtb")

EXIT_USER_ERROR = 2
#: the packages whose INFO messages a run shows (other libraries' stay at WARNING)
OWN_LOGGERS = ("dtb", "atlas", "assimilation", "bridges", "cluster")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), like every other dtb error."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def time_arg(text: str) -> float:
    try:
        return parse_quantity(text, "time")
    except UnitError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# ------------------------------------------------------------------ the common options
def add_ranks(p, required: bool = False, default=None, help_text: str | None = None) -> None:
    p.add_argument("--ranks", "-n", type=int, default=default, required=required,
                   help=help_text or "number of MPI ranks to start (default: 1, or the ranks of the outer launcher)")


def add_out(p, default_help: str, required: bool = False) -> None:
    p.add_argument("--out", "-o", default=None, required=required, help=f"output folder ({default_help})")


def add_seed(p) -> None:
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's simulation.seed)")


def add_duration(p) -> None:
    p.add_argument("--duration", type=time_arg, default=None, help="biological time, e.g. '2 s' or '500 ms' "
                   "(default: the config's simulation.duration)")


def add_output_switches(p, progress: bool = True) -> None:
    """--no-plots, --no-progress (with ``progress``) and --quiet."""
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")


def speed_text(wall_per_bio: float) -> str:
    """Speed said both ways, so that nobody reads it backwards: wall seconds per biological second
    (dtb's summaries call it realtime_factor) and its inverse, the multiple of real time (as
    Gazebo and ROS report a real-time factor)."""
    return f"{wall_per_bio:.2f} s of wall time per biological second ({1 / wall_per_bio:.2f}x real time)"


def check_ranks(args) -> None:
    ranks = getattr(args, "ranks", None)
    if ranks is not None and ranks < 1:
        raise DtbError(f"--ranks must be at least 1, got {ranks}")


# ------------------------------------------------------------------------ logging
def setup_logging(rank: int, quiet: bool, verbose: bool = False) -> None:
    """INFO from dtb's own packages (WARNING with ``quiet`` and on ranks other than 0); other
    libraries' INFO only with ``verbose``."""
    level = logging.WARNING if (quiet or rank != 0) else logging.INFO
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr, datefmt="%H:%M:%S",
                        format="%(asctime)s %(levelname)s %(message)s" if rank == 0 else
                        f"[rank {rank}] %(levelname)s %(message)s")
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def is_rank0() -> bool:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return os.environ[var] == "0"
    return True


# ---------------------------------------------------------------------- launching
def launch_ranks(args, validate) -> int | None:
    """With --ranks N > 1 outside an MPI launcher: validate (so a config mistake is one clear
    line rather than N), then re-run this command under mpiexec and return its exit status.
    None: go on in this process."""
    from dtb.launch import mpiexec_command, under_mpi_launcher
    if not (args.ranks and args.ranks > 1) or under_mpi_launcher():
        return None
    validate()
    argv = strip_option(list(sys.argv[1:]), ("--ranks", "-n"))
    cmd = mpiexec_command(args.ranks, argv)
    env = dict(os.environ, DTB_UNDER_MPI="1")
    proc = subprocess.Popen(cmd, env=env)
    # a checkpoint request sent to this process reaches the ranks (mpiexec forwards it)
    import signal
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: proc.send_signal(signum))
    return proc.wait()


def strip_option(argv: list[str], names: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True
            continue
        if any(a.startswith(n + "=") for n in names):
            continue
        out.append(a)
    return out


# --------------------------------------------------------------------- folders
def check_writable(out: Path, need_bytes: float = 0.0) -> str | None:
    """None if results can be written into ``out`` (created if needed) and it has ``need_bytes``
    free, else the reason. Temporary files that a killed run left there are removed."""
    import tempfile
    from dtb.files import free_bytes, remove_stale_temporaries
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".dtb-write-test-"):
            pass
        remove_stale_temporaries(out)
        free = free_bytes(out)
    except OSError as e:
        return f"cannot write results to {out}: {e.strerror or e}"
    if free < need_bytes:
        return (f"{out}: {free / 2**20:.1f} MB free, but the results need about {need_bytes / 2**20:.1f} MB; free "
                f"space or choose another --out")
    return None


def require_writable(out: Path, comm=None, need_bytes: float = 0.0) -> None:
    """DtbError (on every rank) unless ``out`` is writable with ``need_bytes`` free."""
    rank0 = comm is None or comm.Get_rank() == 0
    problem = check_writable(out, need_bytes) if rank0 else None
    if comm is not None:
        problem = comm.bcast(problem, root=0)
    if problem:
        raise DtbError(problem)
