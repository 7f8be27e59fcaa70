"""Matsuoka half-center oscillators: two mutually inhibiting units with self-adaptation
(Matsuoka 1985, Biol. Cybern. 52:367; frequency: Matsuoka 2011, Biol. Cybern. 104:297).

    tau_r dx_i/dt = -x_i - beta v_i - w y_j + u + c_i       (i, j in {flexor, extensor}, i != j)
    tau_a dv_i/dt = -v_i + y_i
    y_i = max(0, x_i)

u is the tonic drive, c_i an external input (e.g. inter-limb coupling). The output y_1 - y_2
oscillates when beta and w are large enough; Matsuoka's closed form for its angular frequency,

    omega = (1 / tau_a) sqrt(((tau_r + tau_a) beta - tau_r w) / (tau_r w)),

holds well when tau_a is close to 2 tau_r and drifts as tau_a / tau_r grows (checked against
integration in ../shared/NOTES.md); :func:`measured_frequency` measures it instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MatsuokaParameters:
    tau_r: float = 0.1       # [s] rise time constant
    tau_a: float = 0.2       # [s] adaptation time constant
    beta: float = 2.5        # adaptation strength
    w: float = 2.5           # mutual inhibition
    drive: float = 1.0       # tonic input u

    def __post_init__(self):
        if not (self.tau_r > 0 and self.tau_a > 0):
            raise ValueError("time constants must be positive")


def natural_frequency(p: MatsuokaParameters) -> float:
    """Matsuoka's closed-form oscillation frequency (Hz); NaN where it predicts no oscillation."""
    arg = ((p.tau_r + p.tau_a) * p.beta - p.tau_r * p.w) / (p.tau_r * p.w)
    return float(np.sqrt(arg) / p.tau_a / (2 * np.pi)) if arg > 0 else float("nan")


def derivatives(state: np.ndarray, p: MatsuokaParameters, external: np.ndarray | float = 0.0) -> np.ndarray:
    """d/dt of state (..., 4) = (x1, x2, v1, v2); ``external`` (..., 2) adds to each unit's input."""
    x, v = state[..., :2], state[..., 2:]
    y = np.maximum(x, 0.0)
    ext = np.broadcast_to(external, x.shape)
    dx = (-x - p.beta * v - p.w * y[..., ::-1] + p.drive + ext) / p.tau_r
    dv = (-v + y) / p.tau_a
    return np.concatenate([dx, dv], axis=-1)


def simulate(p: MatsuokaParameters, duration: float, dt: float = 1e-3,
             state0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Classical Runge-Kutta integration: (t (n,), outputs y (n, 2)) of one half-center."""
    s = np.array([0.1, 0.0, 0.0, 0.0]) if state0 is None else np.array(state0, dtype=float)
    n = int(round(duration / dt))
    y = np.empty((n, 2))
    for k in range(n):
        k1 = derivatives(s, p)
        k2 = derivatives(s + 0.5 * dt * k1, p)
        k3 = derivatives(s + 0.5 * dt * k2, p)
        k4 = derivatives(s + dt * k3, p)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        y[k] = np.maximum(s[:2], 0.0)
    return np.arange(1, n + 1) * dt, y


def measured_frequency(t: np.ndarray, signal: np.ndarray, skip: float = 0.0) -> float:
    """Frequency (Hz) from the mean interval between upward zero crossings of ``signal - mean``
    after ``skip`` seconds (interpolated crossing times)."""
    keep = t >= skip
    if keep.sum() < 3:
        return float("nan")
    t, x = t[keep], signal[keep] - signal[keep].mean()
    up = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    if len(up) < 3:
        return float("nan")
    tc = t[up] - x[up] * (t[up + 1] - t[up]) / (x[up + 1] - x[up])
    return float(1.0 / np.mean(np.diff(tc)))


#: Brian2 equations of a group of half-centers (one per neuron of the group); ``c1``/``c2`` are
#: external inputs (coupling), tau_r/tau_a/beta/w/u parameters; y1, y2 the outputs
BRIAN2_EQUATIONS = """
dx1/dt = (-x1 - beta*v1 - w*y2 + u + c1) / tau_r : 1
dx2/dt = (-x2 - beta*v2 - w*y1 + u + c2) / tau_r : 1
dv1/dt = (-v1 + y1) / tau_a : 1
dv2/dt = (-v2 + y2) / tau_a : 1
y1 = clip(x1, 0, inf) : 1
y2 = clip(x2, 0, inf) : 1
c1 : 1
c2 : 1
tau_r : second (constant)
tau_a : second (constant)
beta : 1 (constant)
w : 1 (constant)
u : 1
"""
