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
from dtb.spec import NetworkSpec

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
