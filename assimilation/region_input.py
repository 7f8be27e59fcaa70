"""The region input, a fast state of the ensemble that the analysis updates besides the
hyperparameters (see :mod:`assimilation.runner`): u (members x regions) scales each region's
Poisson background rates by exp(u); between analyses it relaxes towards 0 with time constant
``input_tau`` (an Ornstein-Uhlenbeck forecast with stationary std ``input_std``), so that the
data move the neural activity every TR, in both held-out modes, while the hyperparameters stay
the slow level. The forecast model of the Kalman reference (assimilation.reference) drives its
linearised balloon with the same kind of input.
"""

from __future__ import annotations

import numpy as np

from dtb.spec import NetworkSpec, PoissonStimulus


class RegionInput:
    """u (M, R): member m's region r gets its Poisson background rates times exp(u[m, r])."""

    def __init__(self, base: NetworkSpec, M: int, std: float, tau: float, tr: float):
        self.M, self.R = M, len(base.regions)
        self.std, self.decay = float(std), float(np.exp(-tr / tau))
        self.u = np.zeros((M, self.R))
        region = {p.name: base.regions.index(p.region) for p in base.populations}
        n_stim = len(base.stimuli)
        self._index: list[tuple[int, int, int, float]] = []        # (ensemble stimulus, member, region, rate)
        for m in range(M):
            for j, st in enumerate(base.stimuli):
                if isinstance(st, PoissonStimulus):
                    self._index.append((m * n_stim + j, m, region[st.population], st.rate))

    def relax(self, rng: np.random.Generator | None = None) -> None:
        """One TR of the forecast model: u <- decay u (+ noise keeping the stationary std, with ``rng``)."""
        self.u *= self.decay
        if rng is not None and self.std > 0:
            self.u += self.std * np.sqrt(1.0 - self.decay ** 2) * rng.standard_normal(self.u.shape)

    def apply(self, sim) -> None:
        """Set every member's background rates from u (from the next step on)."""
        factor = np.exp(np.clip(self.u, -3.0, 3.0))
        sim.set_stimulus_rates({k: rate * factor[m, r] for k, m, r, rate in self._index})
