"""Effective connectivity (MOU-EC, Gilson et al. 2016, PLoS Comput Biol 12:e1004762) fitted to
the zero-lag and lagged covariances of BOLD, the level of the twin's hierarchy that sets its
long-range weights, and the linear baseline built on it.

The model is the multivariate Ornstein-Uhlenbeck process of the regions' activity x (R,):

    dx = A x dt + dB,   A = -I / tau + C,   <dB dB^T> = Sigma dt,
    Sigma = diag(sigma) + sigma_common 1 1^T

with C (R, R) the effective connectivity [target, source], non-negative and zero where the
structural mask has no connection, sigma (R,) each region's own input variance and
sigma_common the variance of one input shared by all regions (a global signal: without it, the
strong mean FC of resting-state BOLD can only come from a C at the edge of instability). Time
is in TRs. Its covariances: A Q0 + Q0 A^T + Sigma = 0 (Lyapunov) and
Q_lag = <x(t + lag) x(t)^T> = expm(A lag) Q0.

:func:`fit_mou_ec` chooses C, sigma and sigma_common so that Q0 and Q_lag match the data's
(their squared Frobenius distances, each relative to the data's norm, plus an L1 penalty on C),
by L-BFGS-B with the exact gradient (the adjoint Lyapunov equation and the Frechet derivative of
the matrix exponential); tau starts from the regions' mean autocovariance decay between lag 0
and ``lag`` (as in Gilson's pyMOU) and is fitted with the rest. ``rho_max`` keeps the spectral radius of
tau C (the gain with which the network passes fluctuations on at low frequencies) below a
bound, so that a spiking network can realise it without being driven into a high-activity state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm, expm_frechet, solve_continuous_lyapunov


@dataclass(frozen=True)
class MouFit:
    """A fitted MOU process; times in TRs."""

    C: np.ndarray              # (R, R) [target, source], >= 0
    sigma: np.ndarray          # (R,) each region's own input variance (per TR)
    sigma_common: float        # variance of the input shared by every region
    tau: float                 # [TR] time constant of every region
    lag: int                   # [TR] of the lagged covariance fitted
    distance: float            # mean relative Frobenius distance of Q0 and Q_lag at the fit
    fc_r: float                # Pearson r of the model's and the data's correlation (upper triangles)
    iterations: int

    @property
    def A(self) -> np.ndarray:
        return -np.eye(len(self.C)) / self.tau + self.C

    @property
    def Sigma(self) -> np.ndarray:
        return noise_covariance(self.sigma, self.sigma_common)

    @property
    def gain(self) -> float:
        """Spectral radius of tau C: the low-frequency loop gain (< 1: stable)."""
        return spectral_radius(self.tau * self.C)


def noise_covariance(sigma: np.ndarray, common: float) -> np.ndarray:
    return np.diag(np.asarray(sigma, dtype=float)) + float(common)


def spectral_radius(m: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(m)))) if len(m) else 0.0


def lagged_covariances(x: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q0, Q_lag) of (T, R) data, Q_lag[i, j] = cov(x_i(t + lag), x_j(t)), both divided by the
    outer product of the standard deviations (so Q0 is the correlation matrix)."""
    x = np.asarray(x, dtype=float)
    if lag < 1 or len(x) < lag + 3:
        raise ValueError(f"need lag >= 1 and more than lag + 2 samples, got lag {lag} and {len(x)} samples")
    x = x - x.mean(axis=0)
    q0 = x.T @ x / (len(x) - 1)
    ql = x[lag:].T @ x[:-lag] / (len(x) - lag - 1)
    d = np.sqrt(np.diag(q0))
    if np.any(d == 0):
        raise ValueError("a region of the data is constant")
    return q0 / np.outer(d, d), ql / np.outer(d, d)


def autocovariance_tau(q0: np.ndarray, ql: np.ndarray, lag: int) -> float:
    """[TR] the time constant of the regions' autocovariances, -1 / slope of log(Q_ii) between
    lag 0 and ``lag`` (least squares over all regions)."""
    r = len(q0)
    ac = np.concatenate([np.diag(q0), np.diag(ql)])
    slope = np.polyfit(np.r_[np.zeros(r), np.full(r, lag)], np.log(np.maximum(ac, ac.max() * 1e-6)), 1)[0]
    if not slope < 0:
        raise ValueError("the data's autocovariance does not decay between lag 0 and the fitted lag")
    return -1.0 / slope


