"""Held-out BOLD forecasts and their baselines, scored on exactly the same samples.

Data ``z`` (T, R) are the preprocessed BOLD (causal, its statistics from the training part);
rows ``[0, n_train)`` are the training part. A forecast issued at *origin* ``o`` may use rows
``<= o`` only and predicts row ``o + h`` (horizon ``h`` TRs). Origins run through the held-out
part: ``n_train - 1, n_train - 1 + stride, ...`` while a target is left; a horizon whose target
lies beyond the data is NaN.

Every model here is fitted on the training rows only, then applied through the held-out part:

* persistence: z[o + h] = z[o];
* AR(2), and AR(p) with p chosen per region by BIC on the training rows (1..``max_p``): least
  squares with intercept, iterated for h > 1;
* MVAR(1): z[t] = c + A z[t - 1] over all regions, ridge penalty chosen on the training rows
  (fitted on their first 75 %, one-step error on the rest), then refitted on all of them: the
  linear network's forecast;
* the Kalman reference (:mod:`assimilation.reference`): the exact Kalman filter of the
  linearised balloon model, its two parameters fitted by likelihood on the training rows;
* with a structural mask (a twin with effective connectivity), the linear model on the
  effective connectivity: a MOU process (:mod:`assimilation.effective`) fitted to the training
  rows of these same data, forecasting expm(A h) z[o].

Scores per horizon (:func:`score`): Pearson r per region over the origins, averaged over
regions, the skill 1 - MSE / MSE(persistence), pooled over regions and origins, and R^2 = 1 -
SSE / SST (SST: the targets' squared deviations from each region's mean over the scored origins;
pooled), the measure of Nozari et al. 2024 (Nat Biomed Eng), so the numbers compare with theirs:
r ignores scale and offset (an AR(1) with phi > 0 has persistence's r exactly), the skill and R^2
do not.
"""

from __future__ import annotations

import numpy as np

#: baselines in the order they are reported
BASELINES = ("persistence", "AR(2)", "AR(p)", "MVAR(1)", "Kalman ref", "linear EC")


def origins(n_train: int, n_total: int, stride: int) -> np.ndarray:
    """Forecast origins on the held-out part: the last training row, then every ``stride`` rows,
    while at least one target (origin + 1) is inside the data."""
    if not 1 <= n_train < n_total:
        raise ValueError(f"need training rows and at least one held-out row, got {n_train} of {n_total}")
    return np.arange(n_train - 1, n_total - 1, int(stride))


