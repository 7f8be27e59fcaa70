"""The ``dtb`` command line. Every command has ``--help``; user mistakes print one clear line and exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from dtb.errors import DtbError
from dtb.units import UnitError, parse_quantity

log = logging.getLogger("dtb")

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), like every other dtb error."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _time_arg(text: str) -> float:
    try:
        return parse_quantity(text, "time")
    except UnitError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that simulate (run, task)."""
    p.add_argument("--ranks", "-n", type=int, default=None, help="number of MPI ranks to start (default: 1, or "
                   "the ranks of the outer launcher)")
    p.add_argument("--out", "-o", default=None, help="output folder (default: results/<config name>)")
    p.add_argument("--duration", type=_time_arg, default=None, help="biological time, e.g. '2 s' or '500 ms' "
                   "(default: the config's simulation.duration)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's simulation.seed)")
    p.add_argument("--partition", choices=("contiguous", "regions", "round-robin"), default="contiguous",
                   help="which rank owns which neurons: equal-cost gid ranges (default), regions kept together "
                        "by METIS on the region graph, or round-robin; results do not depend on it")
    p.add_argument("--checkpoint-every", type=_time_arg, default=None, metavar="T",
                   help="write a checkpoint every T of biological time, e.g. '1 s' (default: only on SIGUSR1/SIGTERM, "
                        "which always checkpoint and stop with exit status 75)")
    p.add_argument("--checkpoint-dir", default=None, help="where checkpoints go (default: OUT/checkpoint)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue from the newest checkpoint in DIR (a run's output folder or a checkpoint folder), "
                        "on any number of ranks; CONFIG, seed and duration default to the checkpoint's")
    p.add_argument("--hyperparameters", default=None, metavar="FITTED.h5",
                   help="run the twin fitted by dtb assimilate: each neuron's conductance scales = its Gamma "
                        "multiplier x its region's posterior-mean hyperparameter")
    p.add_argument("--rest", type=_time_arg, default=None, metavar="T",
                   help="dtb task: rest for T before the protocol (events shift by T; the run grows by T)")
    p.add_argument("--bridge-port", type=int, default=None, metavar="PORT",
                   help="listen on PORT instead of the config's [bridge] port (0: any free port)")
    p.add_argument("--condition", default=None, metavar="NAME",
                   help="apply the config's [conditions.NAME] (e.g. a lesion or dopamine depletion)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    p.set_defaults(func=cmd_run)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dtb", description="Digital twin brain: distributed spiking network simulation.")
    parser.add_argument("--version", action="version", version=f"dtb {__import__('dtb').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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
                                      "events.tsv and task_timecourses.png beside run.h5.")
    task.add_argument("config", help="network config (TOML) with [task] and [bold]")
    task.add_argument("--events", default=None, help="BIDS events.tsv (default: [task] events)")
    _run_options(task)

    bold = sub.add_parser("bold", help="compute BOLD from a recorded run",
                          description="Compute the BOLD signal of every region from the regional activity "
                                      "recorded in RUN (run.h5) with the balloon-Windkessel model; writes /bold "
                                      "into RUN, bold.png beside it and, with --atlas and --labels, a 4D NIfTI.")
    bold.add_argument("run", help="run file (run.h5) written by dtb run")
    bold.add_argument("--tr", type=_time_arg, default=None, help="scanner TR, e.g. '2 s' (default: the run's "
                      "[bold] tr, else 2 s)")
    bold.add_argument("--preset", default=None, help="balloon parameters: stephan2007, friston2000 or dtb "
                      "(default: the run's [bold] preset, else dtb)")
    bold.add_argument("--drive", choices=("rate", "synaptic"), default=None, help="neural drive (default: rate)")
    bold.add_argument("--start", choices=("steady", "rest"), default=None, help="haemodynamic start: the steady "
                      "state of the first TR's drive (default) or rest")
    bold.add_argument("--atlas", default=None, help="label volume (NIfTI) to paint the signal into")
    bold.add_argument("--labels", default=None, help="table of region names and label values for --atlas")
    bold.add_argument("--out", "-o", default=None, help="folder for bold.png and bold.nii.gz (default: beside RUN)")
    bold.set_defaults(func=cmd_bold)

    atlas = sub.add_parser("atlas", help="parcellations and connectomes: inspect, build networks",
                           description="Inspect an atlas (parcellation + structural connectome) or build the "
                                       "network config it implies. Default: the bundled Desikan-Killiany atlas "
                                       "with the 68-region TVB connectome.")
    asub = atlas.add_subparsers(dest="atlas_command", metavar="ACTION")
    asub.required = True

    def atlas_inputs(p):
        p.add_argument("atlas", nargs="?", default="desikan-killiany", metavar="ATLAS",
                       help="the parcellation: a built-in name (desikan-killiany, the default) or a label volume "
                            "(NIfTI, with --labels)")
        p.add_argument("--labels", default=None, help="label table for a parcellation volume (CSV/TSV/LUT)")
        p.add_argument("--connectome", default="tvb-68", help="built-in name or TVB zip / CSV / .npy / .mat")
        p.add_argument("--names", default=None, help="region names, one per line (for .npy / .mat)")
        p.add_argument("--lengths", default=None, help="tract lengths in mm, if not in the connectome file")
        p.add_argument("--sizes", default=None, help="region sizes (voxels), instead of a parcellation")
        p.add_argument("--velocity", type=float, default=5.0, help="conduction velocity in m/s (default 5)")

    info = asub.add_parser("info", help="regions, volumes, connectome density, delay range",
                           description="Print the regions, their volumes, the connectome's density and the "
                                       "delay range at the given conduction velocity; --plots writes PNGs.")
    atlas_inputs(info)
    info.add_argument("--plots", default=None, help="folder for connectome.png and parcellation.png")
    info.set_defaults(func=cmd_atlas_info)
    build = asub.add_parser("build", help="build the network config (TOML) of an atlas",
                            description="Build the network an atlas implies (neurons by volume, long-range "
                                        "in-degree by connectome weight, delays from tract lengths) and write it "
                                        "as a TOML config that dtb run accepts.")
    atlas_inputs(build)
    build.add_argument("--neurons", type=int, default=50_000, help="total neurons (default 50000)")
    build.add_argument("--indegree", type=int, default=100, help="synapses per neuron (default 100)")
    build.add_argument("--seed", type=int, default=1)
    build.add_argument("--out", "-o", required=True, help="output config (.toml)")
    build.add_argument("--plots", default=None, help="folder for connectome.png, neurons.png, parcellation.png")
    build.set_defaults(func=cmd_atlas_build)

    cluster = sub.add_parser("cluster", help="HPC: Slurm job scripts, partition plans, scaling projections",
                             description="Run dtb on a cluster: write (and submit) a Slurm job that checkpoints "
                                         "before its time limit and requeues itself; compare partitions; project "
                                         "cost to larger brains.")
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION")
    csub.required = True
    job = csub.add_parser("job", help="write a Slurm batch script for a run (and submit it)",
                          description="Write DIR/job.sh (a readable template: srun --mpi=pmi2 launches the ranks; "
                                      "USR1 before the time limit makes dtb checkpoint, the job requeues itself and "
                                      "resumes) and copy CONFIG beside it. Results go to DIR/results.")
    job.add_argument("config", help="network config (TOML)")
    job.add_argument("--ranks", "-n", type=int, required=True, help="MPI ranks (Slurm tasks)")
    job.add_argument("--nodes", type=int, default=None, help="nodes (default: Slurm decides)")
    job.add_argument("--time", default="01:00:00", help="wall-time limit, Slurm format (default 01:00:00)")
    job.add_argument("--partition", default=None, help="Slurm partition")
    job.add_argument("--account", default=None, help="Slurm account")
    job.add_argument("--signal-seconds", type=int, default=120,
                     help="seconds before the limit at which the job checkpoints (default 120)")
    job.add_argument("--checkpoint-every", default=None, metavar="T",
                     help="also checkpoint every T of biological time, e.g. '10 s'")
    job.add_argument("--duration", default=None, help="biological time (default: the config's)")
    job.add_argument("--seed", type=int, default=None, help="random seed (default: the config's)")
    job.add_argument("--out", "-o", default=None, help="job folder (default: jobs/<config name>)")
    job.add_argument("--submit", action="store_true", help="submit with sbatch and print the job id")
    job.set_defaults(func=cmd_cluster_job)
    plan = csub.add_parser("plan", help="per-rank load of a partition, against round-robin",
                           description="Estimate, without building anything, each rank's neurons, synapses and "
                                       "memory, the load imbalance and the fraction of synapses whose source is on "
                                       "another rank, for the region partitioner (METIS), contiguous ranges and "
                                       "round-robin.")
    plan.add_argument("config", help="network config (TOML)")
    plan.add_argument("--ranks", "-n", type=int, required=True)
    plan.add_argument("--per-rank", action="store_true", help="print every rank's row, not only the totals")
    plan.set_defaults(func=cmd_cluster_plan)
    scale = csub.add_parser("scale", help="project wall time and memory to larger brains on N nodes",
                            description="Project wall time per biological second and memory per node for networks "
                                        "of 10^6 to 8.6x10^10 neurons from per-unit costs (per neuron-step, "
                                        "synaptic event, exchange round, received spike; bytes per neuron and "
                                        "synapse), with dtb's allgather exchange and with a targeted one. Costs: "
                                        "those fitted on the development machine, a saved file, or --measure "
                                        "(about a minute of calibration runs here). Model: cluster/scaling.py.")
    scale.add_argument("--measure", action="store_true", help="fit the costs on this machine first")
    scale.add_argument("--costs", default=None, help="costs JSON (from --measure --save); default: the shipped fit")
    scale.add_argument("--save", default=None, help="with --measure: write the fitted costs here")
    scale.add_argument("--neurons", type=float, nargs="+", default=[1e6, 1e7, 1e8, 1e9, 1e10, 8.6e10])
    scale.add_argument("--indegree", type=float, default=100.0, help="synapses per neuron (default 100, as in the "
                       "Digital Twin Brain)")
    scale.add_argument("--rate", type=float, default=5.0, help="mean firing rate, Hz (default 5)")
    scale.add_argument("--nodes", type=int, default=None, help="nodes (default: the fewest whose memory holds it)")
    scale.add_argument("--cores-per-node", type=int, default=96, help="ranks per node (default 96)")
    scale.add_argument("--memory-per-node", type=float, default=512.0, help="GB per node (default 512)")
    scale.add_argument("--latency", type=float, default=1.5, help="interconnect MPI latency, us (default 1.5: HDR "
                       "InfiniBand)")
    scale.add_argument("--bandwidth", type=float, default=100.0, help="injection bandwidth per node, GB/s (default "
                       "100: 4 x HDR200 as on JUWELS Booster)")
    scale.add_argument("--png", default=None, help="write the projection plot here")
    scale.set_defaults(func=cmd_cluster_scale)

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
    assim.add_argument("--tr", type=_time_arg, default=None, help="the data's TR (default: the config's [bold] tr; "
                       "they must agree)")
    assim.add_argument("--train-fraction", type=float, default=0.5, help="leading fraction of the data to fit "
                       "(default 0.5; the rest is held out: forecast here, run freely by dtb validate)")
    assim.add_argument("--allow-zero-phase", action="store_true", help="score forecasts even though "
                       "assimilation.band_pass_causal = false put later data into every sample (labelled "
                       "'zero-phase: not a forecast')")
    assim.add_argument("--ranks", "-n", type=int, default=None, help="MPI ranks (default 1, or the outer launcher's)")
    assim.add_argument("--out", "-o", default=None, help="output folder (default results/<config>_assimilation)")
    assim.add_argument("--seed", type=int, default=None, help="random seed (default: the config's)")
    assim.add_argument("--no-plots", action="store_true")
    assim.add_argument("--no-progress", action="store_true")
    assim.add_argument("--quiet", "-q", action="store_true")
    assim.add_argument("--checkpoint-every", type=_time_arg, default=None, metavar="T",
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
    val.add_argument("--tr", type=_time_arg, default=None)
    val.add_argument("--ranks", "-n", type=int, default=None)
    val.add_argument("--baseline-runs", type=int, default=None, help="runs of the linear network and the Hopf "
                     "model (default: one per member, like for like)")
    val.add_argument("--no-hopf", action="store_true", help="leave out the Hopf model (minutes per subject)")
    val.add_argument("--connectome", default=None, metavar="FILE", help="structural connectome of the FC baselines "
                     "(a TVB zip, CSV, .npy or .mat, regions in the config's order; default: the network's own, "
                     "expected synapses between regions)")
    val.add_argument("--lengths", default=None, metavar="FILE", help="its tract lengths (mm) when not in FILE")
    val.add_argument("--allow-zero-phase", action="store_true", help="as for dtb assimilate")
    val.add_argument("--no-plots", action="store_true")
    val.add_argument("--quiet", "-q", action="store_true")
    val.set_defaults(func=cmd_validate)

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
    body.add_argument("--period", type=_time_arg, default=0.01, help="control period (default 10 ms)")
    body.add_argument("--support", type=float, default=0.6,
                      help="body-weight support by the harness, fraction of body weight (default 0.6; 0: none)")
    body.add_argument("--duration", type=_time_arg, default=float("inf"), help="stop after this much body time")
    body.add_argument("--connect-timeout", type=_time_arg, default=60.0,
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
    body.add_argument("--perturb-from", type=_time_arg, default=float("inf"),
                      help="forelimb: body time at which the perturbation starts (default never)")
    body.add_argument("--perturb-until", type=_time_arg, default=float("inf"),
                      help="forelimb: body time at which it ends (default: the end)")
    body.add_argument("--out", "-o", default="body.h5", help="trajectory file (default body.h5)")
    body.add_argument("--auth-secret", default=None, metavar="FILE", help="authenticate to a server that requires it "
                      "(the rosauth secret on FILE's first line)")
    body.add_argument("--quiet", "-q", action="store_true")
    body.set_defaults(func=cmd_body)

    loop = sub.add_parser("closed-loop", help="brain, bridge and body together: the twin walks",
                          description="Run CONFIG (a network with [cpg] and [bridge], e.g. dtb/examples/motor_loop.toml) "
                                      "with the rodent body in its own process over the rosbridge bridge. Writes "
                                      "OUT/run.h5, OUT/body.h5, OUT/summary.json (distance walked, stepping and CPG "
                                      "frequency, real-time factor) and OUT/closed_loop.png.")
    loop.add_argument("config", help="network config (TOML) with [cpg] and [bridge]")
    loop.add_argument("--ranks", "-n", type=int, default=None, help="MPI ranks of the brain (default 1)")
    loop.add_argument("--out", "-o", default=None, help="output folder (default results/<config name>)")
    loop.add_argument("--duration", type=_time_arg, default=None, help="biological time (default: the config's)")
    loop.add_argument("--seed", type=int, default=None, help="random seed (default: the config's)")
    loop.add_argument("--support", type=float, default=0.6, help="body-weight support, fraction (default 0.6)")
    loop.add_argument("--port", type=int, default=0, help="bridge port (default: any free port)")
    loop.add_argument("--no-plots", action="store_true", help="skip the PNG figure")
    loop.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    loop.set_defaults(func=cmd_closed_loop)

    exp = sub.add_parser("experiment", help="closed-loop experiments (motor adaptation)",
                         description="Closed-loop experiments with a body in its own process over the bridge.")
    exp_sub = exp.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    ad = exp_sub.add_parser("adaptation", help="baseline, perturbation and washout trials with the forelimb",
                            description="Run CONFIG (e.g. dtb/examples/motor_learning.toml: M2 CPGs, M1, S1, basal "
                                        "ganglia, thalamus and a learning cerebellum) with the MuJoCo forelimb: "
                                        "--baseline trials, then --perturbation trials with the perturbation on "
                                        "(a gain change or load on one joint), then --washout trials without it, as "
                                        "one continuous run. Writes OUT/run.h5, OUT/body.h5, OUT/experiment.h5 (per "
                                        "trial: tracking error, signed amplitude error, rates per region, PF-PC "
                                        "weights; layout in bridges/adaptation.py), OUT/experiment.json and PNGs "
                                        "(learning curve, trajectories early and late, rasters per region, weights).")
    ad.add_argument("config", help="network config with [cpg], [bridge] and [bridge.error]")
    ad.add_argument("--trial", type=_time_arg, default=2.0, help="trial length (default 2 s)")
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
    ad.add_argument("--ranks", "-n", type=int, default=None, help="MPI ranks of the brain (default 1)")
    ad.add_argument("--seed", type=int, default=None, help="random seed (default: the config's)")
    ad.add_argument("--out", "-o", default=None, help="output folder (default results/<config>_adaptation[_condition])")
    ad.add_argument("--port", type=int, default=0, help="bridge port (default: any free port)")
    ad.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    ad.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    ad.set_defaults(func=cmd_experiment)

    check = sub.add_parser("check", help="validate a config and print what it builds",
                           description="Load and validate CONFIG; print populations, expected synapses and the "
                                       "partition over --ranks ranks, without simulating.")
    check.add_argument("config")
    check.add_argument("--ranks", "-n", type=int, default=1)
    check.set_defaults(func=cmd_check)
    return parser


#: the packages whose INFO messages a run shows (other libraries' stay at WARNING)
OWN_LOGGERS = ("dtb", "atlas", "assimilation", "bridges", "cluster")


def _setup_logging(rank: int, quiet: bool, verbose: bool = False) -> None:
    """INFO from dtb's own packages (WARNING with ``quiet`` and on ranks other than 0); other
    libraries' INFO only with ``verbose``."""
    level = logging.WARNING if (quiet or rank != 0) else logging.INFO
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr, datefmt="%H:%M:%S",
                        format="%(asctime)s %(levelname)s %(message)s" if rank == 0 else
                        f"[rank {rank}] %(levelname)s %(message)s")
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def cmd_check(args) -> int:
    from dtb.partition import expected_indegree, partition_contiguous
    from dtb.spec import load_spec

    spec = load_spec(args.config)
    k_in = expected_indegree(spec)
    print(f"{spec.source}: {spec.n_neurons} neurons in {len(spec.populations)} populations, "
          f"{len(spec.regions)} regions, dt {spec.simulation.dt * 1e3:g} ms, min delay {spec.min_delay * 1e3:g} ms")
    for p, k in zip(spec.populations, k_in):
        print(f"  {p.name:<20} {p.kind:<11} region {p.region:<12} {p.size:>8} neurons  ~{k:.0f} synapses in each")
    print(f"expected synapses: {sum(p.size * k for p, k in zip(spec.populations, k_in)):.0f}")
    if spec.cpg is not None:
        from dtb.models.matsuoka import MatsuokaParameters, natural_frequency
        c = spec.cpg
        f = natural_frequency(MatsuokaParameters(c.tau_r, c.tau_a, c.beta, c.w, c.drive))
        print(f"CPG: {c.count} Matsuoka half-centers in {len(c.groups)} group(s) "
              f"({', '.join(f'{g.name} phase {g.phase:g}' for g in c.groups)}), uncoupled frequency {f:.2f} Hz "
              f"(Matsuoka's formula)" + (f"; tonic drive follows {c.drive_from} (x rate / "
                                         f"{c.drive_rate:g} Hz)" if c.drive_from else ""))
    if spec.bridge is not None:
        b = spec.bridge
        print(f"bridge: {b.mode}, every {b.period * 1e3:g} ms, motor {', '.join(b.motor)} -> {b.motor_topic}; "
              f"{b.sensory_topic} -> {', '.join(b.sensory)}")
        if b.error is not None:
            e = b.error
            print(f"bridge.error: {len(e.cpg_groups)} joint angles after the sensory values -> olive "
                  f"{', '.join(e.flexor + e.extensor)} (baseline {e.baseline:g} Hz, gain {e.gain:g} Hz/rad, "
                  f"plan lag {e.lag * 1e3:g} ms)")
    plastic = [pr for pr in spec.projections if pr.plasticity is not None]
    if plastic:
        print(f"plasticity: {len(plastic)} plastic projection(s) (PF->PC, climbing fibres from "
              f"{', '.join(sorted({pr.plasticity.teacher for pr in plastic}))})")
    for name, cond in spec.conditions.items():
        print(f"condition {name}: {cond.description or '(no description)'}")
    from dtb.memory import check_fits
    if args.ranks < 1:
        raise DtbError(f"--ranks must be at least 1, got {args.ranks}")
    part = partition_contiguous(spec, args.ranks)
    loads = check_fits(spec, args.ranks, args.ranks, part)
    for r, load in enumerate(loads):
        print(f"  rank {r}: {load.neurons} neurons, ~{load.synapses:.0f} synapses, ~{load.bytes / 2**20:.0f} MB at "
              f"the build's peak")
    return 0


def cmd_cluster_job(args) -> int:
    from cluster.jobs import JobSettings, submit, write_job
    from dtb.units import UnitError
    for opt, val in (("--checkpoint-every", args.checkpoint_every), ("--duration", args.duration)):
        if val is not None:
            try:
                parse_quantity(val, "time")
            except UnitError as e:
                raise DtbError(f"{opt}: {e}") from None
    settings = JobSettings(ranks=args.ranks, nodes=args.nodes, time=args.time, partition=args.partition,
                           account=args.account, signal_seconds=args.signal_seconds,
                           checkpoint_every=args.checkpoint_every, duration=args.duration, seed=args.seed)
    job_dir = Path(args.out) if args.out else Path("jobs") / Path(args.config).stem
    script = write_job(args.config, job_dir, settings)
    print(f"dtb cluster job: {script} ({args.ranks} ranks, limit {args.time}); results will go to "
          f"{script.parent / 'results'}")
    if args.submit:
        job_id = submit(script)
        print(f"submitted job {job_id}")
    else:
        print(f"submit with: sbatch {script}")
    return 0


def cmd_cluster_plan(args) -> int:
    from dtb.partition import make_partition, plan
    from dtb.spec import load_spec
    if args.ranks < 1:
        raise DtbError(f"--ranks must be at least 1, got {args.ranks}")
    spec = load_spec(args.config)
    if args.ranks > spec.n_neurons:
        raise DtbError(f"{args.ranks} ranks for {spec.n_neurons} neurons: use at most one rank per neuron")
    print(f"{spec.source}: {spec.n_neurons} neurons, {len(spec.regions)} regions, on {args.ranks} ranks")
    print(f"{'partition':<12} {'imbalance':>9} {'cross-rank':>10} {'max neurons':>11} {'max synapses':>12} "
          f"{'max memory':>10} {'segments':>8}")
    for method in ("regions", "contiguous", "round-robin"):
        rows, tot = plan(spec, make_partition(spec, args.ranks, method))
        print(f"{method:<12} {100 * tot['imbalance']:8.2f}% {100 * tot['cross_fraction']:9.1f}% "
              f"{max(r.neurons for r in rows):11d} {max(r.synapses for r in rows):12.0f} "
              f"{max(r.memory_bytes for r in rows) / 2**20:7.0f} MB {tot['segments']:8d}")
        if args.per_rank:
            for r in rows:
                print(f"    rank {r.rank:4d}: {r.neurons:9d} neurons {r.synapses:12.0f} synapses "
                      f"{r.memory_bytes / 2**20:8.1f} MB, {100 * r.remote_synapses / max(r.synapses, 1):5.1f}% remote")
    print("imbalance: max rank cost / mean - 1 (cost = neurons + 0.01 x incoming synapses); cross-rank: synapses "
          "whose source is on another rank")
    return 0


def cmd_cluster_scale(args) -> int:
    import tempfile
    from cluster.plots import scaling_png
    from cluster.scaling import (PUBLISHED_DTB, PUBLISHED_NEST, Interconnect, Node, UnitCosts, calibrate,
                                 default_costs, projection)
    _setup_logging(0, False)
    if args.measure:
        print("calibrating on this machine (whole-brain atlas network, 1 and 2 ranks):")
        with tempfile.TemporaryDirectory() as d:
            costs, _ = calibrate(d, 1.0, log=print)
        if args.save:
            costs.save(args.save)
            print(f"costs -> {args.save}")
    elif args.costs:
        try:
            costs = UnitCosts.load(args.costs)
        except (OSError, ValueError, TypeError) as e:
            raise DtbError(f"{args.costs}: not a costs file written by dtb cluster scale --measure --save ({e})") from None
    else:
        costs = default_costs()
    for name, v in (("--indegree", args.indegree), ("--rate", args.rate), ("--latency", args.latency),
                    ("--bandwidth", args.bandwidth), ("--memory-per-node", args.memory_per_node)):
        if not v > 0:
            raise DtbError(f"{name} must be positive, got {v:g}")
    node = Node(cores=args.cores_per_node, memory_bytes=args.memory_per_node * 1e9)
    net = Interconnect(latency_s=args.latency * 1e-6, bandwidth_Bps=args.bandwidth * 1e9,
                       source=f"latency {args.latency:g} us, {args.bandwidth:g} GB/s per node")
    rows = projection(costs, args.neurons, node, net, args.indegree, args.rate, args.nodes)
    print(f"costs: {costs.machine or 'shipped fit'}: {costs.c_neuron * 1e9:.1f} ns per neuron-step, "
          f"{costs.c_event * 1e9:.1f} ns per synaptic event, {costs.c_round * 1e6:.0f} us per exchange round, "
          f"{costs.c_spike * 1e9:.1f} ns per received spike, {costs.m_neuron:.0f} B/neuron, {costs.m_synapse:.0f} B/synapse")
    print(f"workload: indegree {args.indegree:g}, {args.rate:g} Hz, dt 0.1 ms, exchange every 1 ms; nodes of "
          f"{node.cores} cores, {args.memory_per_node:g} GB; {net.source}")
    print(f"{'neurons':>9} {'nodes':>7} {'ranks':>9} {'GB/node':>8} {'compute':>9} {'RTF allgather':>14} {'RTF targeted':>13}")
    for r in rows:
        print(f"{r['neurons']:9.3g} {r['nodes']:7d} {r['ranks']:9d} {r['memory_per_node_GB']:8.0f} "
              f"{r['compute_s']:9.3g} {r['rtf_allgather']:14.3g} {r['rtf_targeted']:13.3g}")
    print("RTF: wall seconds per biological second. dtb exchanges by allgather; 'targeted' is what an exchange that "
          "sends each spike only to ranks holding its targets would reach.")
    print(f"published: {PUBLISHED_DTB['source']}: RTF {', '.join(map(str, PUBLISHED_DTB['realtime_factors']))}; "
          f"{PUBLISHED_NEST['source']}: RTF {PUBLISHED_NEST['realtime_factor']:.0f}")
    if args.png:
        scaling_png(rows, args.png)
        print(f"plot -> {args.png}")
    return 0


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
    _setup_logging(0, False, args.verbose)
    server = bridge_server(args, args.host, args.port)
    try:
        serve_forever(server)
    except OSError as e:
        raise DtbError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0


def cmd_body(args) -> int:
    from bridges.body_node import BodySettings, run_body
    _setup_logging(0, args.quiet)
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
    _setup_logging(0, args.quiet)
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
    problem = _check_writable(out)
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
          f"{summary.get('cpg_frequency_hz', float('nan')):.2f} Hz, real-time factor {summary['realtime_factor']:.2f}")
    print(f"  results: {', '.join(str(p) for p in written)}")
    return 0


