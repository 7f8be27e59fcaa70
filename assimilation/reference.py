"""An analytic reference for one-TR-ahead BOLD forecasts: the exact Kalman filter of the
linearised balloon model, an independent check on what any forecast that rests on the
haemodynamics can reach.

Model per region (deviations from rest, state (u, s, f, v, q)): the neural drive u is an
Ornstein-Uhlenbeck process of time constant ``tau_u`` [s] and unit variance; the balloon
equations of :mod:`dtb.models.balloon` linearised at rest (f = v = q = 1, s = 0):

    du/dt = -u / tau_u + sqrt(2 / tau_u) xi(t)
    ds/dt = efficacy u - kappa s - gamma f
    df/dt = s
    dv/dt = (f - v / alpha) / tau
    dq/dt = (f (1 + (1 - E0) ln(1 - E0) / E0) - (1 / alpha - 1) v - q) / tau
    y     = V0 ((k2 - k3) v - (k1 + k2) q)              scaled to unit variance

observed every TR with white noise: data = sqrt(phi) y + sqrt(1 - phi) e (phi: the signal
fraction of the z-scored data). The process is discretised exactly over one TR (Van Loan).
:func:`best_kalman_forecast` fits (tau_u, phi) by maximum likelihood on a grid, per data set,
and returns the filter's one-TR-ahead forecasts. All regions share the parameters, so the
gains are computed once and applied to every region at once.

The FC reference is the linear stochastic network of a connectome: :func:`linear_fc`, its
stationary correlation (infinite data), and :func:`linear_network_bold`, finite runs of it seen
through the balloon model, to compare with the twin and the Hopf model like for like.
"""

from __future__ import annotations

import numpy as np

from dtb.models.balloon import BalloonParameters, preset


def linear_balloon(p: BalloonParameters, tau_u: float, tr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F, Q, C): one-TR transition, process noise covariance and the observation row of the
    linearised balloon model driven by a unit-variance OU drive; C scaled so that the
    stationary signal C x has unit variance."""
    from scipy.linalg import expm, solve_discrete_lyapunov
    k1, k2, k3 = p.k
    de = 1.0 + (1.0 - p.E0) * np.log(1.0 - p.E0) / p.E0
    A = np.array([[-1.0 / tau_u, 0, 0, 0, 0],
                  [p.efficacy, -p.kappa, -p.gamma, 0, 0],
                  [0, 1.0, 0, 0, 0],
                  [0, 0, 1.0 / p.tau, -1.0 / (p.alpha * p.tau), 0],
                  [0, 0, de / p.tau, -(1.0 / p.alpha - 1.0) / p.tau, -1.0 / p.tau]])
    n = len(A)
    Qc = np.zeros((n, n))
    Qc[0, 0] = 2.0 / tau_u
    vl = np.zeros((2 * n, 2 * n))                       # Van Loan's method
    vl[:n, :n], vl[:n, n:], vl[n:, n:] = -A, Qc, A.T
    E = expm(vl * tr)
    F = E[n:, n:].T
    Q = F @ E[:n, n:]
    Q = 0.5 * (Q + Q.T)
    C = p.V0 * np.array([0, 0, 0, k2 - k3, -(k1 + k2)])
    S = solve_discrete_lyapunov(F, Q)
    return F, Q, C / np.sqrt(C @ S @ C)


def kalman_pass(y: np.ndarray, F: np.ndarray, Q: np.ndarray, C: np.ndarray, phi: float) -> tuple[np.ndarray, float, np.ndarray]:
    """One pass of the Kalman filter over z-scored data ``y`` (T, R) for signal fraction ``phi``:
    one-step forecasts (T, R) (row t: the forecast of y[t] from rows < t; row 0 the prior mean 0),
    the log-likelihood, and the filtered state means (T, n, R) (row t: given rows <= t)."""
    from scipy.linalg import solve_discrete_lyapunov
    y = np.asarray(y, dtype=float)
    Qs = Q * phi
    P = solve_discrete_lyapunov(F, Qs)                  # start from the stationary prior
    r = 1.0 - phi
    x = np.zeros((F.shape[0], y.shape[1]))
    out = np.empty_like(y)
    filtered = np.empty((len(y), F.shape[0], y.shape[1]))
    ll = 0.0
    for t in range(len(y)):
        pred = C @ x
        s = C @ P @ C + r
        out[t] = pred
        innov = y[t] - pred
        ll += -0.5 * float(np.sum(np.log(2 * np.pi * s) + innov ** 2 / s))
        K = P @ C / s
        x = x + np.outer(K, innov)
        filtered[t] = x
        P = P - np.outer(K, C @ P)
        x = F @ x
        P = F @ P @ F.T + Qs
    return out, ll, filtered


def kalman_forecast(y: np.ndarray, F: np.ndarray, Q: np.ndarray, C: np.ndarray, phi: float) -> tuple[np.ndarray, float]:
    """One-step forecasts (T, R) of z-scored data ``y`` (T, R) and the log-likelihood (see
    :func:`kalman_pass`)."""
    out, ll, _ = kalman_pass(y, F, Q, C, phi)
    return out, ll


#: grids of the maximum-likelihood fit: the drive's time constant tau_u (s) and the signal fraction phi
TAU_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
PHI_GRID = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def best_kalman_forecast(y: np.ndarray, tr: float, params: BalloonParameters | str = "dtb",
                         tau_grid=TAU_GRID, phi_grid=PHI_GRID) -> tuple[np.ndarray, dict]:
    """The maximum-likelihood (tau_u, phi) on the grids and that filter's forecasts (T, R)."""
    fit = fit_kalman(y, tr, params, tau_grid, phi_grid)
    return kalman_forecast(y, fit["F"], fit["Q"], fit["C"], fit["phi"])[0], \
        {k: fit[k] for k in ("tau_u", "phi", "loglik")}


