"""The Hopf baseline of ``dtb validate`` (neurolib's Hopf model on the subject's connectome, K
chosen on the training half) recomputed for kept ``assimilation.h5`` files of the HCP benchmark,
without the twin's free run: its held-out FC r and its FCD's KS distance to the data's, for files
validated before ``dtb validate`` computed the latter. Both depend only on the subject's data and
connectome, not on the twin.

    python benchmarks/hopf_fcd.py DIR/131217.h5 [more.h5 ...] [--runs 24]

The subject is the file's name; the data are the file's /observed (preprocessed as the
benchmark does), split at its n_train. Printed beside the twin's FCD KS from /validation when
the file has it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assimilation_hcp import config_for, parser, subject_dir  # noqa: E402
from assimilation.fc_baselines import hopf_fc_r  # noqa: E402
from assimilation.pipeline import preprocessed  # noqa: E402
from atlas.io import read_connectome  # noqa: E402
from dtb.spec import spec_from_dict  # noqa: E402


def hopf_of(path: Path, runs: int) -> dict:
    """The Hopf baseline's entries (assimilation.fc_baselines.hopf_fc_r) for one kept file."""
    subject = path.stem.split("_")[0]
    spec = spec_from_dict(config_for(subject, parser().parse_args([])))
    structural = subject_dir(subject) / "structural"
    c = read_connectome(str(structural / "DTI_CM.mat"), lengths=str(structural / "DTI_LEN.mat"))
    with h5py.File(path, "r") as f:
        observed, n_train = f["observed"][()], int(f.attrs["n_train"])
        twin_ks = float(f["validation"].attrs["fcd_ks"]) if "validation" in f else float("nan")
    out = hopf_fc_r(np.asarray(c.weights, dtype=float), c.lengths, observed[:n_train], observed[n_train:],
                    spec.bold.tr, runs, lambda b, _tr: preprocessed(b, spec))
    return {"subject": subject, "fcd_ks_twin": twin_ks, **out}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path, help="assimilation.h5 files named <subject>[_...].h5")
    ap.add_argument("--runs", type=int, default=24, help="Hopf runs at the chosen K (default 24, as 24 members)")
    args = ap.parse_args(argv)
    print(f"{'subject':>8} {'K':>5} {'FC r each':>10} {'FC r mean':>10} {'FCD KS Hopf':>12} {'FCD KS twin':>12}")
    for path in args.files:
        t0 = time.perf_counter()
        r = hopf_of(path, args.runs)
        print(f"{r['subject']:>8} {r['hopf_K']:5g} {r['fc_hopf_runs']:10.3f} {r['fc_hopf']:10.3f} "
              f"{r['fcd_ks_hopf']:12.3f} {r['fcd_ks_twin']:12.3f}   ({time.perf_counter() - t0:.0f} s, {args.runs} runs)")


if __name__ == "__main__":
    main()
