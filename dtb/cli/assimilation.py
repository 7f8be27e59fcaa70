"""``dtb assimilate`` and ``dtb validate``: fit the twin to measured BOLD and score it held out
(the science is in the assimilation package)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from dtb.cli.common import (add_out, add_output_switches, add_ranks, add_seed, check_ranks, check_writable,
                                launch_ranks, log, setup_logging, time_arg)
from dtb.errors import DtbError


def add_parsers(sub) -> None:
    from assimilation.settings import CONFOUND_STRATEGIES
    assim = sub.add_parser("assimilate", help="fit the twin to measured BOLD (ensemble Kalman filter)",
                           description="Fit CONFIG's region hyperparameters (its [assimilation] section) to measured "
                                       "BOLD with an ensemble Kalman filter over the first --train-fraction of the "
                                       "data (the training part), then run the filter on through the rest (the "
                                       "held-out part) and score its forecasts there at every horizon of "
                                       "assimilation.forecast_horizons, hyperparameters still updating and frozen, "
                                       "beside persistence, AR(2), AR(p), MVAR(1) and the Kalman reference fitted on "
                                       "the training part; writes OUT/assimilation.h5 (layout: assimilation.pipeline) "
                                       "and PNGs (hyperparameters.png, bold_fit.png, forecast_skill.png).")
    assim.add_argument("config", help="network config (TOML) with [bold] and [assimilation]")
    assim.add_argument("--bold", required=True, help="measured BOLD: regions x time (.h5, .npy, .mat, .csv/.tsv) or "
                       "a 4D NIfTI in the config's atlas space")
    assim.add_argument("--key", default=None, help="variable or dataset name inside a .mat / .h5 file")
    assim.add_argument("--confounds", choices=CONFOUND_STRATEGIES, default=None,
                       help="a NIfTI from fMRIPrep: which confounds of its confounds TSV to regress out (default: the "
                            "config's assimilation.confounds, auto: the simple set when the TSV is there)")
    assim.add_argument("--tr", type=time_arg, default=None, help="the data's TR (default: the config's [bold] tr; "
                       "they must agree)")
    assim.add_argument("--train-fraction", type=float, default=0.5, help="leading fraction of the data to fit "
                       "(default 0.5; the rest is held out: forecast here, run freely by dtb validate)")
    assim.add_argument("--allow-zero-phase", action="store_true", help="score forecasts even though "
                       "assimilation.band_pass_causal = false put later data into every sample (labelled "
                       "'zero-phase: not a forecast')")
    add_ranks(assim)
    add_out(assim, "default results/<config>_assimilation")
    add_seed(assim)
    add_output_switches(assim)
    assim.add_argument("--checkpoint-every", type=time_arg, default=None, metavar="T",
                       help="checkpoint network and filter every T of biological time (e.g. '10 s'); SIGUSR1/SIGTERM "
                            "always checkpoint and stop (exit status 75)")
    assim.add_argument("--resume", default=None, metavar="DIR", help="continue from the checkpoint in DIR (the "
                       "output folder), with the same config, data and options, on any number of ranks")
    assim.set_defaults(func=cmd_assimilate)
    val = sub.add_parser("validate", help="run a fitted twin freely on held-out BOLD",
                         description="Run the twin fitted by dtb assimilate (every member at its fitted "
                                     "hyperparameters, /hp/fitted: its mean over the last half of the training TRs; "
                                     "no updates) freely for the held-out part of the data and report its functional "
                                     "connectivity correlation (upper triangle, Pearson) with the data beside the "
                                     "baselines' fitted on the training part: the structural connectome, the linear "
                                     "network and neurolib's Hopf model (when installed); print the held-out forecast "
                                     "comparison of dtb assimilate; add /validation to RUN (layout: "
                                     "assimilation.validation) and write forecast_skill.png and fc.png beside it.")
    val.add_argument("run", help="assimilation.h5 written by dtb assimilate")
    val.add_argument("--bold", required=True, help="the same BOLD file given to dtb assimilate")
    val.add_argument("--key", default=None)
    val.add_argument("--tr", type=time_arg, default=None)
    add_ranks(val)
    val.add_argument("--baseline-runs", type=int, default=None, help="runs of the linear network and the Hopf "
                     "model (default: one per member, like for like)")
    val.add_argument("--no-hopf", action="store_true", help="leave out the Hopf model (minutes per subject)")
    val.add_argument("--connectome", default=None, metavar="FILE", help="structural connectome of the FC baselines "
                     "(a TVB zip, CSV, .npy or .mat, regions in the config's order; default: the network's own, "
                     "expected synapses between regions)")
    val.add_argument("--lengths", default=None, metavar="FILE", help="its tract lengths (mm) when not in FILE")
    val.add_argument("--others", nargs="+", default=None, metavar="BOLD", help="other subjects' BOLD (same regions, "
                     "TR and --key): subject specificity of the twin's FC and the baselines' among this subject's and "
                     "their held-out parts (each preprocessed on its own; no training row enters it)")
    val.add_argument("--allow-zero-phase", action="store_true", help="as for dtb assimilate")
    add_output_switches(val, progress=False)
    val.set_defaults(func=cmd_validate)


def cmd_assimilate(args) -> int:
    from assimilation import pipeline
    from assimilation.structure import broadband
    from dtb.engine.kernel import world_comm
    from dtb.runs import load_checkpoint
    from dtb.spec import load_spec

    check_ranks(args)

    def prepare():
        spec = load_spec(args.config, overrides={"seed": args.seed})
        if args.confounds and spec.assimilation is not None:
            spec = dataclasses.replace(spec, assimilation=dataclasses.replace(spec.assimilation,
                                                                              confounds=args.confounds))
        pipeline.check_inputs(spec, args.tr, args.allow_zero_phase)
        if not 0 < args.train_fraction <= 1:
            raise DtbError(f"--train-fraction must be in (0, 1], got {args.train_fraction:g}")
        raw, n_train = pipeline.load_raw(spec, args.bold, args.key, args.train_fraction)
        return spec, pipeline.preprocessed(raw, spec, n_train), n_train, broadband(raw, spec, n_train)
    launched = launch_ranks(args, prepare)
    if launched is not None:
        return launched
    comm = world_comm()
    rank = comm.Get_rank()
    setup_logging(rank, args.quiet)
    spec, observed, n_train, wide = prepare()
    out = Path(args.out) if args.out else Path("results") / f"{Path(args.config).stem}_assimilation"
    problem = comm.bcast(check_writable(out) if rank == 0 else None, root=0)
    if problem:
        raise DtbError(problem)
    # matched to the network in the pipeline, once the structure saved with it has rebuilt it
    resume = load_checkpoint(args.resume, None, comm) if args.resume else None
    meta = {"config_path": str(Path(args.config).resolve()), "seed": spec.simulation.seed, "out": str(out.resolve()),
            "command": "assimilate", "bold": str(Path(args.bold).resolve()), "duration_s": None}
    path = pipeline.assimilate(spec, observed, n_train, out, comm, progress=not args.no_progress
                               and sys.stderr.isatty(), bold_path=str(Path(args.bold).resolve()),
                               config_path=str(Path(args.config).resolve()), checkpoint_every=args.checkpoint_every,
                               resume=resume, meta=meta, broadband=wide)
    if isinstance(path, int):
        if rank == 0:
            log.warning("stopped after a signal; checkpoint in %s; continue with the same command and --resume %s",
                        out / "checkpoint", out)
        return path
    if rank != 0:
        return 0
    _print_assimilation(path, spec, out, args.no_plots)
    return 0


def _print_assimilation(path: Path, spec, out: Path, no_plots: bool) -> None:
    import h5py
    from assimilation.plots import plots
    from assimilation.validation import report
    with h5py.File(path) as h:
        m = dict(h["metrics"].attrs)
        wall_tr, n_train, n_total = h.attrs["wall_per_tr_s"], h.attrs["n_train"], h.attrs["n_total"]
    written = [] if no_plots else plots(path, out)
    print(f"dtb assimilate: fitted {n_train} of {n_total} TRs of {len(spec.regions)} regions, "
          f"{spec.assimilation.members} members x {spec.n_neurons} neurons, {wall_tr:.2f} s per TR")
    print(f"  training part (in-sample, not a forecast score): filter forecast r {m['r_forecast']:.3f}, "
          f"persistence {m['r_persistence']:.3f}; analysis r {m['r_analysis']:.3f} (pulled toward the data)")
    text = report(path)
    if text:
        print("\n".join("  " + line for line in text.splitlines()))
    else:
        print("  no held-out part (--train-fraction 1): nothing forecast")
    print(f"  results: {path}" + "".join(f", {p}" for p in written))


def cmd_validate(args) -> int:
    import h5py
    from assimilation import pipeline
    from assimilation.validation import heldout_alone, validate
    from dtb.engine.kernel import world_comm
    from dtb.spec import spec_from_dict

    run = Path(args.run)

    def prepare():
        try:
            with h5py.File(run, "r") as h:
                text = h.attrs["config"]
                config_path = h.attrs["config_path"]
                seed = int(h.attrs["seed"])
                fraction = float(h.attrs["n_train"]) / float(h.attrs["n_total"])
                confounds = json.loads(h.attrs["settings"]).get("confounds", "auto")
        except FileNotFoundError:
            raise DtbError(f"{run}: file not found") from None
        except (OSError, KeyError) as e:
            raise DtbError(f"{run}: not an assimilation file written by dtb assimilate ({e})") from None
        import tomllib
        spec = spec_from_dict(tomllib.loads(text), source=str(config_path), text=text, overrides={"seed": seed})
        spec = dataclasses.replace(spec, assimilation=dataclasses.replace(spec.assimilation, confounds=confounds))
        pipeline.check_inputs(spec, args.tr, args.allow_zero_phase)
        raw, n_train = pipeline.load_raw(spec, args.bold, args.key, fraction)
        ident = None
        if args.others:
            ident = [heldout_alone(raw, n_train, spec)]
            for other in args.others:
                raw_o, n_o = pipeline.load_raw(spec, other, args.key, fraction)
                ident.append(heldout_alone(raw_o, n_o, spec))
        return spec, pipeline.preprocessed(raw, spec, n_train), _baseline_connectome(args, spec), ident
    if args.baseline_runs is not None and args.baseline_runs < 1:
        raise DtbError(f"--baseline-runs must be at least 1, got {args.baseline_runs}")
    launched = launch_ranks(args, prepare)
    if launched is not None:
        return launched
    comm = world_comm()
    setup_logging(comm.Get_rank(), args.quiet)
    spec, observed, connectome, ident = prepare()
    res = validate(run, observed, spec, comm, args.baseline_runs, hopf=not args.no_hopf, connectome=connectome,
                   identification=ident)
    if res is None:
        return 0
    from assimilation.plots import fc_figure, forecast_skill
    from assimilation.validation import report
    print(f"dtb validate: fitted twin run freely for {res['n_test']} held-out TRs ({res['wall_s']:.1f} s)")
    print("\n".join("  " + line for line in report(run).splitlines()))
    written = []
    if not args.no_plots:
        with h5py.File(run) as h:
            has_heldout = "heldout" in h
        written = ([forecast_skill(run, run.parent / "forecast_skill.png")] if has_heldout else []) + \
            [fc_figure(run, run.parent / "fc.png")]
    print(f"  results: {run}:/validation" + "".join(f", {p}" for p in written))
    return 0


def _baseline_connectome(args, spec):
    """(weights, lengths or None) from --connectome / --lengths, checked against the config's regions."""
    if args.connectome is None:
        if args.lengths is not None:
            raise DtbError("--lengths needs --connectome")
        return None
    from atlas.io import read_connectome
    c = read_connectome(args.connectome, lengths=args.lengths)
    if len(c.weights) != len(spec.regions):
        raise DtbError(f"{args.connectome}: {len(c.weights)} regions, but the config has {len(spec.regions)}")
    import numpy as np
    lengths = c.lengths if np.any(c.lengths > 0) else None
    return np.asarray(c.weights, dtype=float), lengths
