"""The assimilation loop on the engine: an ensemble network (see :mod:`assimilation.ensemble`)
runs in one ``run()``; every TR, after the BOLD recorder has stepped the balloon model, the
analysis updates each member's augmented state

    [x (regions x hyperparameters, unbounded), hemodynamic state (s, ln f, ln v, ln q per
     region), region input u (per region; with ``input_std`` > 0), predicted observation (per
     region)]

from the observed BOLD of that TR, writes the hemodynamic state back into the recorder and the
new hyperparameters into the neurons' conductance scales, and lets x diffuse (random walk) for
the next forecast; the region input relaxes towards 0 (:mod:`assimilation.region_input`). Every
rank computes the same analysis (the same inputs, allreduced BOLD and a random generator keyed
by seed and TR), so nothing needs broadcasting and the result does not depend on the rank count.

Observation operator: with ``observation = "model"`` the observation is the model's BOLD itself
(twin experiments); with ``"zscore"`` it is the model BOLD standardised per region by the mean
and standard deviation (over spin-up TRs and members) of the spin-up, compared with z-scored data
(the standard deviation at least SIGMA_FLOOR times the regions' median).
"""

from __future__ import annotations

import time

import numpy as np

from assimilation.enkf import enkf_analysis, neighbours, random_walk, region_domains, revert, to_bounded, to_unbounded
from assimilation.ensemble import gamma_multipliers, member_and_region, set_scales
from assimilation.settings import AssimilationSettings
from assimilation.region_input import RegionInput
from dtb.spec import NetworkSpec

_STREAM_PRIOR, _STREAM_ANALYSIS, _STREAM_INPUT = 7001, 7002, 7003
#: the zscore operator's standard deviation of a region is at least this fraction of the regions' median
SIGMA_FLOOR = 0.1


