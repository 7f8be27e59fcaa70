"""``dtb bridge``, ``dtb body``, ``dtb closed-loop`` and ``dtb experiment``: the rosbridge
server, a simulated body, and brain + body together (the launcher is bridges.launcher)."""

from __future__ import annotations

from pathlib import Path

from dtb.cli.common import (speed_text, add_duration, add_out, add_output_switches, add_ranks, add_seed, check_writable,
                                setup_logging, time_arg)
from bridges.launcher import run_brain_and_body
from dtb.errors import DtbError


def add_parsers(sub) -> None:
    bridge = sub.add_parser("bridge", help="run the rosbridge v2 websocket server",
                            description="Run a rosbridge v2 server (JSON over websockets) that ROS tools such as "
                                        "roslibpy and roslibjs connect to: topics, services (and the rosapi "
                                        "services roslibpy uses), fragments, status messages on request (set_level). "
                                        "What a client can make the server hold is capped (bridges.protocol.Limits). "
                                        "Ctrl-C stops it.")
    bridge.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    bridge.add_argument("--port", type=int, default=9090, help="port (default 9090, rosbridge's)")
    _bridge_security_options(bridge)
    bridge.add_argument("--max-clients", type=int, default=64, help="clients at once (default 64)")
    bridge.add_argument("--verbose", "-v", action="store_true", help="also other libraries' INFO messages")
    bridge.set_defaults(func=cmd_bridge)

    body = sub.add_parser("body", help="run a simulated body (the rat, or a forelimb) as a rosbridge client",
                          description="Run a MuJoCo body as a rosbridge client: --body rodent (dm_control's rat, "
                                      "bridges/body.py; publishes paw contacts on /dtb/sensory and the torso pose) or "
                                      "--body forelimb (shoulder, elbow, wrist with six muscles, bridges/forelimb.py; "
                                      "publishes muscle stretch and joint angles on /dtb/sensory, with an optional "
                                      "perturbation). It subscribes to the motor-pool rates, steps its physics one "
                                      "control period per message (lockstep) or on the wall clock (realtime), and "
                                      "publishes joint states. It ends when the server goes away, after --duration, "
                                      "or on Ctrl-C, and writes its trajectory (HDF5, layout in bridges/body_node.py).")
    body.add_argument("--host", default="127.0.0.1", help="rosbridge server address (default 127.0.0.1)")
    body.add_argument("--port", type=int, default=9090, help="rosbridge server port (default 9090)")
    body.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep",
                      help="lockstep: one control period per motor message (default); realtime: wall clock")
    body.add_argument("--period", type=time_arg, default=0.01, help="control period (default 10 ms)")
    body.add_argument("--support", type=float, default=0.6,
                      help="body-weight support by the harness, fraction of body weight (default 0.6; 0: none)")
    body.add_argument("--duration", type=time_arg, default=float("inf"), help="stop after this much body time")
    body.add_argument("--connect-timeout", type=time_arg, default=60.0,
                      help="how long to wait for the server (default 60 s)")
    body.add_argument("--body", choices=("rodent", "forelimb"), default="rodent", help="which body (default rodent)")
    body.add_argument("--rate-full", type=float, default=50.0,
                      help="forelimb: motor rate (Hz) for full muscle activation (default 50)")
    body.add_argument("--perturb-joint", choices=("shoulder", "elbow", "wrist"), default="elbow",
                      help="forelimb: the perturbed joint (default elbow)")
    body.add_argument("--perturb-gain", type=float, default=1.0,
                      help="forelimb: force multiplier of the joint's muscles while perturbed (default 1: none)")
    body.add_argument("--perturb-load", type=float, default=0.0,
                      help="forelimb: torque against flexion while perturbed, N m (default 0)")
    body.add_argument("--perturb-from", type=time_arg, default=float("inf"),
                      help="forelimb: body time at which the perturbation starts (default never)")
    body.add_argument("--perturb-until", type=time_arg, default=float("inf"),
                      help="forelimb: body time at which it ends (default: the end)")
    body.add_argument("--out", "-o", default="body.h5", help="trajectory file (default body.h5)")
    body.add_argument("--auth-secret", default=None, metavar="FILE", help="authenticate to a server that requires it "
                      "(the rosauth secret on FILE's first line)")
    body.add_argument("--quiet", "-q", action="store_true")
    body.set_defaults(func=cmd_body)

    loop = sub.add_parser("closed-loop", help="brain, bridge and body together: the twin walks",
                          description="Run CONFIG (a network with [cpg] and [bridge], e.g. dtb/examples/motor_loop.toml) "
                                      "with the rodent body in its own process over the rosbridge bridge. Writes "
                                      "OUT/run.h5, OUT/body.h5, OUT/closed_loop.json (distance walked, stepping and "
                                      "CPG frequency, wall time per biological second) and OUT/closed_loop.png.")
    loop.add_argument("config", help="network config (TOML) with [cpg] and [bridge]")
    add_ranks(loop, help_text="MPI ranks of the brain (default 1)")
    add_out(loop, "default results/<config name>")
    add_duration(loop)
    add_seed(loop)
    loop.add_argument("--support", type=float, default=0.6, help="body-weight support, fraction (default 0.6)")
    loop.add_argument("--port", type=int, default=0, help="bridge port (default: any free port)")
    add_output_switches(loop, progress=False)
    loop.set_defaults(func=cmd_closed_loop)

    exp = sub.add_parser("experiment", help="closed-loop experiments (motor adaptation)",
                         description="Closed-loop experiments with a body in its own process over the bridge.")
    exp_sub = exp.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    ad = exp_sub.add_parser("adaptation", help="baseline, perturbation and washout trials with the forelimb",
                            description="Run CONFIG (e.g. dtb/examples/motor_learning.toml: M2 CPGs, M1, S1, basal "
                                        "ganglia, thalamus and a learning cerebellum) with the MuJoCo forelimb: "
                                        "a settling period ([bridge.error] start: the olive hears no error while the CPGs "
                                        "and the limb reach their rhythm), then --baseline trials, then "
                                        "--perturbation trials with the perturbation on "
                                        "(a gain change or load on one joint), then --washout trials without it, as "
                                        "one continuous run. Writes OUT/run.h5, OUT/body.h5, OUT/experiment.h5 (per "
                                        "trial: tracking error, signed amplitude error, rates per region, PF-PC "
                                        "weights; layout in bridges/adaptation.py), OUT/experiment.json and PNGs "
                                        "(learning curve, trajectories early and late, rasters per region, weights).")
    ad.add_argument("config", help="network config with [cpg], [bridge] and [bridge.error]")
    ad.add_argument("--trial", type=time_arg, default=2.0, help="trial length (default 2 s)")
    ad.add_argument("--baseline", type=int, default=4, help="baseline trials (default 4)")
    ad.add_argument("--perturbation", type=int, default=8, help="perturbed trials (default 8)")
    ad.add_argument("--washout", type=int, default=5, help="washout trials (default 5)")
    ad.add_argument("--perturb-joint", choices=("shoulder", "elbow", "wrist"), default="elbow",
                    help="perturbed joint (default elbow)")
    ad.add_argument("--perturb-gain", type=float, default=0.5,
                    help="force multiplier of that joint's muscles while perturbed (default 0.5)")
    ad.add_argument("--perturb-load", type=float, default=0.0, help="torque against flexion, N m (default 0)")
    ad.add_argument("--rate-full", type=float, default=50.0, help="motor rate for full activation (default 50 Hz)")
    ad.add_argument("--condition", default=None, metavar="NAME",
                    help="apply the config's [conditions.NAME]: plasticity_lesion, purkinje_lesion or "
                         "dopamine_depleted in the default config")
    add_ranks(ad, help_text="MPI ranks of the brain (default 1)")
    add_seed(ad)
    add_out(ad, "default results/<config>_adaptation[_condition]")
    ad.add_argument("--port", type=int, default=0, help="bridge port (default: any free port)")
    add_output_switches(ad, progress=False)
    ad.set_defaults(func=cmd_experiment)