def run_brain_and_body(config: str, spec, out: Path, port: int, body_args: list[str], brain_args: list[str],
                       quiet: bool) -> int:
    """Start the body (``dtb body`` + body_args) and the brain (``dtb run`` + brain_args, hosting
    the bridge) as two processes, wait for both; the brain's exit status (DtbError if the body
    failed). Writes OUT/run.h5 and OUT/body.h5."""
    import signal
    import socket
    if port == 0:
        with socket.socket() as sock:
            sock.bind((spec.bridge.host, 0))
            port = sock.getsockname()[1]
    py = [sys.executable, "-m", "dtb"]
    q = ["--quiet"] if quiet else []
    body = subprocess.Popen(py + ["body", "--host", spec.bridge.host, "--port", str(port), "--mode", spec.bridge.mode,
                                  "--period", f"{spec.bridge.period * 1e3:g} ms", "--connect-timeout", "600 s",
                                  "--out", str(out / "body.h5")] + body_args + q
                            + (["--auth-secret", spec.bridge.auth_secret] if spec.bridge.auth_secret else []))
    brain = subprocess.Popen(py + ["run", config, "--out", str(out), "--bridge-port", str(port), "--no-progress"]
                             + brain_args + q)
    try:
        code = brain.wait()
    except KeyboardInterrupt:
        brain.send_signal(signal.SIGINT)
        code = brain.wait()
    try:
        body_code = body.wait(timeout=60)
    except subprocess.TimeoutExpired:
        body.terminate()
        body_code = body.wait(timeout=30)
    if code != 0:
        if body.poll() is None:
            body.terminate()
        return code
    if body_code != 0 or not (out / "body.h5").exists():
        raise DtbError(f"the body process failed (exit {body_code}); the brain's results are in {out}")
    return 0


