"""``dtb run``, ``dtb task``, ``dtb check`` and ``dtb bold``: simulate a network (the running
itself is the library dtb.runs), validate a config, compute BOLD from a recorded run."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from dtb.cli.common import (speed_text, add_duration, add_output_switches, add_ranks, add_seed, check_ranks, check_writable,
                                launch_ranks, log, setup_logging, time_arg)
from dtb.errors import DtbError


def add_parsers(sub) -> None:
    run = sub.add_parser("run", help="simulate a network config (on N MPI ranks)",
                         description="Simulate the network described by CONFIG (TOML). With --ranks N, dtb starts "
                                     "mpiexec itself; under an outer mpirun/mpiexec/srun it uses the ranks it was "
                                     "given. Writes OUT/run.h5 (layout: dtb.results), raster.png, regions.png and "
                                     "summary.json.")
    run.add_argument("config", nargs="?", default=None, help="network config (TOML); may be left out with --resume")
    _run_options(run)
    task = sub.add_parser("task", help="run a stimulus protocol and fit the first-level GLM",
                          description="Run CONFIG with the stimulus protocol of its [task] section driven by a "
                                      "BIDS events file, record BOLD at the scanner TR, paint it into the atlas "
                                      "(bold.nii.gz), fit nilearn's FirstLevelModel with the same events and write "
                                      "a z-map per trial type (zmap_<type>.nii.gz and .png), region_z.tsv, "
                                      "events.tsv and task_timecourses.png beside run.h5, and a BIDS derivative "
                                      "folder OUT/bids (layout: dtb.bids).")
    task.add_argument("config", help="network config (TOML) with [task] and [bold]")
    task.add_argument("--events", default=None, help="BIDS events.tsv (default: [task] events)")
    task.add_argument("--strict-events", action="store_true", help="refuse events of trial types the config does "
                      "not model (default: leave them out with one warning)")
    _run_options(task)
    _bold_parser(sub)
    export = sub.add_parser("export", help="export a run to another format (NWB)",
                            description="Export RUN (run.h5) to NWB 2 with pynwb: every neuron a unit with its spike "
                                        "times, population rates, regional activity and BOLD as time series, the "
                                        "config and seed in the file's metadata (layout: dtb.nwb).")
    export.add_argument("run", help="run file (run.h5) written by dtb run")
    export.add_argument("--nwb", action="store_true", required=True, help="write NWB (the one format so far)")
    export.add_argument("--out", "-o", default=None, help="output file (default: RUN with the suffix .nwb)")
    export.set_defaults(func=cmd_export)
    check = sub.add_parser("check", help="validate a config and print what it builds",
                           description="Load and validate CONFIG; print populations, expected synapses and each "
                                       "rank's load and memory over --ranks ranks, without simulating; a network "
                                       "that would not fit in this machine's memory is an error.")
    check.add_argument("config")
    add_ranks(check, default=1, help_text="ranks to plan for (default 1)")
    check.set_defaults(func=cmd_check)


def _run_options(p) -> None:
    """Options of the commands that simulate (run, task)."""
    add_ranks(p)
    p.add_argument("--out", "-o", default=None, help="output folder (default: results/<config name>)")
    add_duration(p)
    add_seed(p)
    p.add_argument("--partition", choices=("contiguous", "regions", "round-robin"), default="contiguous",
                   help="which rank owns which neurons: equal-cost gid ranges (default), regions kept together "
                        "by METIS on the region graph, or round-robin; results do not depend on it")
    p.add_argument("--checkpoint-every", type=time_arg, default=None, metavar="T",
                   help="write a checkpoint every T of biological time, e.g. '1 s' (default: only on SIGUSR1/SIGTERM, "
                        "which always checkpoint and stop with exit status 75)")
    p.add_argument("--checkpoint-dir", default=None, help="where checkpoints go (default: OUT/checkpoint)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue from the newest checkpoint in DIR (a run's output folder or a checkpoint folder), "
                        "on any number of ranks; CONFIG, seed and duration default to the checkpoint's")
    p.add_argument("--hyperparameters", default=None, metavar="FITTED.h5",
                   help="run the twin fitted by dtb assimilate: each neuron's conductance scales = its Gamma "
                        "multiplier x its region's posterior-mean hyperparameter")
    p.add_argument("--rest", type=time_arg, default=None, metavar="T",
                   help="dtb task: rest for T before the protocol (events shift by T; the run grows by T)")
    p.add_argument("--bridge-port", type=int, default=None, metavar="PORT",
                   help="listen on PORT instead of the config's [bridge] port (0: any free port)")
    p.add_argument("--condition", default=None, metavar="NAME",
                   help="apply the config's [conditions.NAME] (e.g. a lesion or dopamine depletion)")
    add_output_switches(p)
    p.set_defaults(func=cmd_run)


def _bold_parser(sub) -> None:
    bold = sub.add_parser("bold", help="compute BOLD from a recorded run",
                          description="Compute the BOLD signal of every region from the regional activity "
                                      "recorded in RUN (run.h5) with the balloon-Windkessel model; writes "
                                      "OUT/bold.h5 (the /bold group of dtb.results, with the regions), bold.png and, "
                                      "with --atlas and --labels, a 4D NIfTI; RUN is left as it is unless "
                                      "--into-run.")
    bold.add_argument("run", help="run file (run.h5) written by dtb run")
    bold.add_argument("--tr", type=time_arg, default=None, help="scanner TR, e.g. '2 s' (default: the run's "
                      "[bold] tr, else 2 s)")
    bold.add_argument("--preset", default=None, help="balloon parameters: stephan2007, friston2000 or dtb "
                      "(default: the run's [bold] preset, else dtb)")
    bold.add_argument("--drive", choices=("rate", "synaptic"), default=None, help="neural drive (default: rate)")
    bold.add_argument("--start", choices=("steady", "rest"), default=None, help="haemodynamic start: the steady "
                      "state of the first TR's drive (default) or rest")
    bold.add_argument("--atlas", default=None, help="label volume (NIfTI) to paint the signal into")
    bold.add_argument("--labels", default=None, help="table of region names and label values for --atlas")
    bold.add_argument("--out", "-o", default=None, help="folder for bold.h5, bold.png and bold.nii.gz (default: "
                      "beside RUN)")
    bold.add_argument("--into-run", action="store_true", help="write /bold into RUN instead of OUT/bold.h5")
    bold.set_defaults(func=cmd_bold)


def cmd_run(args) -> int:
    check_ranks(args)
    resolve_resume(args)
    launched = launch_ranks(args, lambda: load_run_spec(args))
    return launched if launched is not None else _run_here(args)


def resolve_resume(args) -> None:
    """With --resume: fill in CONFIG, seed, duration and output folder from the checkpoint."""
    if getattr(args, "resume", None) is None:
        if args.config is None:
            raise DtbError("give a CONFIG to run (or --resume DIR to continue a checkpointed run)")
        return
    from dtb.engine.checkpoint import find_checkpoint
    m = find_checkpoint(args.resume).manifest
    if args.config is None:
        args.config = m.get("config_path")
        if not args.config or not Path(args.config).exists():
            raise DtbError(f"{args.resume}: the checkpoint's config {args.config} is gone; give CONFIG")
    if args.seed is None:
        args.seed = m.get("seed")
    if args.duration is None:
        args.duration = m.get("duration_s")
    if args.out is None:
        args.out = m.get("out")
    if getattr(args, "hyperparameters", None) is None and m.get("hyperparameters"):
        args.hyperparameters = m["hyperparameters"]


def load_run_spec(args):
    """The spec a run command simulates (for ``dtb task``: with the protocol's stimuli added)."""
    from dtb.spec import apply_condition, load_spec
    spec = load_spec(args.config, overrides={"duration": args.duration, "seed": args.seed})
    if getattr(args, "condition", None):
        spec = apply_condition(spec, args.condition)
    if getattr(args, "rest", None) and getattr(args, "command", None) != "task":
        raise DtbError("--rest belongs to dtb task (rest, then the protocol)")
    port = getattr(args, "bridge_port", None)
    if port is not None:
        if spec.bridge is None:
            raise DtbError(f"--bridge-port: {args.config} has no [bridge] section")
        if not 0 <= port <= 65535:
            raise DtbError(f"--bridge-port must be 0..65535, got {port}")
        spec = dataclasses.replace(spec, bridge=dataclasses.replace(spec.bridge, port=port))
    if getattr(args, "command", None) == "task":
        spec = _with_task(spec, args)
    return spec


def _with_task(spec, args):
    """The spec with the protocol's stimuli (events from --events or [task] events, after --rest)."""
    from dtb.task import add_task_stimuli, read_events
    if spec.task is None:
        raise DtbError(f"{args.config}: dtb task needs a [task] section (trial types and their target regions)")
    if spec.bold is None or spec.bold.atlas is None:
        raise DtbError(f"{args.config}: dtb task needs a [bold] section and an atlas to paint BOLD into "
                       f"(an [atlas] config, or [bold] atlas and labels)")
    events_path = args.events or spec.task.events
    if events_path is None:
        raise DtbError("no events: give --events EVENTS.tsv or [task] events")
    events = read_events(events_path, {t.name: t for t in spec.task.trial_types}, spec.simulation.duration,
                         strict=getattr(args, "strict_events", False))
    args._events_path = events_path
    rest = args.rest or 0.0
    if rest < 0:
        raise DtbError(f"--rest must not be negative, got {rest:g} s")
    if rest:
        # rest then task: the protocol starts after T of rest, the GLM sees the rest as baseline
        events = [dataclasses.replace(e, onset=e.onset + rest) for e in events]
        spec = spec.with_simulation(duration=spec.simulation.duration + rest)
    args._events = events
    return add_task_stimuli(spec, events, spec.task)


def _run_here(args) -> int:
    from dtb.engine.kernel import world_comm
    comm = world_comm()
    rank, size = comm.Get_rank(), comm.Get_size()
    setup_logging(rank, args.quiet)
    if args.ranks is not None and args.ranks != size:
        raise DtbError(f"--ranks {args.ranks} asked, but the launcher started {size} rank(s)")
    spec = load_run_spec(args)
    out = Path(args.out) if args.out else Path("results") / Path(args.config).stem
    problem = comm.bcast(check_output_folders(spec, out, args) if rank == 0 else None, root=0)
    if problem:
        raise DtbError(problem)
    try:
        return _simulate(spec, out, comm, args)
    except DtbError:
        raise
    except BaseException:
        if size > 1:
            log.exception("rank %d failed; aborting all ranks", rank)
            sys.stderr.flush()
            comm.Abort(1)
        raise


def check_output_folders(spec, out: Path, args) -> str | None:
    """The output folder takes the results (writable, room for their estimated size) and the
    checkpoint folder, if checkpoints are asked for, is writable."""
    from dtb.results import estimated_results_bytes
    problem = check_writable(out, estimated_results_bytes(spec))
    if problem is None and getattr(args, "checkpoint_every", None):
        folder = Path(args.checkpoint_dir) if getattr(args, "checkpoint_dir", None) else out / "checkpoint"
        problem = check_writable(folder)
    return problem


def _simulate(spec, out: Path, comm, args) -> int:
    from dtb.bids import task_label
    from dtb.runs import RunOptions, simulate
    fitted = getattr(args, "hyperparameters", None)
    meta = {"config_path": str(Path(args.config).resolve()), "seed": spec.simulation.seed,
            "duration_s": spec.simulation.duration, "out": str(out.resolve()), "command": args.command,
            "hyperparameters": str(Path(fitted).resolve()) if fitted else None}
    options = RunOptions(out=out, partition=getattr(args, "partition", "contiguous"), hyperparameters=fitted,
                         checkpoint_every=args.checkpoint_every,
                         checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
                         resume=args.resume, progress=not args.no_progress and sys.stderr.isatty(),
                         plots=not args.no_plots, events=getattr(args, "_events", None), meta=meta,
                         bids_task=task_label(args._events_path, spec) if getattr(args, "_events_path", None) else "rest")
    outcome = simulate(spec, comm, options)
    if outcome.stopped_at is not None:
        if comm.Get_rank() == 0:
            log.warning("stopped at t = %g s after a signal; checkpoint in %s; continue with: dtb run --resume %s",
                        outcome.stopped_at, options.checkpoint_dir or out / "checkpoint", out)
        return outcome.status
    if comm.Get_rank() == 0:
        print_summary(spec, outcome, comm.Get_size(), args.command)
    return 0


def print_summary(spec, outcome, size: int, command: str = "run") -> None:
    import numpy as np
    res = outcome.results
    rates = res.mean_rates()
    for line in outcome.notes:
        print("  " + line)
    print(f"dtb {command}: {spec.n_neurons} neurons, {outcome.n_synapses} synapses, {len(res.spike_gids)} spikes in "
          f"{spec.simulation.duration:g} s biological time on {size} rank(s)")
    print(f"  wall time {outcome.wall_s:.2f} s (build {outcome.build_s:.2f} s); "
          f"{speed_text(outcome.wall_s / outcome.simulated_s)}; peak memory per rank "
          f"{' / '.join(f'{x:.0f}' for x in res.summary['peak_rss_mb_per_rank'])} MB")
    for name, r in list(rates.items())[:20]:
        print(f"  {name:<24} {r:7.2f} Hz")
    if len(rates) > 20:
        exc = [r for p, r in zip(spec.populations, rates.values()) if p.kind == "excitatory"]
        inh = [r for p, r in zip(spec.populations, rates.values()) if p.kind == "inhibitory"]
        print(f"  ... {len(rates) - 20} more populations (all in summary.json); mean over populations: "
              f"excitatory {np.mean(exc):.2f} Hz, inhibitory {np.mean(inh) if inh else 0:.2f} Hz")
    print(f"  results: {results_line(outcome.written)}")


def results_line(written) -> str:
    """Every file written, by folder: 'OUT/: run.h5, ..., region_z.tsv; OUT/bids/ (5 files)'."""
    from pathlib import Path
    written = [Path(p) for p in written]
    if not written:
        return "nothing written"
    top = written[0].parent
    folders: dict[Path, list[str]] = {}
    for p in written:
        sub = p.relative_to(top).parts[0] if top in p.parents else None
        key = top if p.parent == top else (top / sub if sub else p.parent)
        folders.setdefault(key, []).append(p.name)
    return "; ".join(f"{folder}/: {', '.join(names)}" if folder == top else f"{folder}/ ({len(names)} files)"
                     for folder, names in folders.items())


def cmd_check(args) -> int:
    from dtb.memory import check_fits
    from dtb.partition import expected_indegree, partition_contiguous
    from dtb.spec import load_spec
    spec = load_spec(args.config)
    check_ranks(args)
    k_in = expected_indegree(spec)
    print(f"{spec.source}: {spec.n_neurons} neurons in {len(spec.populations)} populations, "
          f"{len(spec.regions)} regions, dt {spec.simulation.dt * 1e3:g} ms, min delay {spec.min_delay * 1e3:g} ms")
    for p, k in zip(spec.populations, k_in):
        print(f"  {p.name:<20} {p.kind:<11} region {p.region:<12} {p.size:>8} neurons  ~{k:.0f} synapses in each")
    print(f"expected synapses: {sum(p.size * k for p, k in zip(spec.populations, k_in)):.0f}")
    for line in _section_lines(spec):
        print(line)
    loads = check_fits(spec, args.ranks, args.ranks, partition_contiguous(spec, args.ranks))
    for r, load in enumerate(loads):
        print(f"  rank {r}: {load.neurons} neurons, ~{load.synapses:.0f} synapses, ~{load.bytes / 2**20:.0f} MB at "
              f"the build's peak")
    return 0


def _section_lines(spec) -> list[str]:
    """One line per optional part of the network: CPG, bridge, plasticity, conditions."""
    lines = []
    if spec.cpg is not None:
        from dtb.models.matsuoka import MatsuokaParameters, natural_frequency
        c = spec.cpg
        f = natural_frequency(MatsuokaParameters(c.tau_r, c.tau_a, c.beta, c.w, c.drive))
        lines.append(f"CPG: {c.count} Matsuoka half-centers in {len(c.groups)} group(s) "
                     f"({', '.join(f'{g.name} phase {g.phase:g}' for g in c.groups)}), uncoupled frequency {f:.2f} Hz "
                     f"(Matsuoka's formula)" + (f"; tonic drive follows {c.drive_from} (x rate / "
                                                f"{c.drive_rate:g} Hz)" if c.drive_from else ""))
    if spec.bridge is not None:
        b = spec.bridge
        lines.append(f"bridge: {b.mode}, every {b.period * 1e3:g} ms, motor {', '.join(b.motor)} -> {b.motor_topic}; "
                     f"{b.sensory_topic} -> {', '.join(b.sensory)}")
        if b.error is not None:
            e = b.error
            lines.append(f"bridge.error: {len(e.cpg_groups)} joint angles after the sensory values -> olive "
                         f"{', '.join(e.flexor + e.extensor)} (baseline {e.baseline:g} Hz, gain {e.gain:g} Hz/rad, "
                         f"plan lag {e.lag * 1e3:g} ms)")
    plastic = [pr for pr in spec.projections if pr.plasticity is not None]
    if plastic:
        lines.append(f"plasticity: {len(plastic)} plastic projection(s) (PF->PC, climbing fibres from "
                     f"{', '.join(sorted({pr.plasticity.teacher for pr in plastic}))})")
    lines += [f"condition {name}: {cond.description or '(no description)'}" for name, cond in spec.conditions.items()]
    return lines


def cmd_bold(args) -> int:
    from dtb.bold import (add_bold_to_run, bold_from_activity, read_regional_activity, write_bold_file,
                          write_bold_outputs)
    setup_logging(0, False)
    path = Path(args.run)
    regions, rate, i_exc, interval, settings, seed = read_regional_activity(path)
    settings = _bold_settings(settings, args)
    signal, state = bold_from_activity(rate, i_exc, interval, settings, seed=seed)
    if len(signal) == 0:
        raise DtbError(f"{path}: the run ({len(rate) * interval:g} s) is shorter than one TR ({settings.tr:g} s)")
    out = Path(args.out) if args.out else path.parent
    out.mkdir(parents=True, exist_ok=True)
    written = write_bold_outputs(signal, regions, settings, out)
    if args.into_run:
        add_bold_to_run(path, signal, settings, state)
        written.insert(0, f"{path}:/bold")
    else:
        written.insert(0, write_bold_file(out / "bold.h5", signal, regions, settings, state, source=path))
    print(f"dtb bold: {signal.shape[1]} regions x {len(signal)} TRs (TR {settings.tr:g} s, preset {settings.preset}, "
          f"drive {settings.drive}) -> {', '.join(str(w) for w in written)}")
    return 0


def _bold_settings(settings, args):
    """The run's BOLD settings with the command line's changes."""
    from dtb.models.balloon import PRESETS
    if args.preset is not None and args.preset not in PRESETS:
        raise DtbError(f"--preset {args.preset!r} is not one of: {', '.join(PRESETS)}")
    settings = dataclasses.replace(settings, **{k: v for k, v in (("tr", args.tr), ("preset", args.preset),
                                                                  ("drive", args.drive), ("start", args.start))
                                                if v is not None})
    if (args.atlas is None) != (args.labels is None):
        raise DtbError("--atlas and --labels go together")
    if args.atlas:
        settings = dataclasses.replace(settings, atlas=args.atlas, labels=args.labels)
    return settings


def cmd_export(args) -> int:
    from dtb.nwb import export_nwb
    setup_logging(0, False)
    run = Path(args.run)
    out = Path(args.out) if args.out else run.with_suffix(".nwb")
    path = export_nwb(run, out)
    print(f"dtb export: {run} -> {path} (NWB 2)")
    return 0
