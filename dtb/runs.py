"""Running a network, as a library: what ``dtb run`` and ``dtb task`` do, callable from Python.

    from dtb.runs import RunOptions, simulate
    outcome = simulate(spec, options=RunOptions(out=Path("results/net")))
    outcome.results.mean_rates()

:func:`simulate` builds the rank's share of the network (after checking that it fits in
memory), gives it a fitted twin's conductances if asked, restores a checkpoint if asked,
checkpoints while it runs, couples it to a body over the rosbridge server when the spec has a
[bridge] section, runs it, gathers the results on rank 0 and, with ``out``, writes them
(run.h5, summary.json, figures, BOLD, and a task's GLM). Every rank calls it (MPI collective).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from dtb.errors import DtbError
from dtb.results import RunResults
from dtb.spec import NetworkSpec

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    out: Path | None = None                  # write the results here (rank 0); None: write nothing
    partition: str = "contiguous"            # see dtb.partition.make_partition
    hyperparameters: str | None = None       # a fitted twin (assimilation.h5) to give the network
    checkpoint_every: float | None = None    # s of biological time
    checkpoint_dir: Path | None = None       # default OUT/checkpoint
    resume: str | None = None                # a run folder or checkpoint folder to continue from
    progress: bool = False                   # a progress bar on rank 0
    plots: bool = True                       # PNG figures with the results
    events: list | None = None               # a task protocol's events (dtb task): GLM outputs
    bids_task: str = "rest"                  # the task label of the BIDS derivative (dtb.bids)
    meta: dict = field(default_factory=dict)  # written into checkpoints' manifests


@dataclass
class RunOutcome:
    status: int                              # 0, or dtb.engine.checkpoint.EXIT_CHECKPOINTED
    results: RunResults | None = None        # on rank 0
    n_synapses: int = 0
    build_s: float = 0.0
    wall_s: float = 0.0
    simulated_s: float = 0.0                 # biological time run here (after a resume: the rest)
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # a task's contrasts, one line each
    stopped_at: float | None = None          # biological time (s) of a stop by signal


def build_network(spec: NetworkSpec, comm=None, partition: str = "contiguous", hyperparameters: str | None = None):
    """The rank's share of ``spec`` as a Simulation with its recorders attached, after checking
    that every rank fits in memory; with ``hyperparameters``, the fitted twin's conductances."""
    from dtb.bold import attach_bold
    from dtb.engine import Simulation
    from dtb.engine.kernel import world_comm
    from dtb.memory import check_fits, ranks_on_this_node
    from dtb.partition import make_partition
    comm = comm if comm is not None else world_comm()
    size = comm.Get_size()
    part = make_partition(spec, size, partition)
    check_fits(spec, size, ranks_on_this_node(comm), part)
    sim = Simulation(spec, comm=comm, partition=part, per_neuron_scales=bool(hyperparameters))
    attach_bold(sim)
    if hyperparameters:
        from assimilation.ensemble import apply_fitted
        receptors = apply_fitted(sim, spec, hyperparameters)
        log.info("fitted twin: %s scales per region from %s", "/".join(receptors), hyperparameters)
    return sim


def simulate(spec: NetworkSpec, comm=None, options: RunOptions | None = None) -> RunOutcome:
    """Build and run ``spec`` for its simulation.duration (see the module docstring)."""
    from dtb.engine import checkpoint as ckpt
    from dtb.engine.kernel import world_comm
    o = options or RunOptions()
    comm = comm if comm is not None else world_comm()
    log.info("building %s: %d neurons on %d rank(s)", spec.source, spec.n_neurons, comm.Get_size())
    t0 = time.perf_counter()
    sim = build_network(spec, comm, o.partition, o.hyperparameters)
    comm.Barrier()
    outcome = RunOutcome(status=0, build_s=time.perf_counter() - t0, n_synapses=sim.n_synapses_total())
    log.info("built %d synapses in %.1f s%s", outcome.n_synapses, outcome.build_s,
             f"; spikes cross ranks every {sim.P * sim.dt * 1e3:g} ms" if comm.Get_size() > 1 else "")
    start_step = _resume(sim, spec, comm, o.resume) if o.resume else 0
    folder = o.checkpoint_dir or (o.out / "checkpoint" if o.out is not None else Path("checkpoint"))
    checkpointer = ckpt.Checkpointer(sim, folder, o.checkpoint_every, o.meta)
    if o.out is not None or o.checkpoint_every:      # a run with files: SIGUSR1/SIGTERM checkpoint and stop
        ckpt.install_signal_handlers(sim)
    coupling, server = _couple_body(sim, spec)
    t1 = time.perf_counter()
    try:
        sim.run(spec.simulation.duration - sim.t, progress=o.progress)
        comm.Barrier()
        outcome.wall_s = time.perf_counter() - t1
        if coupling is not None:
            coupling.finish()
    finally:
        if server is not None:
            server.stop()
    if checkpointer.stopped:
        outcome.status, outcome.stopped_at = ckpt.EXIT_CHECKPOINTED, sim.t
        return outcome
    outcome.simulated_s = max(spec.simulation.duration - start_step * sim.dt, 1e-12)
    outcome.results = _gather(sim, spec, outcome, start_step, checkpointer, coupling)
    if outcome.results is not None and o.out is not None:
        outcome.written, outcome.notes = write_outputs(outcome.results, spec, Path(o.out), o.plots, o.events,
                                                       o.bids_task)
    return outcome


