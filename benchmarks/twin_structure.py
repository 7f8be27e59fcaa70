"""The twin's structure alone, without the filter: effective connectivity, global coupling and
operating point (FIC) fitted on the training half of an HCP subject, then the twin at its prior
hyperparameters run freely over the held-out half. Its held-out FC, FCD and firing rates beside
the baselines' (SC, linear network on the SC, linear model on the EC, the data's training FC),
and each model's subject specificity among all subjects' held-out halves. The screening tool for
the structure's settings (on the tuning subjects); dtb assimilate + dtb validate
(benchmarks/assimilation_hcp.py) add the filter on top.

    python benchmarks/twin_structure.py [--subjects 101309] [--members 12] [any assimilation_hcp option]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.io import loadmat

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assimilation_hcp import TR, TUNING_SUBJECTS, config_for, parser, subject_dir  # noqa: E402


def held_out_rows(subject: str, args, spec) -> tuple[np.ndarray, np.ndarray, int]:
    """(raw (T, R), preprocessed (T, R) with training-part statistics, n_train) of a subject."""
    from assimilation.data import preprocessed
    raw = loadmat(subject_dir(subject) / "functional" / "TC_rsfMRI_REST1_LR.mat")["tc"][:, :args.trs].T
    n_train = len(raw) // 2
    return raw, preprocessed(raw, spec, n_train), n_train


def run(subject: str, args) -> dict:
    from assimilation.activity import ActivityMonitor
    from assimilation.structure import broadband, fit_structure, prior_x, spinup_trs, twin_simulation
    from assimilation.validation import fc_baseline_metrics, held_out_fc, heldout_alone, identifiability
    from atlas.builtin import hcp_subjects
    from dtb.engine.kernel import world_comm
    from dtb.spec import spec_from_dict
    spec = spec_from_dict(config_for(subject, args))
    raw, z, n = held_out_rows(subject, args, spec)
    comm = world_comm()
    t0 = time.time()
    structure = fit_structure(spec, z[:n], broadband(raw, spec, n)[:n], comm)
    fit_s = time.time() - t0
    net = structure.network(spec)
    M = args.members
    sim, a = twin_simulation(net, structure, M, comm, z[n:], free=True, x0=prior_x(net, M), n_assimilate=0)
    activity = ActivityMonitor(sim)
    sim.run(spinup_trs(net) * TR)
    a.active = True
    activity.start()
    t1 = time.time()
    sim.run((len(z) - n) * TR)
    run_s = time.time() - t1
    model = np.array(a.forecast)
    out, fc_model, _ = held_out_fc(model, z[n:], spec)
    base, matrices = fc_baseline_metrics(spec, z[:n], z[n:], M, False, None, structure.ec)
    out.update(base)
    ident = [heldout_alone(raw, n, spec)] + [heldout_alone(*held_out_rows(o, args, spec)[::2], spec)
                                             for o in hcp_subjects() if o != subject]
    out.update(identifiability({"twin": fc_model, **matrices}, ident))
    out.update(activity.summary())
    iu = np.triu_indices(len(fc_model), 1)
    out.update({"fc_mean_twin": float(fc_model[iu].mean()), "fc_mean_data": float(np.corrcoef(z[n:].T)[iu].mean())})
    out.update({"subject": subject, "coupling": structure.coupling, "fit_s": fit_s, "s_per_tr": run_s / (len(z) - n),
                "coupling_scores": {str(k): v for k, v in structure.coupling_scores.items()},
                "fic_within": structure.fic.within if structure.fic is not None else float("nan"),
                "ec_gain": structure.ec.gain if structure.ec is not None else float("nan")})
    return out


COLUMNS = ("coupling", "fc_r_members", "fc_r_ensemble", "fc_train", "fc_sc", "fc_lin", "fc_ec_runs", "fc_ec", "fcd_ks",
           "fcd_ks_ec", "fc_mean_twin", "fc_mean_data", "rate_e_hz", "rate_e_min_hz", "rate_e_max_hz", "rate_e_in_range",
           "sync_fraction", "id_twin_diff", "id_twin_rank", "id_sc_diff", "id_ec_diff", "s_per_tr", "fit_s")


def main() -> None:
    ap = parser()
    ap.set_defaults(members=12)
    args = ap.parse_args()
    from atlas.builtin import hcp_subjects
    from dtb.cli.common import setup_logging
    setup_logging(0, quiet=False)
    subjects = args.subjects or [s for s in hcp_subjects() if s in TUNING_SUBJECTS]
    rows = []
    for s in subjects:
        rows.append(run(s, args))
        print(json.dumps({k: rows[-1][k] for k in COLUMNS + ("coupling_scores",) if k in rows[-1]}), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, default=float))
    print(f"\n{'subject':>8} " + " ".join(f"{c[:12]:>12}" for c in COLUMNS))
    for r in rows:
        print(f"{r['subject']:>8} " + " ".join(f"{float(r.get(c, np.nan)):12.3f}" for c in COLUMNS))


if __name__ == "__main__":
    main()