def fit_kalman(train: np.ndarray, tr: float, params: BalloonParameters | str = "dtb",
               tau_grid=TAU_GRID, phi_grid=PHI_GRID) -> dict:
    """(tau_u, phi) of maximum likelihood on ``train`` (T, R), with the model's matrices:
    {"tau_u", "phi", "loglik", "F", "Q", "C"}."""
    p = preset(params) if isinstance(params, str) else params
    best = None
    for tau_u in tau_grid:
        F, Q, C = linear_balloon(p, tau_u, tr)
        for phi in phi_grid:
            ll = kalman_pass(train, F, Q, C, phi)[1]
            if best is None or ll > best["loglik"]:
                best = {"tau_u": tau_u, "phi": phi, "loglik": ll, "F": F, "Q": Q, "C": C}
    return best


def kalman_forecasts(y: np.ndarray, origins: np.ndarray, horizons, fit: dict) -> np.ndarray:
    """(O, H, R) forecasts C F^h x(o | rows <= o) of the fitted filter ``fit`` (:func:`fit_kalman`)
    run over all of ``y``; the filter's parameters do not change along the way."""
    _, _, filtered = kalman_pass(y, fit["F"], fit["Q"], fit["C"], fit["phi"])
    x = filtered[np.asarray(origins)]                  # (O, n, R)
    out = np.empty((len(origins), max(horizons), y.shape[1]))
    for h in range(max(horizons)):
        x = np.einsum("ij,ojr->oir", fit["F"], x)
        out[:, h] = np.einsum("j,ojr->or", fit["C"], x)
    return out[:, np.asarray(horizons) - 1]


def linear_covariance(weights: np.ndarray, gain: float) -> np.ndarray:
    """Stationary covariance P of the linear stochastic network of a connectome,
    dx = (-x + gain W x / rho(W)) dt + dW_t (rho: spectral radius; gain < 1 is stable), from the
    Lyapunov equation A P + P A^T + I = 0."""
    return _stationary_covariance(_linear_drift(weights, gain))


