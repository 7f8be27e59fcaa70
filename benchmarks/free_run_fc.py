"""Free-run FC of the HCP twin against the global coupling: no filter, every hyperparameter at 1,
no per-neuron multipliers; what the network itself makes of the connectome.

    python benchmarks/free_run_fc.py [--subjects 101309] [--coupling 6 7 8] [--members 8]
                                     [--neurons-per-region 20] [--trs 300] [other assimilation_hcp options]

For each subject and coupling (a factor on the long-range weights, as ``[assimilation]
coupling``): ``--members`` independent networks run freely over the spin-up and ``--trs`` TRs; their
BOLD, preprocessed as the data (by default: detrend, causal band-pass 0.01-0.1 Hz, z-score), is
split into halves like the data's, and each half's FC is compared with the data's same half
(Pearson r of the upper triangles: each member's own, averaged, and of the members' mean FC).
Printed with the mean FC value (how synchronised the network is) and the wall time. Defaults are
those of the 20-per-region HCP twin (square-root in-strength weights).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy.io import loadmat

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assimilation_hcp import TR, config_for, parser, preprocess_like, subject_dir  # noqa: E402
from assimilation.ensemble import ensemble_spec  # noqa: E402
from assimilation.pipeline import coupled  # noqa: E402
from assimilation.validation import held_out_fc  # noqa: E402
from dtb.spec import spec_from_dict  # noqa: E402


def free_run_bold(spec, coupling: float, members: int, n_tr: int) -> np.ndarray:
    """Model BOLD (n_tr, members, regions) of ``members`` free networks after the spin-up."""
    from dtb.bold import attach_bold
    from dtb.engine import Simulation
    spin = int(np.ceil(spec.assimilation.spinup / spec.bold.tr))
    sim = Simulation(ensemble_spec(coupled(spec, coupling, None), members), keep_region_rows=False)
    attach_bold(sim)
    sim.run((spin + n_tr) * spec.bold.tr)
    sim.finish_exchange()
    return np.array(sim.bold.signal)[spin:].reshape(n_tr, members, len(spec.regions))


def main() -> None:
    ap = parser()
    ap.set_defaults(band_pass=[0.01, 0.1], members=8, neurons_per_region=20, long_range_scaling="in_strength",
                    long_range_exponent=0.5, coupling=[6.0])
    args = ap.parse_args()
    from atlas.builtin import hcp_subjects
    print(f"{'subject':>8} {'coupling':>8} {'train 1':>8} {'train mn':>8} {'held 1':>8} {'held mn':>8} "
          f"{'mean FC':>8} {'wall s':>7}", flush=True)
    for s in args.subjects or hcp_subjects():
        tc = loadmat(subject_dir(s) / "functional" / "TC_rsfMRI_REST1_LR.mat")["tc"][:, :args.trs]
        z = preprocess_like(tc.T, TR, args)
        half = len(z) // 2
        spec = spec_from_dict(config_for(s, args))
        for g in args.coupling:
            t0 = time.perf_counter()
            bold = free_run_bold(spec, g, args.members, len(z))
            train, _, _ = held_out_fc(bold[:half], z[:half], spec)
            held, fc_model, _ = held_out_fc(bold[half:], z[half:], spec)
            mean_fc = float(fc_model[np.triu_indices(len(fc_model), 1)].mean())
            print(f"{s:>8} {g:8g} {train['fc_r_members']:8.3f} {train['fc_r_ensemble']:8.3f} "
                  f"{held['fc_r_members']:8.3f} {held['fc_r_ensemble']:8.3f} {mean_fc:8.3f} "
                  f"{time.perf_counter() - t0:7.0f}", flush=True)


if __name__ == "__main__":
    main()