def cmd_experiment(args) -> int:
    """dtb experiment adaptation: baseline, perturbation and washout trials in one closed-loop run."""
    from bridges import adaptation
    from dtb.spec import load_spec
    _setup_logging(0, args.quiet)
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
                                   load=args.perturb_load)
    out = Path(args.out) if args.out else Path("results") / (Path(args.config).stem + "_adaptation" +
                                                            (f"_{args.condition}" if args.condition else ""))
    problem = _check_writable(out)
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


def cmd_run(args) -> int:
    if args.ranks is not None and args.ranks < 1:
        raise DtbError(f"--ranks must be at least 1, got {args.ranks}")
    _resolve_resume(args)
    launched = _launch_ranks(args, lambda: _load_run_spec(args))
    return launched if launched is not None else _run_here(args)


def _launch_ranks(args, validate) -> int | None:
    """With --ranks N > 1 outside an MPI launcher: validate (so a config mistake is one clear
    line rather than N), then re-run this command under mpiexec and return its exit status.
    None: go on in this process."""
    from dtb.launch import mpiexec_command, under_mpi_launcher
    if not (args.ranks and args.ranks > 1) or under_mpi_launcher():
        return None
    validate()
    argv = _strip_option(list(sys.argv[1:]), ("--ranks", "-n"))
    cmd = mpiexec_command(args.ranks, argv)
    env = dict(os.environ, DTB_UNDER_MPI="1")
    proc = subprocess.Popen(cmd, env=env)
    # a checkpoint request sent to this process reaches the ranks (mpiexec forwards it)
    import signal
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: proc.send_signal(signum))
    return proc.wait()


