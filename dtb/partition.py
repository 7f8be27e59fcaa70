"""Domain decomposition: which MPI rank owns which global neuron ids (gids).

Ranks own contiguous gid ranges, so populations (and the regions they belong to) stay together
and a rank's neurons form one Brian2 group. Boundaries balance an estimated cost per neuron:
one unit for its state update plus ``synapse_cost`` per incoming synapse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dtb.spec import NetworkSpec

#: cost of one incoming synapse relative to one neuron update (measured order of magnitude
#: on this engine: a neuron step costs about as much as 50-100 synaptic events at 5-10 Hz)
SYNAPSE_COST = 0.01


@dataclass(frozen=True)
class Partition:
    """Rank r owns gids ``bounds[r] <= gid < bounds[r + 1]``."""

    bounds: tuple[int, ...]

    @property
    def n_ranks(self) -> int:
        return len(self.bounds) - 1

    def owned(self, rank: int) -> range:
        return range(self.bounds[rank], self.bounds[rank + 1])

    def owner(self, gids: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.bounds), gids, side="right") - 1


def expected_indegree(spec: NetworkSpec) -> np.ndarray:
    """Expected number of incoming synapses per population (in population order)."""
    index = {p.name: k for k, p in enumerate(spec.populations)}
    k_in = np.zeros(len(spec.populations))
    for pr in spec.projections:
        src = spec.population(pr.source)
        if pr.rule == "fixed_indegree":
            k = pr.indegree
        elif pr.rule == "fixed_probability":
            k = pr.probability * src.size
        else:
            k = 1
        k_in[index[pr.target]] += k
    return k_in


def partition_contiguous(spec: NetworkSpec, n_ranks: int, synapse_cost: float = SYNAPSE_COST) -> Partition:
    """Split gids into ``n_ranks`` contiguous ranges of about equal cost (works for any n_ranks >= 1)."""
    n = spec.n_neurons
    if n_ranks < 1:
        raise ValueError("n_ranks must be at least 1")
    k_in = expected_indegree(spec)
    # cumulative cost at each population boundary; cost is linear inside a population
    edges = np.array([p.first_gid for p in spec.populations] + [n], dtype=np.float64)
    per_neuron = 1.0 + synapse_cost * k_in
    cum = np.concatenate([[0.0], np.cumsum(per_neuron * np.diff(edges))])
    targets = cum[-1] * np.arange(1, n_ranks) / n_ranks
    cuts = np.interp(targets, cum, edges)
    bounds = [0] + [int(round(c)) for c in cuts] + [n]
    # ranks beyond the neuron count own nothing; keep bounds monotone
    bounds = list(np.maximum.accumulate(np.clip(bounds, 0, n)))
    return Partition(tuple(int(b) for b in bounds))
