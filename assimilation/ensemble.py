"""An ensemble of M whole networks in one spec, so that one Brian2 network per rank holds several
members (and, on many ranks, a member may span ranks): member m's populations are the base
network's, renamed ``m<m>.<name>`` in regions ``m<m>.<region>``, with member-major global ids.
Each member draws its own connectivity and noise (different projection indices and gids), as
independent realisations of the same network."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import gammaincinv

from dtb import rng
from dtb.errors import DtbError
from dtb.spec import NetworkSpec, PoissonStimulus

#: counter stream of the per-neuron Gamma multipliers (one counter per receptor)
STREAM_GAMMA = 40


def member_name(m: int, name: str) -> str:
    return f"m{m}.{name}"


def ensemble_spec(base: NetworkSpec, members: int) -> NetworkSpec:
    """M copies of ``base`` in one spec (no state monitors, no task, BOLD without scanner noise)."""
    pops, projs, stims = [], [], []
    n = base.n_neurons
    for m in range(members):
        for p in base.populations:
            pops.append(dataclasses.replace(p, name=member_name(m, p.name), region=member_name(m, p.region),
                                            first_gid=m * n + p.first_gid))
        for pr in base.projections:
            projs.append(dataclasses.replace(pr, source=member_name(m, pr.source), target=member_name(m, pr.target)))
        for s in base.stimuli:
            stims.append(dataclasses.replace(s, population=member_name(m, s.population)))
    bold = dataclasses.replace(base.bold, noise=0.0, atlas=None, labels=None) if base.bold is not None else None
    return dataclasses.replace(base, populations=tuple(pops), projections=tuple(projs), stimuli=tuple(stims),
                               monitors=dataclasses.replace(base.monitors, state=()), bold=bold, task=None)


def is_long_range(spec: NetworkSpec):
    """A predicate on ``spec``'s projections: true for one between two regions."""
    region = {p.name: p.region for p in spec.populations}
    return lambda pr: region[pr.source] != region[pr.target]


def scale_long_range(spec: NetworkSpec, factor: float) -> NetworkSpec:
    """``spec`` with the weights of every projection between two regions multiplied by
    ``factor`` (global coupling); projections inside a region are unchanged."""
    if factor == 1.0:
        return spec
    long_range = is_long_range(spec)
    projs = tuple(dataclasses.replace(pr, weight=_scaled(pr.weight, factor)) if long_range(pr) else pr
                  for pr in spec.projections)
    return dataclasses.replace(spec, projections=projs)


def _scaled(d, factor: float):
    """A weight distribution times ``factor``."""
    return dataclasses.replace(d, value=d.value * factor, low=d.low * factor, high=d.high * factor,
                               mean=d.mean * factor, std=d.std * factor)


def long_range_mask(spec: NetworkSpec) -> np.ndarray:
    """(R, R) bool [target region, source region]: a projection runs from the source to the target."""
    regions = spec.regions
    region = {p.name: regions.index(p.region) for p in spec.populations}
    mask = np.zeros((len(regions),) * 2, dtype=bool)
    for pr in filter(is_long_range(spec), spec.projections):
        mask[region[pr.target], region[pr.source]] = True
    return mask


