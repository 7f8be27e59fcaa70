"""What a rank records while it runs: its spikes, regional synaptic charge and spike counts
(fixed point, summed exactly over ranks), plastic weights and state monitors."""

from __future__ import annotations

import logging

import numpy as np


log = logging.getLogger(__name__)

#: fixed-point unit of synaptic charge for the regional recorder (coulomb); int64 sums are exact
CHARGE_QUANTUM = 1e-21


class Recorder:
    """Part of :class:`dtb.engine.kernel.Simulation`."""

    #: channels of a regional sample row
    REGION_CHANNELS = ("Q_exc", "Q_inh", "spikes")

    def _sample_regions(self, step: int) -> None:
        self.region_rows.append(self._take_region_charge())

    def _take_region_charge(self) -> np.ndarray:
        """Per region (rows of local sums, int64): excitatory and inhibitory charge in units of
        CHARGE_QUANTUM and the number of spikes, since the last sample."""
        row = np.zeros((3, self._n_regions), dtype=np.int64)
        for c, name in enumerate(("Q_exc", "Q_inh")):
            var = self.group.variables[name]
            q = np.rint(var.get_value()[self._region_order] / CHARGE_QUANTUM).astype(np.int64)
            row[c, self._region_ids] = np.add.reduceat(q, self._region_starts)
            var.get_value()[:] = 0.0
        idx, _ = self.spikes.since(self._region_spike_pos)
        self._region_spike_pos = len(self.spikes)
        row[2] = np.bincount(self.local_region[idx], minlength=self._n_regions)
        self.population_spikes += np.bincount(self.local_population[idx], minlength=len(self.population_spikes))
        return row

    def _record_plastic(self, step: int) -> None:
        """Statistics (mean, std, min, max; S) of each plastic projection's weights, over all
        ranks (collective; at the start of ``step``)."""
        if step == 0:
            return
        rows = self.plastic_weights()
        ks = [k for k, pr in enumerate(self.spec.projections) if pr.plasticity is not None]
        local = np.zeros((len(ks), 5))
        for i, k in enumerate(ks):
            w = rows[rows[:, 0] == k, 4]
            local[i] = (len(w), w.sum(), (w * w).sum(), w.min(initial=np.inf), -w.max(initial=-np.inf))
        if self.size > 1:
            parts = self.comm.allgather(local)
            local = np.stack(parts)
            total = np.column_stack([local[:, :, :3].sum(0), local[:, :, 3].min(0), local[:, :, 4].min(0)])
        else:
            total = local
        for i, k in enumerate(ks):
            n, s1, s2, lo, neg_hi = total[i]
            mean = s1 / max(n, 1)
            t, st = self.plastic_history.setdefault(k, ([], []))
            t.append(step * self.dt)
            st.append((mean, np.sqrt(max(s2 / max(n, 1) - mean * mean, 0.0)), lo, -neg_hi))

    def plastic_weights(self) -> np.ndarray:
        """This rank's plastic synapses: rows (projection index, target gid, ordinal of the synapse
        among the target's incoming ones of that projection, source gid, weight in S), sorted."""
        rows = []
        q = self.spec.simulation.weight_quantum
        for local, syn in self.plastic_syn.items():
            keys = self._plastic_keys[local]
            rows.append(np.column_stack([keys.astype(float), syn.variables["w"].get_value() * q]))
        if not rows:
            return np.zeros((0, 5))
        out = np.concatenate(rows)
        return out[np.lexsort((out[:, 2], out[:, 1], out[:, 0]))]

    def state_record(self, k: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Monitor k's recording on this rank so far, earlier segments included: t (s) and
        {variable: (n_times, n_recorded)}."""
        sm, mine, mon = self.state_monitors[k]
        prefix = self._state_prefix[k] if k < len(self._state_prefix) else None
        ts = [prefix[0]] if prefix is not None else []
        data = {v: ([prefix[1][v]] if prefix is not None else []) for v in sm.variables}
        if mon is not None:
            ts.append(np.asarray(mon.t_))
            for v in sm.variables:
                data[v].append(np.asarray(getattr(mon, v + "_")).T)
        t = np.concatenate(ts) if ts else np.zeros(0)
        return t, {v: np.concatenate(x, axis=0) if x else np.zeros((0, len(mine))) for v, x in data.items()}

    def spike_window(self) -> int:
        """Steps of spikes a rank needs back in time: the longest delay, the exchange's latency
        and a step of margin (what a checkpoint restores from; see :meth:`_forget_old_spikes`)."""
        if getattr(self, "_spike_window", None) is None:
            self._spike_window = self.max_delay_steps() + self.D + 2
        return self._spike_window

    def _forget_old_spikes(self, step: int) -> None:
        """With ``keep_spikes=False``: drop the spikes no longer in flight that every reader of
        the buffer has seen."""
        self.spikes.forget_before(step - self.spike_window(), self._oldest_unread_spike())

    def _oldest_unread_spike(self) -> int:
        """Position of the first spike the exchange (on several ranks) or the regional
        recorder has yet to read."""
        sent = self._mon_pos if self.size > 1 else len(self.spikes)
        return min(sent, self._region_spike_pos)

    # ------------------------------------------------------------- results
    def local_spikes(self) -> tuple[np.ndarray, np.ndarray]:
        """All spikes of this rank so far: (gids, steps); with ``keep_spikes=False`` only the
        recent ones."""
        i, steps = self.spikes.since(self.spikes.first)
        return self.local_gids[i], steps
