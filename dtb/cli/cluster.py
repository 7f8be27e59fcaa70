"""``dtb cluster job``, ``plan`` and ``scale``: Slurm jobs that checkpoint and requeue, partition
plans, and projections of cost to larger brains."""

from __future__ import annotations

from pathlib import Path

from dtb.cli.common import add_out, add_ranks, add_seed, setup_logging
from dtb.errors import DtbError
from dtb.units import parse_quantity


def add_parsers(sub) -> None:
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
    add_ranks(job, required=True, help_text="MPI ranks (Slurm tasks)")
    job.add_argument("--nodes", type=int, default=None, help="nodes (default: Slurm decides)")
    job.add_argument("--time", default="01:00:00", help="wall-time limit, Slurm format (default 01:00:00)")
    job.add_argument("--partition", default=None, help="Slurm partition")
    job.add_argument("--account", default=None, help="Slurm account")
    job.add_argument("--signal-seconds", type=int, default=120,
                     help="seconds before the limit at which the job checkpoints (default 120)")
    job.add_argument("--checkpoint-every", default=None, metavar="T",
                     help="also checkpoint every T of biological time, e.g. '10 s'")
    job.add_argument("--duration", default=None, help="biological time (default: the config's)")
    add_seed(job)
    add_out(job, "the job folder; default: jobs/<config name>")
    job.add_argument("--submit", action="store_true", help="submit with sbatch and print the job id")
    job.set_defaults(func=cmd_cluster_job)
    plan = csub.add_parser("plan", help="per-rank load of a partition, against round-robin",
                           description="Estimate, without building anything, each rank's neurons, synapses and "
                                       "memory, the load imbalance and the fraction of synapses whose source is on "
                                       "another rank, for the region partitioner (METIS), contiguous ranges and "
                                       "round-robin.")
    plan.add_argument("config", help="network config (TOML)")
    add_ranks(plan, required=True, help_text="ranks to plan for")
    plan.add_argument("--per-rank", action="store_true", help="print every rank's row, not only the totals")
    plan.set_defaults(func=cmd_cluster_plan)
    scale = csub.add_parser("scale", help="project wall time and memory to larger brains on N nodes",
                            description="Project wall time per biological second and memory per node for networks "
                                        "of 10^6 to 8.6x10^10 neurons from per-unit costs (per neuron-step, "
                                        "synaptic event, exchange round, received spike; bytes per neuron and "
                                        "synapse), for an exchange by allgather (simulation.exchange = \"blocking\" "
                                        "or \"overlap\") and a targeted one (\"targeted\"). Costs: "
                                        "those fitted on the development machine, a saved file, or --measure "
                                        "(a few short calibration runs). Model: cluster/scaling.py.")
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
          "whose source is on another rank; max memory: the largest rank's estimated peak, at the build (what dtb "
          "check prints)")
    return 0


def cmd_cluster_scale(args) -> int:
    import tempfile
    from cluster.plots import scaling_png
    from cluster.scaling import (PUBLISHED_DTB, PUBLISHED_NEST, Interconnect, Node, UnitCosts, calibrate,
                                 default_costs, projection)
    setup_logging(0, False)
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
    print("RTF: wall seconds per biological second (not the inverse, as Gazebo reports it). 'allgather': "
          "simulation.exchange = blocking or overlap; 'targeted': simulation.exchange = targeted, each spike sent only "
          "to the ranks that hold its targets.")
    print(f"published: {PUBLISHED_DTB['source']}: RTF {', '.join(map(str, PUBLISHED_DTB['realtime_factors']))}; "
          f"{PUBLISHED_NEST['source']}: RTF {PUBLISHED_NEST['realtime_factor']:.0f}")
    if args.png:
        scaling_png(rows, args.png)
        print(f"plot -> {args.png}")
    return 0
