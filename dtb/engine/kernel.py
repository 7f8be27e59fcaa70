"""The simulation kernel: one rank's share of the network as a Brian2 ``Network``.

Build (each rank, for the gids it owns, never the whole network):
  * one ``NeuronGroup`` holding the rank's neurons (the sorted gids its partition gives it);
  * per receptor, a local ``Synapses`` (sources on this rank) and a remote one whose sources are
    a silent proxy group standing for the remote neurons that project here;
  * counter-based background noise and integer synaptic accumulators (see :mod:`dtb.models.lif`).

Run: ``Simulation.run(duration)`` can be called repeatedly (no rebuild). Spikes cross ranks with
a lag of ``D`` steps, the minimum delay of the projections that cross ranks: the proxy of a remote source that spiked at step e fires
at step e + D (its threshold compares the step counter with the steps it was scheduled for), and
remote synapses store their delay minus D, so the spike arrives at step e + delay, exactly when
it would had the source been local. By default ranks exchange every D steps (an allgather of the spikes of the last D
steps). With ``simulation.exchange = "overlap"`` they exchange every P = D/2 steps with a
non-blocking allgather: the spikes of [k-P, k) are posted at step k and collected at step k + P,
still in time (their proxies fire from k - P + D >= k + P on), which hides network latency and
load fluctuations at the price of twice as many exchanges. Only public Brian2 behaviour is used; tests/test_exchange.py pins the
timing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dtb import connect, rng
from dtb.errors import DtbError
from dtb.engine.brian_setup import configure_brian
from dtb.models.lif import RECEPTORS, lif_equations, neuron_update_code
from dtb.models.plasticity import (PLASTIC_ON_POST, PLASTIC_ON_PRE, PLASTIC_SLOT_EQUATIONS, PLASTIC_STATE,
                                   PLASTIC_SYNAPSE_MODEL)
from dtb.partition import Partition, partition_contiguous
from dtb.spec import CurrentStep, NetworkSpec, PoissonStimulus

log = logging.getLogger(__name__)

#: fixed-point unit of synaptic charge for the regional recorder (coulomb); int64 sums are exact
CHARGE_QUANTUM = 1e-21


def regional_activity(rows: np.ndarray, sizes: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regional samples summed over ranks, (samples, channels, regions) int64 as taken by
    ``Simulation._take_region_charge``, as mean excitatory and inhibitory synaptic current per
    neuron (pA) and firing rate per neuron (Hz) over each interval."""
    to_pA = CHARGE_QUANTUM / interval / sizes * 1e12
    return rows[:, 0, :] * to_pA, rows[:, 1, :] * to_pA, rows[:, 2, :] / sizes / interval


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
    capacity: int
    rate_override: dict
    bold: dict | None
    plastic_history: dict


