"""Scaling benchmark: fit dtb's cost model here, check it on runs it has not seen, project to
86 billion neurons beside published figures.

    python benchmarks/scaling.py [--duration 1] [--save cluster/costs_default.json] [--png scaling.png]

1. Calibration (cluster.scaling.CALIBRATION): the whole-brain atlas network at 10k/20k neurons
   (indegree 100) and 10k (indegree 300) on 1 rank, and 5k/10k on 2 ranks; fit per-unit costs.
2. Check: strong scaling (20k neurons on 1 -> 2 ranks) and weak scaling (20k -> 40k neurons on
   1 -> 2 ranks) measured, beside the model's predictions for the same runs (target: within 20 %).
3. Projection from 10^6 to 8.6 x 10^10 neurons (indegree 100, 5 Hz) on the fewest nodes that
   hold them (96 cores and 512 GB per node, JUWELS-Booster-like interconnect), with dtb's
   allgather exchange and with a targeted one, beside the Digital Twin Brain's and NEST's
   published figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cluster.scaling import (CALIBRATION, PUBLISHED_DTB, PUBLISHED_NEST, VALIDATION, Interconnect, Node,  # noqa: E402
                             calibrate, measure_run, predict_run, projection)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds per run (default 1)")
    ap.add_argument("--save", default=None, help="write the fitted costs (JSON) here")
    ap.add_argument("--png", default=None, help="plot the projection here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print("calibration runs (whole-brain atlas network):")
        costs, runs = calibrate(d, args.duration, CALIBRATION, log=print)
        print(f"fitted: c_step {costs.c_step * 1e6:.2f} us, c_neuron {costs.c_neuron * 1e9:.2f} ns per neuron-step, "
              f"c_event {costs.c_event * 1e9:.2f} ns per synaptic event, c_round {costs.c_round * 1e6:.1f} us per "
              f"exchange, c_spike {costs.c_spike * 1e9:.1f} ns per received spike; memory {costs.m0 / 2**20:.0f} MB + "
              f"{costs.m_neuron:.0f} B/neuron + {costs.m_synapse:.1f} B/synapse")
        if args.save:
            costs.save(args.save)
            print(f"costs -> {args.save}")
        print("\ncheck on runs the fit has not seen:")
        print(f"{'run':<34} {'measured s/s':>12} {'predicted':>10} {'error':>7}")
        base = next(r for r in runs if r["neurons"] == 20_000 and r["ranks"] == 1)
        checked = []
        for n, k, r in VALIDATION:
            m = measure_run(n, k, r, args.duration, d)
            pred = predict_run(costs, m) / args.duration
            meas = m["wall_s"] / args.duration
            checked.append((n, r, meas, pred))
            print(f"{f'{n} neurons on {r} ranks':<34} {meas:12.2f} {pred:10.2f} {100 * (pred / meas - 1):+6.1f}%")
        n20 = next(c for c in checked if c[0] == 20_000)
        n40 = next(c for c in checked if c[0] == 40_000)
        t1 = base["wall_s"] / args.duration
        print(f"strong scaling 20k neurons, 1 -> 2 ranks: speed-up measured {t1 / n20[2]:.2f}, predicted "
              f"{predict_run(costs, base) / args.duration / n20[3]:.2f}")
        print(f"weak scaling 20k neurons per rank, 1 -> 2 ranks: efficiency measured {t1 / n40[2]:.2f}, predicted "
              f"{predict_run(costs, base) / args.duration / n40[3]:.2f}")
    node, net = Node(), Interconnect()
    sizes = [1e6, 1e7, 1e8, 1e9, 1e10, 8.6e10]
    rows = projection(costs, sizes, node, net)
    print(f"\nprojection: indegree 100, 5 Hz, dt 0.1 ms, exchange every 1 ms; nodes of {node.cores} cores and "
          f"{node.memory_bytes / 1e9:.0f} GB; {net.source}")
    print(f"{'neurons':>9} {'nodes':>7} {'ranks':>9} {'GB/node':>8} {'compute':>9} {'RTF allgather':>14} {'RTF targeted':>13}")
    for r in rows:
        print(f"{r['neurons']:9.2g} {r['nodes']:7d} {r['ranks']:9d} {r['memory_per_node_GB']:8.0f} {r['compute_s']:9.2f} "
              f"{r['rtf_allgather']:14.3g} {r['rtf_targeted']:13.3g}")
    print(f"\npublished: {PUBLISHED_DTB['source']}: real-time factors {', '.join(map(str, PUBLISHED_DTB['realtime_factors']))}")
    print(f"published: {PUBLISHED_NEST['source']}: real-time factor {PUBLISHED_NEST['realtime_factor']:.0f}")
    print("RTF = wall seconds per biological second (1 = real time).")
    if args.png:
        from cluster.plots import scaling_png
        scaling_png(rows, args.png)
        print(f"plot -> {args.png}")


if __name__ == "__main__":
    main()