def cmd_assimilate(args) -> int:
    from assimilation import pipeline
    from assimilation.ensemble import ensemble_spec
    from dtb.engine.kernel import world_comm
    from dtb.spec import load_spec

    if args.ranks is not None and args.ranks < 1:
        raise DtbError(f"--ranks must be at least 1, got {args.ranks}")

    def prepare():
        spec = load_spec(args.config, overrides={"seed": args.seed})
        pipeline.check_inputs(spec, args.tr, args.allow_zero_phase)
        if not 0 < args.train_fraction <= 1:
            raise DtbError(f"--train-fraction must be in (0, 1], got {args.train_fraction:g}")
        return spec, *pipeline.load_observed(spec, args.bold, args.key, args.train_fraction)
    launched = _launch_ranks(args, prepare)
    if launched is not None:
        return launched
    comm = world_comm()
    rank = comm.Get_rank()
    _setup_logging(rank, args.quiet)
    spec, observed, n_train = prepare()
    out = Path(args.out) if args.out else Path("results") / f"{Path(args.config).stem}_assimilation"
    problem = comm.bcast(_check_writable(out) if rank == 0 else None, root=0)
    if problem:
        raise DtbError(problem)
    resume = _load_checkpoint(args.resume, ensemble_spec(spec, spec.assimilation.members), comm) if args.resume else None
    meta = {"config_path": str(Path(args.config).resolve()), "seed": spec.simulation.seed, "out": str(out.resolve()),
            "command": "assimilate", "bold": str(Path(args.bold).resolve()), "duration_s": None}
    path = pipeline.assimilate(spec, observed, n_train, out, comm, progress=not args.no_progress
                               and sys.stderr.isatty(), bold_path=str(Path(args.bold).resolve()),
                               config_path=str(Path(args.config).resolve()), checkpoint_every=args.checkpoint_every,
                               resume=resume, meta=meta)
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
    from assimilation.validation import validate
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
        except FileNotFoundError:
            raise DtbError(f"{run}: file not found") from None
        except (OSError, KeyError) as e:
            raise DtbError(f"{run}: not an assimilation file written by dtb assimilate ({e})") from None
        import tomllib
        spec = spec_from_dict(tomllib.loads(text), source=str(config_path), text=text, overrides={"seed": seed})
        pipeline.check_inputs(spec, args.tr, args.allow_zero_phase)
        return spec, pipeline.load_observed(spec, args.bold, args.key, fraction)[0], _baseline_connectome(args, spec)
    if args.baseline_runs is not None and args.baseline_runs < 1:
        raise DtbError(f"--baseline-runs must be at least 1, got {args.baseline_runs}")
    launched = _launch_ranks(args, prepare)
    if launched is not None:
        return launched
    comm = world_comm()
    _setup_logging(comm.Get_rank(), args.quiet)
    spec, observed, connectome = prepare()
    res = validate(run, observed, spec, comm, args.baseline_runs, hopf=not args.no_hopf, connectome=connectome)
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


