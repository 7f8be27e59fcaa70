"""Functional-connectivity baselines of a twin's held-out FC, each fitted on the training part:

* the structural connectome itself (:func:`assimilation.enkf.sc_fc_similarity`);
* the linear stochastic network of the connectome (:func:`assimilation.reference.
  linear_network_bold`), its gain chosen among :data:`LINEAR_GAINS` by the FC of its runs on the
  training part;
* neurolib's Hopf model (``pip install neurolib``), its global coupling K chosen among
  :data:`HOPF_COUPLINGS` likewise;
* the linear model on the fitted effective connectivity (:mod:`assimilation.effective`, fitted
  on the training part), when the twin has one: its MOU process run and seen through the data's
  preprocessing.

Like for like with the twin: as many runs as the twin has members, each as long as the held-out
part, their BOLD through the data's preprocessing; reported as the r of each run's own FC
(averaged, beside the twin's members) and of the runs' mean FC (beside the twin's mean FC).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Iterator

import numpy as np

from assimilation.enkf import FCD_STEP, FCD_WINDOW, fc_matrix, fc_similarity, fcd_values, ks_distance, sc_fc_similarity

#: gains of the linear network (1: its stability limit)
LINEAR_GAINS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
#: global couplings of the Hopf model (neurolib's K_gl on the connectome scaled to max 1)
HOPF_COUPLINGS = (0.5, 1.0, 2.0, 4.0)


def runs_fc_r(fcs: list[np.ndarray], fc_test: np.ndarray) -> tuple[float, float]:
    """FC r of simulated runs against the held-out FC: each run's own (averaged), and their mean FC's."""
    return float(np.mean([fc_similarity(f, fc_test) for f in fcs])), fc_similarity(np.mean(fcs, axis=0), fc_test)


def linear_fc_r(weights: np.ndarray, train: np.ndarray, test: np.ndarray, tr: float, runs: int,
                prep: Callable[[np.ndarray, float], np.ndarray], gain: float | None = None) -> tuple[dict, np.ndarray]:
    """The linear network's FC r on the held-out part ``test`` (T, R): its gain ``gain``, or the
    one of :data:`LINEAR_GAINS` whose runs' mean FC (as long as ``train``, seed 1) is closest to
    the training FC; then ``runs`` runs as long as ``test`` (seed 2). ``prep(bold, tr)``: the
    data's preprocessing. Returns ({"lin_gain", "fc_lin_runs", "fc_lin"}, the runs' mean FC)."""
    from assimilation.reference import linear_network_bold

    def fcs(g: float, n_tr: int, seed: int) -> list[np.ndarray]:
        bold = linear_network_bold(weights, g, n_tr, tr, runs=runs, seed=seed)
        return [fc_matrix(prep(b, tr)) for b in bold]

    fc_train = fc_matrix(train)
    if gain is None:
        gain = max(LINEAR_GAINS, key=lambda g: fc_similarity(np.mean(fcs(g, len(train), 1), axis=0), fc_train))
    held_out = fcs(gain, len(test), 2)
    each, of_mean = runs_fc_r(held_out, fc_matrix(test))
    return {"lin_gain": gain, "fc_lin_runs": each, "fc_lin": of_mean}, np.mean(held_out, axis=0)


def ec_fc_r(fit, test: np.ndarray, tr: float, runs: int,
            prep: Callable[[np.ndarray, float], np.ndarray]) -> tuple[dict, np.ndarray]:
    """The linear model on the effective connectivity ``fit`` (an assimilation.effective.MouFit,
    fitted on the training part): ``runs`` runs of its MOU process as long as ``test`` (seeds 2,
    3, ...), each through ``prep``; FC r of each run (averaged) and of their mean FC, and the
    KS distance of their pooled FCD to the data's. Returns ({"fc_ec_runs", "fc_ec",
    "fcd_ks_ec"}, the runs' mean FC)."""
    from assimilation.effective import simulate_mou
    bold = [prep(simulate_mou(fit, len(test), seed), tr) for seed in range(2, runs + 2)]
    fcs = [fc_matrix(b) for b in bold]
    each, of_mean = runs_fc_r(fcs, fc_matrix(test))
    fcd_data = fcd_values(test, FCD_WINDOW, FCD_STEP)
    out = {"fc_ec_runs": each, "fc_ec": of_mean}
    if len(fcd_data):
        out["fcd_ks_ec"] = ks_distance(np.concatenate([fcd_values(b, FCD_WINDOW, FCD_STEP) for b in bold]), fcd_data)
    return out, np.mean(fcs, axis=0)


def hopf_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("neurolib") is not None


def on_tr_grid(bold: np.ndarray, dt: float, tr: float, n: int) -> np.ndarray:
    """(T, R) BOLD sampled every ``dt`` s, resampled (cubic spline) at ``tr`` s: at most ``n``
    rows, none past the last sample."""
    from scipy.interpolate import CubicSpline
    t_src = dt * np.arange(len(bold))
    t_dst = tr * np.arange(n)
    return CubicSpline(t_src, bold, axis=0)(t_dst[t_dst <= t_src[-1]])


