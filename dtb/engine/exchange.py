"""Spike exchange between ranks (NEST's event delivery manager): every P steps the spikes of
the last P steps are sent, by allgather (blocking or overlapped) or only to the ranks that need
them (targeted); received spikes are queued for the static synapses they reach, and the proxies of
remote sources of Brian2 (plastic) synapses are scheduled to fire D steps after them.
Stop requests travel with the exchange."""

from __future__ import annotations

import logging
import time

import numpy as np


log = logging.getLogger(__name__)


class SpikeExchange:
    """Part of :class:`dtb.engine.kernel.Simulation`."""

    def _build_targets(self) -> None:
        """For the targeted exchange: which ranks need the spikes of each local neuron (those
        holding a synapse it projects to), learnt once by telling each owner what we need."""
        owner = self.partition.owner(self.remote_gids)
        wanted = self.comm.alltoall([self.remote_gids[owner == q] for q in range(self.size)])
        self._targets = np.zeros((self.n_local, self.size), dtype=bool)
        for r, gids in enumerate(wanted):
            self._targets[self.locate(np.asarray(gids, dtype=np.int64))[1], r] = True

    def _targeted_exchange(self, k: int) -> None:
        """Send each spike of [k - D, k) only to the ranks that need it: an alltoall of counts
        (and the stop flag), then an alltoallv of the spikes."""
        from mpi4py import MPI
        t0 = time.perf_counter()
        gids, steps = self._new_local_spikes()
        payload = (gids << 16) | (steps - (k - self.P))
        need = self._targets[self.locate(gids)[1]]                       # (spikes, ranks)
        parts = [payload[need[:, q]] for q in range(self.size)]
        head = np.array([[len(x), int(self._stop_requested)] for x in parts], dtype=np.int64)
        got = np.empty_like(head)
        self.comm.Alltoall(head, got)
        if got[:, 1].any():
            self.stop_agreed = True
        send = np.concatenate(parts)
        counts, rcounts = head[:, 0], got[:, 0]
        recv = np.empty(int(rcounts.sum()), dtype=np.int64)
        sd = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rd = np.concatenate([[0], np.cumsum(rcounts)[:-1]])
        self.comm.Alltoallv([send, counts, sd, MPI.INT64_T], [recv, rcounts, rd, MPI.INT64_T])
        self.exchange_bytes += send.nbytes + head.nbytes
        self.exchange_rounds += 1
        self.exchanged_spikes += len(recv)
        if len(recv):
            self._receive_remote(recv, k - self.P, k)
        self.exchange_seconds += time.perf_counter() - t0

    def _exchange_op(self, k: int) -> None:
        if self.exchange_mode == "targeted":
            self._targeted_exchange(k)
        elif self.P == self.D:               # blocking: post and collect at once
            self._post_spikes(k)
            self._collect_spikes(k)
        else:                                # overlapping: collect what was posted at k - P
            self._collect_spikes(k)
            self._post_spikes(k)

    def _new_local_spikes(self) -> tuple[np.ndarray, np.ndarray]:
        """Spikes recorded since the last call: (gids, steps)."""
        i, steps = self.spikes.since(self._mon_pos)
        self._mon_pos = len(self.spikes)
        return self.local_gids[i], steps

    def _post_spikes(self, k: int) -> None:
        """Start the allgather of the spikes emitted in [k - P, k).

        Every rank sends a block of ``capacity`` int64: the count, its flags (1: a stop was
        requested here, see :meth:`request_stop`), then the spikes, each encoded as
        gid * 2**16 + (step - (k - P)). Spikes beyond the block follow at collection time."""
        t0 = time.perf_counter()
        gids, steps = self._new_local_spikes()
        payload = (gids << 16) | (steps - (k - self.P))
        cap = self._capacity
        send = np.zeros(cap, dtype=np.int64)
        send[0] = len(payload)
        send[1] = int(self._stop_requested)
        n = min(len(payload), cap - 2)
        send[2:2 + n] = payload[:n]
        recv = np.empty(cap * self.size, dtype=np.int64)
        req = self.comm.Iallgather(send, recv)
        self.exchange_bytes += send.nbytes
        self.exchange_rounds += 1
        self._pending_exchange = (req, recv, cap, payload[n:], k)
        self.exchange_seconds += time.perf_counter() - t0

    def _collect_spikes(self, k: int) -> None:
        """Finish the pending allgather and schedule the proxies of the remote spikes in it."""
        from mpi4py import MPI

        if self._pending_exchange is None:
            return
        t0 = time.perf_counter()
        req, recv, cap, rest, k_post = self._pending_exchange
        self._pending_exchange = None
        req.Wait()
        blocks = recv.reshape(self.size, cap)
        counts = blocks[:, 0].copy()
        if blocks[:, 1].any():
            self.stop_agreed = True
        parts = [blocks[r, 2:2 + min(int(c), cap - 2)] for r, c in enumerate(counts)]
        overflow = np.maximum(counts - (cap - 2), 0)
        if overflow.any():
            # rare: more spikes than the block holds; the rest travels now (all ranks see the same
            # counts, so all take this branch), and the block grows for the next windows
            extra = np.empty(int(overflow.sum()), dtype=np.int64)
            displs = np.zeros(self.size, dtype=np.int64)
            np.cumsum(overflow[:-1], out=displs[1:])
            self.comm.Allgatherv(np.ascontiguousarray(rest), [extra, overflow, displs, MPI.INT64_T])
            self.exchange_bytes += rest.nbytes
            parts += [extra]
            self._capacity = int(2 * counts.max() + 1)
        packed = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        self.exchanged_spikes += len(packed)
        if len(packed):
            self._receive_remote(packed, k_post - self.P, k)
        self.exchange_seconds += time.perf_counter() - t0

    def _receive_remote(self, packed: np.ndarray, base: int, k: int) -> None:
        """Remote spikes received at the start of step k, each packed as gid * 2**16 + (step -
        base): queued for the static synapses they reach here, and the proxies of Brian2
        synapses scheduled to fire D steps after them. Every one is due at step k or later."""
        first = base + int((packed & 0xFFFF).min())
        if first + self.D < k:
            raise RuntimeError(f"spike exchange too late at step {k}: a spike was due at step {first + self.D}")
        remote = self.delivery.get(False)
        if remote is not None:
            remote.push_packed(packed, base, self.remote_gids, k)
        if self.proxy is not None:
            self._schedule_proxies(packed >> 16, (packed & 0xFFFF) + base + self.D, k)

    def _schedule_proxies(self, gids: np.ndarray, due: np.ndarray, k: int) -> None:
        """Make the proxies of remote ``gids`` fire at steps ``due`` (all >= the current step k)."""
        pos = np.searchsorted(self.remote_gids, gids)
        np.minimum(pos, len(self.remote_gids) - 1, out=pos)
        mine = self.remote_gids[pos] == gids
        proxy, due = pos[mine], due[mine]
        if not len(proxy):
            return
        if due.min() < k:
            raise RuntimeError(f"spike exchange too late at step {k}: a spike was due at step {due.min()}")
        # each spike takes a free slot of its proxy (free: its spike already fired); two spikes of
        # one proxy in one batch collide on the same slot, and the loser moves on to the next slot
        todo = np.arange(len(proxy))
        for j in range(self.proxy_slots):
            arr = self.proxy.variables[f"due{j}"].get_value()
            free = arr[proxy[todo]] < k
            take = todo[free]
            arr[proxy[take]] = due[take]
            won = arr[proxy[take]] == due[take]
            todo = np.concatenate([todo[~free], take[~won]])
            if not len(todo):
                return
        raise RuntimeError("a remote source has more pending spikes than its refractory period allows")

    def finish_exchange(self) -> None:
        """Complete the pending non-blocking exchange (collective: every rank calls it, e.g. before
        gathering results or exiting). Its spikes stay queued for the next run() chunk."""
        if self._pending_exchange is not None:
            self._pending_exchange[0].Wait()

    # ----------------------------------------------------------- checkpoints
    def request_stop(self) -> None:
        """Ask all ranks to stop at the next step they can agree on (safe in a signal handler: it
        only sets a flag). The flag travels in the spike exchange's header, or, without exchange,
        in a small allreduce every :attr:`P` steps; :attr:`stop_agreed` then turns true on every
        rank at the same step."""
        self._stop_requested = True

    def _poll_stop(self, k: int) -> None:
        if self.size == 1:
            self.stop_agreed = self.stop_agreed or self._stop_requested
        elif not self.needs_exchange:
            self.stop_agreed = self.stop_agreed or bool(self.comm.allreduce(int(self._stop_requested)))
