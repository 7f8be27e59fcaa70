"""``dtb assimilate`` and ``dtb validate``: fit the twin to measured BOLD, then run the fitted twin
freely on the held-out part. MPI and files live here; the science is in enkf/runner.

Output ``assimilation.h5`` (written to a temporary name, then renamed):

    /                       attrs: config (TOML text), config_path, seed, n_ranks, tr_s, members, coupling
                                   (the global coupling factor used), coupling_scores (JSON: factor -> FC r),
                                   hyperparameters, n_train, n_total, bold_path, settings (JSON),
                                   wall_s, wall_per_tr_s, simulate_s, filter_s
    /network/regions        region names (column order)
    /observed               (n_train, R) the preprocessed data that was assimilated
    /forecast/mean, std     (n_train, R) one-TR-ahead forecast of the ensemble (observation units)
    /analysis/mean, std     (n_train, R) the analysed observation
    /hp/mean, std           (n_train, R, H) hyperparameters after each analysis
    /hp/final               (M, R, H) the final posterior ensemble; /hp/x_final (M, R*H) unbounded
    /hp/fitted              (M, R, H) the fitted twin: each member's mean over the last half of the
                            training TRs (dtb validate and --hyperparameters use it)
    /operator/mu, sigma     (R,) the zscore observation operator's spin-up statistics
    /metrics                attrs: mean Pearson r over regions of forecast, analysis, persistence and
                            AR(1) forecasts; datasets r_forecast, r_analysis, r_persistence, r_ar1 (R,)
    /fc/observed, /fc/forecast   (R, R) functional connectivity of the training data and forecast
    /validation             (after dtb validate) attrs fc_r_members (mean over members of each
                            member's FC r), fc_r_ensemble (r of the members' mean FC), fc_r_sc,
                            fcd_ks (KS distance of the FCD values, 30-TR windows, step 5; when
                            at least two windows fit);
                            fc/model (the members' mean FC), fc/observed, bold (n_test, M, R);
                            model BOLD goes through the data's preprocessing before its FC
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import h5py
import numpy as np

from assimilation.enkf import (ar1_forecast, fc_matrix, fc_similarity, fcd_values, ks_distance, pearson_per_column,
                               persistence_forecast, sc_fc_similarity, to_unbounded)
from assimilation.ensemble import balance_long_range, ensemble_spec, scale_long_range
from assimilation.runner import Assimilator
from dtb.errors import DtbError
from dtb.files import atomic_path
from dtb.spec import NetworkSpec

log = logging.getLogger(__name__)


def region_connectivity(spec: NetworkSpec) -> np.ndarray:
    """Expected synapses between regions (R, R), the network's own structural connectome
    (row = source region, column = target), zero diagonal."""
    from dtb.partition import expected_synapse_matrix
    regions = spec.regions
    idx = np.array([regions.index(p.region) for p in spec.populations])
    m = np.zeros((len(regions),) * 2)
    np.add.at(m, (idx[:, None], idx[None, :]), expected_synapse_matrix(spec))
    np.fill_diagonal(m, 0.0)
    return m


def check_inputs(spec: NetworkSpec, tr: float | None) -> float:
    if spec.assimilation is None:
        raise DtbError(f"{spec.source}: dtb assimilate needs an [assimilation] section (see assimilation.settings)")
    if spec.bold is None:
        raise DtbError(f"{spec.source}: dtb assimilate needs a [bold] section (its tr is the data's TR)")
    if tr is not None and abs(tr - spec.bold.tr) > 1e-9:
        raise DtbError(f"the data's TR ({tr:g} s) differs from the config's [bold] tr ({spec.bold.tr:g} s)")
    steps = spec.bold.tr / spec.simulation.dt
    if abs(steps - round(steps)) > 1e-6:
        raise DtbError(f"TR {spec.bold.tr:g} s is not a multiple of dt ({spec.simulation.dt * 1e3:g} ms)")
    return spec.bold.tr


def load_observed(spec: NetworkSpec, path: str, key: str | None) -> np.ndarray:
    from assimilation.data import load_bold
    raw = load_bold(path, len(spec.regions), key=key, atlas=spec.bold.atlas, labels=spec.bold.labels,
                    regions=spec.regions)
    return preprocessed(raw, spec)


def preprocessed(bold: np.ndarray, spec: NetworkSpec) -> np.ndarray:
    """BOLD (T, R), measured or a model's, through the config's preprocessing (detrend,
    band-pass, z-score), so that data and model FC are computed alike."""
    from assimilation.data import preprocess
    s = spec.assimilation
    return preprocess(bold, spec.bold.tr, s.detrend, s.band_pass, s.zscore, s.band_pass_causal)


def preprocessed_members(model: np.ndarray, spec: NetworkSpec) -> list[np.ndarray]:
    """Each member's BOLD of a free run (T, M, R) through the config's preprocessing."""
    return [preprocessed(model[:, m], spec) for m in range(model.shape[1])]


def _metrics(observed: np.ndarray, forecast: np.ndarray, analysis: np.ndarray) -> dict[str, np.ndarray]:
    """Per region: r of the forecast (rows 1..), the analysis, persistence and AR(1) on the same rows."""
    return {"r_forecast": pearson_per_column(forecast[1:], observed[1:]),
            "r_analysis": pearson_per_column(analysis, observed),
            "r_persistence": pearson_per_column(persistence_forecast(observed), observed[1:]),
            "r_ar1": pearson_per_column(ar1_forecast(observed, observed), observed[1:])}


def fitted_hyperparameters(hp: np.ndarray) -> np.ndarray:
    """The fitted twin's hyperparameters (M, R, H) from their trace (T, M, R, H): each member's
    mean over the last half of the TRs. Under the random walk the hyperparameters also follow the
    data's fluctuations from TR to TR (they act as a slowly varying drive); their mean over time
    is the twin to run freely, and with a small random walk it equals the final value, less noisy."""
    return hp[len(hp) // 2:].mean(axis=0)


def isolated_rates(spec: NetworkSpec, comm) -> dict[str, float]:
    """Each population's rate (Hz) with every long-range weight at 0, over the spin-up (one
    network, the config's seed): the operating point that ``coupling_balance`` keeps."""
    from dtb.engine import Simulation
    duration = max(spec.assimilation.spinup, 1.0)
    sim = Simulation(scale_long_range(spec, 0.0), comm=comm, keep_region_rows=False)
    sim.run(duration)
    return population_rates(sim)


