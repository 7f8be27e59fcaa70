"""``dtb assimilate``: fit the twin to measured BOLD on the training part, then run the filter on
through the held-out part and score its forecasts there. MPI and files live here; the science is
in enkf / runner / forecast; ``dtb validate`` is in :mod:`assimilation.validation`.

Data: the measured BOLD through the config's preprocessing, its statistics (trend line, z-score)
from the training part (the first ``train_fraction`` of the TRs), the band-pass causal, so that
no sample depends on a later one beyond the training part.

Held-out forecasts: after the last training analysis the filter goes on through the held-out
part, twice from the same state: ``updating`` (hyperparameters still updated by every analysis)
and ``frozen`` (each member keeps the fitted twin's hyperparameters, /hp/fitted: its mean over
the last half of the training TRs, the twin ``dtb validate`` runs; the analyses update only the
hemodynamic state and the region input, if any). At every forecast origin (every ``forecast_stride`` TRs, from the last
training TR) the ensemble first runs freely ``max(forecast_horizons)`` TRs ahead (no analysis),
which gives the forecasts of every horizon, then rewinds (``Simulation.rewind``) and assimilates
the next TRs. A forecast from origin o uses data up to row o only.

Output ``assimilation.h5`` (written to a temporary name, then renamed; written at the end of
training, then again with /heldout):

    /                       attrs: config (TOML text), config_path, seed, n_ranks, tr_s, members, coupling
                                   (the global coupling factor used), coupling_scores (JSON: factor -> FC r),
                                   hyperparameters, n_train, n_total, bold_path, settings (JSON),
                                   wall_s, wall_per_tr_s, simulate_s, filter_s, forecast_label ("" or
                                   "zero-phase: not a forecast")
    /network/regions        region names (column order)
    /observed               (n_total, R) the preprocessed data; rows < n_train were fitted
    /forecast/mean, std     (n_train, R) the filter's one-TR-ahead forecast on the TRAINING part
                            (in-sample: the same data fitted the hyperparameters)
    /analysis/mean, std     (n_train, R) the analysed observation (training part)
    /hp/mean, std           (n_train, R, H) hyperparameters after each analysis
    /hp/final               (M, R, H) the final posterior ensemble; /hp/x_final (M, R*H) unbounded
    /hp/fitted              (M, R, H) the fitted twin: each member's mean over the last half of the
                            training TRs (dtb validate and --hyperparameters use it)
    /operator/mu, sigma     (R,) the zscore observation operator's spin-up statistics
    /structure              attrs json (everything to rebuild the networks), coupling; with an
                            effective connectivity: ec/C (R, R) [target, source], ec/sigma (R,),
                            ec attrs sigma_common, tau_tr, lag_tr, gain, fc_r_train, distance; with
                            feedback inhibition control: fic/scale (R,) (factor on the GABAa of each
                            region's excitatory neurons), fic/rates (R,) (their rate, Hz, in the
                            last window), fic/history (iterations, 2, R), fic attrs target_hz,
                            tolerance, converged, within
    /input/mean, std        (n_train, R) the region input u after each analysis (input_std > 0):
                            the Poisson backgrounds are scaled by exp(u)
    /metrics                TRAINING part, in-sample: attrs and datasets (R,) r_forecast, r_analysis,
                            r_persistence (mean Pearson r over regions in the attrs)
    /fc/observed, /fc/forecast   (R, R) FC of the training data and of the training forecast
    /heldout                attrs horizons (TRs), stride, label; origins (O,) the forecast origins (rows)
    /heldout/<mode>/forecast/mean, std   (O, len(horizons), R) the twin's forecasts, mode "updating"
                            or "frozen"; NaN where the target lies beyond the data
    /heldout/<mode>/filter/mean   (n_total - n_train, R) the filter's one-TR-ahead forecast of every
                            held-out row; /heldout/<mode>/hp/mean (n_total - n_train, R, H);
                            /heldout/<mode>/input/mean (n_total - n_train, R) with a region input
    /heldout/scores/<model> datasets r, skill, mse, n (len(horizons),), r_region (len(horizons), R)
                            for "twin (updating)", "twin (frozen)" and every baseline of
                            assimilation.forecast, on the same samples; attrs of /heldout/scores:
                            ar_orders, mvar_penalty, kalman (JSON)
    /validation             written by dtb validate (see assimilation.validation)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import h5py
import numpy as np

from assimilation import forecast
from assimilation.data import preprocessed, preprocessed_members  # noqa: F401 (part of this module's API)
from assimilation.enkf import fc_matrix, pearson_per_column, persistence_forecast, to_unbounded
from assimilation.ensemble import long_range_mask
from assimilation.structure import (TwinStructure, balance_rates, coupled, fit_structure, isolated_rates,  # noqa: F401
                                    population_rates, simulation, spinup_trs, twin_simulation)
from dtb.errors import DtbError
from dtb.files import atomic_edit, atomic_path
from dtb.spec import NetworkSpec

log = logging.getLogger(__name__)

#: the label of forecast scores on zero-phase filtered data
ZERO_PHASE_LABEL = "zero-phase: not a forecast"


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


def region_delays(spec: NetworkSpec) -> np.ndarray:
    """Mean delay (s) of the projections between regions (R, R) [target, source], weighted by
    their expected synapses; 0 where none."""
    from dtb.partition import expected_projection_indegree
    regions = spec.regions
    region = {p.name: regions.index(p.region) for p in spec.populations}
    total, weight = np.zeros((len(regions),) * 2), np.zeros((len(regions),) * 2)
    for pr in spec.projections:
        i, j = region[pr.target], region[pr.source]
        if i != j:
            n = expected_projection_indegree(spec, pr) * spec.population(pr.target).size
            total[i, j] += n * pr.delay.expected
            weight[i, j] += n
    return np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)


def check_inputs(spec: NetworkSpec, tr: float | None, allow_zero_phase: bool = False) -> float:
    """The config can be assimilated: [assimilation] and [bold], the data's TR, and a causal
    band-pass (a zero-phase one puts later data into every sample: its forecasts are scored only
    with ``allow_zero_phase``, and labelled)."""
    if spec.assimilation is None:
        raise DtbError(f"{spec.source}: dtb assimilate needs an [assimilation] section (see assimilation.settings)")
    if spec.bold is None:
        raise DtbError(f"{spec.source}: dtb assimilate needs a [bold] section (its tr is the data's TR)")
    if tr is not None and abs(tr - spec.bold.tr) > 1e-9:
        raise DtbError(f"the data's TR ({tr:g} s) differs from the config's [bold] tr ({spec.bold.tr:g} s)")
    steps = spec.bold.tr / spec.simulation.dt
    if abs(steps - round(steps)) > 1e-6:
        raise DtbError(f"TR {spec.bold.tr:g} s is not a multiple of dt ({spec.simulation.dt * 1e3:g} ms)")
    s = spec.assimilation
    if s.band_pass is not None and not s.band_pass_causal and not allow_zero_phase:
        raise DtbError(f"{spec.source}: assimilation.band_pass_causal = false filters forward and backward, so every "
                       f"sample holds later data and forecasts cannot be scored; set band_pass_causal = true (or "
                       f"pass --allow-zero-phase to score them anyway, labelled '{ZERO_PHASE_LABEL}')")
    return spec.bold.tr


def forecast_label(spec: NetworkSpec) -> str:
    s = spec.assimilation
    return ZERO_PHASE_LABEL if s.band_pass is not None and not s.band_pass_causal else ""


def training_rows(n_total: int, train_fraction: float) -> int:
    """The number of leading TRs fitted: ``train_fraction`` of ``n_total``, at least 3."""
    if not 0 < train_fraction <= 1:
        raise DtbError(f"the training fraction must be in (0, 1], got {train_fraction:g}")
    n_train = int(round(train_fraction * n_total))
    if n_train < 3:
        raise DtbError(f"only {n_train} training TRs: need at least 3")
    return n_train


def load_observed(spec: NetworkSpec, path: str, key: str | None, train_fraction: float) -> tuple[np.ndarray, int]:
    """The measured BOLD (T, R) through the config's preprocessing, fitted on its training part,
    and the number of training rows."""
    raw, n_train = load_raw(spec, path, key, train_fraction)
    return preprocessed(raw, spec, fit_rows=n_train), n_train


def load_raw(spec: NetworkSpec, path: str, key: str | None, train_fraction: float) -> tuple[np.ndarray, int]:
    """The measured BOLD (T, R) before the config's preprocessing (an fMRIPrep image's confounds
    regressed out, fitted on the training part), and the number of training rows."""
    from assimilation.data import load_bold
    raw = load_bold(path, len(spec.regions), key=key, atlas=spec.bold.atlas, labels=spec.bold.labels,
                    regions=spec.regions)
    n_train = training_rows(len(raw), train_fraction)
    if str(path).lower().endswith((".nii", ".nii.gz")):
        from assimilation.nifti_input import check_tr, confounds_for, regress_confounds
        check_tr(path, spec.bold.tr)
        confounds, note = confounds_for(Path(path), spec.assimilation.confounds)
        if confounds is not None:
            raw = regress_confounds(raw, confounds, n_train)
            log.info("%s: %s", path, note)
        else:                                # motion and physiology stay in the signal: say so
            log.warning("%s: %s", path, note)
    return raw, n_train


def _training_metrics(observed: np.ndarray, forecast_: np.ndarray, analysis: np.ndarray) -> dict[str, np.ndarray]:
    """Per region, on the training part (in-sample): r of the filter's forecast (rows 1..), of the
    analysis and of persistence on the same rows."""
    return {"r_forecast": pearson_per_column(forecast_[1:], observed[1:]),
            "r_analysis": pearson_per_column(analysis, observed),
            "r_persistence": pearson_per_column(persistence_forecast(observed), observed[1:])}


def fitted_hyperparameters(hp: np.ndarray) -> np.ndarray:
    """The fitted twin's hyperparameters (M, R, H) from their trace (T, M, R, H): each member's
    mean over the last half of the TRs. Under the random walk the hyperparameters also follow the
    data's fluctuations from TR to TR (they act as a slowly varying drive); their mean over time
    is the twin to run freely, and with a small random walk it equals the final value, less noisy."""
    return hp[len(hp) // 2:].mean(axis=0)


def fitted_x(fitted: np.ndarray, s) -> np.ndarray:
    """The fitted twin's hyperparameters (M, R, H) as the filter's unbounded x (M, R * H); a
    member whose hyperparameter sat on a bound (sigmoid saturated) keeps it there."""
    return to_unbounded(fitted.reshape(len(fitted), -1), s.low, s.high, saturated=True)


def assimilate(spec: NetworkSpec, observed_all: np.ndarray, n_train: int, out: Path, comm,
               progress: bool = True, bold_path: str = "", config_path: str = "", checkpoint_every: float | None = None,
               resume=None, meta: dict | None = None, broadband: np.ndarray | None = None) -> Path | int | None:
    """Fit on the first ``n_train`` rows of ``observed_all`` (preprocessed, T x R), then forecast
    the rest (see the module docstring); rank 0 writes the results (returns their path; other
    ranks None). ``broadband``: the data the effective connectivity is fitted to (structure.
    broadband; needed with ``effective_connectivity``). With ``checkpoint_every`` (s of
    biological time) the network and the filter are checkpointed into OUT/checkpoint during the
    fit, and once at its end (from which --resume redoes the held-out part); ``resume``: a
    verified CheckpointInfo to continue from. Stopped by SIGUSR1/SIGTERM: returns EXIT_CHECKPOINTED."""
    from dtb.engine import checkpoint as ckpt
    if not 3 <= n_train <= len(observed_all):
        raise DtbError(f"{n_train} training TRs of {len(observed_all)}: need at least 3 and no more than there are")
    if resume is not None:
        structure = (TwinStructure.from_json(resume.manifest["structure"]) if "structure" in resume.manifest
                     else TwinStructure(coupling=float(resume.manifest.get("coupling", 1.0))))
    else:
        if spec.assimilation.effective_connectivity and broadband is None:
            raise DtbError("assimilation.effective_connectivity needs the broadband data (structure.broadband)")
        structure = fit_structure(spec, observed_all[:n_train], None if broadband is None else broadband[:n_train],
                                  comm)
        log.info("global coupling: %g", structure.coupling)
    net = structure.network(spec, balance_rates(spec, comm))
    fit = _Fit(net, structure, observed_all, n_train, comm, resume,
               dict(meta or {}, coupling=structure.coupling, structure=structure.to_json()), out, checkpoint_every)
    if not fit.train(progress):
        return ckpt.EXIT_CHECKPOINTED
    attrs = {"config_path": config_path, "bold_path": bold_path, "coupling": structure.coupling,
             "coupling_scores": json.dumps({str(k): v for k, v in structure.coupling_scores.items()})}
    path = out / "assimilation.h5"
    if comm.Get_rank() == 0:
        write_fit(path, fit, attrs)
    if n_train == len(observed_all):
        return path if comm.Get_rank() == 0 else None
    heldout = fit.forecast_held_out(progress)
    if heldout is None:
        return ckpt.EXIT_CHECKPOINTED
    if comm.Get_rank() != 0:
        return None
    write_heldout(path, heldout, observed_all, n_train, net,
                  long_range_mask(spec) if spec.assimilation.effective_connectivity else None)
    return path


class _Fit:
    """The ensemble and its filter, through the training part and then the held-out part."""

    def __init__(self, spec: NetworkSpec, structure: TwinStructure, observed: np.ndarray, n_train: int, comm, resume,
                 meta: dict, out: Path, checkpoint_every: float | None):
        from dtb.engine import checkpoint as ckpt
        self.spec, self.s, self.observed, self.n_train, self.comm = spec, spec.assimilation, observed, n_train, comm
        self.structure = structure
        self.tr = spec.bold.tr
        t0 = time.perf_counter()
        self.sim, self.a = twin_simulation(spec, structure, self.s.members, comm, observed, free=False,
                                           n_assimilate=n_train, sc=region_connectivity(spec))
        if resume is not None:
            ckpt.check_compatible(resume, self.sim.spec)
            ckpt.restore(self.sim, resume, extra=self.a)
            log.info("resumed at TR %d of %d (t = %g s)", self.a.t, n_train, self.sim.t)
        self.build_s = time.perf_counter() - t0
        self.resumed = resume is not None
        log.info("ensemble of %d members x %d neurons (%d regions) on %d rank(s), built in %.1f s; spin-up %g s",
                 self.s.members, spec.n_neurons, len(spec.regions), comm.Get_size(), self.build_s,
                 spinup_trs(spec) * self.tr)
        self.checkpointer = ckpt.Checkpointer(self.sim, out / "checkpoint", checkpoint_every, meta, extra=self.a)
        self.checkpoint_every = checkpoint_every
        ckpt.install_signal_handlers(self.sim)
        self.wall = self.t_start = 0.0

    def _steps(self, trs: int) -> int:
        return trs * int(round(self.tr / self.spec.simulation.dt))

    def train(self, progress: bool) -> bool:
        """Spin-up, then the filter over the training rows; False if stopped by a signal."""
        sim, a = self.sim, self.a
        spin_steps = self._steps(spinup_trs(self.spec))
        if sim.current_step() < spin_steps:
            sim.run((spin_steps - sim.current_step()) * sim.dt)
            if self.checkpointer.stopped:
                return False
        if not a.active:
            a.start()
        self.t_start = a.t
        bar = _bar(progress and sim.rank == 0, self.n_train, a.t, "assimilating")
        if bar is not None:
            sim.add_hook(self.tr, lambda _sim: bar.update(1) if a.t <= self.n_train else None)
        t1 = time.perf_counter()
        sim.run((spin_steps + self._steps(self.n_train) - sim.current_step()) * sim.dt)
        self.wall = time.perf_counter() - t1
        if bar is not None:
            bar.close()
        sim.finish_exchange()
        if self.checkpointer.stopped:
            return False
        if self.checkpoint_every and not self.resumed_at_end():
            self.checkpointer.write(sim.current_step())       # --resume redoes the held-out part from here
        return True

    def resumed_at_end(self) -> bool:
        return self.resumed and self.t_start == self.n_train

    def forecast_held_out(self, progress: bool) -> dict | None:
        """Both modes from the end of training (see the module docstring): {mode: {"forecast"
        (O, H, M, R), "filter" (n_test, M, R), "hp" (n_test, M, R, H)}, "origins": (O,)}. None if
        stopped by a signal."""
        sim, a = self.sim, self.a
        self.checkpointer.paused = True
        a.n_assimilate = len(self.observed)          # the filter goes on through the held-out part
        o = forecast.origins(self.n_train, len(self.observed), self.s.forecast_stride)
        end_of_training = sim.snapshot()
        x_end, x_analysis_end, fast_end = a.x.copy(), a.x_analysis.copy(), a.fast_state()
        out: dict = {"origins": o}
        for mode in ("updating", "frozen"):
            sim.rewind(end_of_training)              # the network as the last training analysis left it
            a.truncate(self.n_train)
            a.x, a.x_analysis, a.mode = x_end.copy(), x_analysis_end.copy(), "updating"
            a.set_fast_state(fast_end)
            if mode == "frozen":
                a.freeze(fitted_x(fitted_hyperparameters(np.array(a.hp_trace[:self.n_train])), self.s))
            run = self._forecast_mode(o, mode, progress)
            if run is None:
                return None
            out[mode] = run
        sim.forget(end_of_training)
        return out

    def _forecast_mode(self, o: np.ndarray, mode: str, progress: bool) -> dict | None:
        sim, a, tr = self.sim, self.a, self.tr
        horizons = np.array(self.s.forecast_horizons)
        n_total = len(self.observed)
        fc = np.full((len(o), len(horizons), a.M, a.R), np.nan)
        bar = _bar(progress and sim.rank == 0, len(o), 0, f"held-out forecasts ({mode})")
        for i, origin in enumerate(o):
            if a.t != origin + 1:
                raise RuntimeError(f"the filter is at TR {a.t}, not after origin {origin}")
            ahead = min(int(horizons.max()), n_total - 1 - origin)
            snap, fast = sim.snapshot(), a.fast_state()
            a.mode, a.branch = "free", []
            sim.run(ahead * tr)
            sim.finish_exchange()
            inside = horizons <= ahead
            fc[i, inside] = np.array(a.branch)[horizons[inside] - 1]
            sim.rewind(snap)
            a.set_fast_state(fast)
            sim.forget(snap)
            a.mode = mode
            nxt = o[i + 1] if i + 1 < len(o) else n_total - 1
            sim.run((nxt - origin) * tr)
            sim.finish_exchange()
            if bar is not None:
                bar.update(1)
            if sim.stop_agreed:
                return None
        if bar is not None:
            bar.close()
        res = a.results()
        n = self.n_train
        return {"forecast": fc, "filter": res["forecast"][n:], "hp": res["hp"][n:], "input": res["input"][n:]}


def _bar(show: bool, total: int, initial: int, desc: str):
    if not show:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="TR" if "assimilating" in desc else "origin", desc=desc)


def write_fit(path: Path, fit: _Fit, attrs: dict) -> None:
    """assimilation.h5 with the fit on the training part (see the module docstring)."""
    spec, s, n_train = fit.spec, fit.s, fit.n_train
    res = fit.a.results()
    f, an, hp = res["forecast"][:n_train], res["analysis"][:n_train], res["hp"][:n_train]
    observed = fit.observed
    metrics = _training_metrics(observed[:n_train], f.mean(axis=1), an.mean(axis=1))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h:
        h.attrs.update(dict(attrs, config=spec.text, seed=spec.simulation.seed, n_ranks=fit.comm.Get_size(),
                            tr_s=fit.tr, members=s.members, hyperparameters=json.dumps(list(s.hyperparameters)),
                            n_train=n_train, n_total=len(observed), train_fraction=n_train / len(observed),
                            settings=json.dumps(s.__dict__, default=list), wall_s=fit.wall,
                            wall_per_tr_s=fit.wall / max(n_train - fit.t_start, 1), build_s=fit.build_s,
                            resumed=fit.resumed, neurons_per_member=spec.n_neurons, filter_s=fit.a.filter_seconds,
                            simulate_s=fit.wall - fit.a.filter_seconds, forecast_label=forecast_label(spec)))
        h.create_dataset("network/regions", data=np.array(spec.regions, dtype="S"))
        h.create_dataset("observed", data=observed)
        fit.structure.write(h)
        for name, arr in (("forecast", f), ("analysis", an)):
            h.create_dataset(f"{name}/mean", data=arr.mean(axis=1))
            h.create_dataset(f"{name}/std", data=arr.std(axis=1))
        h.create_dataset("hp/mean", data=hp.mean(axis=1))
        h.create_dataset("hp/std", data=hp.std(axis=1))
        h.create_dataset("hp/final", data=hp[-1])
        h.create_dataset("hp/x_final", data=fit.a.x_analysis)
        h.create_dataset("hp/fitted", data=fitted_hyperparameters(hp))
        h.create_dataset("operator/mu", data=res["mu"])
        h.create_dataset("operator/sigma", data=res["sigma"])
        if len(res["input"]):
            h.create_dataset("input/mean", data=res["input"][:n_train].mean(axis=1))
            h.create_dataset("input/std", data=res["input"][:n_train].std(axis=1))
        g = h.create_group("metrics")
        g.attrs["scope"] = "training part (in-sample)"
        for k, v in metrics.items():
            g.create_dataset(k, data=v)
            g.attrs[k] = float(np.nanmean(v))
        h.create_dataset("fc/observed", data=fc_matrix(observed[:n_train]))
        h.create_dataset("fc/forecast", data=fc_matrix(f.mean(axis=1)))


def heldout_scores(observed: np.ndarray, n_train: int, origins: np.ndarray, horizons, tr: float,
                   twin: dict[str, np.ndarray], ec_mask: np.ndarray | None = None) -> tuple[dict, dict]:
    """Scores of the twin's held-out forecasts {mode: (O, H, M, R)} (ensemble means) and of every
    baseline, on the same samples (:func:`assimilation.forecast.compare`)."""
    models = {f"twin ({mode})": f.mean(axis=2) for mode, f in twin.items()}
    return forecast.compare(observed, n_train, origins, horizons, tr, models, ec_mask)


def write_heldout(path: Path, heldout: dict, observed: np.ndarray, n_train: int, spec: NetworkSpec,
                  ec_mask: np.ndarray | None = None) -> None:
    """Add /heldout (forecasts and scores, see the module docstring) to assimilation.h5;
    ``ec_mask``: the structural mask of the linear EC baseline, if any."""
    s = spec.assimilation
    o = heldout["origins"]
    twin = {mode: heldout[mode]["forecast"] for mode in ("updating", "frozen")}
    scores, fitted = heldout_scores(observed, n_train, o, s.forecast_horizons, spec.bold.tr, twin, ec_mask)
    with atomic_edit(path) as tmp, h5py.File(tmp, "r+") as h:
        g = h.create_group("heldout")
        g.attrs.update({"horizons": list(s.forecast_horizons), "stride": s.forecast_stride,
                        "label": forecast_label(spec)})
        g.create_dataset("origins", data=o)
        for mode in ("updating", "frozen"):
            run = heldout[mode]
            g.create_dataset(f"{mode}/forecast/mean", data=run["forecast"].mean(axis=2))
            g.create_dataset(f"{mode}/forecast/std", data=run["forecast"].std(axis=2))
            g.create_dataset(f"{mode}/filter/mean", data=run["filter"].mean(axis=1))
            g.create_dataset(f"{mode}/hp/mean", data=run["hp"].mean(axis=1))
            if len(run["input"]):
                g.create_dataset(f"{mode}/input/mean", data=run["input"].mean(axis=1))
        sg = g.create_group("scores")
        sg.attrs.update({"ar_orders": np.asarray(fitted["ar_orders"]), "mvar_penalty": fitted["mvar_penalty"],
                         "kalman": json.dumps(fitted["kalman"]), "linear_ec": json.dumps(fitted.get("linear_ec", {}))})
        for name, sc in scores.items():
            m = sg.create_group(name)
            for k, v in sc.items():
                m.create_dataset(k, data=v)


def read_scores(h: h5py.File) -> tuple[dict, list[int], str]:
    """({model: {r, skill, mse, n, r_region}}, horizons, label) from an open assimilation.h5."""
    g = h["heldout"]
    scores = {name: {k: g["scores"][name][k][()] for k in g["scores"][name]} for name in g["scores"]}
    order = list(forecast.BASELINES) + ["twin (updating)", "twin (frozen)"]
    return ({k: scores[k] for k in order if k in scores}, [int(x) for x in g.attrs["horizons"]],
            str(g.attrs.get("label", "")))
