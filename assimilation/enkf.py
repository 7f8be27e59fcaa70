"""The ensemble Kalman filter of the hierarchical mesoscale data assimilation, as pure functions.

Notation: M members, n state variables, p observations. ``X`` (M, n) is the ensemble of
augmented states, ``HX`` (M, p) the members' predicted observations, ``y`` (p,) the observation
with noise variance ``r`` (p,). The analysis is the stochastic ("perturbed observations") EnKF
(Evensen 2003; Burgers et al. 1998):

    P_xy = cov(X, HX),  P_yy = cov(HX, HX)                  (ensemble estimates)
    K    = (rho * P_xy) (P_yy + R)^-1                        (rho: localisation, elementwise)
    X_a  = X + (y + e_m - HX_m) K^T,   e_m ~ N(0, R)

with multiplicative inflation applied to the forecast anomalies first (X <- mean + lambda (X -
mean)). As M grows, the analysis mean and covariance of a linear-Gaussian problem tend to the
Kalman filter's (:func:`kalman_update`; tested).

Hyperparameters live in a bounded transform: hp = low + (high - low) * sigmoid(x); the filter
works on x, so hp never leaves its bounds.
"""

from __future__ import annotations

import numpy as np


def to_bounded(x: np.ndarray, low, high) -> np.ndarray:
    """hp = low + (high - low) * sigmoid(x)."""
    from scipy.special import expit
    return low + (np.asarray(high) - low) * expit(np.asarray(x, dtype=float))


def to_unbounded(hp: np.ndarray, low, high, saturated: bool = False) -> np.ndarray:
    """The inverse of :func:`to_bounded` (hp strictly inside (low, high)). ``saturated``: hp
    equal to a bound (a sigmoid of a large x rounds to 0 or 1 in floating point) maps to
    x = -+36.7, the largest |x| that float64 still tells from the bound."""
    f = (np.asarray(hp, dtype=float) - low) / (np.asarray(high) - low)
    if saturated:
        eps = np.finfo(float).eps
        f = np.where((f >= 0) & (f <= 1), np.clip(f, eps, 1.0 - eps), f)
    if np.any((f <= 0) | (f >= 1)):
        raise ValueError("hyperparameters must lie strictly inside their bounds")
    return np.log(f / (1.0 - f))


def inflate(X: np.ndarray, factor: float) -> np.ndarray:
    """Multiplicative inflation of the anomalies about the ensemble mean."""
    mean = X.mean(axis=0)
    return mean + factor * (X - mean)


def revert(X: np.ndarray, centre, keep: float) -> np.ndarray:
    """``centre + keep * (X - centre)``: one step of relaxation towards ``centre`` (``keep`` =
    exp(-step / time constant), in [0, 1])."""
    return centre + keep * (np.asarray(X, dtype=float) - centre)


def random_walk(X: np.ndarray, std, rng: np.random.Generator, centered: bool = False) -> np.ndarray:
    """X + N(0, std^2), per column (``std`` scalar or (n,)). ``centered``: the steps' mean over
    the members (rows) is removed, so the walk widens the ensemble (its sample covariance grows by
    std^2, as without centring) without moving its mean: with M members an uncentred walk shifts
    the mean by noise of std / sqrt(M) every step."""
    step = rng.standard_normal(X.shape)
    if centered:
        step -= step.mean(axis=0)
    return X + step * np.asarray(std)


