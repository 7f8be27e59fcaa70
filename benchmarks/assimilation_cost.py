"""Cost of one assimilation step (one TR): wall time for members x regions x neurons per region,
split between simulating the ensemble and the filter (analysis + new conductances), on 1 and 2
ranks, with the speed-up.

    python benchmarks/assimilation_cost.py [--subject 101309] [--members 24] [--neurons-per-region 10 20] [--trs 40]

The network and filter settings are benchmarks/assimilation_hcp.py's defaults.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from scipy.io import loadmat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from assimilation_hcp import config_for, parser, subject_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subject", default="101309")
    ap.add_argument("--members", type=int, default=24)
    ap.add_argument("--neurons-per-region", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--indegree", type=int, default=50)
    ap.add_argument("--trs", type=int, default=40)
    ap.add_argument("--dt-ms", type=float, default=1.0)
    args = ap.parse_args()
    from atlas import toml
    tc = loadmat(subject_dir(args.subject) / "functional" / "TC_rsfMRI_REST1_LR.mat")["tc"][:, :args.trs]
    print(f"{'members':>7} {'regions':>7} {'neurons/region':>14} {'neurons':>8} {'ranks':>5} {'s/TR':>6} "
          f"{'simulate':>8} {'filter':>7} {'speed-up':>8}")
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "bold.npy"
        np.save(data, tc)
        for npr in args.neurons_per_region:
            ns = parser().parse_args(["--neurons-per-region", str(npr), "--indegree", str(args.indegree),
                                      "--dt-ms", str(args.dt_ms), "--members", str(args.members), "--coupling"])
            net = config_for(args.subject, ns)
            net["assimilation"]["spinup"] = "2 s"
            cfg = Path(d) / f"n{npr}.toml"
            cfg.write_text(toml.dumps(net, "benchmarks/assimilation_cost.py"))
            one = None
            for ranks in (1, 2):
                out = Path(d) / f"n{npr}_r{ranks}"
                cmd = [sys.executable, "-m", "dtb", "assimilate", str(cfg), "--bold", str(data), "--train-fraction",
                       "1", "--out", str(out), "--no-plots", "-q", "--no-progress", "--ranks", str(ranks)]
                subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
                with h5py.File(out / "assimilation.h5") as h:
                    a = dict(h.attrs)
                n = int(a["n_train"])
                per_tr = float(a["wall_per_tr_s"])
                one = per_tr if ranks == 1 else one
                print(f"{args.members:>7} {tc.shape[0]:>7} {npr:>14} {int(a['neurons_per_member']) * args.members:>8} "
                      f"{ranks:>5} {per_tr:6.2f} {float(a['simulate_s']) / n:8.2f} {float(a['filter_s']) / n:7.3f} "
                      f"{one / per_tr:8.2f}", flush=True)


if __name__ == "__main__":
    main()
