"""A rank's state: neuron variables keyed by gid, per-neuron conductance scales, checkpoints
(capture and restore on any rank count, rebuilding the spikes in flight) and in-memory
snapshots to rewind to."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from dtb.engine.common import SpikeBuffer
from dtb.errors import DtbError
from dtb.models.lif import RECEPTORS
from dtb.models.plasticity import (PLASTIC_STATE)

log = logging.getLogger(__name__)


def _find_rows(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Row index in ``sorted_keys`` (lexicographically sorted, unique) of each row of ``keys``."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    view = lambda a: np.ascontiguousarray(a, dtype=np.int64).view([("", np.int64)] * a.shape[1]).ravel()
    a, b = view(sorted_keys), view(keys)
    pos = np.searchsorted(a, b)
    if np.any(pos >= len(a)) or np.any(a[np.minimum(pos, len(a) - 1)] != b):
        raise DtbError("the checkpoint lacks plastic synapses of this network")
    return pos


@dataclass
class Snapshot:
    """What :meth:`Simulation.rewind` needs besides Brian2's stored state (named ``name``)."""
    name: str
    step: int
    n_spikes: int
    mon_pos: int
    region_spike_pos: int
    region_rows: list
    pending_exchange: tuple | None
    queued: dict                        # the static synapses' delivery queues, per side
    capacity: int
    rate_override: dict
    bold: dict | None
    plastic_history: dict
    spike_tail: tuple | None = None     # the recent spikes, where old ones are forgotten (keep_spikes=False)


