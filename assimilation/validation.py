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
                            at the TR);
                            baseline_runs; the free run's activity over the held-out TRs
                            (assimilation.activity): rate_hz (all neurons), rate_min_hz and
                            rate_max_hz (the lowest and highest region's mean), sync_fraction
                            (fraction of region x TR windows whose excess rate CV exceeds 1)
    /validation/fc/model    (R, R) the members' mean FC; /validation/fc/observed (R, R) the data's
    /validation/bold        (n_test, M, R) the free run's BOLD (observation units)

Model BOLD goes through the data's preprocessing before its FC. Written with the PNGs
``forecast_skill.png`` (skill and r against horizon, twin and baselines) and ``fc.png``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import h5py
import numpy as np

from assimilation.enkf import FCD_STEP, FCD_WINDOW, fc_matrix, fc_similarity, fcd_values, ks_distance
from assimilation.ensemble import ensemble_spec
from assimilation.pipeline import (balance_rates, coupled, fitted_x, preprocessed, preprocessed_members, read_scores,
                                   region_connectivity, region_delays, simulation, spinup_trs)
from assimilation.runner import Assimilator
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
                "coupling": float(h.attrs.get("coupling", 1.0))}


def free_run(run: dict, test: np.ndarray, spec: NetworkSpec, comm) -> tuple[np.ndarray, float, dict]:
    """The fitted twin (each member at its fitted hyperparameters, /hp/fitted) run freely over
    the held-out TRs after a spin-up: its BOLD (n_test, M, R) in observation units, the wall, and
    its firing rates and synchrony over the held-out TRs (:mod:`assimilation.activity`)."""
    from assimilation.activity import ActivityMonitor
    s = spec.assimilation
    spec = coupled(spec, run["coupling"], balance_rates(spec, comm))     # the global coupling fitted with it
    sim = simulation(ensemble_spec(spec, s.members), comm, per_neuron_scales=True, keep_region_rows=False,
                     keep_spikes=False)
    fitted = run["fitted"]
    x0 = run["x_final"] if fitted is None else fitted_x(fitted, s)
    # a free run: no region input (it exists only where data move it)
    a = Assimilator(sim, spec, dataclasses.replace(s, input_std=0.0), test, sc=None, n_assimilate=0, x0=x0)
    activity = ActivityMonitor(sim)
    t0 = time.perf_counter()
    sim.run(spinup_trs(spec) * spec.bold.tr)
    a.active = True
    activity.start()
    a.mu, a.sigma = run["mu"], run["sigma"]
    sim.run(len(test) * spec.bold.tr)
    wall = time.perf_counter() - t0
    sim.finish_exchange()
    return np.array(a.forecast), wall, activity.summary()


def validate(run_path: Path, observed_all: np.ndarray, spec: NetworkSpec, comm, baseline_runs: int | None = None,
             hopf: bool = True, connectome: tuple[np.ndarray, np.ndarray | None] | None = None) -> dict | None:
    """Run the fitted twin freely over the held-out TRs, compare its FC with the data's and with
    the FC baselines' (``baseline_runs`` runs each, default one per member; ``hopf``: include the
    Hopf model when neurolib is installed; ``connectome``: (weights [target, source], tract
    lengths in mm or None) for the baselines, default the network's own); rank 0 adds
    /validation to the run file and returns the metrics (other ranks None)."""
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
    out.update(fc_baseline_metrics(spec, observed_all[:n_train], test, baseline_runs or spec.assimilation.members,
                                   hopf, connectome))
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
                        connectome: tuple[np.ndarray, np.ndarray | None] | None = None) -> dict:
    """The FC baselines (assimilation.fc_baselines) from ``connectome`` (weights, lengths), by
    default the network's own: expected synapses between regions, and tract lengths that give
    its mean delays at the Hopf model's signal speed."""
    from assimilation.fc_baselines import fc_baselines
    own = connectome is None
    weights, lengths = ((region_connectivity(spec).T,                          # [target, source]
                         region_delays(spec) * 1e3 * HOPF_SIGNAL_SPEED)        # s -> ms -> mm
                        if own else connectome)
    out = fc_baselines(weights, lengths, train, test, spec.bold.tr, runs, lambda b, tr: preprocessed(b, spec), hopf)
    out.update({"baseline_runs": runs, "baseline_connectome": "the network's own" if own else "given"})
    return out


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
    """FC r on the held-out part: twin and baselines, each run's own FC and the runs' mean FC."""
    rows = [f"{'held-out FC r':<28}{'each run':>10}{'mean FC':>10}",
            f"{'twin (free run)':<28}{v['fc_r_members']:10.3f}{v['fc_r_ensemble']:10.3f}",
            f"{'structural connectome':<28}{'':>10}{v['fc_sc']:10.3f}"]
    if "fc_lin" in v:
        rows.append(f"{'linear network (gain %.2f)' % v['lin_gain']:<28}{v['fc_lin_runs']:10.3f}{v['fc_lin']:10.3f}")
    if "fc_hopf" in v:
        rows.append(f"{'Hopf model (K %g)' % v['hopf_K']:<28}{v['fc_hopf_runs']:10.3f}{v['fc_hopf']:10.3f}")
    else:
        rows.append("Hopf model: not run (pip install neurolib, or --no-hopf was given)")
    if "fcd_ks" in v:
        hopf_ks = f", Hopf model vs data {v['fcd_ks_hopf']:.3f}" if "fcd_ks_hopf" in v else ""
        rows.append(f"FCD (30-TR windows): KS distance twin vs data {v['fcd_ks']:.3f}{hopf_ks} (0: the same distribution)")
    if "rate_hz" in v:
        rows.append(f"free run: {v['rate_hz']:.1f} Hz mean rate (regions {v['rate_min_hz']:.1f}-{v['rate_max_hz']:.1f} Hz); "
                    f"{100 * v['sync_fraction']:.1f} % of region x TR windows synchronous (excess rate CV > 1)")
    return "\n".join(rows)
