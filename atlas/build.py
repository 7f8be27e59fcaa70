"""From a parcellation and a connectome to the network the engine runs (a config dict / NetworkSpec).

* Neurons per region in proportion to its volume (mm^3) with at least ``min_neurons``, summing
  exactly to ``neurons`` (largest-remainder rounding); E:I = ``ei_ratio``:1 in every region.
* Every neuron receives ``indegree`` synapses: a fraction ``long_range_fraction`` from excitatory
  neurons of other regions, the rest local, split E:I as the region's populations.
* The long-range in-degree of region i is shared among source regions j in proportion to the
  connectome weight w[i, j] (TVB's convention: row = target, column = source), again by largest
  remainder, so the counts are exact and reproducible; a region with no incoming weight gets all
  its input locally.
* ``long_range_scaling`` sets how strong that long-range input is per region: ``"uniform"``:
  ``w_long`` everywhere (each region's input row normalised); ``"in_strength"``: region i's
  long-range synapses weigh ``w_long * s_i / mean(s)`` with s_i = sum_j w[i, j] its incoming
  connectome strength, the synapse counts unchanged. The second is what a neural-mass model does
  with an unnormalised connectome (input sum_j w[i, j] x_j): hub regions receive more, and a
  linear model's FC then predicts HCP resting-state FC far better than with normalised rows
  (benchmarks/connectome_fc.py). ``long_range_exponent`` p softens it: the factor is
  s_i^p / mean(s^p) (p = 1: proportional; 0.5: the square root, which keeps the weakest regions
  within a factor of about 3 of the mean instead of 10, and predicts FC as well).
* ``long_range_inhibitory``: the long-range weight onto a region's inhibitory population, as a
  fraction of the weight onto its excitatory one (1: the same; 0: none, long-range input to E
  only). Below 1, a region's excitatory rate rises with its long-range input (the inhibitory
  neurons, driven by the same input, would otherwise cancel it); above 0, the inhibition that
  comes with it keeps strong coupling from driving regions into a high-activity state
  (feed-forward inhibition).
* Delays: tract length / ``velocity`` (mm / (m/s) = ms), rounded to dt, never below ``min_delay``.
* Regions listed in ``subcortical`` get ``subcortical_params`` (neuron parameter overrides).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dtb.errors import DtbError
from dtb.units import format_quantity


@dataclass(frozen=True)
class AtlasNetworkSettings:
    neurons: int = 50_000                 # total neurons, the one scale knob
    min_neurons: int = 50                 # per region
    ei_ratio: float = 4.0                 # excitatory : inhibitory
    indegree: int = 100                   # synapses onto each neuron
    long_range_fraction: float = 0.2      # of each neuron's synapses, from other regions
    long_range_scaling: str = "uniform"   # "uniform" or "in_strength" (long-range weight per target region)
    long_range_exponent: float = 1.0      # in_strength: weight factor s_i^p / mean(s^p)
    long_range_inhibitory: float = 1.0    # long-range weight onto I as a fraction of that onto E
    velocity: float = 5.0                 # [m/s = mm/ms] conduction velocity
    min_delay: float = 1e-3               # [s] no delay below this (also the local delay floor)
    dt: float = 1e-4                      # [s]
    duration: float = 1.0                 # [s]
    seed: int = 1
    # synaptic weights [S]: local E->E/E->I (AMPA), I->E/I->I (GABAa), long-range (AMPA)
    w_exc: float = 0.6e-9
    w_inh: float = 6e-9
    w_long: float = 0.5e-9
    background_rate: float = 3300.0       # [Hz] Poisson input per neuron
    background_weight: float = 1.2e-9     # [S]
    subcortical: tuple[str, ...] = ()
    subcortical_params: dict = field(default_factory=dict)


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` summing to ``total`` (largest remainder; ties by index)."""
    w = np.asarray(weights, dtype=np.float64)
    if total == 0 or w.sum() <= 0:
        return np.zeros(len(w), dtype=np.int64)
    exact = total * w / w.sum()
    base = np.floor(exact).astype(np.int64)
    rest = total - base.sum()
    order = np.lexsort((np.arange(len(w)), -(exact - base)))
    base[order[:rest]] += 1
    return base


def neurons_per_region(volumes: np.ndarray, total: int, minimum: int) -> np.ndarray:
    """Neurons per region: ``minimum`` each plus the rest in proportion to volume."""
    n = len(volumes)
    if total < minimum * n:
        raise DtbError(f"{total} neurons cannot give {n} regions at least {minimum} each "
                       f"(need {minimum * n}; lower min_neurons or raise neurons: atlas.min_neurons / atlas.neurons in a "
                       f"config, --min-neurons / --neurons of dtb atlas build)")
    if np.any(np.asarray(volumes) <= 0):
        raise DtbError("every region needs a positive volume (size)")
    return minimum + apportion(total - minimum * n, np.asarray(volumes, dtype=np.float64))


LONG_RANGE_SCALINGS = ("uniform", "in_strength")
LONG_RANGE_EXPONENTS = (0.0, 4.0)       # the accepted range of long_range_exponent


def _between_regions(weights: np.ndarray) -> np.ndarray:
    """A float copy of the connectome without its diagonal (a region's own weight is local)."""
    w = np.array(weights, dtype=np.float64)
    np.fill_diagonal(w, 0.0)
    return w