def population_rates(sim) -> dict[str, float]:
    """Each population's mean rate (Hz) since the simulation started, over all ranks."""
    idx, _ = sim.spikes.since(0)
    counts = sim.comm.allreduce(np.bincount(sim.local_population[idx], minlength=len(sim.spec.populations)))
    return {p.name: float(c) / p.size / sim.t for p, c in zip(sim.spec.populations, counts)}


def coupled(spec: NetworkSpec, coupling: float, rates: dict[str, float] | None) -> NetworkSpec:
    """``spec`` at global coupling ``coupling``; balanced (ensemble.balance_long_range) when the
    populations' ``rates`` without long-range input are given."""
    spec = scale_long_range(spec, coupling)
    return spec if rates is None else balance_long_range(spec, rates)


def balance_rates(spec: NetworkSpec, comm) -> dict[str, float] | None:
    """The rates ``coupled`` balances with: measured when ``coupling_balance`` is on, else None."""
    if not spec.assimilation.coupling_balance:
        return None
    t0 = time.perf_counter()
    rates = isolated_rates(spec, comm)
    log.info("coupling balance: populations fire at %.1f Hz on average without long-range input (%.0f s)",
             np.mean(list(rates.values())), time.perf_counter() - t0)
    return rates


def fit_coupling(spec: NetworkSpec, observed: np.ndarray, candidates, comm,
                 rates: dict[str, float] | None = None) -> tuple[float, dict[float, float]]:
    """Global coupling on the training data, as a neural-mass model's K is fitted: for each
    candidate factor on the long-range weights, run ``coupling_members`` independent networks (no
    filter) freely over the spin-up and the training TRs, and keep the factor whose mean FC over
    them is closest (Pearson r of the upper triangles) to the data's; balanced with ``rates`` (see
    ``coupled``), a candidate too strong to balance scores NaN. Returns (factor, {factor: FC r})."""
    from dtb.engine import Simulation
    s = spec.assimilation
    tr = spec.bold.tr
    spinup_tr = max(int(np.ceil(s.spinup / tr)), 2)
    fc_obs = fc_matrix(observed)
    scores: dict[float, float] = {}
    for g in candidates:
        t0 = time.perf_counter()
        try:
            candidate = coupled(spec, g, rates)
        except DtbError as e:
            log.warning("global coupling %g: skipped (%s)", g, e)
            scores[g] = float("nan")
            continue
        sim = Simulation(ensemble_spec(candidate, s.coupling_members), comm=comm, keep_region_rows=False)
        sim.run((spinup_tr + len(observed)) * tr)
        sim.finish_exchange()
        bold = np.array(sim.bold.signal)[spinup_tr:]
        ok = bold.ndim == 2 and np.all(np.isfinite(bold)) and np.all(bold.std(axis=0) > 0)
        if ok:
            members = preprocessed_members(bold.reshape(len(bold), s.coupling_members, len(spec.regions)), spec)
            scores[g] = fc_similarity(np.mean([fc_matrix(b) for b in members], axis=0), fc_obs)
        else:
            scores[g] = float("nan")
        log.info("global coupling %g: FC r %.3f on the training data (%.0f s)", g, scores[g], time.perf_counter() - t0)
        del sim
    finite = {g: r for g, r in scores.items() if np.isfinite(r)}
    if not finite:
        raise DtbError(f"assimilation.coupling: no candidate in {list(candidates)} gave a usable BOLD (constant region)")
    return max(finite, key=finite.get), scores