class StateManager:
    """Part of :class:`dtb.engine.kernel.Simulation`."""

    # ---------------------------------------------------------------- state
    #: per-neuron state variables that neuron_state() returns and set_neuron_state() accepts
    STATE_VARIABLES = ("v", "lastspike", "not_refractory") + tuple(f"g_{r}" for r in RECEPTORS)

    def neuron_state(self) -> dict[str, np.ndarray]:
        """This rank's neuron state keyed by global id: ``{"gid": ..., "v": ..., "g_ampa": ...}`` (SI).

        Synaptic events already delivered but not yet folded in (one step's worth) are included
        in the conductances. Spikes still travelling in delay queues are not part of it (the
        cluster issue's checkpoints add them)."""
        G = self.group
        out = {"gid": self.local_gids.copy()}
        for name in self.STATE_VARIABLES:
            out[name] = np.array(G.variables[name].get_value(), copy=True)
        n_slots = len(self.synaptic_receptors)
        for k, r in enumerate(self.synaptic_receptors):
            acc = self.inputs.variables["acc"].get_value()[k::n_slots]
            scale = G.variables[f"scale_{r}"].get_value()
            out[f"g_{r}"] = out[f"g_{r}"] + acc * self.spec.simulation.weight_quantum * scale
        return out

    def set_neuron_state(self, state: dict[str, np.ndarray]) -> None:
        """Load neuron state (as from :meth:`neuron_state`, possibly gathered from another rank
        count): entries whose gid this rank owns are applied, the others ignored."""
        gids = np.asarray(state["gid"], dtype=np.int64)
        mine, idx = self.locate(gids)
        idx = idx[mine]
        for name in self.STATE_VARIABLES:
            if name in state:
                self.group.variables[name].get_value()[idx] = np.asarray(state[name])[mine]
        n_slots = len(self.synaptic_receptors)
        for k in range(n_slots):
            self.inputs.variables["acc"].get_value()[n_slots * idx + k] = 0

    def set_conductance_scale(self, receptor: str, gids: np.ndarray, scale: np.ndarray) -> None:
        """Set the per-neuron conductance scale of ``receptor`` for the owned ``gids`` (needs
        ``per_neuron_scales=True``); takes effect from the next step."""
        if not self.per_neuron_scales:
            raise RuntimeError("build the Simulation with per_neuron_scales=True to set scales per neuron")
        gids = np.asarray(gids, dtype=np.int64)
        mine, idx = self.locate(gids)
        self.group.variables[f"scale_{receptor}"].get_value()[idx[mine]] = np.asarray(scale)[mine]

    # ---------------------------------------------------------------- rewind
    def snapshot(self) -> "Snapshot":
        """The complete state between two run() calls, kept in memory, so that :meth:`rewind`
        can come back to it: the network runs ahead (e.g. a forecast), then returns and goes on
        exactly as if it had never left (the noise is keyed by step, so the same steps replay
        the same input; tested). Local to this rank: no communication. Call after
        :meth:`finish_exchange`."""
        if self.cpg is not None:
            raise DtbError("rewinding a network with CPGs is not supported")
        self._snapshots = getattr(self, "_snapshots", 0) + 1
        name = f"dtb_snapshot_{self._snapshots}"      # several may be held at once (nested)
        self.net.store(name)
        queued = {side: d.pending() for side, d in self.delivery.items()}
        pending = self._pending_exchange
        if pending is not None:
            req, recv, cap, rest, k = pending
            pending = (req, recv.copy(), cap, rest.copy(), k)
        return Snapshot(name=name, step=self.current_step(), n_spikes=len(self.spikes), mon_pos=self._mon_pos,
                        region_spike_pos=self._region_spike_pos, region_rows=list(self.region_rows),
                        pending_exchange=pending, queued=queued, capacity=self._capacity, rate_override=dict(self._rate_override),
                        bold=self.bold.capture() if self.bold is not None else None,
                        plastic_history={k: (len(t), len(v)) for k, (t, v) in self.plastic_history.items()},
                        spike_tail=None if self.keep_spikes else self.spikes.tail(self.current_step() - self.spike_window(),
                                                                               self._oldest_unread_spike()))

    def rewind(self, snap: "Snapshot") -> None:
        """Return to the state of :meth:`snapshot` ``snap`` (between run() calls; every rank
        rewinds to the same snapshot step)."""
        self.net.restore(snap.name)
        for side, d in self.delivery.items():
            d.set_pending(snap.queued[side])
        if snap.spike_tail is None:
            self.spikes.truncate(snap.n_spikes)
        else:
            self.spikes.rewind_to(snap.n_spikes, snap.spike_tail)
        self._mon_pos, self._region_spike_pos = snap.mon_pos, snap.region_spike_pos
        self.region_rows = list(snap.region_rows)
        self._pending_exchange = snap.pending_exchange
        self._capacity = snap.capacity
        self._rate_override = dict(snap.rate_override)
        if self.bold is not None:
            self.bold.restore(snap.bold)
        for k, (n_t, n_v) in snap.plastic_history.items():
            del self.plastic_history[k][0][n_t:], self.plastic_history[k][1][n_v:]
        for k in set(self.plastic_history) - set(snap.plastic_history):
            del self.plastic_history[k]
        if self.current_step() != snap.step:
            raise RuntimeError(f"rewind reached step {self.current_step()}, not the snapshot's {snap.step}")

    def forget(self, snap: "Snapshot") -> None:
        """Free the memory a snapshot holds."""
        self.net._stored_state.pop(snap.name, None)

    #: raw per-neuron variables a checkpoint holds (conductances without the pending input)
    CHECKPOINT_VARIABLES = ("v", "lastspike", "not_refractory", "Q_exc", "Q_inh") + tuple(f"g_{r}" for r in RECEPTORS)

    def capture(self, step: int) -> dict:
        """This rank's complete state at the start of ``step`` (called from the scheduler, after
        step - 1; between runs, ``current_step()``), keyed by global id:
        neuron variables, pending synaptic input (weight quanta per receptor), per-neuron scales,
        every spike so far (from which the spikes still in delay queues follow), regional samples,
        state recordings and the BOLD recorder. Exactly what :meth:`restore` needs, on any
        number of ranks."""
        G = self.group
        neurons = {"gid": self.local_gids.copy()}
        for name in self.CHECKPOINT_VARIABLES:
            neurons[name] = np.array(G.variables[name].get_value(), copy=True)
        if self.inputs is not None:
            neurons["acc"] = self.inputs.variables["acc"].get_value().reshape(self.n_local, -1).copy()
            if self.plastic:
                neurons["cf"] = self.inputs.variables["cf"].get_value().reshape(self.n_local, -1).copy()
        if self.per_neuron_scales:
            for r in RECEPTORS:
                neurons[f"scale_{r}"] = np.array(G.variables[f"scale_{r}"].get_value(), copy=True)
        gids, steps = self.local_spikes()
        states = []
        for k, (sm, mine, mon) in enumerate(self.state_monitors):
            t, data = self.state_record(k)
            states.append((mine.copy(), t, data))
        return {"step": step, "neurons": neurons,
                "rate_override": np.array(sorted(self._rate_override.items()), dtype=float).reshape(-1, 2),
                "spike_gid": gids, "spike_step": steps,
                "region_rows": np.array(self.region_rows, dtype=np.int64).reshape(-1, 3, len(self.spec.regions)),
                "states": states, "bold": self.bold.capture() if self.bold is not None else None,
                "cpg": self.cpg.capture() if self.cpg is not None else None,
                "plastic": self._capture_plastic() if self.plastic else None}

    def _capture_plastic(self) -> dict[str, np.ndarray]:
        """Plastic synapses' state, keyed as :meth:`plastic_weights` (weights in quanta)."""
        keys = [np.zeros((0, 4), np.int64)] + [self._plastic_keys[local] for local in self.plastic_syn]
        cols = {name: [np.zeros(0)] + [np.asarray(syn.variables[name].get_value(), dtype=float)
                                       for syn in self.plastic_syn.values()]
                for name in PLASTIC_STATE}
        return {"key": np.concatenate(keys).astype(np.int64), **{n: np.concatenate(c) for n, c in cols.items()}}

    def _restore_plastic(self, state: dict[str, np.ndarray]) -> None:
        key = np.asarray(state["key"], dtype=np.int64)
        order = np.lexsort(key[:, ::-1].T)
        key = key[order]
        for local, syn in self.plastic_syn.items():
            mine = self._plastic_keys[local]
            pos = _find_rows(key, mine)
            for name in PLASTIC_STATE:
                syn.variables[name].get_value()[:] = np.asarray(state[name])[order][pos]

    def restore(self, step: int, neurons: dict[str, np.ndarray], spike_gid: np.ndarray, spike_step: np.ndarray,
                region_rows: np.ndarray, states: list, bold: dict | None,
                rate_override: np.ndarray | None = None, cpg: dict | None = None,
                plastic: dict | None = None) -> None:
        """Continue from a checkpoint taken at the start of ``step`` (before the first run()).

        ``neurons``: variables keyed by gid (at least the gids this rank owns); ``spike_gid`` /
        ``spike_step``: every spike of the network up to step - 1 (this rank keeps its own for the
        results, and rebuilds from the recent ones what is still in flight: spikes in its delay
        queues, and remote spikes whose proxies have yet to fire); ``region_rows``: the regional
        samples summed over ranks (kept by rank 0); ``states``: per state monitor (gids, t,
        {var: (n_t, n_gids)}) of the whole network; ``bold``: the BOLD recorder's state.
        """
        if self.current_step() != 0:
            raise RuntimeError("restore() must come before the first run()")
        G = self.group
        mine, idx = self.locate(np.asarray(neurons["gid"], dtype=np.int64))
        if int(mine.sum()) != self.n_local:
            raise DtbError(f"the checkpoint holds {int(mine.sum())} of this rank's {self.n_local} neurons")
        order = np.empty(self.n_local, dtype=np.int64)
        order[idx[mine]] = np.flatnonzero(mine)          # checkpoint row of each local neuron
        for name in self.CHECKPOINT_VARIABLES:
            G.variables[name].get_value()[:] = np.asarray(neurons[name])[order]
        if self.inputs is not None:
            self.inputs.variables["acc"].get_value()[:] = np.asarray(neurons["acc"])[order].reshape(-1)
            if self.plastic and "cf" in neurons:
                self.inputs.variables["cf"].get_value()[:] = np.asarray(neurons["cf"])[order].reshape(-1)
        if self.per_neuron_scales and "scale_ampa" in neurons:
            for r in RECEPTORS:
                G.variables[f"scale_{r}"].get_value()[:] = np.asarray(neurons[f"scale_{r}"])[order]
        # the clock: the next run() starts at ``step``
        self._timestep[0] = step
        self.net.t_ = step * self.dt
        # own spikes, sorted by step then gid, as the buffer would hold them
        spike_gid = np.asarray(spike_gid, dtype=np.int64)
        spike_step = np.asarray(spike_step, dtype=np.int64)
        own, own_idx = self.locate(spike_gid)
        o = np.lexsort((spike_gid[own], spike_step[own]))
        self.spikes = SpikeBuffer(max(4096, int(own.sum())))
        self.spikes.extend(own_idx[own][o].astype(np.int32), spike_step[own][o])
        self._mon_pos = len(self.spikes)
        last_sample = (step // self.region_every) * self.region_every
        self._region_spike_pos = int(np.searchsorted(spike_step[own][o], last_sample))
        rows = np.asarray(region_rows, dtype=np.int64)
        self.region_rows = [r for r in rows] if self.rank == 0 else [np.zeros_like(r) for r in rows]
        self._state_prefix = []
        for (sm, mine_g, mon), (g, t, data) in zip(self.state_monitors, states):
            pos = np.searchsorted(g, mine_g) if len(g) else np.zeros(0, np.int64)
            self._state_prefix.append((np.asarray(t), {v: np.asarray(data[v])[:, pos] for v in sm.variables}))
        if self.bold is not None and bold is not None:
            self.bold.restore(bold)
        if rate_override is not None:
            self._rate_override = {int(k): float(r) for k, r in np.asarray(rate_override).reshape(-1, 2)}
        if self.cpg is not None and cpg is not None:
            self.cpg.restore(cpg)
        if self.plastic and plastic is not None:
            self._restore_plastic(plastic)
        self._apply_stimuli(step)
        self._refill_queues(step, spike_gid, spike_step)

    def _refill_queues(self, k: int, gids: np.ndarray, steps: np.ndarray) -> None:
        """Rebuild what was in flight at the start of step k from the spikes before it: a spike at
        step e reaches a synapse of delay d at e + d; those with e + d >= k are queued (static
        synapses: the delivery queues; Brian2's: the spike queue slot e + d - k). A remote
        source's proxy fires at e + D (rescheduled if still to come, else its spike is in the
        remote queue with delay d - D)."""
        recent = steps >= k - self.max_delay_steps() - self.D - 1
        gids, steps = gids[recent], steps[recent]
        local, local_idx = self.locate(gids)
        if True in self.delivery:
            self.delivery[True].push(local_idx[local], steps[local], k)
        for syn in self.synapse_sets[True]:
            self._fill_queue(syn, local_idx[local], steps[local], k)
        if not len(self.remote_gids):
            return
        pos = np.minimum(np.searchsorted(self.remote_gids, gids), len(self.remote_gids) - 1)
        remote = ~local & (self.remote_gids[pos] == gids)
        r_pos, r_step = pos[remote], steps[remote]
        if False in self.delivery:
            self.delivery[False].push(r_pos, r_step, k)
        if self.proxy is not None:
            pending = r_step + self.D >= k
            if pending.any():
                self._schedule_proxies(self.remote_gids[r_pos[pending]], r_step[pending] + self.D, k)
            for syn in self.synapse_sets[False]:
                self._fill_queue(syn, r_pos[~pending], r_step[~pending] + self.D, k)

    def max_delay_steps(self) -> int:
        """The longest delay (steps) of this rank's synapses, as stored in their queues."""
        m = max([d.max_delay for d in self.delivery.values()], default=0)
        for syn in self.synapse_sets[True] + self.synapse_sets[False]:
            if len(syn):
                m = max(m, int(np.rint(syn.pre.variables["delay"].get_value().max() / self.dt)))
        return m

    def _fill_queue(self, syn, sources: np.ndarray, fired: np.ndarray, k: int) -> None:
        """Put the events of spikes of ``sources`` (indices into the Synapses' source group) that
        left their source at steps ``fired`` into the queue of ``syn``, relative to step k."""
        pre = syn.variables["_synaptic_pre"].get_value()
        delay = np.rint(syn.pre.variables["delay"].get_value() / self.dt).astype(np.int64)
        order = np.argsort(pre, kind="stable")
        counts = np.bincount(pre, minlength=int(sources.max(initial=0)) + 1)
        ptr = np.concatenate([[0], np.cumsum(counts)])
        n = counts[sources] if len(sources) else np.zeros(0, np.int64)
        total = int(n.sum())
        slots: list[list[int]] = [[] for _ in range(max(int(delay.max(initial=0)) + 1, 1))]
        if total:
            spike_of = np.repeat(np.arange(len(sources)), n)
            within = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
            syn_idx = order[ptr[sources][spike_of] + within]
            slot = fired[spike_of] + delay[syn_idx] - k
            keep = slot >= 0
            syn_idx, slot = syn_idx[keep], slot[keep]
            o = np.argsort(slot, kind="stable")
            syn_idx, slot = syn_idx[o], slot[o]
            bounds = np.searchsorted(slot, np.arange(len(slots) + 1))
            slots = [syn_idx[bounds[i]:bounds[i + 1]].astype(np.int32).tolist() for i in range(len(slots))]
        syn.pre.queue._restore_from_full_state((0, slots))
