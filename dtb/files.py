"""Writing files atomically: a temporary name beside the target, renamed over it when complete."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same folder, same extension); when the block ends
    without an error it is renamed over ``path``, otherwise removed. A crash never leaves a
    half-written ``path``."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_edit(path: str | Path) -> Iterator[Path]:
    """Yield a temporary copy of the existing file ``path`` to edit; when the block ends without
    an error the copy replaces ``path``, otherwise ``path`` stays as it was."""
    import shutil
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        yield tmp


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the ``.tmp-PID-NAME`` files of :func:`atomic_path` in ``folder`` whose process is
    gone (a killed run); returns them."""
    removed = []
    for p in Path(folder).glob(".tmp-*-*"):
        pid = p.name.split("-")[1]
        if p.is_file() and pid.isdigit() and not _alive(int(pid)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def array_bytes(obj) -> int:
    """The bytes of the numpy arrays inside ``obj`` (nested dicts, lists, tuples, dataclasses)."""
    import dataclasses
    import numpy as np
    total, stack = 0, [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, np.ndarray):
            total += x.nbytes
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            stack.extend(getattr(x, f.name) for f in dataclasses.fields(x))
    return total


def free_bytes(folder: str | Path) -> int:
    """Free space of the filesystem holding ``folder``. The tests simulate a full disk, where
    they cannot mount a small one, with DTB_TEST_DISK_FREE=FOLDER:BYTES (for folders in FOLDER)."""
    import shutil
    free = shutil.disk_usage(folder).free
    forced = os.environ.get("DTB_TEST_DISK_FREE")
    if forced:
        where, _, n = forced.rpartition(":")
        if Path(folder).resolve().is_relative_to(Path(where).resolve()):
            return min(free, int(n))
    return free


def check_room(folder: str | Path, need_bytes: float, what: str) -> None:
    """DtbError unless ``folder`` has ``need_bytes`` free: found before writing, since HDF5
    failing in the middle of a write can crash the process."""
    from dtb.errors import DtbError
    free = free_bytes(folder)
    if free < need_bytes:
        raise DtbError(f"{folder}: {free / 2**20:.2f} MB free, about {need_bytes / 2**20:.2f} MB needed for {what} "
                       f"(no space left on device)")