def assimilate(spec: NetworkSpec, observed_all: np.ndarray, train_fraction: float, out: Path, comm,
               progress: bool = True, bold_path: str = "", config_path: str = "", checkpoint_every: float | None = None,
               resume=None, meta: dict | None = None) -> Path | int | None:
    """Run the filter over the first ``train_fraction`` of the data; rank 0 writes the results
    (returns their path; other ranks None). With ``checkpoint_every`` (s of biological time) the
    network and the filter are checkpointed into OUT/checkpoint; ``resume``: a verified
    CheckpointInfo to continue from. Stopped by SIGUSR1/SIGTERM: returns EXIT_CHECKPOINTED."""
    from dtb.engine import Simulation
    from dtb.engine import checkpoint as ckpt
    s = spec.assimilation
    if not 0 < train_fraction <= 1:
        raise DtbError(f"--train-fraction must be in (0, 1], got {train_fraction:g}")
    n_train = int(round(train_fraction * len(observed_all)))
    if n_train < 3:
        raise DtbError(f"only {n_train} training TRs: need at least 3")
    observed = observed_all[:n_train]
    tr = spec.bold.tr
    spinup_tr = max(int(np.ceil(s.spinup / tr)), 2)
    coupling, coupling_scores = 1.0, {}
    rates = balance_rates(spec, comm)
    if resume is not None:
        coupling = float(resume.manifest.get("coupling", 1.0))
    elif s.coupling:
        coupling, coupling_scores = fit_coupling(spec, observed, s.coupling, comm, rates)
        log.info("global coupling: %g", coupling)
    spec = coupled(spec, coupling, rates)
    meta = dict(meta or {}, coupling=coupling)
    t0 = time.perf_counter()
    ens = ensemble_spec(spec, s.members)
    sim = Simulation(ens, comm=comm, per_neuron_scales=True, keep_region_rows=False)
    a = Assimilator(sim, spec, s, observed, sc=region_connectivity(spec))
    if resume is not None:
        ckpt.restore(sim, resume, extra=a)
        log.info("resumed at TR %d of %d (t = %g s)", a.t, n_train, sim.t)
    build_s = time.perf_counter() - t0
    rank = comm.Get_rank()
    log.info("ensemble of %d members x %d neurons (%d regions) on %d rank(s), built in %.1f s; spin-up %g s",
             s.members, spec.n_neurons, len(spec.regions), comm.Get_size(), build_s, spinup_tr * tr)
    checkpointer = ckpt.Checkpointer(sim, out / "checkpoint", checkpoint_every, dict(meta or {}), extra=a)
    ckpt.install_signal_handlers(sim)
    per_tr = int(round(tr / spec.simulation.dt))
    spin_steps = spinup_tr * per_tr
    end_steps = spin_steps + n_train * per_tr
    if sim.current_step() < spin_steps:
        sim.run((spin_steps - sim.current_step()) * spec.simulation.dt)
        if checkpointer.stopped:
            return ckpt.EXIT_CHECKPOINTED
    if not a.active:
        a.start()
    t_start = a.t
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm
        bar = tqdm(total=n_train, initial=a.t, unit="TR", desc="assimilating")

    def _tick(_sim):
        if bar is not None and a.forecast:
            f = np.array(a.forecast)[:, :, :].mean(axis=1)
            if len(f) > 2:
                r = np.nanmean(pearson_per_column(f[1:], observed[1:len(f)]))
                bar.set_postfix_str(f"forecast r {r:.3f}")
            bar.update(1)
    sim.add_hook(tr, _tick)
    t1 = time.perf_counter()
    sim.run((end_steps - sim.current_step()) * spec.simulation.dt)
    wall = time.perf_counter() - t1
    if bar is not None:
        bar.close()
    sim.finish_exchange()
    if checkpointer.stopped:
        return ckpt.EXIT_CHECKPOINTED
    res = a.results()
    if rank != 0:
        return None
    f, an, hp = res["forecast"], res["analysis"], res["hp"]
    metrics = _metrics(observed, f.mean(axis=1), an.mean(axis=1))
    path = out / "assimilation.h5"
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h:
        h.attrs.update({"config": spec.text, "config_path": config_path, "seed": spec.simulation.seed,
                        "n_ranks": comm.Get_size(), "tr_s": tr, "members": s.members,
                        "hyperparameters": json.dumps(list(s.hyperparameters)), "n_train": n_train,
                        "n_total": len(observed_all), "bold_path": bold_path, "train_fraction": train_fraction,
                        "settings": json.dumps(s.__dict__, default=list), "wall_s": wall,
                        "wall_per_tr_s": wall / max(n_train - t_start, 1),
                        "build_s": build_s, "resumed": resume is not None,
                        "neurons_per_member": spec.n_neurons, "filter_s": a.filter_seconds,
                        "coupling": coupling, "coupling_scores": json.dumps({str(k): v for k, v in coupling_scores.items()}),
                        "simulate_s": wall - a.filter_seconds})
        h.create_dataset("network/regions", data=np.array(spec.regions, dtype="S"))
        h.create_dataset("observed", data=observed)
        for name, arr in (("forecast", f), ("analysis", an)):
            h.create_dataset(f"{name}/mean", data=arr.mean(axis=1))
            h.create_dataset(f"{name}/std", data=arr.std(axis=1))
        h.create_dataset("hp/mean", data=hp.mean(axis=1))
        h.create_dataset("hp/std", data=hp.std(axis=1))
        h.create_dataset("hp/final", data=hp[-1])
        h.create_dataset("hp/x_final", data=res["x_final"])
        h.create_dataset("hp/fitted", data=fitted_hyperparameters(hp))
        h.create_dataset("operator/mu", data=res["mu"])
        h.create_dataset("operator/sigma", data=res["sigma"])
        g = h.create_group("metrics")
        for k, v in metrics.items():
            g.create_dataset(k, data=v)
            g.attrs[k] = float(np.nanmean(v))
        h.create_dataset("fc/observed", data=fc_matrix(observed))
        h.create_dataset("fc/forecast", data=fc_matrix(f.mean(axis=1)))
    return path