def _resolve_resume(args) -> None:
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


def _strip_option(argv: list[str], names: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True
            continue
        if any(a.startswith(n + "=") for n in names):
            continue
        out.append(a)
    return out


def _load_run_spec(args):
    """The spec a run command simulates (for ``dtb task``: with the protocol's stimuli added)."""
    from dtb.spec import load_spec
    spec = load_spec(args.config, overrides={"duration": args.duration, "seed": args.seed})
    if getattr(args, "condition", None):
        from dtb.spec import apply_condition
        spec = apply_condition(spec, args.condition)
    if getattr(args, "rest", None) and getattr(args, "command", None) != "task":
        raise DtbError("--rest belongs to dtb task (rest, then the protocol)")
    port = getattr(args, "bridge_port", None)
    if port is not None:
        if spec.bridge is None:
            raise DtbError(f"--bridge-port: {args.config} has no [bridge] section")
        if not 0 <= port <= 65535:
            raise DtbError(f"--bridge-port must be 0..65535, got {port}")
        import dataclasses
        spec = dataclasses.replace(spec, bridge=dataclasses.replace(spec.bridge, port=port))
    if getattr(args, "command", None) == "task":
        from dtb.task import add_task_stimuli, read_events
        if spec.task is None:
            raise DtbError(f"{args.config}: dtb task needs a [task] section (trial types and their target regions)")
        if spec.bold is None or spec.bold.atlas is None:
            raise DtbError(f"{args.config}: dtb task needs a [bold] section and an atlas to paint BOLD into "
                           f"(an [atlas] config, or [bold] atlas and labels)")
        events_path = args.events or spec.task.events
        if events_path is None:
            raise DtbError("no events: give --events EVENTS.tsv or [task] events")
        events = read_events(events_path, {t.name: t for t in spec.task.trial_types}, spec.simulation.duration)
        rest = args.rest or 0.0
        if rest < 0:
            raise DtbError(f"--rest must not be negative, got {rest:g} s")
        if rest:
            # rest then task: the protocol starts after T of rest, the GLM sees the rest as baseline
            import dataclasses
            events = [dataclasses.replace(e, onset=e.onset + rest) for e in events]
            spec = spec.with_simulation(duration=spec.simulation.duration + rest)
        spec = add_task_stimuli(spec, events, spec.task)
        args._events = events
    return spec


def _run_here(args) -> int:
    from dtb.engine.kernel import world_comm

    comm = world_comm()
    rank, size = comm.Get_rank(), comm.Get_size()
    _setup_logging(rank, args.quiet)
    if args.ranks is not None and args.ranks != size:
        raise DtbError(f"--ranks {args.ranks} asked, but the launcher started {size} rank(s)")
    spec = _load_run_spec(args)
    out = Path(args.out) if args.out else Path("results") / Path(args.config).stem
    problem = comm.bcast(_check_output_folders(spec, out, args) if rank == 0 else None, root=0)
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


def _check_output_folders(spec, out: Path, args) -> str | None:
    """The output folder takes the results (writable, room for their estimated size) and the
    checkpoint folder, if checkpoints are asked for, is writable."""
    from dtb.results import estimated_results_bytes
    problem = _check_writable(out, estimated_results_bytes(spec))
    if problem is None and getattr(args, "checkpoint_every", None):
        folder = Path(args.checkpoint_dir) if getattr(args, "checkpoint_dir", None) else out / "checkpoint"
        problem = _check_writable(folder)
    return problem


def _check_writable(out: Path, need_bytes: float = 0.0) -> str | None:
    """None if results can be written into ``out`` (created if needed) and it has ``need_bytes``
    free, else the reason. Temporary files that a killed run left there are removed."""
    import tempfile
    from dtb.files import free_bytes, remove_stale_temporaries
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".dtb-write-test-"):
            pass
        remove_stale_temporaries(out)
        free = free_bytes(out)
    except OSError as e:
        return f"cannot write results to {out}: {e.strerror or e}"
    if free < need_bytes:
        return (f"{out}: {free / 2**20:.1f} MB free, but the results need about {need_bytes / 2**20:.1f} MB; free "
                f"space or choose another --out")
    return None


