"""Building a rank's share of the network in Brian2 (NEST's connection and node managers):
its neurons, input slots, local and remote synapses with proxies for the remote sources, the
Poisson background and the recorders; only the gids the rank owns."""

from __future__ import annotations

import logging
import os

import numpy as np

from dtb import connect, rng
from dtb.engine.common import SPIKE_TRIM_PERIOD, SpikeBuffer, current_rss
from dtb.errors import DtbError
from dtb.engine.delivery import SpikeDelivery
from dtb.engine.neuron_kernel import NeuronPass
from dtb.models.lif import RECEPTORS, lif_equations
from dtb.models.plasticity import (PLASTIC_ON_POST, PLASTIC_ON_PRE, PLASTIC_SLOT_EQUATIONS, PLASTIC_SYNAPSE_MODEL)
from dtb.spec import CurrentStep, PoissonStimulus

log = logging.getLogger(__name__)


class NetworkBuilder:
    """Part of :class:`dtb.engine.kernel.Simulation`."""

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        import brian2 as b2

        spec = self.spec
        b2.defaultclock.dt = self.dt * b2.second
        self._timestep = b2.defaultclock.variables["timestep"].get_value()
        self._timestep[0] = 0             # the clock is Brian2's global one: a new network starts at 0
        gids = self.local_gids
        pop_index = spec.population_index(gids)
        self.local_population = pop_index
        region_names = spec.regions
        self._n_regions = len(region_names)
        region_of_pop = np.array([region_names.index(p.region) for p in spec.populations])
        self.local_region = region_of_pop[pop_index]
        # per-neuron parameter values; those equal for every population become shared scalars
        # (decided from the whole spec, so every rank generates the same code)
        names = [n for n in spec.populations[0].params if n != "v_init"]
        table = {n: np.array([p.params.get(n, 0.0) for p in spec.populations]) for n in names}
        for r in RECEPTORS:
            table[f"decay_{r}"] = np.exp(-self.dt / table[f"tau_{r}"])
        shared = {n for n, col in table.items() if np.all(col == col[0])}
        if any(isinstance(s, CurrentStep) for s in spec.stimuli):
            shared.discard("I_ext")
        if not self.per_neuron_scales:
            shared |= {f"scale_{r}" for r in RECEPTORS}
        self.shared_parameters = frozenset(shared)
        used = {pr.receptor for pr in spec.projections}
        self.synaptic_receptors = tuple(r for r in RECEPTORS if r in used)
        G = b2.NeuronGroup(self.n_local, lif_equations(self.shared_parameters, self.synaptic_receptors),
                           threshold="v > V_th", reset="v = V_reset", refractory="t_ref", name="dtb_neurons")
        # integration, threshold and reset are one compiled pass (dtb.engine.neuron_kernel), which
        # writes the group's spike space as the thresholder would
        for obj in (G.state_updater, G.thresholder["spike"], G.resetter["spike"]):
            obj.active = False
        self.group = G
        # Input slots: receptor k of local neuron i accumulates at slot n_slots * i + k of one group,
        # so a single Synapses object (and one spike queue) serves every receptor.
        self.inputs = None
        n_slots = len(self.synaptic_receptors)
        self.plastic = any(pr.plasticity is not None for pr in spec.projections)
        if n_slots:
            if self.plastic:
                # climbing-fibre events per slot (cf) fire the slot's "spike", which runs the
                # depression of its plastic synapses (their on_post); rule parameters per slot
                self.inputs = b2.NeuronGroup(n_slots * self.n_local, PLASTIC_SLOT_EQUATIONS, threshold="cf > 0",
                                             reset="cf = 0", name="dtb_inputs")
            else:
                self.inputs = b2.NeuronGroup(n_slots * self.n_local, "acc : integer", name="dtb_inputs")
                for obj in self.inputs.contained_objects:
                    obj.active = False
            for k, r in enumerate(self.synaptic_receptors):
                setattr(G, f"acc_{r}", b2.linked_var(self.inputs, "acc", index=n_slots * np.arange(self.n_local) + k))
        values = {n: col[pop_index] for n, col in table.items()}
        for name, arr in values.items():
            G.variables[name].set_value(arr[0] if name in shared else arr)
        for r in RECEPTORS:
            G.variables[f"scale_{r}"].set_value(1.0 if f"scale_{r}" in shared else np.ones(self.n_local))
        G.variables["gid"].set_value(gids.astype(np.int32))
        G.variables["region"].set_value(self.local_region.astype(np.int32))
        G.variables["w_quantum"].set_value(spec.simulation.weight_quantum)
        u = rng.uniform(self.seed, rng.STREAM_INIT, gids, 0)
        v0 = values["V_reset"] + u * (values["V_th"] - values["V_reset"])
        fixed = np.array([p.params.get("v_init", np.nan) for p in spec.populations])[pop_index]
        G.variables["v"].set_value(np.where(np.isnan(fixed), v0, fixed))
        G.variables["lastspike"].set_value(np.full(self.n_local, -1e4))
        background = {s.receptor for s in spec.stimuli if isinstance(s, PoissonStimulus)}
        if spec.cpg is not None:
            background.add(spec.cpg.receptor)
        self._background = tuple(r for r in RECEPTORS if r in background)
        active = tuple(r for r in RECEPTORS if r in used or r in background)
        clock = b2.defaultclock.variables
        # each neuron's background noise key per receptor (counter-based: the same on any rank)
        keys = {r: rng.key_hash(self.seed, rng.STREAM_NOISE + RECEPTORS.index(r), gids) for r in self._background}
        self.neuron_pass = NeuronPass(G, self.inputs, active, self.synaptic_receptors, keys,
                                      self.shared_parameters, (self._timestep, clock["t"].get_value()), self.dt)
        self.update = b2.NetworkOperation(self._step, when="groups", name="dtb_update")
        objects = [G, self.update] + ([self.inputs] if self.inputs is not None else [])
        self.cpg = None
        self._cpg_pools: set[str] = set()
        if spec.cpg is not None:
            self._cpg_pools = {n for g in spec.cpg.groups for n in (g.flexor, g.extensor)}
            from dtb.engine.cpg import CpgDriver
            self.cpg = CpgDriver(self, b2)
            objects += self.cpg.objects
            self.schedule(self.cpg.every, self._drive_cpg, order=-15)
            self.schedule(self.cpg.record_every, self.cpg.record, order=-14)
        self.stats.rss_before_synapses = current_rss()
        objects += self._build_synapses(b2, G)
        objects += self._build_stimuli(b2)
        objects += self._build_monitors(b2, G)
        self.plastic_history: dict[int, tuple[list, list]] = {}
        if self.plastic and spec.monitors.plasticity_interval > 0:
            every = max(int(np.rint(spec.monitors.plasticity_interval / self.dt)), 1)
            self.schedule(every, self._record_plastic, order=-13)
        if self.size > 1 and self.needs_exchange:
            self.schedule(self.P, self._exchange_op, order=-10)
        else:
            self.schedule(self.P, self._poll_stop, order=-9)
        # One Python operation on the default clock dispatches all periodic work: with a single
        # clock Brian2 takes its fast loop (one clock per period would cost a clock search per step).
        # It runs in the last slot of each step, so a task "at the start of step k" sees the state
        # after step k - 1 and the spikes of step k - 1 in the spike space (cleared when a run ends).
        objects.append(b2.NetworkOperation(self._tick, when="end", order=100, name="dtb_scheduler"))
        self.net = b2.Network(*objects)
        self._b2 = b2
        self.bold = None                  # a BOLD recorder attaches from outside (dtb.bold.attach_bold)

    def _build_synapses(self, b2, G) -> list:
        """Every incoming synapse of the rank's neurons: static ones into compiled delivery tables
        (:mod:`dtb.engine.delivery`), plastic and teacher ones into Brian2 ``Synapses``."""
        spec = self.spec
        pops = {p.name: p for p in spec.populations}
        here = [(k, pr, self.population_slices(pr.target)) for k, pr in enumerate(spec.projections)]
        here = [(k, pr, sl) for k, pr, sl in here if sl is not None]
        # pass 1: the remote neurons that project here (sources are drawn and dropped, one
        # projection at a time; pass 2 draws them again: counter-based, the same)
        remote, crossing = [], []
        for k, pr, sl in here:
            src = connect.draw_sources(pr, k, pops[pr.source], pops[pr.target], self.local_gids[sl], self.seed).source
            far = np.unique(src[~self.locate(src)[0]])
            if len(far):
                remote.append(far)
                crossing.append(k)
            del src
        self._set_exchange_interval(crossing)
        self.remote_gids = np.unique(np.concatenate(remote)) if remote else np.zeros(0, np.int64)
        del remote
        if self.exchange_mode == "targeted" and self.size > 1:
            self._build_targets()
        self.stats.n_proxies = len(self.remote_gids)
        parts = self._synapse_parts(here)
        objects = []
        self.proxy = None
        if parts["plastic", False] or parts["teacher", False]:
            objects.append(self._build_proxies(b2))
        self.synapse_sets: dict[bool, list] = {True: [], False: []}   # local? -> Brian2 Synapses
        self.plastic_syn: dict[bool, object] = {}
        self.delivery: dict[bool, SpikeDelivery] = {}
        for key in list(parts):
            kind, local = key
            chunks = parts.pop(key)
            if not chunks:
                continue
            if kind == "plain":
                n_sources = self.n_local if local else len(self.remote_gids)
                self.delivery[local] = SpikeDelivery(n_sources, chunks, self.inputs.variables["acc"].get_value())
            else:
                pre, post, wq, delay = (np.concatenate(x) for x in zip(*chunks))
                del chunks
                objects.append(self._brian2_synapses(b2, G, kind, local, pre, post, wq, delay))
                del pre, post, wq, delay
        return objects

    def _synapse_parts(self, here: list) -> dict:
        """Pass 2: sources, weights (quanta) and delays (steps) of the synapses of the projections
        ``here`` [(index, projection, slice of local targets)], one projection at a time, as
        compact chunks of (source index, input slot, weight, delay) per (kind, source on this rank?)."""
        spec = self.spec
        quantum = spec.simulation.weight_quantum
        n_slots = len(self.synaptic_receptors)
        max_wq = np.iinfo(np.int32).max
        plastic = {k for k, pr in enumerate(spec.projections) if pr.plasticity is not None}
        # teacher projections (climbing fibres) -> the plastic projection they gate
        teacher_of = {j: k for k in plastic for j, q in enumerate(spec.projections)
                      if q.source == spec.projections[k].plasticity.teacher and q.target == spec.projections[k].target}
        self._plastic_keys: dict[bool, list] = {True: [], False: []}
        parts: dict = {(kind, local): [] for kind in ("plain", "plastic", "teacher") for local in (True, False)}
        pops = {p.name: p for p in spec.populations}
        for k, pr, sl in here:
            inc = connect.draw_sources(pr, k, pops[pr.source], pops[pr.target], self.local_gids[sl], self.seed)
            w = connect.draw_weights(pr, k, inc, self.seed)
            wq = np.rint(w / quantum)
            if wq.max(initial=0) > max_wq:
                raise DtbError(f"projection {pr.source}->{pr.target}: weight {w.max():g} S exceeds "
                               f"2**31 weight quanta; raise simulation.weight_quantum")
            del w
            d = connect.draw_delay_steps(pr, k, inc, self.seed, self.dt)
            d = d.astype(np.int16 if d.max(initial=0) < 2**15 else np.int32)   # 2 bytes a synapse while building
            is_local, src_index = self.locate(inc.source)
            tgt_index = self.locate(inc.target)[1]
            post = (n_slots * tgt_index + self.synaptic_receptors.index(pr.receptor)).astype(np.int32)
            kinds = ["plastic" if k in plastic else "plain"] + (["teacher"] if k in teacher_of else [])
            if k in plastic:
                self._set_plastic_slots(pr, post)
            for local in (True, False):
                sel = is_local if local else ~is_local
                n = int(sel.sum())
                if not n:
                    continue
                if local:
                    pre = src_index[sel].astype(np.int32)
                    self.stats.n_synapses_local += n
                else:
                    pre = np.searchsorted(self.remote_gids, inc.source[sel]).astype(np.int32)
                    self.stats.n_synapses_remote += n
                for kind in kinds:
                    p = post[sel]
                    if kind == "teacher":      # the event goes to the slot of the plastic receptor
                        kp = spec.projections[teacher_of[k]]
                        p = (n_slots * tgt_index[sel] + self.synaptic_receptors.index(kp.receptor)).astype(np.int32)
                    parts[kind, local].append((pre, p, wq[sel].astype(np.int32), d[sel]))
                if k in plastic:
                    self._plastic_keys[local].append(np.stack([np.full(n, k), inc.target[sel], inc.slot[sel],
                                                               inc.source[sel]], axis=1))
                self.stats.per_receptor[pr.receptor] = self.stats.per_receptor.get(pr.receptor, 0) + n
        return parts

    def _build_proxies(self, b2):
        """Silent neurons standing for the remote sources of Brian2 (plastic, teacher) synapses:
        the proxy of a source that spiked at step e fires at e + D."""
        # scheduled, not yet fired spikes of one source span fewer than D steps, and a source
        # fires at most once per refractory period: K slots per proxy suffice
        tref = min(int(np.rint(p.params["t_ref"] / self.dt)) for p in self.spec.populations)
        self.proxy_slots = K = -(-self.D // max(tref, 1)) + 1
        eqs = "\n".join(f"due{j} : integer" for j in range(K))
        cond = " or ".join(f"t_in_timesteps == due{j}" for j in range(K))
        self.proxy = b2.NeuronGroup(len(self.remote_gids), eqs, threshold=cond, reset="", name="dtb_proxies")
        for j in range(K):
            self.proxy.variables[f"due{j}"].set_value(np.full(len(self.remote_gids), -1, dtype=np.int32))
        from brian2.groups.neurongroup import Thresholder
        for obj in self.proxy.contained_objects:   # nothing to integrate or reset
            if not isinstance(obj, Thresholder):
                obj.active = False
        return self.proxy

    def _brian2_synapses(self, b2, G, kind: str, local: bool, pre, post, wq, delay):
        """One Brian2 ``Synapses`` for the plastic synapses (or their teachers) of one side; remote
        ones start at the proxies, D steps after the spike, so they keep delay - D."""
        # delays are whole steps: float32 stores them exactly (to 2**24 steps) in half the
        # memory; Brian2's spike queue accepts float32 delays
        default_float = b2.prefs.core.default_float_dtype
        b2.prefs.core.default_float_dtype = np.float32
        side = "local" if local else "remote"
        try:
            if kind == "teacher":
                syn = b2.Synapses(G if local else self.proxy, self.inputs, on_pre="cf_post += 1",
                                  name=f"dtb_{side}_teacher")
            else:
                syn = b2.Synapses(G if local else self.proxy, self.inputs, model=PLASTIC_SYNAPSE_MODEL,
                                  on_pre=PLASTIC_ON_PRE, on_post=PLASTIC_ON_POST, name=f"dtb_{side}_plastic")
        finally:
            b2.prefs.core.default_float_dtype = default_float
        syn.connect(i=pre, j=post)
        if kind == "plastic":
            syn.variables["w"].get_value()[:] = wq
            syn.variables["tlast"].set_value(-1e9)
            self.plastic_syn[local] = syn
            self._plastic_keys[local] = np.concatenate(self._plastic_keys[local])
        steps = delay if local else delay - self.D
        syn.pre.variables["delay"].get_value()[:] = steps.astype(np.float32) * np.float32(self.dt)
        self.synapse_sets[local].append(syn)
        return syn

    def _set_plastic_slots(self, pr, post: np.ndarray) -> None:
        """The rule's parameters (in weight quanta) at the input slots of a plastic projection."""
        q = self.spec.simulation.weight_quantum
        rule = pr.plasticity
        slots = np.unique(post)
        v = self.inputs.variables
        v["tau_e"].get_value()[slots] = rule.tau
        v["ltp_q"].get_value()[slots] = int(np.rint(rule.ltp / q))
        v["ltd_q"].get_value()[slots] = rule.ltd / q
        v["wmin_q"].get_value()[slots] = int(np.rint(rule.w_min / q))
        v["wmax_q"].get_value()[slots] = int(np.rint(rule.w_max / q))

    # --------------------------------------------------------------- stimuli
    def _set_exchange_interval(self, crossing_here: list[int]) -> None:
        """D: the smallest delay of any projection with a synapse whose source is on another rank
        (anywhere), in steps. Spikes need to cross ranks only that often; purely local
        projections may be faster. P: the exchange period (D, or D/2 when overlapping)."""
        crossing = np.zeros(len(self.spec.projections), dtype=np.int32)
        crossing[crossing_here] = 1
        if self.size > 1:
            from mpi4py import MPI
            self.comm.Allreduce(MPI.IN_PLACE, crossing, op=MPI.MAX)
        bounds = [connect.delay_steps_lower_bound(p, self.dt) for k, p in enumerate(self.spec.projections) if crossing[k]]
        if bounds:
            self.D = min(bounds)
        self.needs_exchange = bool(bounds)
        overlap = self.exchange_mode == "overlap" and self.D >= 2
        self.P = self.D // 2 if overlap else self.D
        # block size of the exchange: room for 40 Hz on the largest rank (a burst above it takes
        # the overflow path once and the block grows); measured on the 100,000-neuron atlas
        # network, 2 ranks: 3 % faster than room for 200 Hz, with a fifth of the bytes
        n_max = int(self.partition.counts().max())
        self._capacity = 16 + int(np.ceil(n_max * self.P * self.dt * 40.0))
        if os.environ.get("DTB_EXCHANGE_BLOCK"):      # tuning and tests: force a block size
            self._capacity = max(int(os.environ["DTB_EXCHANGE_BLOCK"]), 3)

    def _build_stimuli(self, b2) -> list:
        stims = self.spec.stimuli
        wq = {r: np.zeros(self.n_local, dtype=np.int32) for r in RECEPTORS}
        for s in stims:
            if isinstance(s, PoissonStimulus):
                sl = self.population_slices(s.population)
                if sl is not None:
                    wq[s.receptor][sl] = int(np.rint(s.weight / self.spec.simulation.weight_quantum))
        if self.cpg is not None:
            quanta = int(np.rint(self.spec.cpg.weight / self.spec.simulation.weight_quantum))
            wq[self.spec.cpg.receptor][self.cpg.targets] = quanta
        for r in RECEPTORS:
            self.group.variables[f"wq_{r}"].set_value(wq[r])
        self._base_I_ext = np.broadcast_to(self.group.variables["I_ext"].get_value(), (self.n_local,)).copy()
        change_steps = sorted({int(np.rint(x / self.dt)) for s in stims for x in (s.start, s.stop)
                               if np.isfinite(x)})
        self._apply_stimuli(0)
        if not any(c > 0 for c in change_steps):
            return []
        period = int(np.gcd.reduce([c for c in change_steps if c > 0]))
        self.schedule(period, self._apply_stimuli, order=-20)
        return []

    # -------------------------------------------------------------- monitors
    def _build_monitors(self, b2, G) -> list:
        mon = self.spec.monitors
        # each step's spikes are recorded from the spike space right after the neuron pass
        # (Scheduler._step; cheaper than a SpikeMonitor, whose dynamic arrays are resized from
        # Python every step)
        self._spikespace = G.variables["_spikespace"].get_value()
        self.spikes = SpikeBuffer()
        if not self.keep_spikes:
            self.schedule(SPIKE_TRIM_PERIOD, self._forget_old_spikes, order=1000)
        objects = []
        # regional synaptic activity: fixed-point charge sums, sampled every region_interval
        self.region_every = max(int(np.rint(mon.region_interval / self.dt)), 1)
        order = np.argsort(self.local_region, kind="stable")
        self._region_order = order
        regs, starts = np.unique(self.local_region[order], return_index=True)
        self._region_ids, self._region_starts = regs, starts
        self.schedule(self.region_every, self._sample_regions, order=-5)
        self.state_monitors = []
        for k, sm in enumerate(mon.state):
            p = self.spec.population(sm.population)
            gids = np.array([p.first_gid + i for i in sm.indices], dtype=np.int64)
            mine = gids[self.locate(gids)[0]]
            if len(mine) == 0:
                self.state_monitors.append((sm, mine, None))
                continue
            every = max(int(np.rint(sm.interval / self.dt)), 1) if sm.interval else 1
            m = b2.StateMonitor(G, list(sm.variables), record=self.locate(mine)[1].tolist(),
                                dt=every * self.dt * b2.second, name=f"dtb_state_{k}")
            self.state_monitors.append((sm, mine, m))
            objects.append(m)
        return objects
