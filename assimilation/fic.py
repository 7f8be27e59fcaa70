"""Feedback inhibition control (FIC; Deco et al. 2014, J Neurosci 34:7886): each region's local
inhibition onto its excitatory neurons is scaled so that their mean rate sits at a target under
the network's own long-range input, the operating point around which the twin's
hyperparameters then move.

The calibration iterates free runs of a few independent networks (the ensemble's first
members): every window it measures each region's excitatory rate (members' mean) and multiplies
the region's factor s_r on the GABAa conductance of its excitatory neurons by
(rate / target)^EXPONENT, clipped to [1 / STEP_LIMIT, STEP_LIMIT] (larger steps for a region
FAR off target: :func:`update`), until every region is within ``tolerance`` of the target. The
small exponent is deliberate: a region's rate falls steeply with s_r (about rate ~ s_r^-2.6 on
the HCP networks), and the regions' common mode, which the long-range coupling amplifies,
overshoots with anything larger.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dtb.spec import NetworkSpec

log = logging.getLogger(__name__)

#: exponent of the multiplicative update and the largest factor of one step
EXPONENT, STEP_LIMIT = 0.15, 1.4
#: for a region more than FAR times off its target (a network in its high-activity state, whose
#: rates hardly answer its inhibition): a larger exponent and step
FAR, FAR_EXPONENT, FAR_LIMIT = 3.0, 0.5, 2.0
#: simulated before each measuring window, so that the rates settle after a change [s]
SETTLE = 0.25
#: a window long enough that the counting noise of the smallest region's rate is at most this
#: fraction of the tolerance (4: a region on target is reported outside it with chance 6e-5)
NOISE_MARGIN = 4.0
#: with this fraction of the regions within the tolerance, the window doubles, up to LONGEST times the first
NEAR, LONGEST = 0.8, 8.0


@dataclass(frozen=True)
class FicResult:
    scale: np.ndarray          # (R,) factor on the GABAa conductance of each region's excitatory neurons
    rates: np.ndarray          # (R,) excitatory rate (Hz, members' mean) in the last window
    target: float              # [Hz]
    tolerance: float           # relative
    converged: bool
    history: np.ndarray        # (iterations, 2, R): scale and measured rate of every window

    @property
    def within(self) -> float:
        """Fraction of regions within the tolerance of the target in the last window."""
        return float(np.mean(np.abs(self.rates / self.target - 1.0) <= self.tolerance))


def calibrate(measure: Callable[[float], np.ndarray], apply: Callable[[np.ndarray], None], initial: np.ndarray,
              target: float, tolerance: float, max_iterations: int, window: float) -> FicResult:
    """The FIC loop on any network: ``apply(scale)`` sets the per-region factors,
    ``measure(seconds)`` runs a window and returns each region's excitatory rate (Hz). The
    window doubles (up to LONGEST times ``window``) whenever most regions (NEAR) are within the
    tolerance: the slow fluctuations of a region's rate, which its input noise and the coupling
    make, then weigh as much as its distance to the target, and averaging over longer windows
    tells the two apart."""
    scale = np.array(initial, dtype=float)
    apply(scale)
    history = []
    rates = np.zeros_like(scale)
    seconds = window
    for it in range(max_iterations):
        t0 = time.perf_counter()
        rates = measure(seconds)
        history.append((scale.copy(), rates.copy()))
        off = np.abs(rates / target - 1.0)
        log.info("FIC %d: excitatory rate %.2f Hz (regions %.2f-%.2f), %d of %d regions within %.0f %% (%.0f s)",
                 it + 1, rates.mean(), rates.min(), rates.max(), int(np.sum(off <= tolerance)), len(rates),
                 100 * tolerance, time.perf_counter() - t0)
        if np.all(off <= tolerance):
            return FicResult(scale, rates, target, tolerance, True, np.array(history))
        if np.mean(off <= tolerance) >= NEAR and seconds < LONGEST * window:
            seconds *= 2.0
        scale = scale * update(rates / target)
        apply(scale)
    return FicResult(history[-1][0], rates, target, tolerance, False, np.array(history))


def update(ratio: np.ndarray) -> np.ndarray:
    """The factor on each region's scale for its rate / target."""
    ratio = np.maximum(ratio, 1e-3)
    far = (ratio > FAR) | (ratio < 1.0 / FAR)
    step = np.where(far, ratio ** FAR_EXPONENT, ratio ** EXPONENT)
    limit = np.where(far, FAR_LIMIT, STEP_LIMIT)
    return np.clip(step, 1.0 / limit, limit)


