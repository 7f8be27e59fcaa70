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


#: steps between two trims of the spike record when old spikes are not kept
SPIKE_TRIM_PERIOD = 1000


class SpikeBuffer:
    """Growable record of (local index, step) pairs, appended once per step, in step order.

    Positions (``len``, ``since``, ``truncate``) count every spike ever appended, also after
    :meth:`forget_before` has dropped the oldest ones to bound memory."""

    def __init__(self, capacity: int = 4096):
        self._idx = np.empty(capacity, dtype=np.int32)
        self._step = np.empty(capacity, dtype=np.int64)
        self._n = 0
        self._first = 0                   # position of _idx[0]: spikes forgotten before it

    def __len__(self) -> int:
        return self._first + self._n

    @property
    def first(self) -> int:
        """Position of the oldest spike still held (0 unless some were forgotten)."""
        return self._first

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
        s = self._held(start)
        return self._idx[s:self._n].copy(), self._step[s:self._n].copy()

    def truncate(self, n: int) -> None:
        """Forget every spike after the first ``n`` (a rewind)."""
        self._n = min(self._n, self._held(n))

    def _held(self, position: int) -> int:
        if position < self._first:
            raise RuntimeError(f"spike {position} was forgotten (the buffer holds {self._first} on)")
        return int(position) - self._first

    def _cut(self, step: int, keep_from: int) -> int:
        """Held index of the first spike of ``step`` or later, but no later than position ``keep_from``."""
        return min(int(np.searchsorted(self._step[:self._n], step)), self._held(keep_from))

    def forget_before(self, step: int, keep_from: int) -> None:
        """Drop the spikes of steps before ``step``, but none at or after position ``keep_from``,
        and give back memory the rest does not need."""
        k = self._cut(step, keep_from)
        if k > 0:
            rest = self._n - k
            self._idx[:rest] = self._idx[k:self._n]
            self._step[:rest] = self._step[k:self._n]
            self._first += k
            self._n = rest
        if len(self._idx) > max(4 * self._n, 4096):
            cap = max(2 * self._n, 4096)
            self._idx, self._step = self._idx[:cap].copy(), self._step[:cap].copy()

    def tail(self, step: int, keep_from: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(position, indices, steps) of the spikes of ``step`` and later, and of all from
        position ``keep_from``: what a rewind to now needs back if :meth:`forget_before` drops
        them meanwhile."""
        k = self._cut(step, keep_from)
        return self._first + k, self._idx[k:self._n].copy(), self._step[k:self._n].copy()

    def rewind_to(self, n: int, tail: tuple[int, np.ndarray, np.ndarray]) -> None:
        """Hold exactly the first ``n`` spikes again, from ``tail`` (taken when there were ``n``)
        where they have been forgotten since."""
        if n >= self._first:
            self.truncate(n)
            return
        position, idx, steps = tail
        if position + len(idx) != n:
            raise RuntimeError(f"the snapshot's spikes end at {position + len(idx)}, not {n}")
        self._first, self._n = position, 0
        self.extend(idx, steps)
