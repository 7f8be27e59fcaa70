"""Partition benchmark: the locality-aware partition (METIS on the region graph) against
round-robin and contiguous gid ranges, on the whole-brain atlas network (Desikan-Killiany +
TVB-68, 100 synapses per neuron, 20 % long-range).

    python benchmarks/partition.py [--neurons 100000] [--ranks 2 4 8 16 64] [--run-seconds 1]

1. Planning (no simulation) for every rank count: load imbalance, the fraction of synapses whose
   source is on another rank, and spikes each rank would have to receive per spike emitted in
   the network with a targeted exchange (a rank needs a spike only if it holds a target of it).
2. Measured on 2 ranks (``dtb run --partition ...``, allgather and targeted exchange): the
   exchange interval D (the smallest
   delay of a projection that crosses ranks), exchange rounds, bytes rank 0 sent in the allgather and
   exchange time per biological second, proxies and total wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def targeted_share(spec, part) -> float:
    """Mean number of other ranks holding at least one target of a neuron, over n_ranks - 1 (the
    fraction of an allgather's traffic a targeted exchange would still send)."""
    from dtb.partition import expected_synapse_matrix
    pops = spec.populations
    owner = part.owner_array()
    frac = np.array([np.bincount(owner[p.first_gid:p.first_gid + p.size], minlength=part.n_ranks) for p in pops],
                    dtype=float)                                     # (pop, rank) neurons
    syn = expected_synapse_matrix(spec)                               # (src pop, tgt pop)
    sizes = np.array([p.size for p in pops], dtype=float)
    # expected synapses from one neuron of pop i onto rank q: sum_j syn[i, j] / size_i * frac[j, q] / size_j
    per_rank = (syn / sizes[:, None] / sizes[None, :]) @ frac        # (src pop, rank)
    p_needed = 1 - np.exp(-per_rank)                                  # Poisson: at least one target there
    own = frac / sizes[:, None]                                       # where the source pop lives
    # a source on rank r needs ranks q != r
    needed = (p_needed.sum(axis=1)[:, None] - p_needed) * own          # per pop, per home rank
    mean_needed = (needed.sum(axis=1) * sizes).sum() / sizes.sum()
    return float(mean_needed / max(part.n_ranks - 1, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, default=100_000)
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8, 16, 64])
    ap.add_argument("--run-seconds", type=float, default=1.0, help="biological time of the measured 2-rank runs")
    args = ap.parse_args()
    from atlas import toml
    from dtb.partition import make_partition, plan
    from dtb.spec import spec_from_dict

    net = {"simulation": {"duration": f"{args.run_seconds} s", "seed": 7},
           "atlas": {"neurons": args.neurons, "indegree": 100}, "monitors": {"region_interval": "1 ms"}}
    spec = spec_from_dict(net)
    print(f"whole-brain atlas network: {spec.n_neurons} neurons, {len(spec.regions)} regions, "
          f"{len(spec.populations)} populations, 100 synapses per neuron (20 % long-range)\n")
    print(f"{'ranks':>5} {'partition':<12} {'imbalance':>9} {'cross-rank':>10} {'targeted/allgather':>18} {'segments':>8}")
    for n in args.ranks:
        for method in ("regions", "contiguous", "round-robin"):
            part = make_partition(spec, n, method)
            _, tot = plan(spec, part)
            print(f"{n:>5} {method:<12} {100 * tot['imbalance']:8.2f}% {100 * tot['cross_fraction']:9.1f}% "
                  f"{targeted_share(spec, part):18.2f} {tot['segments']:>8}", flush=True)
    print("\ncross-rank: synapses whose source is on another rank; targeted/allgather: share of the allgather's "
          "traffic an exchange that sends each spike only to ranks holding its targets would send\n")
    with tempfile.TemporaryDirectory() as d:
        print(f"measured on 2 ranks, {args.run_seconds:g} s biological time (allgather: every spike to every rank; "
              f"targeted: only to ranks holding its targets):")
        print(f"{'partition':<12} {'exchange':<9} {'D (ms)':>6} {'rounds/s':>8} {'sent MB/s rank0':>15} "
              f"{'exchange s/s':>12} {'remote syn':>10} {'wall s/s':>8} {'spikes':>9}")
        for method, exchange in (("regions", "blocking"), ("regions", "targeted"), ("contiguous", "blocking"),
                                 ("round-robin", "blocking"), ("round-robin", "targeted")):
            cfg = Path(d) / f"atlas_{exchange}.toml"
            net["simulation"]["exchange"] = exchange
            cfg.write_text(toml.dumps(net, "benchmarks/partition.py"))
            out = Path(d) / f"{method}_{exchange}"
            cmd = [sys.executable, "-m", "dtb", "run", str(cfg), "--ranks", "2", "--partition", method, "--out",
                   str(out), "--no-plots", "-q", "--no-progress"]
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            s = json.loads((out / "summary.json").read_text())
            D_ms = s["min_delay_steps"] * spec.simulation.dt * 1e3
            rounds = 1.0 / (s["min_delay_steps"] * spec.simulation.dt)
            mb = s["exchange_bytes_rank0"] / args.run_seconds / 1e6
            print(f"{method:<12} {'allgather' if exchange == 'blocking' else exchange:<9} {D_ms:6.1f} {rounds:8.0f} {mb:15.2f} "
                  f"{s['exchange_s_rank0'] / args.run_seconds:12.3f} "
                  f"{s['synapses_remote']:>10} {s['wall_s'] / args.run_seconds:8.2f} {s['spikes']:>9}", flush=True)


if __name__ == "__main__":
    main()