def with_effective_connectivity(spec: NetworkSpec, C: np.ndarray) -> NetworkSpec:
    """``spec`` with its long-range projections following the effective connectivity ``C``
    [target region, source region] (:mod:`assimilation.effective`, fitted on the mask of
    :func:`long_range_mask`). For each target population, its long-range synapses
    (``fixed_indegree``; their number kept) are shared among the source regions in proportion
    to C[i, :] (largest remainder), and their weights set so that each edge's total, indegree x
    weight, is kappa C[i, j]; kappa is one per kind of target population (excitatory,
    inhibitory), chosen so that the mean over its populations of their long-range total is what
    it was. Projections left with no synapse (the weakest edges) are dropped."""
    from atlas.build import apportion
    from dtb.partition import expected_projection_indegree
    regions = spec.regions
    region = {p.name: regions.index(p.region) for p in spec.populations}
    kind = {p.name: p.kind for p in spec.populations}
    by_target: dict[str, list[int]] = {}
    for k, pr in enumerate(spec.projections):
        if region[pr.source] != region[pr.target]:
            if pr.rule != "fixed_indegree":
                raise DtbError(f"effective connectivity: the long-range projection {pr.source} -> {pr.target} has "
                               f"rule {pr.rule!r}; only fixed_indegree projections can follow it")
            by_target.setdefault(pr.target, []).append(k)
    total_before = {t: sum(expected_projection_indegree(spec, spec.projections[k]) *
                           spec.projections[k].weight.expected for k in ks) for t, ks in by_target.items()}
    counts, kept_strength = {}, {}
    for t, ks in by_target.items():
        sources = [region[spec.projections[k].source] for k in ks]
        if len(set(sources)) != len(sources):
            raise DtbError(f"effective connectivity: population {t!r} has two long-range projections from one region")
        i = region[t]
        counts[t] = apportion(sum(spec.projections[k].indegree for k in ks), np.array([C[i, j] for j in sources]))
        kept_strength[t] = sum(C[i, j] for j, n in zip(sources, counts[t]) if n > 0)
    kappa = {}
    for kd in {kind[t] for t in by_target}:
        targets = [t for t in by_target if kind[t] == kd]
        s_mean = np.mean([kept_strength[t] for t in targets])
        kappa[kd] = np.mean([total_before[t] for t in targets]) / s_mean if s_mean > 0 else 0.0
    new = dict(enumerate(spec.projections))
    for t, ks in by_target.items():
        i = region[t]
        for k, n in zip(ks, counts[t]):
            pr = spec.projections[k]
            j = region[pr.source]
            if n == 0 or pr.weight.expected == 0:
                del new[k]
                continue
            factor = kappa[kind[t]] * C[i, j] / n / pr.weight.expected
            new[k] = dataclasses.replace(pr, indegree=int(n), weight=_scaled(pr.weight, factor))
    return dataclasses.replace(spec, projections=tuple(new[k] for k in sorted(new)))


def balance_long_range(spec: NetworkSpec, rates: dict[str, float]) -> NetworkSpec:
    """``spec`` with each population's Poisson background lowered by the mean conductance its
    long-range projections bring, receptor by receptor: expected indegree x mean weight x the
    source population's rate in ``rates`` (Hz; its rate without long-range input). A region then
    keeps its mean input, and its operating point, at every global coupling; the coupling only
    sets how strongly fluctuations travel between regions (as feedback inhibition control keeps
    every region's rate in Deco et al. 2014, J Neurosci 34:7886). Raises a DtbError where a
    background would have to fall below 0 Hz."""
    from dtb.partition import expected_projection_indegree
    added: dict[tuple[str, str], float] = {}            # (population, receptor) -> S/s
    for pr in filter(is_long_range(spec), spec.projections):
        key = (pr.target, pr.receptor)
        mean_input = expected_projection_indegree(spec, pr) * pr.weight.expected * rates[pr.source]
        added[key] = added.get(key, 0.0) + mean_input
    stims, done = [], set()
    for st in spec.stimuli:
        key = (st.population, st.receptor) if isinstance(st, PoissonStimulus) else None
        if key in added and key not in done:
            rate = st.rate - added[key] / st.weight
            if rate < 0:
                raise DtbError(f"assimilation.coupling_balance: population {st.population!r}: its long-range "
                               f"{st.receptor} input equals {added[key] / st.weight:.4g} Hz of its Poisson "
                               f"background, more than the background's {st.rate:g} Hz; lower the global coupling")
            st = dataclasses.replace(st, rate=rate)
            done.add(key)
        stims.append(st)
    missing = sorted(set(added) - done)
    if missing:
        raise DtbError(f"assimilation.coupling_balance: population {missing[0][0]!r} has long-range "
                       f"{missing[0][1]} input but no Poisson background on that receptor to balance it")
    return dataclasses.replace(spec, stimuli=tuple(stims))