#: sliding windows of the FCD: 30 TRs, step 5 (Hansen et al. 2015 use about a minute; held-out
#: halves of resting-state scans leave room for a few dozen windows)
FCD_WINDOW, FCD_STEP = 30, 5


def held_out_metrics(model: np.ndarray, test: np.ndarray, spec: NetworkSpec) -> tuple[dict, np.ndarray, np.ndarray]:
    """Free-run model BOLD (T, M, R) against held-out data (T, R): FC r of each member (mean, sd),
    FC r of the members' mean FC, the structural connectome's FC r, and the KS distance between
    the FCD values of the members (pooled) and of the data. Returns (metrics, model FC, data FC)."""
    fc_obs = fc_matrix(test)
    each = preprocessed_members(model, spec)
    fc_each = [fc_matrix(b) for b in each]
    fc_members = [fc_similarity(f, fc_obs) for f in fc_each]
    fc_ens = np.mean(fc_each, axis=0)
    sc = region_connectivity(spec)
    out = {"fc_r_members": float(np.mean(fc_members)), "fc_r_members_sd": float(np.std(fc_members)),
           "fc_r_ensemble": fc_similarity(fc_ens, fc_obs),
           "fc_r_sc": sc_fc_similarity(sc, fc_obs)}
    fcd_data = fcd_values(test, FCD_WINDOW, FCD_STEP)
    if len(fcd_data):
        fcd_model = np.concatenate([fcd_values(b, FCD_WINDOW, FCD_STEP) for b in each])
        out["fcd_ks"] = ks_distance(fcd_model, fcd_data)
    return out, fc_ens, fc_obs