class Simulation:
    """A rank's share of a network, ready to run in chunks.

    Parameters
    ----------
    spec : the validated network description
    comm : an mpi4py communicator (default COMM_WORLD)
    partition : which gids each rank owns (default: cost-balanced contiguous ranges)
    per_neuron_scales : give every neuron its own conductance scales ``scale_r`` (the data
        assimilation needs them); by default one shared scale of 1 per receptor
    keep_region_rows : keep every regional sample for the run's outputs (default); False: the
        BOLD recorder drops the samples it has used, so memory does not grow with the run
        (the data assimilation, which needs only the BOLD: 24 members x 94 regions would
        otherwise keep 54 MB per biological second)
    """

    def __init__(self, spec: NetworkSpec, comm=None, partition: Partition | None = None,
                 per_neuron_scales: bool = False, keep_region_rows: bool = True):
        configure_brian()
        t0 = time.perf_counter()
        self.spec = spec
        self.per_neuron_scales = per_neuron_scales
        self.keep_region_rows = keep_region_rows
        self.comm = comm if comm is not None else world_comm()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        if spec.n_neurons < self.size:
            raise DtbError(f"{self.size} ranks for {spec.n_neurons} neurons: use at most one rank per neuron")
        self.partition = partition or partition_contiguous(spec, self.size)
        self.local_gids = self.partition.owned(self.rank)
        self.n_local = len(self.local_gids)
        if self.n_local == 0:
            raise DtbError(f"rank {self.rank} owns no neurons; use fewer ranks")
        self.dt = spec.simulation.dt
        self.seed = spec.simulation.seed
        self.D = min((connect.delay_steps_lower_bound(p, self.dt) for p in spec.projections), default=1)
        self.exchange_mode = spec.simulation.exchange
        self._pending_exchange = None
        self.stats = BuildStats(n_local=self.n_local)
        self._tasks: list[tuple[int, int, Callable[[int], None]]] = []   # (order, period in steps, fn(step))
        self._mon_pos = 0                 # spikes already sent to other ranks
        self.exchange_seconds = 0.0
        self.exchanged_spikes = 0
        self.exchange_bytes = 0           # sent by this rank
        self.exchange_rounds = 0
        self._region_rows: list[np.ndarray] = []
        self._region_spike_pos = 0
        self._stop_requested = False      # set by a signal handler on this rank
        self.stop_agreed = False          # every rank knows of a stop request (same step everywhere)
        self._state_prefix: list = []     # recordings before a resumed checkpoint, per state monitor
        self._rate_override: dict[int, float] = {}   # Poisson stimulus index -> rate set at run time
        self._task_error: Exception | None = None     # raised by a scheduled task: run() re-raises it
        self._build()
        self.stats.build_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        import brian2 as b2

        spec = self.spec
        b2.defaultclock.dt = self.dt * b2.second
        self._timestep = b2.defaultclock.variables["timestep"].get_value()
        self._timestep[0] = 0             # the clock is Brian2's global one: a new network starts at 0
        self._poisson = rng.brian2_poisson_function()
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
                           threshold="v > V_th", reset="v = V_reset", refractory="t_ref",
                           namespace={"dtb_poisson": self._poisson}, name="dtb_neurons")
        G.state_updater.active = False   # the refractory flag is updated in dtb_update
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
        for k, r in enumerate(RECEPTORS):
            hi, lo = rng.split_key(rng.key_hash(self.seed, rng.STREAM_NOISE + k, gids))
            G.variables[f"key_hi_{r}"].set_value(hi)
            G.variables[f"key_lo_{r}"].set_value(lo)
        u = rng.uniform(self.seed, rng.STREAM_INIT, gids, 0)
        v0 = values["V_reset"] + u * (values["V_th"] - values["V_reset"])
        fixed = np.array([p.params.get("v_init", np.nan) for p in spec.populations])[pop_index]
        G.variables["v"].set_value(np.where(np.isnan(fixed), v0, fixed))
        G.variables["lastspike"].set_value(np.full(self.n_local, -1e4))
        background = {s.receptor for s in spec.stimuli if isinstance(s, PoissonStimulus)}
        if spec.cpg is not None:
            background.add(spec.cpg.receptor)
        self._background = tuple(r for r in RECEPTORS if r in background)
        self.update = G.run_regularly(neuron_update_code(used, background), when="groups", name="dtb_update")
        objects = [G, self.update] + ([self.inputs] if self.inputs is not None else [])
        self.cpg = None
        self._cpg_pools: set[str] = set()
        if spec.cpg is not None:
            self._cpg_pools = {n for g in spec.cpg.groups for n in (g.flexor, g.extensor)}
            from dtb.engine.cpg import CpgDriver
            self.cpg = CpgDriver(self, b2)
            objects += self.cpg.objects
            self._schedule(self.cpg.every, self._drive_cpg, order=-15)
            self._schedule(self.cpg.record_every, self.cpg.record, order=-14)
        self.stats.rss_before_synapses = current_rss()
        objects += self._build_synapses(b2, G)
        objects += self._build_stimuli(b2)
        objects += self._build_monitors(b2, G)
        self.plastic_history: dict[int, tuple[list, list]] = {}
        if self.plastic and spec.monitors.plasticity_interval > 0:
            every = max(int(np.rint(spec.monitors.plasticity_interval / self.dt)), 1)
            self._schedule(every, self._record_plastic, order=-13)
        if self.size > 1 and self.needs_exchange:
            self._schedule(self.P, self._exchange_op, order=-10)
        else:
            self._schedule(self.P, self._poll_stop, order=-9)
        # One Python operation on the default clock dispatches all periodic work: with a single
        # clock Brian2 takes its fast loop (one clock per period would cost a clock search per step).
        # It runs in the last slot of each step, so a task "at the start of step k" sees the state
        # after step k - 1 and the thresholder's output of step k - 1 (cleared when a run ends).
        objects.append(b2.NetworkOperation(self._tick, when="end", order=100, name="dtb_scheduler"))
        self.net = b2.Network(*objects)
        self._b2 = b2
        self.bold = None
        if spec.bold is not None:
            from dtb.bold import BoldRecorder
            self.bold = BoldRecorder(self, spec.bold)

    def _build_synapses(self, b2, G) -> list:
        spec = self.spec
        pops = {p.name: p for p in spec.populations}
        seed, dt, quantum = self.seed, self.dt, spec.simulation.weight_quantum
        # pass 1: sources of every incoming synapse, to know the remote neurons we need proxies for
        drawn = []
        for k, pr in enumerate(spec.projections):
            tgt = pops[pr.target]
            sl = self._population_slices(tgt.name)
            if sl is None:
                continue
            inc = connect.draw_sources(pr, k, pops[pr.source], tgt, self.local_gids[sl], seed)
            drawn.append((k, pr, inc))
        remote = [inc.source[~self._locate(inc.source)[0]] for _, _, inc in drawn]
        self._set_exchange_interval([k for (k, _, _), r in zip(drawn, remote) if len(r)])
        self.remote_gids = np.unique(np.concatenate(remote)) if remote else np.zeros(0, np.int64)
        if self.exchange_mode == "targeted" and self.size > 1:
            self._build_targets()
        self.stats.n_proxies = len(self.remote_gids)
        objects = []
        self.proxy = None
        if len(self.remote_gids):
            # a source emits at most one spike per refractory period, so K slots per window suffice
            # scheduled, not yet fired spikes of one source span fewer than D steps, and a source
            # fires at most once per refractory period: K slots per proxy suffice
            tref = min(int(np.rint(p.params["t_ref"] / dt)) for p in spec.populations)
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
            objects.append(self.proxy)
        n_slots = len(self.synaptic_receptors)
        max_wq = np.iinfo(np.int32).max
        plastic = {k for k, pr in enumerate(spec.projections) if pr.plasticity is not None}
        # teacher projections (climbing fibres) -> the plastic projection they gate
        teacher_of = {j: k for k in plastic for j, q in enumerate(spec.projections)
                      if q.source == spec.projections[k].plasticity.teacher and q.target == spec.projections[k].target}
        self._plastic_keys: dict[bool, list] = {True: [], False: []}
        # pass 2: weights and delays; all synapses of a kind and side go into one Synapses object
        parts = {(kind, local): [] for kind in ("plain", "plastic", "teacher") for local in (True, False)}
        for k, pr, inc in drawn:
            w = connect.draw_weights(pr, k, inc, seed)
            wq = np.rint(w / quantum)
            if wq.max(initial=0) > max_wq:
                raise DtbError(f"projection {pr.source}->{pr.target}: weight {w.max():g} S exceeds "
                               f"2**31 weight quanta; raise simulation.weight_quantum")
            d = connect.draw_delay_steps(pr, k, inc, seed, dt)
            is_local, src_index = self._locate(inc.source)
            tgt_index = self._locate(inc.target)[1]
            post = (n_slots * tgt_index + self.synaptic_receptors.index(pr.receptor)).astype(np.int32)
            kinds = ["plastic" if k in plastic else "plain"]
            if k in teacher_of:
                kinds.append("teacher")
            if k in plastic:
                self._set_plastic_slots(pr, post)
            for local in (True, False):
                sel = is_local if local else ~is_local
                n = int(sel.sum())
                if not n:
                    continue
                if local:
                    pre = src_index[sel].astype(np.int32)
                    delay = d[sel]
                    self.stats.n_synapses_local += n
                else:
                    pre = np.searchsorted(self.remote_gids, inc.source[sel]).astype(np.int32)
                    delay = d[sel] - self.D
                    self.stats.n_synapses_remote += n
                for kind in kinds:
                    p = post[sel]
                    if kind == "teacher":      # the event goes to the slot of the plastic receptor
                        kp = spec.projections[teacher_of[k]]
                        p = (n_slots * tgt_index[sel] + self.synaptic_receptors.index(kp.receptor)).astype(np.int32)
                    parts[kind, local].append((pre, p, wq[sel].astype(np.int32), delay.astype(np.float32)))
                if k in plastic:
                    self._plastic_keys[local].append(np.stack([np.full(n, k), inc.target[sel], inc.slot[sel],
                                                               inc.source[sel]], axis=1))
                self.stats.per_receptor[pr.receptor] = self.stats.per_receptor.get(pr.receptor, 0) + n
        del drawn
        self.synapse_sets: dict[bool, list] = {True: [], False: []}   # local? -> Synapses objects
        self.plastic_syn: dict[bool, object] = {}
        for (kind, local), chunks in parts.items():
            if not chunks:
                continue
            pre, post, wq, delay = (np.concatenate(x) for x in zip(*chunks))
            parts[kind, local] = None
            # delays are whole steps: float32 stores them exactly (to 2**24 steps) in half the
            # memory; Brian2's spike queue accepts float32 delays
            default_float = b2.prefs.core.default_float_dtype
            b2.prefs.core.default_float_dtype = np.float32
            side = "local" if local else "remote"
            try:
                if kind == "plain":
                    syn = b2.Synapses(G if local else self.proxy, self.inputs, model="w : integer (constant)",
                                      on_pre="acc_post += w", name=f"dtb_{side}_synapses")
                elif kind == "teacher":
                    syn = b2.Synapses(G if local else self.proxy, self.inputs, on_pre="cf_post += 1",
                                      name=f"dtb_{side}_teacher")
                else:
                    syn = b2.Synapses(G if local else self.proxy, self.inputs, model=PLASTIC_SYNAPSE_MODEL,
                                      on_pre=PLASTIC_ON_PRE, on_post=PLASTIC_ON_POST, name=f"dtb_{side}_plastic")
            finally:
                b2.prefs.core.default_float_dtype = default_float
            syn.connect(i=pre, j=post)
            if kind != "teacher":
                syn.variables["w"].get_value()[:] = wq
            if kind == "plastic":
                syn.variables["tlast"].set_value(-1e9)
                self.plastic_syn[local] = syn
                self._plastic_keys[local] = np.concatenate(self._plastic_keys[local])
            syn.pre.variables["delay"].get_value()[:] = delay * np.float32(dt)
            del pre, post, wq, delay
            self.synapse_sets[local].append(syn)
            objects.append(syn)
        return objects

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

    def _population_slices(self, name: str) -> slice | None:
        p = self.spec.population(name)
        lo, hi = np.searchsorted(self.local_gids, [p.first_gid, p.first_gid + p.size])
        return slice(int(lo), int(hi)) if hi > lo else None

    def _locate(self, gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owned here?, local index) of each gid; the index is meaningless where not owned."""
        idx = np.searchsorted(self.local_gids, gids)
        np.minimum(idx, self.n_local - 1, out=idx)
        return self.local_gids[idx] == gids, idx

    def _build_stimuli(self, b2) -> list:
        stims = self.spec.stimuli
        wq = {r: np.zeros(self.n_local, dtype=np.int32) for r in RECEPTORS}
        for s in stims:
            if isinstance(s, PoissonStimulus):
                sl = self._population_slices(s.population)
                if sl is not None:
                    wq[s.receptor][sl] = int(np.rint(s.weight / self.spec.simulation.weight_quantum))
        if self.cpg is not None:
            wq[self.spec.cpg.receptor][self.cpg.targets] = int(np.rint(self.spec.cpg.weight / self.spec.simulation.weight_quantum))
        for r in RECEPTORS:
            self.group.variables[f"wq_{r}"].set_value(wq[r])
        self._base_I_ext = np.broadcast_to(self.group.variables["I_ext"].get_value(), (self.n_local,)).copy()
        change_steps = sorted({int(np.rint(x / self.dt)) for s in stims for x in (s.start, s.stop)
                               if np.isfinite(x)})
        self._apply_stimuli(0)
        if not any(c > 0 for c in change_steps):
            return []
        period = int(np.gcd.reduce([c for c in change_steps if c > 0]))
        self._schedule(period, self._apply_stimuli, order=-20)
        return []

    def _apply_stimuli(self, step: int, populations: set[str] | None = None) -> None:
        """Set background rates and injected currents active at ``step`` (start inclusive, stop
        exclusive). ``populations``: only recompute the Poisson rates of these populations (the
        same sums in the same order, so the same bits as a full update)."""
        if populations is not None and self.cpg is not None and populations & self._cpg_pools:
            populations = None
        lam = {r: np.zeros(self.n_local) for r in RECEPTORS}
        I_ext = self._base_I_ext.copy()
        for k, s in enumerate(self.spec.stimuli):
            if populations is not None and s.population not in populations:
                continue
            if k in self._rate_override:
                s = dataclasses.replace(s, rate=self._rate_override[k])
            on = int(np.rint(s.start / self.dt)) <= step and (not np.isfinite(s.stop) or step < int(np.rint(s.stop / self.dt)))
            sl = self._population_slices(s.population)
            if not on or sl is None:
                continue
            if isinstance(s, PoissonStimulus):
                lam[s.receptor][sl] += s.rate * self.dt
            elif isinstance(s, CurrentStep):
                I_ext[sl] += s.amplitude
        if populations is not None:
            for name in populations:
                sl = self._population_slices(name)
                if sl is None:
                    continue
                for r in self._background:
                    self.group.variables[f"lam_{r}"].get_value()[sl] = lam[r][sl]
                    self.group.variables[f"p0_{r}"].get_value()[sl] = np.exp(-lam[r][sl])
            return
        if self.cpg is not None:
            self._lam_base = lam[self.spec.cpg.receptor].copy()
            self.cpg.add_drive(lam[self.spec.cpg.receptor])
        for r in self._background:          # the other receptors' rates stay 0
            self.group.variables[f"lam_{r}"].set_value(lam[r])
            self.group.variables[f"p0_{r}"].set_value(np.exp(-lam[r]))
        if "I_ext" not in self.shared_parameters:
            self.group.variables["I_ext"].set_value(I_ext)

    def _drive_cpg(self, step: int) -> None:
        """Set the CPG pools' Poisson rates from the oscillators' current outputs (and, with
        ``drive_from``, the oscillators' tonic input from that population's rate)."""
        if self.spec.cpg.drive_from:
            self.cpg.update_vigour()
        r, idx = self.spec.cpg.receptor, self.cpg.targets
        lam = self.group.variables[f"lam_{r}"].get_value()
        lam[idx] = self._lam_base[idx]
        self.cpg.add_drive(lam)
        self.group.variables[f"p0_{r}"].get_value()[idx] = np.exp(-lam[idx])

    def set_stimulus_rates(self, rates: dict[int, float]) -> None:
        """Change the rates (Hz) of Poisson stimuli {index in ``spec.stimuli``: rate} from the next
        step on; every rank must set the same values (e.g. a broadcast sensory input)."""
        for index, rate in rates.items():
            if not isinstance(self.spec.stimuli[index], PoissonStimulus):
                raise TypeError(f"stimulus {index} is not a Poisson stimulus")
            self._rate_override[index] = float(rate)
        self._apply_stimuli(self.current_step() + 1, {self.spec.stimuli[i].population for i in rates})

    # -------------------------------------------------------------- monitors
    def _build_monitors(self, b2, G) -> list:
        mon = self.spec.monitors
        # spikes are read from the thresholder's output by the scheduler, once per step (cheaper
        # than a SpikeMonitor, whose dynamic arrays are resized from Python every step)
        self._spikespace = G.variables["_spikespace"].get_value()
        self.spikes = SpikeBuffer()
        self._schedule(1, self._read_spikes, order=-1000)
        objects = []
        # regional synaptic activity: fixed-point charge sums, sampled every region_interval
        self._region_every = max(int(np.rint(mon.region_interval / self.dt)), 1)
        order = np.argsort(self.local_region, kind="stable")
        self._region_order = order
        regs, starts = np.unique(self.local_region[order], return_index=True)
        self._region_ids, self._region_starts = regs, starts
        self._schedule(self._region_every, self._sample_regions, order=-5)
        self.state_monitors = []
        for k, sm in enumerate(mon.state):
            p = self.spec.population(sm.population)
            gids = np.array([p.first_gid + i for i in sm.indices], dtype=np.int64)
            mine = gids[self._locate(gids)[0]]
            if len(mine) == 0:
                self.state_monitors.append((sm, mine, None))
                continue
            every = max(int(np.rint(sm.interval / self.dt)), 1) if sm.interval else 1
            m = b2.StateMonitor(G, list(sm.variables), record=self._locate(mine)[1].tolist(),
                                dt=every * self.dt * b2.second, name=f"dtb_state_{k}")
            self.state_monitors.append((sm, mine, m))
            objects.append(m)
        return objects

    def _sample_regions(self, step: int) -> None:
        self._region_rows.append(self._take_region_charge())

    #: channels of a regional sample row
    REGION_CHANNELS = ("Q_exc", "Q_inh", "spikes")

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
        return row

    # ------------------------------------------------------------ exchange
    def current_step(self) -> int:
        """The time step being simulated (or reached, between runs)."""
        return int(self._timestep[0])

    def _build_targets(self) -> None:
        """For the targeted exchange: which ranks need the spikes of each local neuron (those
        holding a synapse it projects to), learnt once by telling each owner what we need."""
        owner = self.partition.owner(self.remote_gids)
        wanted = self.comm.alltoall([self.remote_gids[owner == q] for q in range(self.size)])
        self._targets = np.zeros((self.n_local, self.size), dtype=bool)
        for r, gids in enumerate(wanted):
            self._targets[self._locate(np.asarray(gids, dtype=np.int64))[1], r] = True

    def _targeted_exchange(self, k: int) -> None:
        """Send each spike of [k - D, k) only to the ranks that need it: an alltoall of counts
        (and the stop flag), then an alltoallv of the spikes."""
        from mpi4py import MPI
        t0 = time.perf_counter()
        gids, steps = self._new_local_spikes()
        payload = (gids << 16) | (steps - (k - self.P))
        need = self._targets[self._locate(gids)[1]]                       # (spikes, ranks)
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
        if self.proxy is not None and len(recv):
            self._schedule_proxies(recv >> 16, (recv & 0xFFFF) + (k - self.P) + self.D, k)
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

    def _read_spikes(self, k: int) -> None:
        """Before step k the thresholder's output holds the spikes of step k - 1."""
        n = self._spikespace[-1]
        if n:
            self.spikes.append(self._spikespace[:n], k - 1)

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
        if self.proxy is not None and len(packed):
            self._schedule_proxies(packed >> 16, (packed & 0xFFFF) + (k_post - self.P) + self.D, k)
        self.exchange_seconds += time.perf_counter() - t0

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

    # ------------------------------------------------------------------ run
    def _schedule(self, period_steps: int, fn: Callable[[int], None], order: int = 0) -> None:
        self._tasks.append((order, max(int(period_steps), 1), fn))
        self._tasks.sort(key=lambda task: task[0])

    def _unschedule(self, fn: Callable[[int], None]) -> None:
        self._tasks = [task for task in self._tasks if task[2] is not fn]

    def _tick(self) -> None:
        k = int(self._timestep[0]) + 1        # the step about to begin
        for _, period, fn in self._tasks:
            if k % period == 0:
                try:
                    fn(k)
                except Exception as e:        # a task's error ends the run here; run() raises it as it is
                    self._task_error = e
                    self.net.stop()
                    return

    def add_hook(self, period: float, fn: Callable[["Simulation"], None]) -> None:
        """Call ``fn(sim)`` every ``period`` seconds of biological time (rounded to whole steps), at
        the start of the step, inside the run: no run() split, so it is cheap."""
        self._schedule(int(np.rint(period / self.dt)), lambda k: fn(self), order=0)

    @property
    def t(self) -> float:
        """Biological time reached (s)."""
        return self.current_step() * self.dt

    def run(self, duration: float, progress: bool = False) -> None:
        """Advance by ``duration`` seconds (rounded to whole steps). Callable repeatedly."""
        b2 = self._b2
        steps = int(np.rint(duration / self.dt))
        if steps <= 0:
            return
        bar = None
        if progress and self.rank == 0:
            from tqdm import tqdm
            bar = tqdm(total=round(steps * self.dt, 6), unit="s bio", desc="simulating",
                       bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} s [{elapsed}<{remaining}]")
            start = self.current_step()
            every = max(steps // 100, self.D)

            def _progress(k: int) -> None:
                bar.n = round((k - start) * self.dt, 6)
                bar.refresh()
            self._schedule(every, _progress, order=100)
        if not self.stats.rss_after_first_step:
            self.net.run(self.dt * b2.second, namespace={}, report=None)
            self.stats.rss_after_first_step = current_rss()
            steps -= 1
        try:
            if steps > 0 and self._task_error is None:
                self.net.run(steps * self.dt * b2.second, namespace={}, report=None)
        finally:
            if bar is not None:
                self._unschedule(_progress)
                bar.n = bar.total
                bar.close()
        if self._task_error is not None:
            error, self._task_error = self._task_error, None
            raise error

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
        mine, idx = self._locate(gids)
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
        mine, idx = self._locate(gids)
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
        pending = self._pending_exchange
        if pending is not None:
            req, recv, cap, rest, k = pending
            pending = (req, recv.copy(), cap, rest.copy(), k)
        return Snapshot(name=name, step=self.current_step(), n_spikes=len(self.spikes), mon_pos=self._mon_pos,
                        region_spike_pos=self._region_spike_pos, region_rows=list(self._region_rows),
                        pending_exchange=pending, capacity=self._capacity, rate_override=dict(self._rate_override),
                        bold=self.bold.capture() if self.bold is not None else None,
                        plastic_history={k: (len(t), len(v)) for k, (t, v) in self.plastic_history.items()})

    def rewind(self, snap: "Snapshot") -> None:
        """Return to the state of :meth:`snapshot` ``snap`` (between run() calls; every rank
        rewinds to the same snapshot step)."""
        self.net.restore(snap.name)
        self.spikes.truncate(snap.n_spikes)
        self._mon_pos, self._region_spike_pos = snap.mon_pos, snap.region_spike_pos
        self._region_rows = list(snap.region_rows)
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
            t, data = self._state_record(k)
            states.append((mine.copy(), t, data))
        return {"step": step, "neurons": neurons,
                "rate_override": np.array(sorted(self._rate_override.items()), dtype=float).reshape(-1, 2), "spike_gid": gids, "spike_step": steps,
                "region_rows": np.array(self._region_rows, dtype=np.int64).reshape(-1, 3, len(self.spec.regions)),
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

    def _state_record(self, k: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
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
        mine, idx = self._locate(np.asarray(neurons["gid"], dtype=np.int64))
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
        own, own_idx = self._locate(spike_gid)
        o = np.lexsort((spike_gid[own], spike_step[own]))
        self.spikes = SpikeBuffer(max(4096, int(own.sum())))
        self.spikes.extend(own_idx[own][o].astype(np.int32), spike_step[own][o])
        self._mon_pos = len(self.spikes)
        last_sample = (step // self._region_every) * self._region_every
        self._region_spike_pos = int(np.searchsorted(spike_step[own][o], last_sample))
        rows = np.asarray(region_rows, dtype=np.int64)
        self._region_rows = [r for r in rows] if self.rank == 0 else [np.zeros_like(r) for r in rows]
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
        step e reaches a synapse of delay d at e + d; those with e + d >= k are put in the spike
        queue slot e + d - k. A remote source's proxy fires at e + D (rescheduled if still to
        come, else its spike is in the remote queue with delay d - D)."""
        recent = steps >= k - self.max_delay_steps() - self.D - 1
        gids, steps = gids[recent], steps[recent]
        local, local_idx = self._locate(gids)
        for syn in self.synapse_sets[True]:
            self._fill_queue(syn, local_idx[local], steps[local], k)
        if self.proxy is not None:
            pos = np.minimum(np.searchsorted(self.remote_gids, gids), len(self.remote_gids) - 1)
            remote = ~local & (self.remote_gids[pos] == gids)
            r_pos, r_step = pos[remote], steps[remote]
            pending = r_step + self.D >= k
            if pending.any():
                self._schedule_proxies(self.remote_gids[r_pos[pending]], r_step[pending] + self.D, k)
            for syn in self.synapse_sets[False]:
                self._fill_queue(syn, r_pos[~pending], r_step[~pending] + self.D, k)

    def max_delay_steps(self) -> int:
        """The longest delay (steps) of this rank's synapses, as stored in their queues."""
        m = 0
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

    # ------------------------------------------------------------- results
    def local_spikes(self) -> tuple[np.ndarray, np.ndarray]:
        """All spikes of this rank so far: (gids, steps)."""
        i, steps = self.spikes.since(0)
        return self.local_gids[i], steps

    def n_synapses_total(self) -> int:
        return int(self.comm.allreduce(self.stats.n_synapses_local + self.stats.n_synapses_remote))