class _NotFromNeurolib(logging.Filter):
    """Drops the records neurolib logs on the root logger ("nan in model output!" at ERROR when a
    coupling diverges, which :func:`hopf_bold` expects and reports as None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}neurolib{os.sep}" not in record.pathname


@contextlib.contextmanager
def _neurolib_quiet() -> Iterator[None]:
    root, quiet = logging.getLogger(), _NotFromNeurolib()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def hopf_bold(weights: np.ndarray, lengths: np.ndarray, k: float, seed: int, seconds: float) -> np.ndarray | None:
    """One run of neurolib's Hopf model (global coupling ``k``, ``seconds`` long, a whole number
    of 2-s BOLD samples): its BOLD (T, R), sampled every 2 s, the first 10 s dropped; None if it
    diverged."""
    from neurolib.models.hopf import HopfModel
    m = HopfModel(Cmat=weights / weights.max(), Dmat=lengths, seed=seed)   # seeds the initial state too
    m.params.update({"K_gl": k, "duration": seconds * 1000.0, "sigma_ou": 0.14, "seed": seed})
    with _neurolib_quiet():
        m.run(bold=True)
    bold = m.BOLD.BOLD[:, 5:].T                   # drop the first 10 s (neurolib samples BOLD every 2 s)
    if not np.all(np.isfinite(bold)) or np.any(bold.std(axis=0) == 0):
        return None                               # K too strong: the model diverged
    return bold


def hopf_fc_r(weights: np.ndarray, lengths: np.ndarray, train: np.ndarray, test: np.ndarray, tr: float, runs: int,
              prep: Callable[[np.ndarray, float], np.ndarray]) -> dict:
    """neurolib's Hopf model on the connectome (``weights`` [target, source], ``lengths`` in mm):
    K chosen among :data:`HOPF_COUPLINGS` by FC r on the training part (one run per K, seed 1);
    then ``runs`` runs (seeds 1, 2, ...), each as long as the held-out part (``tr`` s per row)
    after 10 s dropped. Its BOLD (sampled every 2 s) goes through ``prep``. Returns {"hopf_K",
    "fc_hopf_runs", "fc_hopf", "fcd_ks_hopf"} (NaN where every K diverged): the FCD's KS distance
    to the data's, with the runs' BOLD resampled at ``tr`` so that its windows are the data's."""
    seconds = 2.0 * np.ceil((10.0 + len(test) * tr) / 2.0)   # whole BOLD samples (every 2 s), or neurolib drops them

    def bold_of(k: float, seed: int) -> np.ndarray | None:
        bold = hopf_bold(weights, lengths, k, seed, seconds)
        return None if bold is None else prep(bold, 2.0)

    fc_train = fc_matrix(train)
    best = (-2.0, None, None)
    for k in HOPF_COUPLINGS:
        b = bold_of(k, 1)
        r = -2.0 if b is None else fc_similarity(fc_matrix(b), fc_train)
        if r > best[0]:
            best = (r, k, b)
    k = best[1]
    if k is None:
        return {"hopf_K": float("nan"), "fc_hopf_runs": float("nan"), "fc_hopf": float("nan"),
                "fcd_ks_hopf": float("nan")}
    found = [b for b in [best[2]] + [bold_of(k, seed) for seed in range(2, runs + 1)] if b is not None]
    each, of_mean = runs_fc_r([fc_matrix(b) for b in found], fc_matrix(test))
    fcd_data = fcd_values(test, FCD_WINDOW, FCD_STEP)
    fcd_hopf = np.concatenate([fcd_values(on_tr_grid(b, 2.0, tr, len(test)), FCD_WINDOW, FCD_STEP) for b in found])
    ks = ks_distance(fcd_hopf, fcd_data) if len(fcd_data) and len(fcd_hopf) else float("nan")
    return {"hopf_K": k, "fc_hopf_runs": each, "fc_hopf": of_mean, "fcd_ks_hopf": ks}


def fc_baselines(weights: np.ndarray, lengths: np.ndarray | None, train: np.ndarray, test: np.ndarray, tr: float,
                 runs: int, prep: Callable[[np.ndarray, float], np.ndarray], hopf: bool = True,
                 linear_gain: float | None = None, ec=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Every FC baseline on the held-out part from the connectome ``weights`` [target, source]
    (and tract ``lengths`` in mm for the Hopf model; ``ec``: the fitted effective connectivity,
    or None): ({"fc_train", "fc_sc", "lin_gain", "fc_lin_runs", "fc_lin", "fc_ec_runs", "fc_ec",
    "fcd_ks_ec", "hopf_K", "fc_hopf_runs", "fc_hopf", "fcd_ks_hopf"}, each model's FC matrix
    {"SC", "linear (SC)", "linear (EC)"}). "fc_train" is the data's own training FC against its
    held-out FC: the ceiling any model fitted on the training part approaches. The EC entries
    need ``ec``; the Hopf entries ``hopf``, ``lengths`` and neurolib installed."""
    fc_test = fc_matrix(test)
    out = {"fc_train": fc_similarity(fc_matrix(train), fc_test), "fc_sc": sc_fc_similarity(weights, fc_test)}
    matrices = {"SC": np.log1p(weights + weights.T)}
    lin, matrices["linear (SC)"] = linear_fc_r(weights, train, test, tr, runs, prep, linear_gain)
    out.update(lin)
    if ec is not None:
        lin_ec, matrices["linear (EC)"] = ec_fc_r(ec, test, tr, runs, prep)
        out.update(lin_ec)
    if hopf and lengths is not None and hopf_available():
        out.update(hopf_fc_r(weights, lengths, train, test, tr, runs, prep))
    return out, matrices
