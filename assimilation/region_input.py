"""The region input, a fast state of the ensemble that the analysis updates besides the
hyperparameters (see :mod:`assimilation.runner`): u (members x regions) scales the Poisson
background rates of each region's excitatory populations (or of all its populations) by exp(u);
between analyses it relaxes towards 0 with time constant ``input_tau`` (an Ornstein-Uhlenbeck
forecast), so that the data move the neural activity every TR, in both held-out modes, while the
hyperparameters stay the slow level. The forecast model of the Kalman reference
(assimilation.reference) drives its linearised balloon with the same kind of input.

The same process, left to run with its noise (:meth:`RegionInput.drive`), is the twin's own
input when it runs freely: each region's share (``std``, (R,)) and an input common to every
region (``common_std``) come from the noise of the fitted effective connectivity
(:mod:`assimilation.effective`), so the free run is driven the way the fitted linear model is.
"""

from __future__ import annotations

import numpy as np

from dtb.spec import NetworkSpec, PoissonStimulus

#: which populations' backgrounds the region input scales
INPUT_POPULATIONS = ("excitatory", "all")

#: bound of |u| where it is applied (exp(3) = 20-fold)
U_LIMIT = 3.0


class RegionInput:
    """u (M, R): member m's region r gets its Poisson background rates times exp(u[m, r]).

    ``std``: the stationary standard deviation of each region's own part (scalar or (R,));
    ``common_std``: that of a part shared by every region of a member (0: none)."""

    def __init__(self, base: NetworkSpec, M: int, std, tau: float, tr: float, common_std: float = 0.0,
                 populations: str = "all"):
        self.M, self.R = M, len(base.regions)
        self.std = np.broadcast_to(np.asarray(std, dtype=float), (self.R,)).copy()
        self.common_std = float(common_std)
        self.decay = float(np.exp(-tr / tau))
        self.u = np.zeros((M, self.R))
        self.common = np.zeros((M, 1))
        region = {p.name: base.regions.index(p.region) for p in base.populations}
        kind = {p.name: p.kind for p in base.populations}
        n_stim = len(base.stimuli)
        self._index: list[tuple[int, int, int, float]] = []        # (ensemble stimulus, member, region, rate)
        for m in range(M):
            for j, st in enumerate(base.stimuli):
                if isinstance(st, PoissonStimulus) and (populations == "all" or kind[st.population] == "excitatory"):
                    self._index.append((m * n_stim + j, m, region[st.population], st.rate))

    def start(self, rng: np.random.Generator) -> None:
        """Draw u from its stationary distribution."""
        self.u = self.std * rng.standard_normal((self.M, self.R))
        self.common = self.common_std * rng.standard_normal((self.M, 1))

    def total(self) -> np.ndarray:
        """The input applied (M, R): each region's own part plus the common part."""
        return self.u + self.common

    def relax(self, rng: np.random.Generator | None = None) -> None:
        """One TR of the forecast model: u <- decay u (+ noise keeping the stationary std, with ``rng``)."""
        self.u *= self.decay
        self.common *= self.decay
        if rng is not None:
            kick = np.sqrt(1.0 - self.decay ** 2)
            self.u += kick * self.std * rng.standard_normal(self.u.shape)
            self.common += kick * self.common_std * rng.standard_normal(self.common.shape)

    def apply(self, sim) -> None:
        """Set every member's background rates from u (from the next step on)."""
        factor = np.exp(np.clip(self.total(), -U_LIMIT, U_LIMIT))
        sim.set_stimulus_rates({k: rate * factor[m, r] for k, m, r, rate in self._index})

    def drive(self, sim, seed: int, stream: int) -> None:
        """Run the process freely with its noise (no analysis): from its stationary distribution,
        one step per TR, on a generator keyed by (seed, stream, TR), the same on every rank."""
        self.start(np.random.default_rng([seed, stream]))
        self.apply(sim)
        count = [0]

        def step(_sim) -> None:
            count[0] += 1
            self.relax(np.random.default_rng([seed, stream, count[0]]))
            self.apply(sim)
        sim.add_hook(sim.spec.bold.tr, step)
