"""Wall times of the commands the README and docs quote, timed as a user runs them.

    python benchmarks/wall_times.py [--only compile whole_brain ...] [--markdown]

Each command runs from the repository root with this interpreter's `dtb`; the table says the date,
the machine (CPU model, cores) and the 1-minute load average before each command, because a shared
machine's other work lengthens every wall time here. Commands:

- compile: `dtb run six_regions.toml --duration "0.1 s"` with empty Cython and numba caches (the
  first run after installing compiles the model), then the same run with the caches filled;
- whole_brain: what `make run` runs after installing (`dtb run whole_brain.toml --ranks 2`);
- visual_task: `dtb task visual_task.toml --ranks 2` (the docs' task example);
- test_fast: `make test-fast`'s pytest selection.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DTB = str(Path(sys.executable).with_name("dtb"))
EXAMPLES = ROOT / "dtb" / "examples"


def commands(out: Path, cache: Path) -> dict[str, list[tuple[str, list[str], dict]]]:
    """name -> [(label, argv, extra environment)], in the order they run."""
    six = [DTB, "run", str(EXAMPLES / "six_regions.toml"), "--duration", "0.1 s"]
    return {
        "compile": [
            ("six regions 0.1 s, empty Cython and numba caches (first run)", six + ["--out", str(out / "c1")],
             compile_caches(cache)),
            ("six regions 0.1 s, caches filled", six + ["--out", str(out / "c2")], compile_caches(cache)),
        ],
        "whole_brain": [("make run: whole brain 10 s on 2 ranks",
                         [DTB, "run", str(EXAMPLES / "whole_brain.toml"), "--ranks", "2",
                          "--out", str(out / "wb")], {})],
        "visual_task": [("dtb task visual_task.toml --ranks 2",
                         [DTB, "task", str(EXAMPLES / "visual_task.toml"), "--ranks", "2",
                          "--out", str(out / "vt")], {})],
        "test_fast": [("make test-fast (pytest -m 'not slow and not mpi and not slurm')",
                       [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-m", "not slow and not mpi and not slurm"], {})],
    }


def compile_caches(folder: Path) -> dict:
    """Environment pointing Brian2's Cython cache, dtb's generated kernels and numba's cache into
    ``folder`` (empty at first: the run compiles everything, as after installing)."""
    return {"CYTHON_CACHE_DIR": str(folder / "cython"), "DTB_KERNEL_CACHE": str(folder / "kernels"),
            "NUMBA_CACHE_DIR": str(folder / "numba")}


def machine() -> str:
    """CPU model and core count, from /proc/cpuinfo where there is one."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def timed(argv: list[str], env: dict) -> tuple[float, int]:
    """Wall seconds and exit status of one command (output discarded)."""
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=ROOT, env={**os.environ, **env},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=["compile", "whole_brain", "visual_task", "test_fast"],
                    help="time only these (default: all)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args()
    print(f"{datetime.date.today()} on {machine()}", flush=True)
    bar = "| " if args.markdown else ""
    if args.markdown:
        print("| command | wall s | load before | exit |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name, runs in commands(Path(d), Path(d) / "cython").items():
            if args.only and name not in args.only:
                continue
            for label, argv, env in runs:
                load = os.getloadavg()[0]
                wall, rc = timed(argv, env)
                sep = " | " if args.markdown else "  "
                print(f"{bar}{label}{sep}{wall:.0f}{sep}{load:.1f}{sep}{rc}{' |' if bar else ''}", flush=True)


if __name__ == "__main__":
    main()