def _bridge_security_options(p) -> None:
    """The options of a rosbridge server that decide who may use it and how much."""
    p.add_argument("--auth-secret", default=None, metavar="FILE", help="require the rosbridge auth op (rosauth's "
                   "MAC) from every client, with the secret on FILE's first line (at least 16 characters)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="URL", help="a web page origin allowed "
                   "to connect (e.g. http://localhost:8000; repeatable); by default browsers are refused, so a page "
                   "on any site cannot drive the bridge through your browser")
    p.add_argument("--max-message-size", type=int, default=10 * 2**20, metavar="BYTES",
                   help="largest message, whole or reassembled from fragments (default 10 MB, as rosbridge_suite)")
    p.add_argument("--allow-unknown-types", action="store_true", help="pass message types the bridge cannot check "
                   "(default: refused, as rosbridge_suite refuses types it cannot import)")


def bridge_server(args, host: str, port: int):
    """A RosbridgeServer from the security options."""
    import dataclasses
    from bridges.auth import read_secret
    from bridges.protocol import Limits
    from bridges.rosbridge import RosbridgeServer
    if not 0 <= port <= 65535:
        raise DtbError(f"--port must be 0..65535, got {port}")
    if args.max_message_size < 1024:
        raise DtbError(f"--max-message-size must be at least 1024 bytes, got {args.max_message_size}")
    clients = getattr(args, "max_clients", Limits.max_clients)
    if clients < 1:
        raise DtbError(f"--max-clients must be at least 1, got {clients}")
    limits = dataclasses.replace(Limits(), max_message_size=args.max_message_size, max_clients=clients)
    secret = read_secret(args.auth_secret) if args.auth_secret else None
    return RosbridgeServer(host, port, limits, secret, tuple(args.allow_origin), args.allow_unknown_types)