def member_and_region(base: NetworkSpec, gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(member, region index in ``base.regions``) of ensemble global ids."""
    gids = np.asarray(gids, dtype=np.int64)
    member = gids // base.n_neurons
    pop = base.population_index(gids % base.n_neurons)
    regions = base.regions
    region_of_pop = np.array([regions.index(p.region) for p in base.populations])
    return member, region_of_pop[pop]


def gamma_multipliers(seed: int, gids: np.ndarray, n_receptors: int, shape: float) -> np.ndarray:
    """(len(gids), n_receptors) multipliers ~ Gamma(shape, 1/shape) (mean 1), drawn once per
    neuron and receptor from counter-based uniforms keyed by the global id: the same on any
    rank count."""
    out = np.empty((len(gids), n_receptors))
    for k in range(n_receptors):
        u = rng.uniform_open(seed, STREAM_GAMMA, np.asarray(gids, dtype=np.int64), k)
        out[:, k] = gammaincinv(shape, u) / shape
    return out


def set_scales(sim, receptors: tuple[str, ...], gamma: np.ndarray, hp_local: np.ndarray,
               base: dict[str, np.ndarray] | None = None) -> None:
    """Conductance scale of every local neuron = its Gamma multiplier x its hyperparameter
    (``gamma`` and ``hp_local``: (n_local, len(receptors))) x its ``base`` factor of that receptor
    ((n_local,), e.g. feedback inhibition control; receptors only in ``base`` get that alone)."""
    base = base or {}
    for h, receptor in enumerate(receptors):
        scale = gamma[:, h] * hp_local[:, h]
        sim.set_conductance_scale(receptor, sim.local_gids, scale * base[receptor] if receptor in base else scale)
    for receptor, factor in base.items():
        if receptor not in receptors:
            sim.set_conductance_scale(receptor, sim.local_gids, factor)


def load_fitted(path, spec: NetworkSpec) -> tuple[tuple[str, ...], np.ndarray, float]:
    """The fitted hyperparameters (R, H; /hp/fitted averaged over members) of an assimilation file for ``spec``'s regions,
    with their receptor names and the Gamma shape used. DtbError when they do not fit."""
    import json
    import h5py
    from dtb.errors import DtbError
    try:
        with h5py.File(path, "r") as f:
            regions = [r.decode() if isinstance(r, bytes) else str(r) for r in f["network/regions"][()]]
            receptors = tuple(json.loads(f.attrs["hyperparameters"]))
            hp = f["hp/fitted" if "hp/fitted" in f else "hp/final"][()].mean(axis=0)
            shape = float(json.loads(f.attrs["settings"]).get("gamma_shape", 4.0))
    except FileNotFoundError:
        raise DtbError(f"{path}: file not found") from None
    except (OSError, KeyError, ValueError) as e:
        raise DtbError(f"{path}: not an assimilation file written by dtb assimilate ({e})") from None
    if regions != list(spec.regions):
        missing = [r for r in spec.regions if r not in regions][:5]
        raise DtbError(f"{path}: fitted for {len(regions)} regions that do not match the config's {len(spec.regions)}"
                       + (f" (e.g. no {', '.join(missing)})" if missing else " (different order)"))
    return receptors, hp, shape


def apply_fitted(sim, spec: NetworkSpec, path) -> tuple[str, ...]:
    """Give a single network (built with ``per_neuron_scales=True``) the fitted twin's
    conductances: each neuron's Gamma multiplier (the same draw as in the assimilation) times
    its region's posterior-mean hyperparameter."""
    receptors, hp, shape = load_fitted(path, spec)
    regions = spec.regions
    region_of_pop = np.array([regions.index(p.region) for p in spec.populations])
    region = region_of_pop[spec.population_index(sim.local_gids)]
    gamma = gamma_multipliers(spec.simulation.seed, sim.local_gids, len(receptors), shape)
    set_scales(sim, receptors, gamma, hp[region])
    return receptors