def excitatory_region(spec: NetworkSpec, gids: np.ndarray, members: int) -> np.ndarray:
    """For ensemble global ids ``gids`` of ``members`` copies of ``spec``: the region index of
    each excitatory neuron, -1 for the others."""
    from assimilation.ensemble import member_and_region
    _, region = member_and_region(spec, gids)
    pop = spec.population_index(np.asarray(gids, dtype=np.int64) % spec.n_neurons)
    excitatory = np.array([p.kind == "excitatory" for p in spec.populations])[pop]
    return np.where(excitatory, region, -1)


def inhibition_factors(region_of: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per neuron, its factor on GABAa: the region's FIC scale for an excitatory neuron
    (``region_of`` >= 0), 1 for the others."""
    return np.where(region_of >= 0, np.asarray(scale)[np.maximum(region_of, 0)], 1.0)


class ExcitatoryRates:
    """Each region's excitatory rate (Hz; members' mean, summed over ranks) over the windows a
    Simulation of ``members`` copies of ``spec`` runs."""

    def __init__(self, sim, spec: NetworkSpec, members: int):
        self.sim = sim
        R = len(spec.regions)
        self.region = np.full(len(sim.spec.populations), -1)
        n_exc = np.zeros(R)
        for k, p in enumerate(sim.spec.populations):
            if p.kind == "excitatory":
                r = spec.regions.index(p.region.split(".", 1)[1])
                self.region[k] = r
                n_exc[r] += p.size
        self.n_exc = n_exc
        self._count = self._counts()
        self._t = sim.t

    def _counts(self) -> np.ndarray:
        counts = self.sim.population_spikes.copy()
        return self.sim.comm.allreduce(counts) if self.sim.size > 1 else counts

    def window(self) -> np.ndarray:
        """Rates since the last call (or since construction)."""
        now, t = self._counts(), self.sim.t
        diff, seconds = now - self._count, t - self._t
        self._count, self._t = now, t
        per_region = np.bincount(self.region[self.region >= 0], weights=diff[self.region >= 0],
                                 minlength=len(self.n_exc))
        return per_region / np.maximum(self.n_exc, 1) / max(seconds, 1e-12)


def counting_window(n_exc: np.ndarray, target: float, tolerance: float) -> float:
    """[s] the window in which the region with the fewest excitatory neurons (``n_exc``, all
    members together) fires (NOISE_MARGIN / tolerance)^2 spikes at the target rate: its rate's
    Poisson counting noise is then tolerance / NOISE_MARGIN."""
    fewest = float(np.min(n_exc[n_exc > 0])) if np.any(n_exc > 0) else 1.0
    return (NOISE_MARGIN / tolerance) ** 2 / (target * fewest)


def run_calibration(sim, spec: NetworkSpec, members: int, target: float, tolerance: float, window: float,
                    max_iterations: int, set_factors: Callable[[np.ndarray], None],
                    initial: np.ndarray | None = None) -> FicResult:
    """FIC on a running Simulation of ``members`` copies of ``spec`` (its region input, if any,
    already driving it): ``set_factors(per-neuron GABAa factors)`` applies them (with whatever
    else scales the neurons). Windows of ``window`` s at first (or longer: :func:`counting_window`),
    each after SETTLE s."""
    exc = excitatory_region(spec, sim.local_gids, members)
    rates = ExcitatoryRates(sim, spec, members)
    window = max(window, counting_window(rates.n_exc, target, tolerance))

    def measure(seconds: float) -> np.ndarray:
        sim.run(SETTLE)
        rates.window()
        sim.run(seconds)
        return rates.window()
    start = np.ones(len(spec.regions)) if initial is None else initial
    return calibrate(measure, lambda s: set_factors(inhibition_factors(exc, s)), start, target, tolerance,
                     max_iterations, window)