def validate(run_path: Path, observed_all: np.ndarray, spec: NetworkSpec, comm) -> dict | None:
    """Run the fitted twin (each member at its fitted hyperparameters, /hp/fitted) freely over the held-out TRs and
    compare functional connectivity; rank 0 adds /validation to the run file."""
    from dtb.engine import Simulation
    with h5py.File(run_path, "r") as h:
        n_train = int(h.attrs["n_train"])
        n_total = int(h.attrs["n_total"])
        fitted = h["hp/fitted"][()] if "hp/fitted" in h else None
        x_final = h["hp/x_final"][()]
        mu, sigma = h["operator/mu"][()], h["operator/sigma"][()]
        coupling = float(h.attrs.get("coupling", 1.0))
    if len(observed_all) != n_total:
        raise DtbError(f"the data has {len(observed_all)} TRs, but {run_path} was fitted on data with {n_total}")
    test = observed_all[n_train:]
    if len(test) < 10:
        raise DtbError(f"only {len(test)} held-out TRs to validate on (--train-fraction was {n_train / n_total:.2f})")
    s = spec.assimilation
    tr = spec.bold.tr
    spinup_tr = max(int(np.ceil(s.spinup / tr)), 2)
    spec = coupled(spec, coupling, balance_rates(spec, comm))     # the global coupling fitted with it
    sim = Simulation(ensemble_spec(spec, s.members), comm=comm, per_neuron_scales=True,
                     keep_region_rows=False)
    # a member whose hyperparameter sat on a bound (sigmoid saturated) has its mean there too
    x0 = x_final if fitted is None else to_unbounded(fitted.reshape(len(fitted), -1), s.low, s.high, saturated=True)
    a = Assimilator(sim, spec, s, test, sc=None, n_assimilate=0, x0=x0)
    t0 = time.perf_counter()
    sim.run(spinup_tr * tr)
    a.active = True
    a.mu, a.sigma = mu, sigma
    sim.run(len(test) * tr)
    wall = time.perf_counter() - t0
    sim.finish_exchange()
    if comm.Get_rank() != 0:
        return None
    model = np.array(a.forecast)                    # (n_test, M, R)
    out, fc_ens, fc_obs = held_out_metrics(model, test, spec)
    out.update({"n_test": len(test), "wall_s": wall})
    import shutil
    with atomic_path(run_path) as tmp:
        shutil.copyfile(run_path, tmp)
        with h5py.File(tmp, "a") as h:
            if "validation" in h:
                del h["validation"]
            g = h.create_group("validation")
            g.attrs.update(out)
            g.create_dataset("fc/model", data=fc_ens)
            g.create_dataset("fc/observed", data=fc_obs)
            g.create_dataset("bold", data=model)
    return out


