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