def _simulate(spec, out: Path, comm, args) -> int:
    from dtb import plots
    from dtb.engine import Simulation
    from dtb.results import gather_results, write_results

    rank, size = comm.Get_rank(), comm.Get_size()
    log.info("building %s: %d neurons on %d rank(s)", spec.source, spec.n_neurons, size)
    t0 = time.perf_counter()
    from dtb.memory import check_fits, ranks_on_this_node
    from dtb.partition import make_partition
    fitted = getattr(args, "hyperparameters", None)
    partition = make_partition(spec, size, getattr(args, "partition", "contiguous"))
    check_fits(spec, size, ranks_on_this_node(comm), partition)
    sim = Simulation(spec, comm=comm, partition=partition, per_neuron_scales=bool(fitted))
    if fitted:
        from assimilation.ensemble import apply_fitted
        receptors = apply_fitted(sim, spec, fitted)
        log.info("fitted twin: %s scales per region from %s", "/".join(receptors), fitted)
    comm.Barrier()
    build_s = time.perf_counter() - t0
    n_syn = sim.n_synapses_total()
    if size > 1:
        log.info("built %d synapses in %.1f s; spikes cross ranks every %g ms (the smallest delay of a "
                 "projection between ranks)", n_syn, build_s, sim.P * sim.dt * 1e3)
    else:
        log.info("built %d synapses in %.1f s", n_syn, build_s)
    from dtb.engine import checkpoint as ckpt
    start_step = 0
    if args.resume:
        info = _load_checkpoint(args.resume, spec, comm)
        ckpt.restore(sim, info)
        start_step = sim.current_step()
        log.info("resumed from %s: t = %g s (written on %d rank(s), now %d)", info.folder, sim.t,
                 info.manifest["n_ranks"], size)
        if spec.bridge is not None and rank == 0:
            log.warning("[bridge]: the body is another program and not in the checkpoint; it continues from its own "
                        "state, so this resumed closed loop differs from an uninterrupted one")
    meta = {"config_path": str(Path(args.config).resolve()), "seed": spec.simulation.seed,
            "duration_s": spec.simulation.duration, "out": str(out.resolve()), "command": args.command,
            "hyperparameters": str(Path(fitted).resolve()) if fitted else None}
    checkpointer = ckpt.Checkpointer(sim, Path(args.checkpoint_dir) if args.checkpoint_dir else out / "checkpoint",
                                     args.checkpoint_every, meta)
    ckpt.install_signal_handlers(sim)
    coupling, server = None, None
    if spec.bridge is not None:
        from bridges.coupling import BodyCoupling
        if rank == 0:
            from bridges.auth import read_secret
            from bridges.rosbridge import RosbridgeServer
            secret = read_secret(spec.bridge.auth_secret) if spec.bridge.auth_secret else None
            try:
                server = RosbridgeServer(spec.bridge.host, spec.bridge.port, auth_secret=secret,
                                         allowed_origins=spec.bridge.allow_origin).start_in_thread()
            except OSError as e:
                raise DtbError(f"[bridge]: cannot listen on {spec.bridge.host}:{spec.bridge.port}: {e}") from None
            log.info("rosbridge server on ws://%s:%d: motor output on %s, sensory input from %s (%s)",
                     spec.bridge.host, server.port, spec.bridge.motor_topic, spec.bridge.sensory_topic,
                     spec.bridge.mode)
        coupling = BodyCoupling(sim, spec.bridge, server)
        try:
            waited = coupling.wait_for_body()
        except DtbError:
            if server is not None:
                server.stop()
            raise
        log.info("body connected after %.1f s", waited)
    t1 = time.perf_counter()
    try:
        sim.run(spec.simulation.duration - sim.t, progress=not args.no_progress and sys.stderr.isatty())
        comm.Barrier()
        wall = time.perf_counter() - t1
        if coupling is not None:
            coupling.finish()
    finally:
        if server is not None:
            server.stop()
    if checkpointer.stopped:
        if rank == 0:
            log.warning("stopped at t = %g s after a signal; checkpoint in %s; continue with: dtb run --resume %s",
                        sim.t, checkpointer.folder, out)
        return ckpt.EXIT_CHECKPOINTED
    simulated = max(spec.simulation.duration - start_step * sim.dt, 1e-12)
    res = gather_results(sim, {"wall_s": wall, "build_s": build_s,
                               "realtime_factor": wall / simulated,
                               "exchange_s_rank0": sim.exchange_seconds,
                               "exchange_bytes_rank0": sim.exchange_bytes,
                               "exchange_rounds": sim.exchange_rounds,
                               "resumed_from_step": start_step,
                               "checkpoints_written": len(checkpointer.written),
                               "checkpoint_s_rank0": checkpointer.seconds,
                               **({"bridge_sent": coupling.sent, "bridge_received": coupling.received,
                                   "bridge_wait_s": coupling.wait_seconds} if coupling is not None else {}),
                               **({"condition": spec.condition} if spec.condition else {})})
    if res is not None and coupling is not None:
        res.bridge_error = coupling.error_log
    if rank != 0:
        return 0
    from dtb.files import array_bytes, check_room
    try:
        out.mkdir(parents=True, exist_ok=True)
        check_room(out, 1.2 * array_bytes(res) + 2**20, "the results (run.h5)")
        path = write_results(res, out / "run.h5")
    except OSError as e:
        raise DtbError(f"cannot write results to {out}: {e.strerror or e}") from None
    rates = res.mean_rates()
    summary = dict(res.summary, mean_rate_hz=rates, duration_s=spec.simulation.duration,
                   seed=spec.simulation.seed, output=str(path))
    from dtb.results import write_json
    write_json(summary, out / "summary.json")
    if not args.no_plots:
        plots.raster_and_rates(res, out / "raster.png")
        plots.region_activity(res, out / "regions.png")
    if res.bold is not None:
        _bold_outputs(res.bold, spec.regions, spec.bold, out, plots=not args.no_plots)
    if getattr(args, "command", None) == "task":
        _task_outputs(spec, res, args._events, out, plots=not args.no_plots)
    print(f"dtb run: {spec.n_neurons} neurons, {n_syn} synapses, {len(res.spike_gids)} spikes in "
          f"{spec.simulation.duration:g} s biological time on {size} rank(s)")
    print(f"  wall time {wall:.2f} s (build {build_s:.2f} s), real-time factor {wall / simulated:.2f}, "
          f"peak memory per rank {' / '.join(f'{x:.0f}' for x in res.summary['peak_rss_mb_per_rank'])} MB")
    for name, r in list(rates.items())[:20]:
        print(f"  {name:<24} {r:7.2f} Hz")
    if len(rates) > 20:
        import numpy as np
        exc = [r for p, r in zip(spec.populations, rates.values()) if p.kind == "excitatory"]
        inh = [r for p, r in zip(spec.populations, rates.values()) if p.kind == "inhibitory"]
        print(f"  ... {len(rates) - 20} more populations (all in summary.json); mean over populations: "
              f"excitatory {np.mean(exc):.2f} Hz, inhibitory {np.mean(inh) if inh else 0:.2f} Hz")
    written = [path] + [out / n for n in ("raster.png", "regions.png", "bold.png", "bold.nii.gz") if (out / n).exists()]
    print(f"  results: {', '.join(str(p) for p in written)}")
    return 0


