"""``dtb validate``: the fitted twin run freely over the held-out part, its functional
connectivity beside the baselines', and the held-out forecast comparison of ``dtb assimilate``.

Adds to ``assimilation.h5`` (a copy edited, then renamed over it):

    /validation             attrs: n_test, wall_s; fc_r_members (mean over members of each member's
                            FC r), fc_r_members_sd, fc_r_ensemble (r of the members' mean FC),
                            fcd_ks (KS distance of the FCD values, 30-TR windows, step 5, when at
                            least two windows fit); the FC baselines fitted on the training part:
                            fc_sc (the network's connectome), lin_gain, fc_lin_runs, fc_lin (linear
                            network: each run's FC r averaged, and its runs' mean FC), hopf_K,
                            fc_hopf_runs, fc_hopf (neurolib's Hopf model, when installed),
                            fcd_ks_hopf (its FCD's KS distance to the data's, its BOLD resampled
                            at the TR); with an effective connectivity, fc_ec_runs, fc_ec,
                            fcd_ks_ec (the linear model on it); fc_train (the data's training
                            FC against its held-out FC: the ceiling);
                            baseline_runs; the free run's activity over the held-out TRs
                            (assimilation.activity): rate_hz (all neurons), rate_min_hz and
                            rate_max_hz (the lowest and highest region's mean), sync_fraction
                            (fraction of region x TR windows whose excess rate CV exceeds 1),
                            rate_e_hz, rate_e_min_hz, rate_e_max_hz (excitatory neurons, per
                            region of every member), rate_e_in_range (fraction in 1-10 Hz),
                            rate_e_over_ceiling (regions above 20 Hz); with --others, subject
                            specificity (identifiability): id_subjects, and per model (twin,
                            sc, lin, ec) id_<model>_own, _others, _diff, _rank
    /validation/fc/model    (R, R) the members' mean FC; /validation/fc/observed (R, R) the data's
    /validation/bold        (n_test, M, R) the free run's BOLD (observation units)

Model BOLD goes through the data's preprocessing before its FC. Written with the PNGs
``forecast_skill.png`` (skill and r against horizon, twin and baselines) and ``fc.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np

from assimilation.enkf import FCD_STEP, FCD_WINDOW, fc_matrix, fc_similarity, fcd_values, ks_distance
from assimilation.pipeline import (balance_rates, fitted_x, preprocessed, preprocessed_members, read_scores,
                                   region_connectivity, region_delays, spinup_trs)
from assimilation.structure import TwinStructure, twin_simulation
from dtb.errors import DtbError
from dtb.files import atomic_edit
from dtb.spec import NetworkSpec

#: neurolib's Hopf model turns tract lengths (mm) into delays at this speed (m/s = mm/ms)
HOPF_SIGNAL_SPEED = 20.0


def held_out_fc(model: np.ndarray, test: np.ndarray, spec: NetworkSpec) -> tuple[dict, np.ndarray, np.ndarray]:
    """Free-run model BOLD (T, M, R) against held-out data (T, R): FC r of each member (mean, sd),
    FC r of the members' mean FC, and the KS distance between the FCD values of the members
    (pooled) and of the data. Returns (metrics, model FC, data FC)."""
    fc_obs = fc_matrix(test)
    each = preprocessed_members(model, spec)
    fc_each = [fc_matrix(b) for b in each]
    fc_members = [fc_similarity(f, fc_obs) for f in fc_each]
    fc_ens = np.mean(fc_each, axis=0)
    out = {"fc_r_members": float(np.mean(fc_members)), "fc_r_members_sd": float(np.std(fc_members)),
           "fc_r_ensemble": fc_similarity(fc_ens, fc_obs)}
    fcd_data = fcd_values(test, FCD_WINDOW, FCD_STEP)
    if len(fcd_data):
        fcd_model = np.concatenate([fcd_values(b, FCD_WINDOW, FCD_STEP) for b in each])
        out["fcd_ks"] = ks_distance(fcd_model, fcd_data)
    return out, fc_ens, fc_obs


def _read_run(run_path: Path) -> dict:
    with h5py.File(run_path, "r") as h:
        return {"n_train": int(h.attrs["n_train"]), "n_total": int(h.attrs["n_total"]),
                "fitted": h["hp/fitted"][()] if "hp/fitted" in h else None, "x_final": h["hp/x_final"][()],
                "mu": h["operator/mu"][()], "sigma": h["operator/sigma"][()],
                "structure": TwinStructure.read(h)}


def free_run(run: dict, test: np.ndarray, spec: NetworkSpec, comm) -> tuple[np.ndarray, float, dict]:
    """The fitted twin (each member at its fitted hyperparameters, /hp/fitted, on the structure
    fitted with it: effective connectivity, global coupling, operating point; its region input,
    if any, running with its noise) run freely over the held-out TRs after a spin-up: its BOLD
    (n_test, M, R) in observation units, the wall, and its firing rates and synchrony over the
    held-out TRs (:mod:`assimilation.activity`)."""
    from assimilation.activity import ActivityMonitor
    s = spec.assimilation
    structure = run["structure"]
    net = structure.network(spec, balance_rates(spec, comm))
    fitted = run["fitted"]
    x0 = run["x_final"] if fitted is None else fitted_x(fitted, s)
    sim, a = twin_simulation(net, structure, s.members, comm, test, free=True, x0=x0, n_assimilate=0)
    activity = ActivityMonitor(sim)
    t0 = time.perf_counter()
    sim.run(spinup_trs(net) * net.bold.tr)
    a.active = True
    activity.start()
    a.mu, a.sigma = run["mu"], run["sigma"]
    sim.run(len(test) * net.bold.tr)
    wall = time.perf_counter() - t0
    sim.finish_exchange()
    return np.array(a.forecast), wall, activity.summary()


def validate(run_path: Path, observed_all: np.ndarray, spec: NetworkSpec, comm, baseline_runs: int | None = None,
             hopf: bool = True, connectome: tuple[np.ndarray, np.ndarray | None] | None = None,
             identification: list[np.ndarray] | None = None) -> dict | None:
    """Run the fitted twin freely over the held-out TRs, compare its FC with the data's and with
    the FC baselines' (``baseline_runs`` runs each, default one per member; ``hopf``: include the
    Hopf model when neurolib is installed; ``connectome``: (weights [target, source], tract
    lengths in mm or None) for the baselines, default the network's own); with
    ``identification`` (held-out parts only, this subject's first: :func:`identifiability`),
    each model's subject specificity. Rank 0 adds /validation to the run file and returns the
    metrics (other ranks None)."""
    run = _read_run(run_path)
    if len(observed_all) != run["n_total"]:
        raise DtbError(f"the data has {len(observed_all)} TRs, but {run_path} was fitted on data with {run['n_total']}")
    n_train = run["n_train"]
    test = observed_all[n_train:]
    if len(test) < 10:
        raise DtbError(f"only {len(test)} held-out TRs to validate on (the training fraction was "
                       f"{n_train / run['n_total']:.2f})")
    model, wall, activity = free_run(run, test, spec, comm)
    if comm.Get_rank() != 0:
        return None
    out, fc_ens, fc_obs = held_out_fc(model, test, spec)
    baselines, matrices = fc_baseline_metrics(spec, observed_all[:n_train], test,
                                              baseline_runs or spec.assimilation.members, hopf, connectome,
                                              run["structure"].ec)
    out.update(baselines)
    if identification is not None:
        out.update(identifiability({"twin": fc_ens, **matrices}, identification))
    out.update({"n_test": len(test), "wall_s": wall, **activity})
    with atomic_edit(run_path) as tmp, h5py.File(tmp, "a") as h:
        if "validation" in h:
            del h["validation"]
        g = h.create_group("validation")
        g.attrs.update(out)
        g.create_dataset("fc/model", data=fc_ens)
        g.create_dataset("fc/observed", data=fc_obs)
        g.create_dataset("bold", data=model)
    return out


def fc_baseline_metrics(spec: NetworkSpec, train: np.ndarray, test: np.ndarray, runs: int, hopf: bool,
                        connectome: tuple[np.ndarray, np.ndarray | None] | None = None,
                        ec=None) -> tuple[dict, dict[str, np.ndarray]]:
    """The FC baselines (assimilation.fc_baselines) from ``connectome`` (weights, lengths), by
    default the network's own: expected synapses between regions, and tract lengths that give
    its mean delays at the Hopf model's signal speed; with ``ec``, the linear model on it."""
    from assimilation.fc_baselines import fc_baselines
    own = connectome is None
    weights, lengths = ((region_connectivity(spec).T,                          # [target, source]
                         region_delays(spec) * 1e3 * HOPF_SIGNAL_SPEED)        # s -> ms -> mm
                        if own else connectome)
    out, matrices = fc_baselines(weights, lengths, train, test, spec.bold.tr, runs,
                                 lambda b, tr: preprocessed(b, spec), hopf, ec=ec)
    out.update({"baseline_runs": runs, "baseline_connectome": "the network's own" if own else "given"})
    return out, matrices


#: the models whose subject specificity is reported, and their keys in /validation's attributes
IDENTIFIED = {"twin": "twin", "SC": "sc", "linear (SC)": "lin", "linear (EC)": "ec"}


def identifiability(models: dict[str, np.ndarray], heldout: list[np.ndarray]) -> dict:
    """Subject specificity (Finn et al. 2015; Amico & Goni 2018) of each model's FC among the
    subjects whose held-out data are ``heldout`` (T_k, R), this model's subject first: its FC r
    with each subject's held-out FC; "id_<model>_own" the r with its own subject,
    "id_<model>_others" the mean r with the others, "id_<model>_diff" their difference
    (differential identifiability) and "id_<model>_rank" its own subject's rank (1: the best)."""
    fcs = [fc_matrix(h) for h in heldout]
    out: dict = {"id_subjects": len(fcs)}
    for name, key in IDENTIFIED.items():
        if name not in models:
            continue
        r = np.array([fc_similarity(models[name], f) for f in fcs])
        out.update({f"id_{key}_own": float(r[0]), f"id_{key}_others": float(r[1:].mean()),
                    f"id_{key}_diff": float(r[0] - r[1:].mean()), f"id_{key}_rank": int(1 + np.sum(r[1:] > r[0]))})
    return out


def heldout_alone(raw: np.ndarray, n_train: int, spec: NetworkSpec) -> np.ndarray:
    """The held-out rows of raw BOLD through the config's preprocessing fitted on themselves
    (trend, filter state and z-score from the held-out rows only): what subject specificity
    compares, so that no training row of any subject enters it."""
    return preprocessed(np.asarray(raw)[n_train:], spec)


# ------------------------------------------------------------------------------- report
def report(run_path: Path) -> str:
    """The comparison, as text: held-out forecasts per horizon (twin and baselines), then the FC."""
    with h5py.File(run_path, "r") as h:
        lines = []
        if "heldout" in h:
            from assimilation.forecast import table
            scores, horizons, label = read_scores(h)
            n = len(h["heldout/origins"])
            lines.append(f"held-out forecasts: {n} origins every {int(h['heldout'].attrs['stride'])} TRs; r = mean "
                         f"over regions of Pearson r, skill = 1 - MSE / MSE(persistence); every model fitted on the "
                         f"training part only" + (f" [{label}]" if label else ""))
            lines.append(table(scores, horizons, label))
        if "validation" in h:
            v = dict(h["validation"].attrs)
            lines.append(fc_table(v))
    return "\n".join(lines)


def fc_table(v: dict) -> str:
    """FC r on the held-out part: twin and baselines, each run's own FC and the runs' mean FC,
    the data's own training FC (the ceiling), FCD, subject specificity and the free run's rates."""
    rows = [f"{'held-out FC r':<30}{'each run':>10}{'mean FC':>10}",
            f"{'twin (free run)':<30}{v['fc_r_members']:10.3f}{v['fc_r_ensemble']:10.3f}"]
    if "fc_train" in v:
        rows.append(f"{'data, training part':<30}{'':>10}{v['fc_train']:10.3f}")
    rows.append(f"{'structural connectome':<30}{'':>10}{v['fc_sc']:10.3f}")
    if "fc_lin" in v:
        rows.append(f"{'linear network (gain %.2f)' % v['lin_gain']:<30}{v['fc_lin_runs']:10.3f}{v['fc_lin']:10.3f}")
    if "fc_ec" in v:
        rows.append(f"{'linear, effective connectivity':<30}{v['fc_ec_runs']:10.3f}{v['fc_ec']:10.3f}")
    if "fc_hopf" in v:
        rows.append(f"{'Hopf model (K %g)' % v['hopf_K']:<30}{v['fc_hopf_runs']:10.3f}{v['fc_hopf']:10.3f}")
    else:
        rows.append("Hopf model: not run (pip install neurolib, or --no-hopf was given)")
    if "fcd_ks" in v:
        others = "".join(f", {name} {v[key]:.3f}" for key, name in (("fcd_ks_ec", "linear EC"), ("fcd_ks_hopf", "Hopf"))
                         if key in v)
        rows.append(f"FCD (30-TR windows): KS distance to the data's: twin {v['fcd_ks']:.3f}{others} (0: the same)")
    if "id_subjects" in v:
        ids = "; ".join(f"{name} {v[f'id_{key}_diff']:+.3f} (own {v[f'id_{key}_own']:.3f}, rank {v[f'id_{key}_rank']})"
                        for name, key in IDENTIFIED.items() if f"id_{key}_diff" in v)
        rows.append(f"subject specificity among {v['id_subjects']} subjects' held-out FC (own r minus the others' "
                    f"mean): {ids}")
    if "rate_hz" in v:
        rows.append(f"free run: {v['rate_hz']:.1f} Hz mean rate (regions {v['rate_min_hz']:.1f}-{v['rate_max_hz']:.1f} Hz); "
                    f"{100 * v['sync_fraction']:.1f} % of region x TR windows synchronous (excess rate CV > 1)")
    if "rate_e_hz" in v:
        rows.append(f"excitatory neurons: {v['rate_e_hz']:.2f} Hz (regions {v['rate_e_min_hz']:.2f}-"
                    f"{v['rate_e_max_hz']:.2f} Hz); {100 * v['rate_e_in_range']:.0f} % of regions in 1-10 Hz, "
                    f"{v['rate_e_over_ceiling']} above 20 Hz")
    return "\n".join(rows)
