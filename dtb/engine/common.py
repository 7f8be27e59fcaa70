"""What every part of the kernel uses: the communicator (MPI or a serial stand-in), the spike
buffer, the build statistics and memory readings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class _SerialComm:
    """The few mpi4py calls the kernel uses, for a run without MPI."""

    rank, size = 0, 1

    def Get_rank(self): return 0
    def Get_size(self): return 1
    def allgather(self, x): return [x]
    def gather(self, x, root=0): return [x]
    def bcast(self, x, root=0): return x
    def allreduce(self, x, op=None): return x
    def Barrier(self): pass


def world_comm():
    """MPI.COMM_WORLD, or a serial stand-in if mpi4py cannot start."""
    try:
        from mpi4py import MPI
        return MPI.COMM_WORLD
    except Exception:  # pragma: no cover - mpi4py is a dependency
        return _SerialComm()


@dataclass
class BuildStats:
    n_local: int = 0
    n_synapses_local: int = 0        # incoming synapses whose source is on this rank
    n_synapses_remote: int = 0       # incoming synapses whose source is on another rank
    n_proxies: int = 0
    build_seconds: float = 0.0
    per_receptor: dict[str, int] = field(default_factory=dict)
    rss_before_synapses: int = 0     # bytes
    rss_after_first_step: int = 0    # bytes, once spike queues are allocated


def current_rss() -> int:
    """Resident set size of this process (bytes; Linux /proc, else the peak from getrusage).

    Freed heap memory is handed back to the system first (glibc ``malloc_trim``), so the figure
    counts what is in use rather than what the allocator keeps."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/statm") as f:
            import os
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss()


def peak_rss() -> int:
    """Peak resident set size of this process (bytes)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class SpikeBuffer:
    """Growable record of (local index, step) pairs, appended once per step."""

    def __init__(self, capacity: int = 4096):
        self._idx = np.empty(capacity, dtype=np.int32)
        self._step = np.empty(capacity, dtype=np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, idx: np.ndarray, step: int) -> None:
        n, m = self._n, len(idx)
        if n + m > len(self._idx):
            cap = max(2 * len(self._idx), n + m)
            self._idx = np.resize(self._idx, cap)
            self._step = np.resize(self._step, cap)
        self._idx[n:n + m] = idx
        self._step[n:n + m] = step
        self._n = n + m

    def extend(self, idx: np.ndarray, steps: np.ndarray) -> None:
        """Append spikes of several steps (e.g. those restored from a checkpoint)."""
        n = self._n
        self.append(idx, 0)
        self._step[n:self._n] = steps

    def since(self, start: int) -> tuple[np.ndarray, np.ndarray]:
        return self._idx[start:self._n].copy(), self._step[start:self._n].copy()

    def truncate(self, n: int) -> None:
        """Forget every spike after the first ``n`` (a rewind)."""
        self._n = min(self._n, int(n))