def cmd_bridge(args) -> int:
    from bridges.rosbridge import serve_forever
    setup_logging(0, False, args.verbose)
    server = bridge_server(args, args.host, args.port)
    try:
        serve_forever(server)
    except OSError as e:
        raise DtbError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0


def cmd_body(args) -> int:
    from bridges.body_node import BodySettings, run_body
    setup_logging(0, args.quiet)
    if not 0 < args.port <= 65535:
        raise DtbError(f"--port must be 1..65535, got {args.port}")
    if not 0 <= args.support <= 2:
        raise DtbError(f"--support is a fraction of body weight in [0, 2], got {args.support}")
    from bridges.auth import read_secret
    settings = BodySettings(host=args.host, port=args.port, period=args.period, mode=args.mode,
                            support=args.support, duration=args.duration, connect_timeout=args.connect_timeout,
                            auth_secret=read_secret(args.auth_secret) if args.auth_secret else None)
    body = None
    if args.body == "forelimb":
        from bridges.forelimb import ForelimbBody, Perturbation
        if args.perturb_gain < 0 or args.rate_full <= 0:
            raise DtbError(f"--perturb-gain must be >= 0 and --rate-full > 0, got {args.perturb_gain} and "
                           f"{args.rate_full}")
        body = ForelimbBody(rate_full=args.rate_full, perturbation=Perturbation(
            joint=args.perturb_joint, gain=args.perturb_gain, load=args.perturb_load,
            start=args.perturb_from, stop=args.perturb_until))
    stats = run_body(settings, Path(args.out), body=body)
    print(f"dtb body: {stats['steps']} control periods ({stats['body_time_s']:.2f} s), {stats['messages_in']} motor "
          f"messages in, {stats['messages_out']} out; trajectory: {args.out}")
    return 0


def cmd_closed_loop(args) -> int:
    """Start the body, then the brain (which hosts the bridge); wait for both; summarise."""
    from bridges import closed_loop
    from dtb.spec import load_spec
    setup_logging(0, args.quiet)
    spec = load_spec(args.config)
    if spec.bridge is None:
        raise DtbError(f"{args.config}: closed-loop needs a [bridge] section (motor and sensory populations)")
    if len(spec.bridge.motor) != 8 or len(spec.bridge.sensory) != 4:
        raise DtbError(f"{args.config}: bridge.motor must list 8 populations (flexor, extensor of LF, RF, LH, RH) and "
                       f"bridge.sensory 4 (paw contact of LF, RF, LH, RH) for the rodent body; got "
                       f"{len(spec.bridge.motor)} and {len(spec.bridge.sensory)}")
    if not 0 <= args.support <= 2:
        raise DtbError(f"--support is a fraction of body weight in [0, 2], got {args.support}")
    out = Path(args.out) if args.out else Path("results") / Path(args.config).stem
    problem = check_writable(out)
    if problem:
        raise DtbError(problem)
    body_args = ["--support", str(args.support)]
    brain_args = ["--no-plots"] if args.no_plots else []
    for flag, value in (("--ranks", args.ranks), ("--seed", args.seed),
                        ("--duration", f"{args.duration * 1e3:g} ms" if args.duration else None)):
        if value is not None:
            brain_args += [flag, str(value)]
    code = run_brain_and_body(args.config, spec, out, args.port, body_args, brain_args, args.quiet)
    if code != 0:
        return code
    summary = closed_loop.summarize(out / "run.h5", out / "body.h5")
    from dtb.results import write_json
    write_json(summary, out / "closed_loop.json")
    written = [out / "run.h5", out / "body.h5", out / "closed_loop.json"]
    if not args.no_plots:
        written.append(closed_loop.plot(out / "run.h5", out / "body.h5", out / "closed_loop.png"))
    print(f"dtb closed-loop: {summary['body_time_s']:.2f} s; walked {summary.get('distance_forward_m', 0) * 100:.1f} cm "
          f"forward ({summary.get('speed_m_per_s', 0) * 100:.1f} cm/s), stepping "
          f"{summary.get('stepping_frequency_mean_hz', float('nan')):.2f} Hz, CPG "
          f"{summary.get('cpg_frequency_hz', float('nan')):.2f} Hz; {speed_text(summary['realtime_factor'])}")
    print(f"  results: {', '.join(str(p) for p in written)}")
    return 0