def model_covariances(A: np.ndarray, Sigma: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(Q0, Q_lag, expm(A lag)) of a stable MOU; None where A is not stable."""
    if np.max(np.linalg.eigvals(A).real) >= 0:
        return None
    q0 = solve_continuous_lyapunov(A, -Sigma)
    e = expm(A * lag)
    return q0, e @ q0, e


class _Objective:
    """Loss and exact gradient of the fit over the packed parameters [C[mask], sigma, common]."""

    def __init__(self, q0: np.ndarray, ql: np.ndarray, mask: np.ndarray, tau: float, lag: int, l1: float,
                 rho_max: float | None):
        self.q0, self.ql, self.mask, self.tau, self.lag = q0, ql, mask, tau, lag
        self.n0, self.nl = np.sum(q0 ** 2), np.sum(ql ** 2)
        self.l1, self.rho_max = l1, rho_max
        self.r = len(q0)
        self.k = int(mask.sum())

    def unpack(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        C = np.zeros((self.r, self.r))
        C[self.mask] = p[:self.k]
        return C, p[self.k:self.k + self.r], float(p[-2]), float(p[-1])

    def __call__(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        C, sigma, common, tau = self.unpack(p)
        self.tau = tau
        A = -np.eye(self.r) / tau + C
        m = model_covariances(A, noise_covariance(sigma, common), self.lag)
        if m is None:
            return 1e6, np.zeros_like(p)               # unstable: the line search steps back
        q0, ql, e = m
        d0, dl = q0 - self.q0, ql - self.ql
        loss = 0.5 * (np.sum(d0 ** 2) / self.n0 + np.sum(dl ** 2) / self.nl) + self.l1 * C.sum()
        g_l = dl / self.nl                             # dL/dQ_lag
        g_0 = d0 / self.n0 + e.T @ g_l                 # dL/dQ0, the lagged term through Q_lag = E Q0
        g_0 = 0.5 * (g_0 + g_0.T)
        P = solve_continuous_lyapunov(A.T, -g_0)       # adjoint: A^T P + P A + g_0 = 0
        g_A = 2.0 * P @ q0 + self.lag * expm_frechet(A.T * self.lag, g_l @ q0, compute_expm=False)
        g_C = g_A + self.l1
        if self.rho_max is not None:
            loss, g_C = self._radius_penalty(C, loss, g_C)
        return loss, np.concatenate([g_C[self.mask], np.diag(P), [P.sum(), np.trace(g_A) / tau ** 2]])

    def _radius_penalty(self, C: np.ndarray, loss: float, g_C: np.ndarray) -> tuple[float, np.ndarray]:
        """A quadratic penalty on rho(tau C) above ``rho_max`` (the Perron root of a non-negative
        matrix, with its derivative from the left and right eigenvectors)."""
        w, vr = np.linalg.eig(self.tau * C)
        i = int(np.argmax(w.real))
        excess = w[i].real - self.rho_max
        if excess <= 0:
            return loss, g_C
        wl, vl = np.linalg.eig((self.tau * C).T)
        y = vl[:, int(np.argmin(np.abs(wl - w[i])))].real
        x = vr[:, i].real
        d_rho = self.tau * np.outer(y, x) / float(y @ x)
        return loss + 10.0 * excess ** 2, g_C + 20.0 * excess * d_rho


def fit_mou_ec(x: np.ndarray, mask: np.ndarray, lag: int = 1, l1: float = 0.0, rho_max: float | None = None,
               common: bool = True, max_iter: int = 500) -> MouFit:
    """MOU-EC of (T, R) data (time in TRs) on the directed structural ``mask`` [target, source]
    (the diagonal is ignored): see the module docstring."""
    from scipy.optimize import minimize
    q0, ql = lagged_covariances(x, lag)
    r = len(q0)
    mask = np.array(mask, dtype=bool)
    np.fill_diagonal(mask, False)
    tau = autocovariance_tau(q0, ql, lag)
    obj = _Objective(q0, ql, mask, tau, lag, l1, rho_max)
    p0 = np.concatenate([np.zeros(obj.k), np.diag(q0) * 2.0 / tau, [0.0, tau]])
    bounds = [(0.0, None)] * obj.k + [(1e-6, None)] * r + [(0.0, None if common else 0.0), (0.1 * tau, 10.0 * tau)]
    res = minimize(obj, p0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": max_iter})
    C, sigma, sigma_common, tau = obj.unpack(res.x)
    q0m, qlm, _ = model_covariances(-np.eye(r) / tau + C, noise_covariance(sigma, sigma_common), lag)
    iu = np.triu_indices(r, k=1)
    d = np.sqrt(np.diag(q0m))
    distance = 0.5 * (np.linalg.norm(q0m - q0) / np.sqrt(obj.n0) + np.linalg.norm(qlm - ql) / np.sqrt(obj.nl))
    fc_r = float(np.corrcoef((q0m / np.outer(d, d))[iu], q0[iu])[0, 1])
    return MouFit(C=C, sigma=sigma, sigma_common=sigma_common, tau=tau, lag=lag, distance=float(distance),
                  fc_r=fc_r, iterations=int(res.nit))


def mou_fc(fit: MouFit) -> np.ndarray:
    """The stationary correlation matrix of the fitted process."""
    q0 = solve_continuous_lyapunov(fit.A, -fit.Sigma)
    d = np.sqrt(np.diag(q0))
    return q0 / np.outer(d, d)


def simulate_mou(fit: MouFit, n: int, seed: int, substeps: int = 10, discard: int = 100) -> np.ndarray:
    """(n, R) samples, one per TR, of the fitted process (exact discretisation with ``substeps``
    per TR, started at 0, the first ``discard`` TRs dropped)."""
    A = fit.A
    r = len(A)
    f = expm(A / substeps)
    q = solve_continuous_lyapunov(A, -fit.Sigma)
    chol = np.linalg.cholesky(q - f @ q @ f.T + 1e-12 * np.eye(r))
    rng = np.random.default_rng(seed)
    x = np.zeros(r)
    out = np.empty((n, r))
    for t in range(discard + n):
        for _ in range(substeps):
            x = f @ x + chol @ rng.standard_normal(r)
        if t >= discard:
            out[t - discard] = x
    return out