def _targets(o: np.ndarray, horizons, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """(O, H) target rows and whether each lies inside the data."""
    t = np.asarray(o)[:, None] + np.asarray(horizons)[None, :]
    return np.minimum(t, n_total - 1), t < n_total


def persistence(z: np.ndarray, o: np.ndarray, horizons) -> np.ndarray:
    """(O, H, R): the value at the origin, for every horizon."""
    return np.repeat(z[o][:, None, :], len(horizons), axis=1)


# ------------------------------------------------------------------------ autoregressions
def _lagged(train: np.ndarray, p: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Design (n, p + 1, R) with an intercept column, and targets (n, R), for rows start..T-1."""
    rows = np.arange(start, len(train))
    X = np.stack([np.ones((len(rows), train.shape[1]))] + [train[rows - i] for i in range(1, p + 1)], axis=1)
    return X, train[rows]


def fit_ar(train: np.ndarray, p: int, start: int | None = None) -> np.ndarray:
    """Per-region AR(p) with intercept by least squares on ``train`` (T, R): coefficients (p + 1, R),
    intercept first. ``start``: first target row (default p)."""
    X, y = _lagged(train, p, p if start is None else start)
    coef = np.empty((p + 1, train.shape[1]))
    for r in range(train.shape[1]):
        coef[:, r] = np.linalg.lstsq(X[:, :, r], y[:, r], rcond=None)[0]
    return coef


def ar_orders_bic(train: np.ndarray, max_p: int = 10) -> np.ndarray:
    """Per region, the AR order in 1..max_p with the lowest BIC on ``train``; every order is
    fitted on the same target rows (max_p onward), so that the criteria compare."""
    n = len(train) - max_p
    if n < 2 * max_p:
        max_p = max(1, (len(train) - 1) // 3)
        n = len(train) - max_p
    bic = np.empty((max_p, train.shape[1]))
    for p in range(1, max_p + 1):
        coef = fit_ar(train, p, start=max_p)
        X, y = _lagged(train, p, max_p)
        resid = y - np.einsum("nkr,kr->nr", X, coef)
        bic[p - 1] = n * np.log(np.maximum((resid ** 2).mean(axis=0), 1e-300)) + (p + 1) * np.log(n)
    return 1 + np.argmin(bic, axis=0)


def ar_forecast(z: np.ndarray, o: np.ndarray, horizons, coef: np.ndarray) -> np.ndarray:
    """(O, H, R) iterated forecasts of per-region AR models ``coef`` (p + 1, R) (zero rows for a
    region of lower order) from the rows up to each origin."""
    p = len(coef) - 1
    hist = np.stack([z[np.maximum(o - i, 0)] for i in range(p)], axis=1)      # (O, p, R): lag 1 first
    out = np.empty((len(o), max(horizons), z.shape[1]))
    for h in range(max(horizons)):
        nxt = coef[0] + np.einsum("opr,pr->or", hist, coef[1:])
        out[:, h] = nxt
        hist = np.concatenate([nxt[:, None], hist[:, :-1]], axis=1)
    return out[:, np.asarray(horizons) - 1]


def fit_ar_bic(train: np.ndarray, max_p: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per-region AR(p), p by BIC: (coefficients (max p + 1, R) zero-padded, orders (R,))."""
    orders = ar_orders_bic(train, max_p)
    coef = np.zeros((orders.max() + 1, train.shape[1]))
    for p in np.unique(orders):
        cols = orders == p
        coef[:p + 1, cols] = fit_ar(train[:, cols], int(p))
    return coef, orders


# --------------------------------------------------------------------------------- MVAR(1)
def fit_mvar1(train: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """z[t] = c + A z[t-1] by ridge regression (``penalty`` times the mean diagonal of X^T X on
    A, none on c): (c (R,), A (R, R))."""
    x, y = train[:-1], train[1:]
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    g = xc.T @ xc
    lam = penalty * np.trace(g) / len(g)
    a_t = np.linalg.solve(g + lam * np.eye(len(g)), xc.T @ yc)
    return my - mx @ a_t, a_t.T


#: ridge penalties tried for the MVAR(1) (relative to the mean diagonal of X^T X)
MVAR_PENALTIES = tuple(10.0 ** np.arange(-4, 2.5, 0.5))


def choose_mvar_penalty(train: np.ndarray, penalties=MVAR_PENALTIES) -> float:
    """The penalty with the lowest one-step MSE on the last quarter of ``train`` when fitted on
    the first three quarters."""
    cut = int(round(0.75 * len(train)))
    fit, check = train[:cut], train[cut - 1:]
    errors = []
    for pen in penalties:
        c, a = fit_mvar1(fit, pen)
        errors.append(np.mean((check[1:] - (c + check[:-1] @ a.T)) ** 2))
    return float(penalties[int(np.argmin(errors))])


def mvar1_forecast(z: np.ndarray, o: np.ndarray, horizons, c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(O, H, R) iterated MVAR(1) forecasts."""
    x = z[o]
    out = np.empty((len(o), max(horizons), z.shape[1]))
    for h in range(max(horizons)):
        x = c + x @ a.T
        out[:, h] = x
    return out[:, np.asarray(horizons) - 1]


# ------------------------------------------------------------------------------ baselines
def mou_forecast(z: np.ndarray, o: np.ndarray, horizons, fit) -> np.ndarray:
    """(O, H, R) forecasts expm(A h) z[o] of a fitted MOU process (assimilation.effective.MouFit,
    time in TRs): its conditional mean."""
    from scipy.linalg import expm
    return np.stack([z[o] @ expm(fit.A * h).T for h in horizons], axis=1)


def baseline_forecasts(z: np.ndarray, n_train: int, o: np.ndarray, horizons, tr: float,
                       ec_mask: np.ndarray | None = None) -> tuple[dict, dict]:
    """Every baseline's forecasts (O, H, R), fitted on ``z[:n_train]`` only, and what was fitted
    (AR orders, MVAR penalty, Kalman parameters); with ``ec_mask`` [target, source], the linear
    model on the effective connectivity too."""
    from assimilation.reference import fit_kalman, kalman_forecasts
    train = z[:n_train]
    ar2 = fit_ar(train, 2)
    arp, orders = fit_ar_bic(train)
    penalty = choose_mvar_penalty(train)
    c, a = fit_mvar1(train, penalty)
    kf = fit_kalman(train, tr)
    out = {"persistence": persistence(z, o, horizons), "AR(2)": ar_forecast(z, o, horizons, ar2),
           "AR(p)": ar_forecast(z, o, horizons, arp), "MVAR(1)": mvar1_forecast(z, o, horizons, c, a),
           "Kalman ref": kalman_forecasts(z, o, horizons, kf)}
    fitted = {"ar_orders": orders, "mvar_penalty": penalty,
              "kalman": {k: v for k, v in kf.items() if k in ("tau_u", "phi", "loglik")}}
    if ec_mask is not None:
        from assimilation.effective import fit_mou_ec
        mou = fit_mou_ec(train, ec_mask)
        out["linear EC"] = mou_forecast(z, o, horizons, mou)
        fitted["linear_ec"] = {"tau_tr": mou.tau, "gain": mou.gain, "fc_r_train": mou.fc_r}
    return out, fitted


# --------------------------------------------------------------------------------- scores
def score(forecast: np.ndarray, z: np.ndarray, o: np.ndarray, horizons, reference: np.ndarray) -> dict:
    """Scores per horizon of forecasts (O, H, R) against the data ``z`` at the targets:
    ``r`` (H,) the mean over regions of Pearson r over the origins, ``r_region`` (H, R),
    ``mse`` (H,), ``skill`` (H,) = 1 - MSE / MSE(``reference``) (persistence's forecasts) and
    ``r2`` (H,) = 1 - SSE / SST (SST about each region's mean target), pooled over origins and
    regions, and ``n`` (H,) the number of origins scored."""
    from assimilation.enkf import pearson_per_column
    rows, inside = _targets(o, horizons, len(z))
    H, R = len(horizons), z.shape[1]
    out = {"r": np.full(H, np.nan), "r_region": np.full((H, R), np.nan), "mse": np.full(H, np.nan),
           "skill": np.full(H, np.nan), "r2": np.full(H, np.nan), "n": inside.sum(axis=0)}
    for h in range(H):
        ok = inside[:, h]
        if ok.sum() < MIN_ORIGINS:
            continue
        truth = z[rows[ok, h]]
        f, ref = forecast[ok, h], reference[ok, h]
        out["r_region"][h] = pearson_per_column(f, truth)
        out["r"][h] = np.nanmean(out["r_region"][h])
        out["mse"][h] = np.mean((f - truth) ** 2)
        out["skill"][h] = 1.0 - out["mse"][h] / np.mean((ref - truth) ** 2)
        out["r2"][h] = 1.0 - np.sum((f - truth) ** 2) / np.sum((truth - truth.mean(axis=0)) ** 2)
    return out


def compare(z: np.ndarray, n_train: int, o: np.ndarray, horizons, tr: float, models: dict[str, np.ndarray],
            ec_mask: np.ndarray | None = None) -> tuple[dict, dict]:
    """Scores of ``models`` {name: forecasts (O, H, R)} and of every baseline (``ec_mask``: see
    :func:`baseline_forecasts`) on the same samples: ({name: score dict}, what the baselines
    fitted). Baselines come first."""
    base, fitted = baseline_forecasts(z, n_train, o, horizons, tr, ec_mask)
    ref = base["persistence"]
    scores = {name: score(f, z, o, horizons, ref) for name, f in {**base, **models}.items()}
    return scores, fitted


def table(scores: dict, horizons, label: str = "") -> str:
    """A plain-text table: one row per model, r and skill per horizon."""
    head = f"{'held-out forecast' + (' ' + label if label else ''):<28}" + "".join(
        f"{f'r {h} TR':>9}{f'skill {h}':>9}{f'R2 {h}':>9}" for h in horizons)
    rows = [head]
    for name, s in scores.items():
        r2 = s.get("r2", np.full(len(horizons), np.nan))
        rows.append(f"{name:<28}" + "".join(f"{_cell(s['r'][k])}{_cell(s['skill'][k])}{_cell(r2[k])}"
                                            for k in range(len(horizons))))
    rows += unscored(scores, horizons)
    return "\n".join(rows)


def _cell(value: float) -> str:
    return f"{value:9.3f}" if np.isfinite(value) else f"{'n/a':>9}"


#: fewest forecast origins a horizon is scored on
MIN_ORIGINS = 3


def unscored(scores: dict, horizons) -> list[str]:
    """One line per horizon scored on fewer than MIN_ORIGINS origins, saying why it has no score."""
    counts = next(iter(scores.values()))["n"] if scores else []
    return [f"{h} TR{'s' if h > 1 else ''} ahead: no score, only {int(n)} forecast origin(s) have their target inside "
            f"the held-out part ({MIN_ORIGINS} needed): a lower forecast_stride, or a longer held-out part "
            f"(--train-fraction), gives more" for h, n in zip(horizons, counts) if n < MIN_ORIGINS]