def _load_checkpoint(path, spec, comm):
    """Find, verify (checksums, on rank 0) and match the checkpoint to ``spec``; the same
    answer on every rank."""
    from dtb.engine.checkpoint import check_compatible, find_checkpoint, verify
    problem = None
    if comm.Get_rank() == 0:
        try:
            info = find_checkpoint(path)
            verify(info)
            check_compatible(info, spec)
        except DtbError as e:
            problem = str(e)
    problem = comm.bcast(problem, root=0)
    if problem:
        raise DtbError(problem)
    return find_checkpoint(path)


def _bold_outputs(signal, regions, settings, out: Path, plots: bool = True) -> None:
    from atlas.io import read_label_table
    from dtb.bold import paint_regions, plot_bold, save_nifti
    if plots:
        plot_bold(signal, regions, settings.tr, out / "bold.png")
    if settings.atlas:
        import nibabel as nib
        try:
            img = nib.load(settings.atlas)
        except Exception as e:   # nibabel raises several types for unreadable files
            raise DtbError(f"{settings.atlas}: cannot read as NIfTI: {e}") from None
        table = read_label_table(settings.labels)
        save_nifti(paint_regions(img, table, regions, signal, settings.tr, source=settings.atlas), out / "bold.nii.gz")


def _task_outputs(spec, res, events, out: Path, plots: bool = True) -> None:
    """events.tsv, the GLM's z-maps (NIfTI, PNG) and a table of region z-scores."""
    import nibabel as nib
    import numpy as np
    from atlas.io import read_label_table
    from dtb.bold import save_nifti
    from dtb.task import fit_glm, region_glm, write_events

    write_events(out / "events.tsv", events)
    if len(res.bold) < 4:
        raise DtbError(f"the run has {len(res.bold)} TRs: too few for a GLM")
    label_img = nib.load(spec.bold.atlas)
    table = read_label_table(spec.bold.labels)
    labels = np.asanyarray(label_img.dataobj)
    mask = nib.Nifti1Image(np.isin(labels, [table[r] for r in spec.regions]).astype(np.uint8), label_img.affine)
    model, zmaps = fit_glm(nib.load(out / "bold.nii.gz"), events, spec.bold.tr, spec.task, mask_img=mask)
    lines = ["region\t" + "\t".join(f"z_{t}" for t in zmaps)]
    for t, img in zmaps.items():
        save_nifti(img, out / f"zmap_{t}.nii.gz")
    # per region: the same GLM on the region time series (equal to the voxels' z inside each label)
    z_by_type = region_glm(res.bold, events, spec.bold.tr, spec.task)
    for k, r in enumerate(spec.regions):
        lines.append(r + "\t" + "\t".join(f"{z_by_type[t][k]:.3f}" for t in zmaps))
    (out / "region_z.tsv").write_text("\n".join(lines) + "\n")
    for t, z in z_by_type.items():
        top = np.argsort(-z)[:8]
        print(f"  contrast {t}: {int((z > 3.1).sum())} of {len(z)} regions above z = 3.1; top: "
              + ", ".join(f"{spec.regions[i]} {z[i]:.1f}" for i in top))
    if plots:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from nilearn import plotting
        for t, img in zmaps.items():
            display = plotting.plot_glass_brain(img, threshold=3.1, colorbar=True, plot_abs=False,
                                                title=f"{t}: z > 3.1")
            display.savefig(str(out / f"zmap_{t}.png"))
            display.close()
        dm = model.design_matrices_[0]
        fig, ax = plt.subplots(figsize=(11, 4))
        t_s = np.arange(1, len(res.bold) + 1) * spec.bold.tr
        z_first = z_by_type[next(iter(z_by_type))]
        for k in np.argsort(-z_first)[:4]:
            b = res.bold[:, k]
            ax.plot(t_s, (b - b.mean()) / (b.std() + 1e-12), lw=1, label=spec.regions[k])
        for t in zmaps:
            reg = dm[t].to_numpy()
            ax.plot(t_s, (reg - reg.mean()) / (reg.std() + 1e-12), "k--", lw=1.5, label=f"regressor {t}")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("z-scored BOLD")
        ax.legend(fontsize=7)
        ax.set_title("most responsive regions and the design's regressors")
        fig.tight_layout()
        fig.savefig(out / "task_timecourses.png", dpi=100)
        plt.close(fig)