def long_range_indegrees(weights: np.ndarray, k_long: int) -> np.ndarray:
    """K[i, j]: long-range synapses from region j onto each neuron of region i (rows sum to
    ``k_long``, or 0 where region i has no incoming weight)."""
    w = _between_regions(weights)
    return np.vstack([apportion(k_long, row) for row in w])


def long_range_weight_factors(weights: np.ndarray, scaling: str = "uniform", exponent: float = 1.0) -> np.ndarray:
    """Per target region i, the factor on its long-range synaptic weight: 1 (``"uniform"``) or
    s_i^p / mean(s^p) with s_i = sum_j w[i, j] its incoming connectome strength and p =
    ``exponent`` (``"in_strength"``; mean factor 1)."""
    w = _between_regions(weights)
    if scaling == "uniform":
        return np.ones(len(w))
    if scaling == "in_strength":
        low, high = LONG_RANGE_EXPONENTS
        if not low <= exponent <= high:
            raise DtbError(f"atlas.long_range_exponent must lie in [{low:g}, {high:g}], got {exponent:g}")
        s = w.sum(axis=1) ** exponent
        return s / s.mean() if s.sum() > 0 else np.ones(len(w))
    raise DtbError(f"atlas.long_range_scaling must be one of {', '.join(LONG_RANGE_SCALINGS)}, got {scaling!r}")


def delay_steps(lengths_mm: np.ndarray, velocity: float, dt: float, min_delay: float) -> np.ndarray:
    """Delays in whole steps: length / velocity rounded to dt, at least min_delay."""
    d = np.rint(np.asarray(lengths_mm, dtype=np.float64) * 1e-3 / velocity / dt).astype(np.int64)
    return np.maximum(d, int(np.rint(min_delay / dt)))


def network_config(regions: list[str], volumes: np.ndarray, weights: np.ndarray, lengths: np.ndarray,
                   s: AtlasNetworkSettings) -> dict:
    """The network as a config dict (the same structure as a TOML config) for ``spec_from_dict``."""
    if not 0 <= s.long_range_fraction <= 1:
        raise DtbError(f"atlas.long_range_fraction must lie in [0, 1], got {s.long_range_fraction}")
    if not 0 <= s.long_range_inhibitory <= 1:
        raise DtbError(f"atlas.long_range_inhibitory must lie in [0, 1], got {s.long_range_inhibitory}")
    if not s.velocity > 0:
        raise DtbError(f"atlas.velocity must be positive, got {s.velocity}")
    n = neurons_per_region(volumes, s.neurons, s.min_neurons)
    n_e = np.maximum(np.rint(n * s.ei_ratio / (1 + s.ei_ratio)).astype(np.int64), 1)
    n_i = np.maximum(n - n_e, 1)
    n_e = n - n_i
    k_long = int(round(s.long_range_fraction * s.indegree))
    K = long_range_indegrees(weights, k_long)
    w_long = s.w_long * long_range_weight_factors(weights, s.long_range_scaling, s.long_range_exponent)
    d = delay_steps(lengths, s.velocity, s.dt, s.min_delay)
    ms = lambda x: format_quantity(x, "ms")
    nS = lambda x: format_quantity(x, "nS")
    local_delay = {"distribution": "uniform", "low": ms(s.min_delay), "high": ms(s.min_delay + 1e-3)}
    pops, projs, stims = [], [], []
    for r, name in enumerate(regions):
        params = {k: v for k, v in s.subcortical_params.items()} if name in s.subcortical else {}
        for kind, size in (("E", n_e[r]), ("I", n_i[r])):
            pop = {"name": f"{name}_{kind}", "region": name, "size": int(size),
                   "kind": "excitatory" if kind == "E" else "inhibitory"}
            if params:
                pop["params"] = params
            pops.append(pop)
            stims.append({"type": "poisson", "population": pop["name"], "rate": f"{s.background_rate:g} Hz",
                          "weight": nS(s.background_weight)})
        k_local = s.indegree - (k_long if K[r].sum() else 0)
        k_le = int(round(k_local * s.ei_ratio / (1 + s.ei_ratio)))
        k_li = k_local - k_le
        for tgt in ("E", "I"):
            if k_le:
                projs.append({"source": f"{name}_E", "target": f"{name}_{tgt}", "rule": "fixed_indegree",
                              "indegree": k_le, "receptor": "ampa",
                              "weight": {"distribution": "normal", "mean": nS(s.w_exc), "std": nS(s.w_exc / 4)},
                              "delay": local_delay})
            if k_li:
                projs.append({"source": f"{name}_I", "target": f"{name}_{tgt}", "rule": "fixed_indegree",
                              "indegree": k_li, "receptor": "gabaa",
                              "weight": {"distribution": "normal", "mean": nS(s.w_inh), "std": nS(s.w_inh / 6)},
                              "delay": local_delay})
    for i, target in enumerate(regions):
        for j in np.flatnonzero(K[i]):
            for tgt, factor in (("E", 1.0), ("I", s.long_range_inhibitory)):
                if factor > 0:
                    projs.append({"source": f"{regions[j]}_E", "target": f"{target}_{tgt}", "rule": "fixed_indegree",
                                  "indegree": int(K[i, j]), "receptor": "ampa", "weight": nS(w_long[i] * factor),
                                  "delay": ms(d[i, j] * s.dt)})
    return {"simulation": {"dt": ms(s.dt), "duration": f"{s.duration:g} s", "seed": s.seed},
            "populations": pops, "projections": projs, "stimuli": stims}
