"""Network build benchmark: the whole-brain atlas network (Desikan-Killiany + TVB-68) built for
10^5 and 10^6 neurons (100 synapses each) on 1 and 2 MPI ranks. Each rank draws only the synapses
onto its own neurons and builds its share; with ``--simulate S`` it then runs S biological
seconds and reports the wall per biological second (the loop, after a first step).

    python benchmarks/atlas_build.py [--neurons 100000 1000000] [--ranks 1 2] [--simulate 0.2]

Prints, per run: build wall time (slowest rank), synapses built per second, peak RSS per rank,
and the peak per synapse (the largest rank's peak RSS over its share of the synapses: the whole
process, interpreter and libraries included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def worker(neurons: int, simulate: float) -> None:
    from mpi4py import MPI
    from dtb.engine import Simulation
    from dtb.engine.kernel import peak_rss
    from dtb.spec import spec_from_dict

    comm = MPI.COMM_WORLD
    t0 = time.perf_counter()
    spec = spec_from_dict({"simulation": {"duration": "10 ms"}, "atlas": {"neurons": neurons, "indegree": 100}})
    t_spec = time.perf_counter() - t0
    comm.Barrier()
    t1 = time.perf_counter()
    sim = Simulation(spec, comm=comm)
    comm.Barrier()
    t_build = time.perf_counter() - t1
    n_syn = sim.n_synapses_total()
    rss = comm.gather(peak_rss() / 2**20, root=0)
    mine = comm.gather(sim.stats.n_synapses_local + sim.stats.n_synapses_remote, root=0)
    wall = rate = 0.0
    if simulate > 0:
        sim.run(spec.simulation.dt)                       # the first step loads the kernels
        comm.Barrier()
        t2 = time.perf_counter()
        sim.run(simulate)
        comm.Barrier()
        wall = (time.perf_counter() - t2) / simulate
        rate = comm.allreduce(len(sim.spikes)) / spec.n_neurons / sim.t
    if comm.Get_rank() == 0:
        print(json.dumps({"neurons": spec.n_neurons, "synapses": n_syn, "spec_s": t_spec, "build_s": t_build,
                          "rss_mb": rss, "synapses_per_rank": mine, "ranks": comm.Get_size(),
                          "wall_per_bio_s": wall, "rate_hz": rate}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--simulate", type=float, default=0.0, help="biological seconds to run after the build")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.simulate)
        return
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    print(f"{'neurons':>10}{'ranks':>7}{'synapses':>13}{'spec s':>8}{'build s':>9}{'synapses/s':>12}{'peak RSS MB/rank':>20}"
          f"{'peak B/synapse':>16}" + (f"{'wall s/bio s':>14}{'rate Hz':>9}" if args.simulate else ""))
    for n in args.neurons:
        for r in args.ranks:
            cmd = [mpiexec, "-bind-to", "core", "-n", str(r), sys.executable, str(HERE), "--worker", str(n),
                   "--simulate", str(args.simulate)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            res = json.loads(out)
            rss = "/".join(f"{x:.0f}" for x in res["rss_mb"])
            print(f"{res['neurons']:>10}{r:>7}{res['synapses']:>13,}{res['spec_s']:>8.1f}{res['build_s']:>9.1f}"
                  f"{res['synapses'] / res['build_s']:>12.3g}{rss:>20}"
                  f"{max(m * 2**20 / k for m, k in zip(res['rss_mb'], res['synapses_per_rank'])):>16.1f}"
                  + (f"{res['wall_per_bio_s']:>14.1f}{res['rate_hz']:>9.2f}" if args.simulate else ""), flush=True)


if __name__ == "__main__":
    main()
