"""The simulation kernel: one rank's share of the network, split like NEST's managers: building
(:mod:`.build`), the compiled neuron pass (:mod:`.neuron_kernel`) and spike delivery
(:mod:`.delivery`), stimuli (:mod:`.stimuli`), recording (:mod:`.recording`), spike exchange
(:mod:`.exchange`), the scheduler (:mod:`.scheduler`) and state capture, restore and rewind
(:mod:`.state`); :class:`Simulation` joins them. Brian2's ``Network`` holds the state variables,
runs the clock and hosts plastic synapses, monitors and the CPG.

Build (each rank, for the gids it owns, never the whole network):
  * one ``NeuronGroup`` holding the rank's neurons (the sorted gids its partition gives it),
    advanced by one compiled pass per step (update, Poisson background, threshold, reset);
  * the static synapses onto them in two delivery tables, local sources and remote ones;
    plastic synapses as Brian2 ``Synapses`` (remote sources: a silent proxy group);
  * counter-based background noise and integer synaptic accumulators (see :mod:`dtb.models.lif`).

Run: ``Simulation.run(duration)`` can be called repeatedly (no rebuild). Spikes cross ranks with
a lag of ``D`` steps, the minimum delay of the projections that cross ranks: a received spike of
a remote source that fired at step e is queued for step e + delay (proxies of plastic synapses
fire at e + D and those synapses store delay - D), exactly when it would arrive had the source
been local. By default ranks exchange every D steps (an allgather of the spikes of the last D
steps). With ``simulation.exchange = "overlap"`` they exchange every P = D/2 steps with a
non-blocking allgather: the spikes of [k-P, k) are posted at step k and collected at step k + P,
still in time (the first is due at k - P + D >= k + P), which hides network latency and load
fluctuations at the price of twice as many exchanges. tests/test_exchange.py pins the timing.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Callable

import numpy as np

from dtb import connect
from dtb.engine.brian_setup import configure_brian
from dtb.engine.common import BuildStats, SpikeBuffer, current_rss, peak_rss, world_comm
from dtb.engine.build import NetworkBuilder
from dtb.engine.exchange import SpikeExchange
from dtb.engine.recording import Recorder
from dtb.engine.scheduler import Scheduler
from dtb.engine.state import Snapshot, StateManager
from dtb.engine.stimuli import StimulusControl
from dtb.errors import DtbError
from dtb.partition import Partition, partition_contiguous
from dtb.spec import NetworkSpec

log = logging.getLogger(__name__)

__all__ = ["Simulation", "Snapshot", "SpikeBuffer", "current_rss", "peak_rss", "world_comm"]


class Simulation(NetworkBuilder, StimulusControl, Recorder, SpikeExchange, Scheduler, StateManager):
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
    keep_spikes : keep every spike for the run's outputs (default); False: only those still in
        flight (the longest delay back) and those a snapshot may rewind to, so memory does not
        grow with the run (the data assimilation: 45,000 neurons at 20 Hz would keep 11 MB per
        biological second, 2.4 GB over 300 TRs of 0.72 s); checkpoints then hold those only.
        Readers of the spike record besides the kernel's own (CPGs, the body coupling) need True
    """

    def __init__(self, spec: NetworkSpec, comm=None, partition: Partition | None = None,
                 per_neuron_scales: bool = False, keep_region_rows: bool = True,
                 keep_spikes: bool = True):
        configure_brian()
        t0 = time.perf_counter()
        self.spec = spec
        self.per_neuron_scales = per_neuron_scales
        self.keep_region_rows = keep_region_rows
        self.keep_spikes = keep_spikes
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
        self.first_step_seconds = 0.0     # the first step: compiling or loading the model's code
        self._profiled_from = 0           # the step the profile counts from
        self.neuron_seconds = 0.0         # in the compiled neuron pass (profile)
        self.delivery_seconds = 0.0       # queueing and delivering static synapses' events
        self.exchanged_spikes = 0
        self.exchange_bytes = 0           # sent by this rank
        self.exchange_rounds = 0
        self.region_rows: list[np.ndarray] = []
        self._region_spike_pos = 0
        # spikes per population of this rank, counted with the regional samples (diagnostics:
        # neither rewound nor checkpointed)
        self.population_spikes = np.zeros(len(spec.populations), dtype=np.int64)
        self._stop_requested = False      # set by a signal handler on this rank
        self.stop_agreed = False          # every rank knows of a stop request (same step everywhere)
        self._state_prefix: list = []     # recordings before a resumed checkpoint, per state monitor
        self._rate_override: dict[int, float] = {}   # Poisson stimulus index -> rate set at run time
        self._task_error: Exception | None = None     # raised by a scheduled task: run() re-raises it
        self._build()
        self.stats.build_seconds = time.perf_counter() - t0
        # Brian2 runs a full garbage collection at the start of every Network.run (to warn of
        # objects left out of a network): 0.1 s per call in a process holding many objects, which
        # is 10 % of a 1-second run on 2 ranks and a cost per TR in the data assimilation. What
        # exists now stays for the process's life anyway; frozen, the collector skips it.
        gc.freeze()

    def population_slices(self, name: str) -> slice | None:
        p = self.spec.population(name)
        lo, hi = np.searchsorted(self.local_gids, [p.first_gid, p.first_gid + p.size])
        return slice(int(lo), int(hi)) if hi > lo else None

    def locate(self, gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owned here?, local index) of each gid; the index is meaningless where not owned."""
        idx = np.searchsorted(self.local_gids, gids)
        np.minimum(idx, self.n_local - 1, out=idx)
        return self.local_gids[idx] == gids, idx

    # ------------------------------------------------------------ exchange
    def current_step(self) -> int:
        """The time step being simulated (or reached, between runs)."""
        return int(self._timestep[0])

    @property
    def t(self) -> float:
        """Biological time reached (s)."""
        return self.current_step() * self.dt

    def profile(self) -> dict:
        """Where this rank's run time went so far: seconds in the compiled neuron pass, in the
        static synapses' delivery and in the spike exchange, with the work done (neuron-steps,
        synaptic events), and the costs per unit (ns per neuron-step, ns per event)."""
        steps = (self.current_step() - self._profiled_from) * self.n_local
        events = sum(d.events for d in self.delivery.values())
        return {"first_step_s": self.first_step_seconds, "neuron_s": self.neuron_seconds, "delivery_s": self.delivery_seconds,
                "exchange_s": self.exchange_seconds, "neuron_steps": steps, "events": events,
                "ns_per_neuron_step": 1e9 * self.neuron_seconds / max(steps, 1),
                "ns_per_event": 1e9 * self.delivery_seconds / max(events, 1)}

    def n_synapses_total(self) -> int:
        return int(self.comm.allreduce(self.stats.n_synapses_local + self.stats.n_synapses_remote))