def cmd_experiment(args) -> int:
    """dtb experiment adaptation: baseline, perturbation and washout trials in one closed-loop run."""
    from bridges import adaptation
    from dtb.spec import load_spec
    setup_logging(0, args.quiet)
    spec = load_spec(args.config)
    if spec.bridge is None or spec.bridge.error is None or spec.cpg is None:
        raise DtbError(f"{args.config}: the adaptation experiment needs [cpg], [bridge] and [bridge.error] (the "
                       f"inferior olive's error signal); see dtb/examples/motor_learning.toml")
    if len(spec.bridge.motor) != 6 or len(spec.bridge.error.cpg_groups) != 3:
        raise DtbError(f"{args.config}: the forelimb needs bridge.motor = 6 populations (flexor, extensor of shoulder, "
                       f"elbow, wrist) and bridge.error for 3 joints; got {len(spec.bridge.motor)} and "
                       f"{len(spec.bridge.error.cpg_groups)}")
    if args.condition:
        from dtb.spec import apply_condition
        apply_condition(spec, args.condition)          # a clear error for an unknown name, before starting
    for name in ("baseline", "perturbation", "washout"):
        if getattr(args, name) < 0:
            raise DtbError(f"--{name} must not be negative, got {getattr(args, name)}")
    if args.perturbation < 2:
        raise DtbError(f"--perturbation needs at least 2 trials (first and last are compared), got {args.perturbation}")
    if not args.trial > 0 or args.perturb_gain < 0:
        raise DtbError("--trial must be positive and --perturb-gain >= 0")
    schedule = adaptation.Schedule(trial=args.trial, baseline=args.baseline, perturbation=args.perturbation,
                                   washout=args.washout, joint=args.perturb_joint, gain=args.perturb_gain,
                                   load=args.perturb_load, settle=spec.bridge.error.start)
    out = Path(args.out) if args.out else Path("results") / (Path(args.config).stem + "_adaptation" +
                                                            (f"_{args.condition}" if args.condition else ""))
    problem = check_writable(out)
    if problem:
        raise DtbError(problem)
    body_args = ["--body", "forelimb", "--perturb-joint", schedule.joint, "--perturb-gain", str(schedule.gain),
                 "--perturb-load", str(schedule.load), "--perturb-from", f"{schedule.start * 1e3:g} ms",
                 "--perturb-until", f"{schedule.stop * 1e3:g} ms", "--rate-full", str(args.rate_full)]
    brain_args = ["--duration", f"{schedule.duration * 1e3:g} ms"]
    for flag, value in (("--ranks", args.ranks), ("--seed", args.seed), ("--condition", args.condition)):
        if value is not None:
            brain_args += [flag, str(value)]
    if args.no_plots:
        brain_args.append("--no-plots")
    code = run_brain_and_body(args.config, spec, out, args.port, body_args, brain_args, args.quiet)
    if code != 0:
        return code
    result = adaptation.analyse(out / "run.h5", out / "body.h5", schedule)
    adaptation.write(result, out / "experiment.h5")
    from dtb.results import write_json
    write_json(adaptation.summary(result), out / "experiment.json")
    written = [out / "experiment.h5", out / "experiment.json"]
    if not args.no_plots:
        written += adaptation.plot(result, out)
    print(adaptation.table(result))
    print(f"  results: {', '.join(str(p) for p in written)}")
    return 0