def _stationary_covariance(a: np.ndarray) -> np.ndarray:
    """P with A P + P A^T + I = 0 (dx = A x dt + dW)."""
    from scipy.linalg import solve_continuous_lyapunov
    return solve_continuous_lyapunov(a, -np.eye(len(a)))


def _linear_drift(weights: np.ndarray, gain: float) -> np.ndarray:
    """A = -I + gain W / rho(W), checked."""
    w = np.asarray(weights, dtype=np.float64)
    rho = np.max(np.abs(np.linalg.eigvals(w)))
    if not 0 <= gain < 1 or rho == 0:
        raise ValueError(f"gain must lie in [0, 1) and the connectome must have a connection, got gain {gain}")
    return -np.eye(len(w)) + gain * w / rho


def linear_fc(weights: np.ndarray, gain: float) -> np.ndarray:
    """Stationary correlation matrix of the linear stochastic network of a connectome
    (:func:`linear_covariance`). The simplest model of how a connectome shapes FC (as in Galan
    2008, Saggio 2016): the reference for choosing how a spiking network realises it."""
    p = linear_covariance(weights, gain)
    d = np.sqrt(np.diag(p))
    return p / np.outer(d, d)


def linear_network_bold(weights: np.ndarray, gain: float, n_tr: int, tr: float, runs: int = 1, seed: int = 0,
                        tau: float = 0.02, dt: float = 0.004, drive: float = 0.01, depth: float = 0.2,
                        discard: float = 10.0, params: BalloonParameters | str = "dtb") -> np.ndarray:
    """BOLD (runs, n_tr, regions) of the linear stochastic network, the like-for-like version of
    :func:`linear_fc`: finite runs seen through the haemodynamics, as the twin and the Hopf model
    are. Per region, tau dx/dt = -x + gain W x / rho(W) + sqrt(2 tau) xi(t) [tau in s] (Euler-
    Maruyama, step ``dt`` s, from x = 0), and the balloon model of :mod:`dtb.models.balloon`,
    started at its steady state, is driven by u = drive (1 + depth x / sd(x)) (sd: the stationary
    one, so every region is modulated by the same fraction; ``drive`` in the balloon's units,
    0.01 = a 10 Hz rate). Sampled every ``tr`` s after ``discard`` s; ``tr`` must be a whole
    number of ``dt``. Runs are independent (one generator keyed by ``seed``)."""
    from dtb.models.balloon import BalloonIntegrator, bold_signal, fixed_point
    p = preset(params) if isinstance(params, str) else params
    per_tr = int(round(tr / dt))
    if abs(per_tr * dt - tr) > 1e-9 * tr or per_tr < 1:
        raise ValueError(f"tr ({tr} s) must be a whole multiple of dt ({dt} s)")
    a = _linear_drift(weights, gain)
    sd = np.sqrt(2.0 * np.diag(_stationary_covariance(a)))   # noise sqrt(2 tau) per unit tau: twice P
    rng = np.random.default_rng(seed)
    x = np.zeros((runs, len(a)))
    step = (np.eye(len(a)) + a * (dt / tau)).T                # x_{t+1} = x_t (I + A dt/tau)^T + noise
    noise = np.sqrt(2.0 * dt / tau)
    integ = BalloonIntegrator(p, dt, fixed_point(np.full(x.shape, drive), p)[0])
    first = int(round(discard / tr))
    out = np.empty((runs, n_tr, len(a)))
    for t in range((first + n_tr) * per_tr):
        x = x @ step + noise * rng.standard_normal(x.shape)
        integ.step(drive * (1.0 + depth * x / sd))
        sample, rest = divmod(t + 1, per_tr)
        if rest == 0 and sample > first:
            out[:, sample - 1 - first] = bold_signal(integ.state, p)
    return out
