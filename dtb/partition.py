"""Domain decomposition: which MPI rank owns which global neuron ids (gids).

A partition is a list of gid segments, each owned by one rank (a rank may own several). The
network does not depend on it (connectivity and noise are drawn per gid), only the cost does.

Partitioners (all estimate a neuron's cost as one unit for its state update plus
``synapse_cost`` per incoming synapse):

* :func:`partition_contiguous`: contiguous gid ranges of equal cost (the default of ``dtb run``);
* :func:`partition_round_robin`: gid ``g`` on rank ``g % N`` (the naive baseline);
* :func:`partition_regions`: the region graph (vertex weight = cost, edge weight = synapses
  between regions) cut by METIS (``pymetis``) so that strongly connected regions share a rank;
  a region is split across ranks when it is larger than half a rank's share, or when the final
  balancing pass moves its edge to an under-loaded rank (about one region per rank).

:func:`plan` estimates, without drawing a synapse, what a partition costs: per-rank neurons,
synapses and memory, load imbalance and the fraction of synapses whose source is on another rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dtb.memory import estimated_bytes
from dtb.spec import NetworkSpec

#: cost of one incoming synapse relative to one neuron update (measured order of magnitude
#: on this engine: a neuron step costs about as much as 50-100 synaptic events at 5-10 Hz)
SYNAPSE_COST = 0.01

PARTITIONERS = ("contiguous", "regions", "round-robin")


@dataclass(frozen=True)
class Partition:
    """Segment ``s`` (gids ``starts[s] <= gid < starts[s + 1]``) belongs to rank ``owners[s]``;
    ``starts`` ends with the neuron count."""

    starts: tuple[int, ...]
    owners: tuple[int, ...]
    n_ranks: int

    @classmethod
    def from_bounds(cls, bounds) -> "Partition":
        """Rank r owns ``bounds[r] <= gid < bounds[r + 1]``."""
        bounds = [int(b) for b in bounds]
        return cls(tuple(bounds), tuple(range(len(bounds) - 1)), len(bounds) - 1)

    @classmethod
    def from_owner(cls, owner: np.ndarray, n_ranks: int) -> "Partition":
        """From the owning rank of every gid (run-length encoded into segments)."""
        owner = np.asarray(owner)
        cut = np.flatnonzero(np.diff(owner)) + 1
        starts = np.concatenate([[0], cut, [len(owner)]])
        return cls(tuple(int(s) for s in starts), tuple(int(o) for o in owner[starts[:-1]]), int(n_ranks))

    @property
    def n_neurons(self) -> int:
        return self.starts[-1]

    def owned(self, rank: int) -> np.ndarray:
        """The gids of ``rank``, sorted (int64)."""
        segs = [np.arange(self.starts[s], self.starts[s + 1], dtype=np.int64)
                for s, o in enumerate(self.owners) if o == rank]
        return np.concatenate(segs) if segs else np.zeros(0, dtype=np.int64)

    def counts(self) -> np.ndarray:
        """Neurons per rank."""
        return np.bincount(np.asarray(self.owners), weights=np.diff(self.starts), minlength=self.n_ranks).astype(np.int64)

    def owner(self, gids: np.ndarray) -> np.ndarray:
        seg = np.searchsorted(np.asarray(self.starts), gids, side="right") - 1
        return np.asarray(self.owners)[seg]

    def owner_array(self) -> np.ndarray:
        """The owning rank of every gid (int32; n_neurons entries)."""
        return np.repeat(np.asarray(self.owners, dtype=np.int32), np.diff(self.starts))


def expected_indegree(spec: NetworkSpec) -> np.ndarray:
    """Expected number of incoming synapses per population (in population order)."""
    return expected_synapse_matrix(spec).sum(axis=0) / np.array([p.size for p in spec.populations])


def expected_synapse_matrix(spec: NetworkSpec) -> np.ndarray:
    """Expected synapses from population i to population j, (n_pops, n_pops)."""
    index = {p.name: k for k, p in enumerate(spec.populations)}
    m = np.zeros((len(spec.populations),) * 2)
    for pr in spec.projections:
        size = spec.population(pr.target).size
        m[index[pr.source], index[pr.target]] += expected_projection_indegree(spec, pr) * size
    return m


def expected_projection_indegree(spec: NetworkSpec, pr) -> float:
    """Expected synapses of projection ``pr`` onto one neuron of its target population."""
    if pr.rule == "fixed_indegree":
        return float(pr.indegree)
    if pr.rule == "fixed_probability":
        return pr.probability * spec.population(pr.source).size
    return 1.0


def _population_cost(spec: NetworkSpec, synapse_cost: float) -> np.ndarray:
    """Cost of one neuron of each population."""
    return 1.0 + synapse_cost * expected_indegree(spec)


def partition_contiguous(spec: NetworkSpec, n_ranks: int, synapse_cost: float = SYNAPSE_COST) -> Partition:
    """Split gids into ``n_ranks`` contiguous ranges of about equal cost (works for any n_ranks >= 1)."""
    if n_ranks < 1:
        raise ValueError("n_ranks must be at least 1")
    edges = np.array([p.first_gid for p in spec.populations] + [spec.n_neurons], dtype=np.float64)
    return Partition.from_bounds(_equal_cost_cuts(edges, _population_cost(spec, synapse_cost), n_ranks))


def _equal_cost_cuts(edges: np.ndarray, per_neuron: np.ndarray, n_parts: int) -> list[int]:
    """Bounds splitting [edges[0], edges[-1]) into ``n_parts`` runs of equal cost, given the cost of
    one neuron between consecutive edges (cost is linear inside a population)."""
    cum = np.concatenate([[0.0], np.cumsum(per_neuron * np.diff(edges))])
    targets = cum[-1] * np.arange(1, n_parts) / n_parts
    cuts = np.interp(targets, cum, edges)
    bounds = [int(edges[0])] + [int(round(c)) for c in cuts] + [int(edges[-1])]
    return [int(b) for b in np.maximum.accumulate(np.clip(bounds, edges[0], edges[-1]))]


def partition_round_robin(spec: NetworkSpec, n_ranks: int) -> Partition:
    """gid g on rank g % n_ranks: balanced, but nearly every synapse crosses ranks."""
    return Partition.from_owner(np.arange(spec.n_neurons) % n_ranks, n_ranks)


def partition_regions(spec: NetworkSpec, n_ranks: int, synapse_cost: float = SYNAPSE_COST,
                      tolerance: float = 0.03) -> Partition:
    """Keep regions, and regions joined by many synapses, on one rank (METIS on the region graph).

    Vertices are regions, or, for a region costlier than ``share / 2`` (share = total / n_ranks),
    equal pieces of it no larger than that; vertex weight = estimated cost, edge weight = expected
    synapses between them (pieces of one region are joined by its internal synapses). METIS
    (k-way, ``tolerance`` load imbalance) assigns vertices to ranks. A final pass makes the cost
    of each rank equal to within a fraction of a neuron by moving part of a boundary region
    between ranks whose cost exceeds the share and ranks below it.
    """
    if n_ranks < 1:
        raise ValueError("n_ranks must be at least 1")
    if n_ranks == 1:
        return Partition.from_bounds([0, spec.n_neurons])
    try:
        import pymetis
    except ImportError as e:   # pragma: no cover - a dependency
        raise RuntimeError("the regions partitioner needs pymetis (pip install pymetis)") from e
    pops = spec.populations
    cost = _population_cost(spec, synapse_cost)
    regions = spec.regions
    reg_of_pop = np.array([regions.index(p.region) for p in pops])
    syn = expected_synapse_matrix(spec)
    region_cost = np.bincount(reg_of_pop, weights=cost * np.array([p.size for p in pops]), minlength=len(regions))
    share = region_cost.sum() / n_ranks
    n_pieces = np.maximum(np.ceil(region_cost / (share / 2)), 1).astype(int)
    # vertices: (region, piece); a piece holds the same fraction of every population of its region
    vert_region = np.repeat(np.arange(len(regions)), n_pieces)
    vert_frac = 1.0 / n_pieces[vert_region]
    first_vert = np.concatenate([[0], np.cumsum(n_pieces)])
    reg_syn = np.zeros((len(regions), len(regions)))
    np.add.at(reg_syn, (reg_of_pop[:, None], reg_of_pop[None, :]), syn)
    sym = reg_syn + reg_syn.T
    n_vert = len(vert_region)
    adj: list[list[int]] = [[] for _ in range(n_vert)]
    w: list[list[int]] = [[] for _ in range(n_vert)]
    scale = 1e6 / max(sym.max(), 1.0)            # METIS takes integer weights
    for v in range(n_vert):
        a = vert_region[v]
        for u in range(n_vert):
            b = vert_region[u]
            if u == v:
                continue
            weight = sym[a, b] * vert_frac[v] * vert_frac[u] * (0.5 if a == b else 1.0)
            if weight > 0:
                adj[v].append(u)
                w[v].append(max(int(round(weight * scale)), 1))
    xadj = np.concatenate([[0], np.cumsum([len(a) for a in adj])]).astype(np.int64)
    vweights = np.maximum(np.rint(region_cost[vert_region] * vert_frac), 1).astype(np.int64)
    opts = pymetis.Options(ufactor=int(tolerance * 1000), seed=1, contig=False)
    adjncy = np.concatenate(adj).astype(np.int64) if any(adj) else np.zeros(0, np.int64)
    _, parts = pymetis.part_graph(n_ranks, adjacency=pymetis.CSRAdjacency(xadj, adjncy), vweights=vweights,
                                  eweights=np.concatenate(w).astype(np.int64) if any(w) else None, options=opts)
    parts = np.asarray(parts)
    # neurons of each region assigned rank by rank: region r's neurons (its populations' gid
    # ranges, in order) are cut in proportion to the pieces on each rank
    owner = np.empty(spec.n_neurons, dtype=np.int32)
    per_neuron = np.repeat(cost, [p.size for p in pops])
    for r in range(len(regions)):
        gids = np.concatenate([np.arange(p.first_gid, p.first_gid + p.size) for p, k in zip(pops, reg_of_pop) if k == r])
        ranks = parts[first_vert[r]:first_vert[r + 1]]
        ranks = np.sort(ranks)
        cut = np.rint(np.arange(len(ranks) + 1) / len(ranks) * len(gids)).astype(int)
        for j, q in enumerate(ranks):
            owner[gids[cut[j]:cut[j + 1]]] = q
    owner = _rebalance(owner, per_neuron, n_ranks, spec)
    return Partition.from_owner(owner, n_ranks)


def _rebalance(owner: np.ndarray, per_neuron: np.ndarray, n_ranks: int, spec: NetworkSpec) -> np.ndarray:
    """Move neurons from ranks above the mean cost to ranks below it, taking whole runs at the end
    of the overloaded rank's largest region, until every rank is within one neuron of the mean."""
    owner = owner.copy()
    load = np.bincount(owner, weights=per_neuron, minlength=n_ranks)
    share = load.sum() / n_ranks
    region_of_gid = np.repeat([spec.regions.index(p.region) for p in spec.populations],
                              [p.size for p in spec.populations])
    for _ in range(4 * n_ranks):
        hi, lo = int(np.argmax(load)), int(np.argmin(load))
        excess = min(load[hi] - share, share - load[lo])
        if excess < per_neuron.max():
            break
        mine = np.flatnonzero(owner == hi)
        # prefer a region the receiving rank already holds, else the overloaded rank's last region
        regs_lo = set(np.unique(region_of_gid[owner == lo]).tolist())
        regs_hi = region_of_gid[mine]
        shared = [r for r in np.unique(regs_hi) if r in regs_lo]
        reg = shared[0] if shared else regs_hi[-1]
        cand = mine[regs_hi == reg][::-1]
        c = np.cumsum(per_neuron[cand])
        n_move = int(np.searchsorted(c, excess))
        if n_move == 0:
            break
        moved = cand[:n_move]
        owner[moved] = lo
        load[hi] -= per_neuron[moved].sum()
        load[lo] += per_neuron[moved].sum()
    return owner


