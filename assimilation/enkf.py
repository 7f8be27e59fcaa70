"""The ensemble Kalman filter of the hierarchical mesoscale data assimilation, as pure functions.

Notation: M members, n state variables, p observations. ``X`` (M, n) is the ensemble of
augmented states, ``HX`` (M, p) the members' predicted observations, ``y`` (p,) the observation
with noise variance ``r`` (p,). The analysis is the stochastic ("perturbed observations") EnKF
(Evensen 2003; Burgers et al. 1998):

    P_xy = cov(X, HX),  P_yy = cov(HX, HX)                  (ensemble estimates)
    K    = (rho_xy * P_xy) (rho_yy * P_yy + R)^-1            (rho: localisation, elementwise)
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


def to_unbounded(hp: np.ndarray, low, high) -> np.ndarray:
    """The inverse of :func:`to_bounded` (hp strictly inside (low, high))."""
    f = (np.asarray(hp, dtype=float) - low) / (np.asarray(high) - low)
    if np.any((f <= 0) | (f >= 1)):
        raise ValueError("hyperparameters must lie strictly inside their bounds")
    return np.log(f / (1.0 - f))


def inflate(X: np.ndarray, factor: float) -> np.ndarray:
    """Multiplicative inflation of the anomalies about the ensemble mean."""
    mean = X.mean(axis=0)
    return mean + factor * (X - mean)


def random_walk(X: np.ndarray, std, rng: np.random.Generator) -> np.ndarray:
    """X + N(0, std^2), per column (``std`` scalar or (n,))."""
    return X + rng.standard_normal(X.shape) * np.asarray(std)


def enkf_analysis(X: np.ndarray, HX: np.ndarray, y: np.ndarray, r, rng: np.random.Generator,
                  inflation: float = 1.0, rho_xy: np.ndarray | None = None,
                  rho_yy: np.ndarray | None = None) -> np.ndarray:
    """The analysis ensemble (M, n). ``r``: observation noise variance (scalar or (p,));
    ``rho_xy`` (n, p) and ``rho_yy`` (p, p): localisation weights in [0, 1] (None: none)."""
    X = np.asarray(X, dtype=float)
    HX = np.asarray(HX, dtype=float)
    y = np.asarray(y, dtype=float)
    M, p = HX.shape
    if M < 2:
        raise ValueError("the EnKF needs at least two members")
    if inflation != 1.0:
        X = inflate(X, inflation)
        HX = inflate(HX, inflation)
    A = X - X.mean(axis=0)
    B = HX - HX.mean(axis=0)
    P_xy = A.T @ B / (M - 1)
    P_yy = B.T @ B / (M - 1)
    if rho_xy is not None:
        P_xy = P_xy * rho_xy
    if rho_yy is not None:
        P_yy = P_yy * rho_yy
    R = np.broadcast_to(np.asarray(r, dtype=float), (p,))
    K = np.linalg.solve((P_yy + np.diag(R)).T, P_xy.T).T          # (n, p)
    perturbed = y + rng.standard_normal((M, p)) * np.sqrt(R)
    return X + (perturbed - HX) @ K.T


def kalman_update(mean: np.ndarray, cov: np.ndarray, H: np.ndarray, y: np.ndarray, r) -> tuple[np.ndarray, np.ndarray]:
    """The Kalman filter's analysis for a linear observation y = H x + N(0, R)."""
    R = np.diag(np.broadcast_to(np.asarray(r, dtype=float), (len(y),)))
    S = H @ cov @ H.T + R
    K = np.linalg.solve(S.T, (cov @ H.T).T).T
    return mean + K @ (y - H @ mean), (np.eye(len(mean)) - K @ H) @ cov


def neighbour_localisation(sc: np.ndarray, n_per_region: int, hops: int = 1) -> np.ndarray:
    """(regions * n_per_region, regions) weights: 1 where the state's region is the observed one
    or within ``hops`` connections of it in the structural connectome ``sc``, else 0. With
    ``hops=0`` each region's variables see only its own observation."""
    R = len(sc)
    reach = np.eye(R, dtype=bool)
    link = (np.asarray(sc) > 0) | (np.asarray(sc).T > 0)
    for _ in range(hops):
        reach = reach | (reach.astype(int) @ link.astype(int) > 0)
    return np.repeat(reach, n_per_region, axis=0).astype(float)


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