def _resume(sim, spec: NetworkSpec, comm, path: str) -> int:
    """Restore the checkpoint under ``path``; the step it starts from."""
    from dtb.engine import checkpoint as ckpt
    info = load_checkpoint(path, spec, comm)
    ckpt.restore(sim, info)
    log.info("resumed from %s: t = %g s (written on %d rank(s), now %d)", info.folder, sim.t,
             info.manifest["n_ranks"], comm.Get_size())
    if spec.bridge is not None and comm.Get_rank() == 0:
        log.warning("[bridge]: the body is another program and not in the checkpoint; it continues from its own "
                    "state, so this resumed closed loop differs from an uninterrupted one")
    return sim.current_step()


def load_checkpoint(path, spec: NetworkSpec | None, comm):
    """Find, verify (checksums, on rank 0) and match the checkpoint to ``spec`` (None: the caller
    matches it once it has built its network); the same answer on every rank."""
    from dtb.engine.checkpoint import check_compatible, find_checkpoint, verify
    problem = None
    if comm.Get_rank() == 0:
        try:
            info = find_checkpoint(path)
            verify(info)
            if spec is not None:
                check_compatible(info, spec)
        except DtbError as e:
            problem = str(e)
    problem = comm.bcast(problem, root=0)
    if problem:
        raise DtbError(problem)
    return find_checkpoint(path)


def _couple_body(sim, spec: NetworkSpec):
    """With [bridge]: the rosbridge server on rank 0 and the body coupling, once a body is
    connected. (coupling, server), each None when not used."""
    if spec.bridge is None:
        return None, None
    from bridges.coupling import BodyCoupling
    server = None
    if sim.rank == 0:
        from bridges.auth import read_secret
        from bridges.rosbridge import RosbridgeServer
        b = spec.bridge
        secret = read_secret(b.auth_secret) if b.auth_secret else None
        try:
            server = RosbridgeServer(b.host, b.port, auth_secret=secret, allowed_origins=b.allow_origin).start_in_thread()
        except OSError as e:
            raise DtbError(f"[bridge]: cannot listen on {b.host}:{b.port}: {e}") from None
        log.info("rosbridge server on ws://%s:%d: motor output on %s, sensory input from %s (%s)",
                 b.host, server.port, b.motor_topic, b.sensory_topic, b.mode)
    coupling = BodyCoupling(sim, spec.bridge, server)
    try:
        waited = coupling.wait_for_body()
    except DtbError:
        if server is not None:
            server.stop()
        raise
    log.info("body connected after %.1f s", waited)
    return coupling, server


def _gather(sim, spec: NetworkSpec, outcome: RunOutcome, start_step: int, checkpointer, coupling):
    """The results on rank 0 (None elsewhere), with the run's summary."""
    from dtb.results import gather_results
    bridge = ({"bridge_sent": coupling.sent, "bridge_received": coupling.received,
               "bridge_wait_s": coupling.wait_seconds} if coupling is not None else {})
    res = gather_results(sim, {"wall_s": outcome.wall_s, "build_s": outcome.build_s,
                               "realtime_factor": outcome.wall_s / outcome.simulated_s,
                               "exchange_s_rank0": sim.exchange_seconds,
                               **{f"{k}_rank0": v for k, v in sim.profile().items()},
                               "exchange_bytes_rank0": sim.exchange_bytes,
                               "exchange_rounds": sim.exchange_rounds, "resumed_from_step": start_step,
                               "checkpoints_written": len(checkpointer.written),
                               "checkpoint_s_rank0": checkpointer.seconds, **bridge,
                               **({"condition": spec.condition} if spec.condition else {})})
    if res is not None and coupling is not None:
        res.bridge_error = coupling.error_log
    return res


def write_outputs(res: RunResults, spec: NetworkSpec, out: Path, plots: bool = True, events: list | None = None,
                  bids_task: str = "rest") -> tuple[list[Path], list[str]]:
    """run.h5, summary.json, raster.png and regions.png, the BOLD outputs and, with a task's
    ``events``, its GLM outputs; the files written and the task's contrast lines."""
    from dtb import plots as figures
    from dtb.bold import write_bold_outputs
    from dtb.files import array_bytes, check_room
    from dtb.results import write_json, write_results
    try:
        out.mkdir(parents=True, exist_ok=True)
        check_room(out, 1.2 * array_bytes(res) + 2**20, "the results (run.h5)")
        log.info("writing %s (%d spikes)%s", out / "run.h5", len(res.spike_gids),
                 ", the figures" if plots else "")
        path = write_results(res, out / "run.h5")
    except OSError as e:
        raise DtbError(f"cannot write results to {out}: {e.strerror or e}") from None
    summary = dict(res.summary, mean_rate_hz=res.mean_rates(), duration_s=spec.simulation.duration,
                   seed=spec.simulation.seed, output=str(path))
    written = [path, write_json(summary, out / "summary.json")]
    if plots:
        written += [figures.raster_and_rates(res, out / "raster.png"), figures.region_activity(res, out / "regions.png")]
    if res.bold is not None:
        log.info("BOLD outputs: %d TRs x %d regions%s", len(res.bold), len(spec.regions),
                 " painted into the atlas (bold.nii.gz)" if spec.bold.atlas else "")
        written += write_bold_outputs(res.bold, spec.regions, spec.bold, out, plots, figures.stimulus_periods(spec))
    notes: list[str] = []
    if events is not None:
        from dtb.task_outputs import write_task_outputs
        files, notes = write_task_outputs(spec, res, events, out, plots=plots)
        written += files
    if (out / "bold.nii.gz") in written:
        from dtb.bids import write_derivative
        log.info("BIDS derivative in %s", out / "bids")
        written += write_derivative(out, spec, out / "bold.nii.gz", bids_task, out / "events.tsv" if events else None)
    return written, notes