def plots(run_path: Path, out: Path) -> list[Path]:
    """PNGs of an assimilation run: hyperparameters over time, BOLD, per-region r, FC."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with h5py.File(run_path, "r") as h:
        regions = [r.decode() for r in h["network/regions"][()]]
        hps = json.loads(h.attrs["hyperparameters"])
        tr = float(h.attrs["tr_s"])
        obs, f_mean, f_sd = h["observed"][()], h["forecast/mean"][()], h["forecast/std"][()]
        a_mean = h["analysis/mean"][()]
        hp_m, hp_s = h["hp/mean"][()], h["hp/std"][()]
        met = {k: h["metrics"][k][()] for k in h["metrics"]}
        fc_o, fc_f = h["fc/observed"][()], h["fc/forecast"][()]
    written = []
    t = np.arange(len(obs)) * tr
    fig, axes = plt.subplots(len(hps), 1, figsize=(10, 2.6 * len(hps)), squeeze=False)
    for k, name in enumerate(hps):
        ax = axes[k, 0]
        for r in range(min(len(regions), 12)):
            ax.plot(t[:len(hp_m)], hp_m[:, r, k], lw=1)
            ax.fill_between(t[:len(hp_m)], hp_m[:, r, k] - hp_s[:, r, k], hp_m[:, r, k] + hp_s[:, r, k], alpha=0.15)
        ax.set_ylabel(f"{name} scale")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title("posterior hyperparameters (ensemble mean +- sd; first 12 regions)")
    fig.tight_layout()
    fig.savefig(out / "hyperparameters.png", dpi=90)
    plt.close(fig)
    written.append(out / "hyperparameters.png")
    order = np.argsort(-met["r_forecast"])[:4]
    fig, axes = plt.subplots(len(order), 1, figsize=(10, 2.2 * len(order)), squeeze=False)
    for ax, r in zip(axes[:, 0], order):
        ax.plot(t, obs[:, r], "k", lw=1, label="observed")
        ax.plot(t, f_mean[:, r], "C0", lw=1, label="forecast (1 TR ahead)")
        ax.fill_between(t, f_mean[:, r] - f_sd[:, r], f_mean[:, r] + f_sd[:, r], color="C0", alpha=0.2)
        ax.plot(t, a_mean[:, r], "C1--", lw=0.8, label="analysis")
        ax.set_ylabel(regions[r][:14])
    axes[0, 0].legend(fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(out / "bold_fit.png", dpi=90)
    plt.close(fig)
    written.append(out / "bold_fit.png")
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 4))
    x = np.arange(len(regions))
    a1.bar(x - 0.3, met["r_forecast"], 0.3, label="forecast")
    a1.bar(x, met["r_persistence"], 0.3, label="persistence")
    a1.bar(x + 0.3, met["r_ar1"], 0.3, label="AR(1)")
    a1.set_xlabel("region")
    a1.set_ylabel("Pearson r")
    a1.legend(fontsize=7)
    a1.set_title("one-TR-ahead r per region")
    for ax, m, title in ((a2, fc_o, "FC observed (training)"), (a3, fc_f, "FC forecast")):
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(title)
    fig.colorbar(im, ax=[a2, a3], shrink=0.8)
    fig.savefig(out / "metrics_fc.png", dpi=90)
    plt.close(fig)
    written.append(out / "metrics_fc.png")
    return written