def cmd_bold(args) -> int:
    import dataclasses
    import h5py
    import numpy as np
    from dtb.bold import BoldSettings, add_bold_to_run, bold_from_activity
    from dtb.models.balloon import PRESETS

    _setup_logging(0, False)
    path = Path(args.run)
    try:
        with h5py.File(path, "r") as f:
            regions = [r.decode() if isinstance(r, bytes) else r for r in f["network/regions"][()]]
            interval = float(f["regions"].attrs["interval_ms"]) / 1e3
            rate = f["regions/rate"][()]
            i_exc = f["regions/I_exc"][()]
            stored = dict(f["bold"].attrs) if "bold" in f else {}
            seed = int(f.attrs["seed"])
    except FileNotFoundError:
        raise DtbError(f"{path}: file not found") from None
    except (OSError, KeyError) as e:
        raise DtbError(f"{path}: not a dtb run file with regional activity ({e})") from None
    if not (np.isfinite(interval) and interval > 0):
        raise DtbError(f"{path}: regions.interval_ms is {interval * 1e3:g}; a positive sampling interval is expected")
    settings = BoldSettings()
    if stored:
        settings = dataclasses.replace(settings, tr=float(stored["tr_s"]), preset=str(stored["preset"]),
                                       drive=str(stored["drive"]), start=str(stored.get("start", "steady")),
                                       noise=float(stored.get("noise", 0.0)))
    if args.preset is not None and args.preset not in PRESETS:
        raise DtbError(f"--preset {args.preset!r} is not one of: {', '.join(PRESETS)}")
    settings = dataclasses.replace(settings, **{k: v for k, v in (("tr", args.tr), ("preset", args.preset),
                                                                  ("drive", args.drive), ("start", args.start))
                                                if v is not None})
    if (args.atlas is None) != (args.labels is None):
        raise DtbError("--atlas and --labels go together")
    if args.atlas:
        settings = dataclasses.replace(settings, atlas=args.atlas, labels=args.labels)
    signal, state = bold_from_activity(rate, i_exc, interval, settings, seed=seed)
    if len(signal) == 0:
        raise DtbError(f"{path}: the run ({len(rate) * interval:g} s) is shorter than one TR ({settings.tr:g} s)")
    out = Path(args.out) if args.out else path.parent
    out.mkdir(parents=True, exist_ok=True)
    _bold_outputs(signal, regions, settings, out)
    add_bold_to_run(path, signal, settings, state)
    print(f"dtb bold: {signal.shape[1]} regions x {len(signal)} TRs (TR {settings.tr:g} s, preset {settings.preset}, "
          f"drive {settings.drive}) -> {path}:/bold, {out / 'bold.png'}"
          + (f", {out / 'bold.nii.gz'}" if settings.atlas else ""))
    return 0


def _load_atlas(args):
    from atlas.config import load_atlas
    return load_atlas(parcellation=args.atlas, labels=args.labels, connectome=args.connectome,
                      names=args.names, lengths=args.lengths, sizes=args.sizes)


def cmd_atlas_info(args) -> int:
    import numpy as np
    a = _load_atlas(args)
    w, ln = a.connectome.weights, a.connectome.lengths
    off = ~np.eye(len(w), dtype=bool)
    density = float((w[off] > 0).mean())
    delays = ln[(w > 0) & off] / args.velocity
    unit = "mm³" if a.parcellation is not None else "voxels"
    print(f"{len(a.regions)} regions; parcellation: {getattr(a.parcellation, 'source', 'sizes file')}; "
          f"connectome: {a.connectome.source}")
    print(f"volumes ({unit}): min {a.volumes.min():.0f} ({a.regions[int(a.volumes.argmin())]}), median "
          f"{np.median(a.volumes):.0f}, max {a.volumes.max():.0f} ({a.regions[int(a.volumes.argmax())]}), "
          f"total {a.volumes.sum():.0f}")
    print(f"connectome density {100 * density:.1f} % of region pairs; weights {w[w > 0].min():.3g}..{w.max():.3g}")
    if len(delays):
        print(f"delays at {args.velocity:g} m/s: {delays.min():.2f}..{delays.max():.2f} ms (median {np.median(delays):.2f})")
    if args.plots:
        from atlas import plots
        out = Path(args.plots)
        out.mkdir(parents=True, exist_ok=True)
        plots.connectome_png(w, ln, a.regions, out / "connectome.png")
        if a.parcellation is not None:
            plots.parcellation_png(a.parcellation.labels, out / "parcellation.png")
        print(f"figures in {out}")
    return 0


def cmd_atlas_build(args) -> int:
    import os
    from atlas import toml
    from atlas.build import AtlasNetworkSettings, network_config, neurons_per_region
    from dtb.spec import spec_from_dict

    a = _load_atlas(args)
    settings = AtlasNetworkSettings(neurons=args.neurons, indegree=args.indegree, velocity=args.velocity,
                                    seed=args.seed)
    net = network_config(a.regions, a.volumes, a.connectome.weights, a.connectome.lengths, settings)
    spec = spec_from_dict(net, source="<atlas build>")   # validate before writing
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"dtb atlas build: {len(a.regions)} regions from {a.connectome.source}, {spec.n_neurons} neurons, "
              f"indegree {args.indegree}, velocity {args.velocity:g} m/s, seed {args.seed}")
    from dtb.files import atomic_path
    with atomic_path(out) as tmp:
        tmp.write_text(toml.dumps(net, header))
    print(f"{header}\n{len(spec.populations)} populations, {len(spec.projections)} projections -> {out}")
    if args.plots:
        from atlas import plots
        d = Path(args.plots)
        d.mkdir(parents=True, exist_ok=True)
        plots.connectome_png(a.connectome.weights, a.connectome.lengths, a.regions, d / "connectome.png")
        plots.neurons_png(a.regions, neurons_per_region(a.volumes, settings.neurons, settings.min_neurons),
                          a.volumes, d / "neurons.png")
        if a.parcellation is not None:
            plots.parcellation_png(a.parcellation.labels, d / "parcellation.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DtbError as e:
        if _is_rank0():
            print(f"dtb: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("dtb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:          # output piped into head & co.
        sys.stderr.close()
        return 0


def _is_rank0() -> bool:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return os.environ[var] == "0"
    return True