class Assimilator:
    """Fits ``settings.hyperparameters`` per region of ``base`` to ``observed`` (T, R).

    ``sim``: a Simulation of ``ensemble_spec(base, M)`` built with ``per_neuron_scales=True`` and
    [bold]; ``sc``: the structural connectome (R, R) for neighbour localisation; ``n_assimilate``:
    TRs with analyses (later TRs only record forecasts: a free run); ``scales``: per local neuron,
    factors on receptors' conductance scales besides the hyperparameters (receptor -> (n_local,),
    e.g. feedback inhibition control); ``input_std``: (each region's std (R,), the common part's
    std) of the region input, default ``settings.input_std`` for every region and no common part.

    ``mode``: what each TR does while active — ``"updating"``: the analysis updates hyperparameters
    and hemodynamic state, then the random walk (the filter); ``"frozen"``: the same analysis of
    the hemodynamic state and predicted observation, the hyperparameters kept as they are;
    ``"free"``: no analysis, the forecast is appended to :attr:`branch` (a forecast run ahead of
    the filter, which the network then rewinds; the filter's own records are untouched)."""

    MODES = ("updating", "frozen", "free")

    def __init__(self, sim, base: NetworkSpec, settings: AssimilationSettings, observed: np.ndarray,
                 sc: np.ndarray | None = None, n_assimilate: int | None = None, x0: np.ndarray | None = None,
                 scales: dict[str, np.ndarray] | None = None, input_std: tuple[np.ndarray, float] | None = None):
        self.sim, self.base, self.s = sim, base, settings
        self.M, self.R, self.H = settings.members, len(base.regions), len(settings.hyperparameters)
        self.observed = np.asarray(observed, dtype=float)
        self.n_assimilate = len(self.observed) if n_assimilate is None else n_assimilate
        self.seed = base.simulation.seed
        self._member, self._region = member_and_region(base, sim.local_gids)
        self._gamma = gamma_multipliers(self.seed, sim.local_gids, self.H, settings.gamma_shape)
        self.scales = dict(scales or {})
        if x0 is None:
            prior = np.random.default_rng([self.seed, _STREAM_PRIOR])
            x0 = to_unbounded(np.full((self.M, self.R * self.H), settings.prior), settings.low, settings.high)
            x0 = x0 + settings.prior_spread * prior.standard_normal(x0.shape)
        self.x = np.array(x0, dtype=float)
        self.apply()
        self.mu = np.zeros(self.R)
        self.sigma = np.ones(self.R)
        self.active = False
        self.mode = "updating"
        self.t = 0
        self.branch: list[np.ndarray] = []      # (M, R) per TR of a free forecast run
        self.x_analysis = self.x.copy()          # x after the latest analysis, before the random walk
        self.filter_seconds = 0.0                # analysis + writing the new scales back
        self.forecast: list[np.ndarray] = []     # (M, R) per TR, observation units
        self.analysis: list[np.ndarray] = []     # (M, R)
        self.hp_trace: list[np.ndarray] = []     # (M, R, H) after each analysis
        self.input_trace: list[np.ndarray] = []  # (M, R) region input u after each analysis
        std, common = input_std if input_std is not None else (settings.input_std, 0.0)
        self.input = (RegionInput(base, self.M, std, settings.input_tau, base.bold.tr, common,
                                  settings.input_populations) if settings.input_std > 0 else None)
        self._localisation(sc)
        sim.add_hook(base.bold.tr, lambda _sim: self._on_tr())

    # ------------------------------------------------------------------ state
    def hp(self, x: np.ndarray | None = None) -> np.ndarray:
        """Hyperparameters (M, R, H) of ``x`` (default: the current ensemble)."""
        x = self.x if x is None else x
        return to_bounded(x, self.s.low, self.s.high).reshape(self.M, self.R, self.H)

    def apply(self) -> None:
        """Set every local neuron's conductance scales to gamma multiplier x its region's hp."""
        set_scales(self.sim, self.s.hyperparameters, self._gamma, self.hp()[self._member, self._region], self.scales)

    def _localisation(self, sc) -> None:
        """Domain localisation: region i's variables (its hyperparameters, hemodynamic state and
        predicted observation) are updated from its own observation ("own") or its own and its
        structural neighbours' ("neighbours"); "none": one global update."""
        self.domains = None
        if self.s.localisation == "none":
            return
        if sc is None:
            sc = np.zeros((self.R, self.R))
        reach = neighbours(sc, 1 if self.s.localisation == "neighbours" else 0)
        R, H = self.R, self.H
        RH = R * H
        blocks = RH + np.arange(self._region_blocks()) * R       # every block of R after x

        def columns(i):
            return np.concatenate([i * H + np.arange(H), blocks + i])
        self.domains = region_domains(reach, columns)

    def _region_blocks(self) -> int:
        """Blocks of R columns after x in the analysed state: hemodynamic (4), input (0 or 1),
        predicted observation (1)."""
        return 4 + (self.input is not None) + 1

    def start(self) -> None:
        """Begin assimilating at the next TR; with the zscore operator, its statistics come from
        the TRs recorded so far (the spin-up)."""
        if self.s.observation == "zscore":
            spin = np.array(self.sim.bold.signal).reshape(-1, self.M, self.R)
            if len(spin) < 2:
                raise ValueError("the zscore observation needs at least two spin-up TRs")
            self.mu = spin.mean(axis=(0, 1))
            sd = spin.std(axis=(0, 1))
            # a region that barely varied over the spin-up (few neurons firing rarely) would turn
            # its first real fluctuation into thousands of standard deviations
            self.sigma = np.maximum(sd, max(SIGMA_FLOOR * float(np.median(sd)), 1e-12))
        if self.input is not None:
            self.input.start(np.random.default_rng([self.seed, _STREAM_INPUT]))
            self.input.apply(self.sim)
        self.active = True

    def observe(self, bold: np.ndarray) -> np.ndarray:
        """The members' predicted observation (M, R) of their BOLD (M, R)."""
        return (bold - self.mu) / self.sigma

    def fast_state(self) -> dict[str, np.ndarray]:
        """The state that runs with the network between analyses (the region input): a copy, to
        come back to with :meth:`set_fast_state` when the network rewinds."""
        if self.input is None:
            return {}
        return {"input": self.input.u.copy(), "input_common": self.input.common.copy()}

    def set_fast_state(self, saved: dict[str, np.ndarray]) -> None:
        if self.input is not None and "input" in saved:
            self.input.u = np.array(saved["input"], dtype=float)
            if "input_common" in saved:
                self.input.common = np.array(saved["input_common"], dtype=float).reshape(self.M, 1)

    # --------------------------------------------------------------- analysis
    def _on_tr(self) -> None:
        if not self.active:
            return
        z = self.observe(np.asarray(self.sim.bold.signal[-1]).reshape(self.M, self.R))
        if self.mode == "free":
            self.branch.append(z)
            if self.input is not None:
                self.input.relax()
                self.input.apply(self.sim)
            return
        if self.t >= len(self.observed):
            return
        self.forecast.append(z)
        if self.t < self.n_assimilate:
            t0 = time.perf_counter()
            self._analyse(z)
            self.filter_seconds += time.perf_counter() - t0
        self.t += 1

    def _analyse(self, z: np.ndarray) -> None:
        """The analysis of TR ``self.t`` from the members' predicted observations ``z`` (M, R).
        Frozen, the hyperparameters' rows of the analysis are dropped: each state variable's
        update depends only on its own covariance with the observations, so the hemodynamic
        state gets exactly the update it gets in the full analysis."""
        st = self.sim.bold.integrator.state
        hemo = np.concatenate([a.reshape(self.M, self.R) for a in (st.s, st.lf, st.lv, st.lq)], axis=1)
        fast = [self.input.u] if self.input is not None else []
        X = np.concatenate([self.x, hemo, *fast, z], axis=1)
        rng = np.random.default_rng([self.seed, _STREAM_ANALYSIS, self.t])
        Xa = enkf_analysis(X, z, self.observed[self.t], self.s.obs_noise ** 2, rng, self.s.inflation,
                           domains=self.domains)
        RH = self.R * self.H
        if self.input is not None:
            self.input.u = Xa[:, RH + 4 * self.R:-self.R].copy()
            self.input_trace.append(self.input.u)
        hemo_a = Xa[:, RH:RH + 4 * self.R]
        for k, a in enumerate((st.s, st.lf, st.lv, st.lq)):
            a[:] = hemo_a[:, k * self.R:(k + 1) * self.R].reshape(-1)
        np.clip(st.s, -10, 10, out=st.s)                # keep the balloon's states physical
        np.clip(st.lf, -5, 5, out=st.lf)
        np.clip(st.lv, -5, 5, out=st.lv)
        np.clip(st.lq, -5, 5, out=st.lq)
        self.analysis.append(Xa[:, -self.R:])
        if self.mode == "updating":
            self.x = self.x_analysis = Xa[:, :RH]
        self.hp_trace.append(self.hp())
        if self.mode == "updating":
            self.x = random_walk(self._reverted(self.x), self.s.random_walk, rng, self.s.random_walk_centered)
        if self.s.hemodynamic_noise > 0:
            for arr in (st.s, st.lf, st.lv, st.lq):
                arr += self.s.hemodynamic_noise * rng.standard_normal(arr.shape)
        if self.input is not None:
            self.input.relax(rng)
            self.input.apply(self.sim)
        self.apply()

    def _reverted(self, x: np.ndarray) -> np.ndarray:
        """x relaxed one TR towards the prior's x or the ensemble's mean x (``random_walk_reversion``,
        ``random_walk_reversion_to``; unchanged when 0)."""
        tau = self.s.random_walk_reversion
        if tau <= 0:
            return x
        if self.s.random_walk_reversion_to == "mean":
            centre = x.mean(axis=0)
        else:
            centre = to_unbounded(np.asarray(self.s.prior), self.s.low, self.s.high)
        return revert(x, centre, float(np.exp(-self.base.bold.tr / tau)))

    def freeze(self, x: np.ndarray) -> None:
        """Keep the hyperparameters ``x`` (unbounded, (M, R * H)) from now on: mode "frozen"."""
        self.x_analysis = np.array(x, dtype=float)
        self.x = self.x_analysis.copy()
        self.apply()
        self.mode = "frozen"

    def truncate(self, n: int) -> None:
        """Forget the records after TR ``n`` (the filter rewinds to the end of training)."""
        del self.forecast[n:], self.analysis[n:], self.hp_trace[n:], self.input_trace[n:]
        self.t = n

    # ------------------------------------------------------------ checkpoints
    def capture(self) -> dict[str, np.ndarray]:
        """The filter's state for a checkpoint (the network's own state is the Simulation's)."""
        M, R, H = self.M, self.R, self.H
        return {"x": self.x, "x_analysis": self.x_analysis, "t": np.array(self.t),
                "active": np.array(int(self.active)), "mu": self.mu,
                "sigma": self.sigma, "filter_seconds": np.array(self.filter_seconds),
                "forecast": np.array(self.forecast).reshape(-1, M, R),
                "analysis": np.array(self.analysis).reshape(-1, M, R),
                "hp_trace": np.array(self.hp_trace).reshape(-1, M, R, H), **self.fast_state(),
                "input_trace": np.array(self.input_trace).reshape(-1, M, R),
                "observed_sha": np.frombuffer(_digest(self.observed), dtype=np.uint8)}

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        if bytes(np.asarray(saved["observed_sha"], dtype=np.uint8)) != _digest(self.observed):
            from dtb.errors import DtbError
            raise DtbError("the checkpoint was assimilating other BOLD data: resume with the same --bold file and "
                           "options")
        self.x = np.array(saved["x"], dtype=float)
        self.x_analysis = np.array(saved.get("x_analysis", saved["x"]), dtype=float)
        self.t = int(saved["t"])
        self.active = bool(int(saved["active"]))
        self.mu, self.sigma = np.array(saved["mu"]), np.array(saved["sigma"])
        self.filter_seconds = float(saved["filter_seconds"])
        self.forecast = list(saved["forecast"])
        self.analysis = list(saved["analysis"])
        self.hp_trace = list(saved["hp_trace"])
        self.input_trace = list(saved.get("input_trace", ()))
        self.set_fast_state(saved)

    # ---------------------------------------------------------------- results
    def results(self) -> dict[str, np.ndarray]:
        f = np.array(self.forecast)
        a = np.array(self.analysis)
        hp = np.array(self.hp_trace)
        return {"forecast": f, "analysis": a, "hp": hp, "mu": self.mu, "sigma": self.sigma, "x_final": self.x,
                "input": np.array(self.input_trace).reshape(-1, self.M, self.R)}


def _digest(a: np.ndarray) -> bytes:
    import hashlib
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).digest()