def make_partition(spec: NetworkSpec, n_ranks: int, method: str = "contiguous") -> Partition:
    """The partition named ``method`` (one of :data:`PARTITIONERS`)."""
    if method == "contiguous":
        return partition_contiguous(spec, n_ranks)
    if method == "regions":
        return partition_regions(spec, n_ranks)
    if method == "round-robin":
        return partition_round_robin(spec, n_ranks)
    raise ValueError(f"unknown partitioner {method!r}; choose one of {', '.join(PARTITIONERS)}")


@dataclass
class PlanRow:
    rank: int
    neurons: int
    synapses: float
    memory_bytes: float
    cost: float
    remote_synapses: float


def plan(spec: NetworkSpec, part: Partition, synapse_cost: float = SYNAPSE_COST) -> tuple[list[PlanRow], dict]:
    """Expected per-rank load of ``part`` (no synapse is drawn): neurons, incoming synapses, memory,
    and synapses whose source sits on another rank (sources are drawn uniformly from their
    population, so a target on rank q sees a remote source with probability 1 - f_q(source pop)).
    Totals: imbalance (max cost / mean cost - 1) and the cross-rank synapse fraction."""
    pops = spec.populations
    n_pop = len(pops)
    owner = part.owner_array()
    # neurons of population p on rank q
    frac = np.zeros((n_pop, part.n_ranks))
    for k, p in enumerate(pops):
        frac[k] = np.bincount(owner[p.first_gid:p.first_gid + p.size], minlength=part.n_ranks)
    sizes = np.array([p.size for p in pops], dtype=float)
    k_in = expected_indegree(spec)
    syn_pp = expected_synapse_matrix(spec)            # (src pop, tgt pop)
    rows = []
    for q in range(part.n_ranks):
        n_q = frac[:, q]                               # neurons of each pop on q
        syn_in = float((k_in * n_q).sum())
        local_prob = frac[:, q] / sizes                 # fraction of each source pop on q
        # synapses into q's neurons of target pop j from source pop i: syn_pp[i, j] * n_q[j] / size_j
        into_q = syn_pp * (n_q / sizes)[None, :]
        remote = float((into_q * (1 - local_prob)[:, None]).sum())
        cost = float(((1.0 + synapse_cost * k_in) * n_q).sum())
        rows.append(PlanRow(q, int(n_q.sum()), syn_in, estimated_bytes(int(n_q.sum()), syn_in), cost, remote))
    costs = np.array([r.cost for r in rows])
    total_syn = sum(r.synapses for r in rows)
    totals = {"imbalance": float(costs.max() / costs.mean() - 1.0),
              "cross_fraction": float(sum(r.remote_synapses for r in rows) / max(total_syn, 1.0)),
              "synapses": total_syn, "segments": len(part.owners)}
    return rows, totals
