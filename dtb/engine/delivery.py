"""Compiled delivery of spikes over static synapses (numba), in place of Brian2's spike queues.

A rank's static synapses of one side (sources on this rank, or remote sources) are kept sorted
by source and, within a source, by delay, cut into *segments* of one (source, delay). A spike of
source s at step e puts the segments of s in the ring bucket of their arrival step e + d; at
each step the bucket of that step is emptied by adding each segment's weights (integer weight
quanta) to its input slots. Per event that is one load of the target slot and weight and one
integer add; per spike, one bucket entry per distinct delay.

Integer sums do not depend on the order of delivery, so the result is the same on any number of
ranks; the timing is Brian2's: the events of a spike at step e with delay d are added during step
e + d, after that step's neuron update, and folded in at step e + d + 1. Remote spikes go into
the ring when they are received (at least D steps before they are due), so no proxy neurons are
needed for static synapses.

Memory: 8 bytes per synapse (target slot, weight) and 12 per segment (first synapse, delay),
plus 4 bytes per queued segment. Built by a counting sort over the chunks of synapses as they
are drawn, at most 12 bytes per synapse beside the chunks themselves.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _push(sources, fired, fired_all, now, first_segment, segment_delay, ring, count, start):
    """Queue the segments of the spikes (sources[i], fired at step fired[i], or at fired_all if
    ``fired`` is empty) whose arrival is at or after ``now``, from spike start[0] and its segment
    start[1] on. Returns -1 when done, or the spike index at which a bucket filled (start then
    holds where to resume)."""
    n_slots = ring.shape[0]
    each = fired.shape[0] > 0
    for i in range(start[0], sources.shape[0]):
        s = sources[i]
        e = fired[i] if each else fired_all
        g0 = start[1] if i == start[0] and start[1] >= 0 else first_segment[s]
        for g in range(g0, first_segment[s + 1]):
            arrival = e + segment_delay[g]
            if arrival < now:
                continue
            b = arrival % n_slots
            c = count[b]
            if c == ring.shape[1]:
                start[0] = i
                start[1] = g
                return i
            ring[b, c] = g
            count[b] = c + 1
    return -1


@njit(cache=True, nogil=True)
def _deliver(now, ring, count, first_synapse, target, weight, acc):
    """Add the events arriving at step ``now`` to their input slots; returns the event count."""
    b = now % ring.shape[0]
    events = 0
    for j in range(count[b]):
        g = ring[b, j]
        for x in range(first_synapse[g], first_synapse[g + 1]):
            acc[target[x]] += weight[x]
        events += first_synapse[g + 1] - first_synapse[g]
    count[b] = 0
    return events


@njit(cache=True, nogil=True)
def _scatter(pre, post, weight, delay, fill, target_out, weight_out, delay_out):
    """Place each synapse of a chunk at the next free position of its source."""
    for i in range(pre.shape[0]):
        j = fill[pre[i]]
        fill[pre[i]] = j + 1
        target_out[j] = post[i]
        weight_out[j] = weight[i]
        delay_out[j] = delay[i]


@njit(cache=True, nogil=True)
def _sort_by_delay(first, target, weight, delay):
    """Sort each source's synapses by delay (in place); returns the number of (source, delay)
    segments."""
    n_segments = 0
    for s in range(first.shape[0] - 1):
        lo, hi = first[s], first[s + 1]
        if hi - lo > 1:
            order = np.argsort(delay[lo:hi], kind="mergesort")
            target[lo:hi] = target[lo:hi][order]
            weight[lo:hi] = weight[lo:hi][order]
            delay[lo:hi] = delay[lo:hi][order]
        for x in range(lo, hi):
            if x == lo or delay[x] != delay[x - 1]:
                n_segments += 1
    return n_segments


@njit(cache=True, nogil=True)
def _segments(first, delay, first_synapse, segment_delay, first_segment):
    """The segment tables: first synapse and delay of each segment, first segment of each source."""
    g = 0
    for s in range(first.shape[0] - 1):
        first_segment[s] = g
        for x in range(first[s], first[s + 1]):
            if x == first[s] or delay[x] != delay[x - 1]:
                first_synapse[g] = x
                segment_delay[g] = delay[x]
                g += 1
    first_segment[first.shape[0] - 1] = g
    first_synapse[g] = first[first.shape[0] - 1]


@njit(cache=True, nogil=True)
def _decode(packed, base, table, sources, fired):
    """Received spikes, each packed as gid * 2**16 + (step - base): the index of each gid in the
    sorted ``table`` (gids not in it are skipped) and its step; returns how many were kept."""
    n = 0
    for i in range(packed.shape[0]):
        gid = packed[i] >> 16
        j = np.searchsorted(table, gid)
        if j < table.shape[0] and table[j] == gid:
            sources[n] = j
            fired[n] = (packed[i] & 0xFFFF) + base
            n += 1
    return n


class SpikeDelivery:
    """Static synapses from ``n_sources`` sources to the input slots of a rank, and their queue."""

    def __init__(self, n_sources: int, chunks: list, acc: np.ndarray):
        """``chunks``: a list of (pre, post, weight, delay) arrays, emptied as it is read (so the
        build holds the chunks and the table at once, never two copies of the table): ``pre``
        source index of each synapse, ``post`` input slot, ``weight`` integer weight quanta,
        ``delay`` in whole steps (>= 0). ``acc``: the input slots (Brian2's array, in place)."""
        counts = np.zeros(n_sources, dtype=np.int64)
        for pre, _, _, _ in chunks:
            counts += np.bincount(pre, minlength=n_sources)
        first = np.zeros(n_sources + 1, dtype=np.int64)
        np.cumsum(counts, out=first[1:])
        del counts
        n = int(first[-1])
        self.target = np.empty(n, dtype=np.int32)
        self.weight = np.empty(n, dtype=np.int32)
        delay = np.empty(n, dtype=np.int32)
        fill = first[:-1].copy()
        while chunks:                    # counting sort by source, a chunk at a time
            pre, post, weight, d = chunks.pop(0)
            _scatter(pre, post, weight, d, fill, self.target, self.weight, delay)
            del pre, post, weight, d
        del fill
        n_segments = _sort_by_delay(first, self.target, self.weight, delay)
        self.first_synapse = np.empty(n_segments + 1, dtype=np.int64)
        self.segment_delay = np.empty(n_segments, dtype=np.int32)
        self.first_segment = np.empty(n_sources + 1, dtype=np.int64)
        _segments(first, delay, self.first_synapse, self.segment_delay, self.first_segment)
        self.max_delay = int(delay.max(initial=0))
        del delay
        self.acc = acc
        self.ring = np.zeros((self.max_delay + 1, 16), dtype=np.int32)
        self.count = np.zeros(self.max_delay + 1, dtype=np.int64)
        self.events = 0
        self._none = np.zeros(0, dtype=np.int64)
        self._start = np.zeros(2, dtype=np.int64)

    def push(self, sources: np.ndarray, fired: np.ndarray | int, now: int) -> None:
        """Queue the spikes of ``sources`` fired at steps ``fired`` (one step for all, or one
        each); events due before step ``now`` are dropped (already delivered)."""
        if np.ndim(fired):
            fired_each, fired_all = np.ascontiguousarray(fired, dtype=np.int64), 0
            sources = np.asarray(sources, dtype=np.int64)
        else:
            fired_each, fired_all = self._none, int(fired)
        start = self._start
        start[0], start[1] = 0, -1
        while _push(sources, fired_each, fired_all, now, self.first_segment, self.segment_delay, self.ring,
                    self.count, start) >= 0:
            grown = np.zeros((self.ring.shape[0], 2 * self.ring.shape[1]), dtype=np.int32)
            grown[:, :self.ring.shape[1]] = self.ring
            self.ring = grown

    def push_packed(self, packed: np.ndarray, base: int, table: np.ndarray, now: int) -> None:
        """Queue received spikes packed as gid * 2**16 + (step - base); ``table``: the sorted gids
        of this table's sources (gids not in it have no synapse here)."""
        sources = np.empty(len(packed), dtype=np.int64)
        fired = np.empty(len(packed), dtype=np.int64)
        n = _decode(packed, base, table, sources, fired)
        self.push(sources[:n], fired[:n], now)

    def deliver(self, now: int) -> None:
        """Add the events due at step ``now`` to the input slots."""
        self.events += _deliver(now, self.ring, self.count, self.first_synapse, self.target, self.weight, self.acc)

    def pending(self) -> tuple[np.ndarray, np.ndarray]:
        """The queue, to come back to (:meth:`set_pending`)."""
        return self.ring.copy(), self.count.copy()

    def set_pending(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        self.ring, self.count = state[0].copy(), state[1].copy()