def enkf_analysis(X: np.ndarray, HX: np.ndarray, y: np.ndarray, r, rng: np.random.Generator,
                  inflation: float = 1.0, rho_xy: np.ndarray | None = None,
                  domains: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """The analysis ensemble (M, n). ``r``: observation noise variance (scalar or (p,)).

    Localisation, two ways: ``rho_xy`` (n, p) weights in [0, 1] multiply the state-observation
    covariance (a Schur product; P_yy is left whole, so the gain stays well posed); ``domains``
    [(state columns, observation columns), ...] updates each group of state variables from its
    own observations only (domain localisation, as in the LETKF): small, well-conditioned
    solves however few the members. Every domain uses the same perturbed observations."""
    X = np.asarray(X, dtype=float)
    HX = np.asarray(HX, dtype=float)
    y = np.asarray(y, dtype=float)
    M, p = HX.shape
    if M < 2:
        raise ValueError("the EnKF needs at least two members")
    if inflation != 1.0:
        X = inflate(X, inflation)
        HX = inflate(HX, inflation)
    R = np.broadcast_to(np.asarray(r, dtype=float), (p,))
    innovation = y + rng.standard_normal((M, p)) * np.sqrt(R) - HX          # (M, p)
    A = X - X.mean(axis=0)
    B = HX - HX.mean(axis=0)
    if domains is None:
        domains = [(np.arange(X.shape[1]), np.arange(p))]
    out = X.copy()
    for cols, obs in domains:
        Bo = B[:, obs]
        P_xy = A[:, cols].T @ Bo / (M - 1)
        if rho_xy is not None:
            P_xy = P_xy * rho_xy[np.ix_(cols, obs)]
        P_yy = Bo.T @ Bo / (M - 1)
        K = np.linalg.solve((P_yy + np.diag(R[obs])).T, P_xy.T).T             # (len(cols), len(obs))
        out[:, cols] = X[:, cols] + innovation[:, obs] @ K.T
    return out


def kalman_update(mean: np.ndarray, cov: np.ndarray, H: np.ndarray, y: np.ndarray, r) -> tuple[np.ndarray, np.ndarray]:
    """The Kalman filter's analysis for a linear observation y = H x + N(0, R)."""
    R = np.diag(np.broadcast_to(np.asarray(r, dtype=float), (len(y),)))
    S = H @ cov @ H.T + R
    K = np.linalg.solve(S.T, (cov @ H.T).T).T
    return mean + K @ (y - H @ mean), (np.eye(len(mean)) - K @ H) @ cov


def neighbours(sc: np.ndarray, hops: int = 1) -> np.ndarray:
    """(R, R) bool: region j within ``hops`` connections of region i in the structural connectome
    ``sc`` (either direction), i itself included."""
    R = len(sc)
    reach = np.eye(R, dtype=bool)
    link = (np.asarray(sc) > 0) | (np.asarray(sc).T > 0)
    for _ in range(hops):
        reach = reach | (reach.astype(int) @ link.astype(int) > 0)
    return reach


def region_domains(reach: np.ndarray, columns_of_region) -> list[tuple[np.ndarray, np.ndarray]]:
    """Domains for :func:`enkf_analysis`: region i's state columns (``columns_of_region(i)``)
    with the observations of the regions ``reach[i]`` marks."""
    return [(np.asarray(columns_of_region(i)), np.flatnonzero(reach[i])) for i in range(len(reach))]


# ------------------------------------------------------------------------ baselines, metrics
def pearson_per_column(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of two (T, R) arrays (NaN for a constant column)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / den


def persistence_forecast(y: np.ndarray) -> np.ndarray:
    """BOLD(t+1) = BOLD(t): forecasts for rows 1..T-1."""
    return y[:-1]


def ar1_forecast(train: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-region AR(1) fitted on ``train`` (least squares with intercept), forecasting rows
    1..T-1 of ``y`` from rows 0..T-2."""
    x0, x1 = train[:-1], train[1:]
    mx, my = x0.mean(axis=0), x1.mean(axis=0)
    phi = ((x0 - mx) * (x1 - my)).sum(axis=0) / np.maximum(((x0 - mx) ** 2).sum(axis=0), 1e-300)
    c = my - phi * mx
    return c + phi * y[:-1]


def fc_matrix(bold: np.ndarray) -> np.ndarray:
    """Functional connectivity: Pearson correlation between regions of (T, R) BOLD."""
    return np.corrcoef(bold.T)


def fc_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r between the upper triangles of two FC (or SC) matrices."""
    iu = np.triu_indices(len(a), k=1)
    return float(np.corrcoef(a[iu], b[iu])[0, 1])


def sc_fc_similarity(sc: np.ndarray, fc: np.ndarray) -> float:
    """The structural connectome's own FC r, the baseline of any model: Pearson r between the
    upper triangles of log(1 + SC + SC^T) and an FC matrix."""
    return fc_similarity(np.log1p(sc + sc.T), fc)


#: sliding windows of the FCD: 30 TRs, step 5 (Hansen et al. 2015 use about a minute; held-out
#: halves of resting-state scans leave room for a few dozen windows)
FCD_WINDOW, FCD_STEP = 30, 5


def fcd_values(bold: np.ndarray, window: int, step: int) -> np.ndarray:
    """Functional connectivity dynamics: the upper triangle of the FCD matrix, the Pearson r
    between the FC upper triangles of sliding windows (``window`` and ``step`` in samples) of
    (T, R) BOLD (Hansen et al. 2015). Empty when fewer than two windows fit."""
    starts = range(0, len(bold) - window + 1, step)
    iu = np.triu_indices(bold.shape[1], k=1)
    fcs = np.array([np.corrcoef(bold[s:s + window].T)[iu] for s in starts])
    if len(fcs) < 2:
        return np.zeros(0)
    return np.corrcoef(fcs)[np.triu_indices(len(fcs), k=1)]


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance (the largest gap between the empirical CDFs) of two samples."""
    from scipy.stats import ks_2samp
    return float(ks_2samp(np.ravel(a), np.ravel(b)).statistic)
