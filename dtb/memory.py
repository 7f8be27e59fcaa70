"""How much memory a network needs per rank, estimated before anything is allocated, and whether
this machine has it.

Estimate per rank: ``m0 + neurons * m_neuron + synapses * m_synapse`` with the unit costs that
``dtb cluster calibrate`` fits to measured peak memory (``cluster/costs_default.json``: the
build's peak, when the connectivity is drawn), and the rank's neurons and expected incoming
synapses from the partition (no gid array is built). Available: MemAvailable of /proc/meminfo,
or the cgroup's memory limit when it is lower (a Slurm job or a container).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dtb.errors import DtbError

#: Brian2 indexes a Synapses object with 32-bit integers
MAX_SYNAPSES_PER_RANK = 2**31 - 1


@dataclass(frozen=True)
class RankLoad:
    neurons: int
    synapses: float               # expected
    bytes: float                  # estimated peak


def rank_loads(spec, n_ranks: int, partition=None) -> list[RankLoad]:
    """Neurons, expected incoming synapses and estimated peak bytes of each rank."""
    from dtb.partition import expected_indegree, partition_contiguous
    part = partition or partition_contiguous(spec, n_ranks)
    firsts = np.array([p.first_gid for p in spec.populations] + [spec.n_neurons], dtype=np.int64)
    k_in = expected_indegree(spec)
    neurons = np.zeros(part.n_ranks, dtype=np.int64)
    synapses = np.zeros(part.n_ranks)
    for lo, hi, owner in zip(part.starts[:-1], part.starts[1:], part.owners):
        # the segment's overlap with each population
        overlap = np.clip(np.minimum(hi, firsts[1:]) - np.maximum(lo, firsts[:-1]), 0, None)
        neurons[owner] += int(overlap.sum())
        synapses[owner] += float(overlap @ k_in)
    return [RankLoad(int(n), float(s), estimated_bytes(int(n), float(s))) for n, s in zip(neurons, synapses)]


def estimated_bytes(neurons: int, synapses: float) -> float:
    """A rank's estimated peak memory (the build's) for its neurons and incoming synapses, from
    the calibrated unit costs: what ``dtb check`` and ``dtb cluster plan`` both print."""
    from cluster.scaling import default_costs
    c = default_costs()
    return c.m0 + neurons * c.m_neuron + synapses * c.m_synapse


def available_bytes() -> float | None:
    """Memory this process may still use: MemAvailable, or the cgroup limit minus its usage when
    lower; None where neither can be read."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = float(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and float(limit) < 2**60:
                left = float(limit) - float(Path(usage_file).read_text())
                avail = left if avail is None else min(avail, left)
            break
        except (OSError, ValueError):
            continue
    return avail


def check_fits(spec, n_ranks: int, ranks_here: int | None = None, partition=None) -> list[RankLoad]:
    """Refuse (DtbError) a network whose ranks would not fit: more synapses on a rank than
    Brian2 can index, or more estimated memory for the ``ranks_here`` ranks on this machine
    (default all) than is available. Returns the loads."""
    loads = rank_loads(spec, n_ranks, partition)
    big = max(loads, key=lambda x: x.bytes)
    hint = (f"lower simulation.scale (or the sizes / indegrees; the largest: {_largest(spec)}), or run on more "
            f"ranks{' and nodes' if n_ranks > 1 else ''}")
    if big.synapses > MAX_SYNAPSES_PER_RANK:
        raise DtbError(f"{spec.source}: about {big.synapses:.3g} synapses on one of {n_ranks} rank(s), more than the "
                       f"{MAX_SYNAPSES_PER_RANK} one rank can hold; {hint}")
    here = (ranks_here or n_ranks) * big.bytes
    avail = available_bytes()
    if avail is not None and here > avail:
        raise DtbError(f"{spec.source}: needs about {big.bytes / 2**30:.3g} GB per rank ({big.neurons} neurons, "
                       f"{big.synapses:.3g} synapses on the largest), {here / 2**30:.3g} GB for the "
                       f"{ranks_here or n_ranks} rank(s) on this machine, but {avail / 2**30:.3g} GB is available; "
                       f"{hint}")
    return loads


def _largest(spec) -> str:
    """The population with the most neurons and the projection with the most synapses, by field."""
    from dtb.partition import expected_projection_indegree
    i = max(range(len(spec.populations)), key=lambda k: spec.populations[k].size)
    text = f"populations[{i}] with {spec.populations[i].size} neurons"
    if spec.projections:
        n = [expected_projection_indegree(spec, pr) * spec.population(pr.target).size for pr in spec.projections]
        j = max(range(len(n)), key=n.__getitem__)
        text += f", projections[{j}] with ~{n[j]:.3g} synapses"
    return text


def ranks_on_this_node(comm) -> int:
    """How many ranks of ``comm`` share this machine's memory."""
    if comm is None or comm.Get_size() == 1 or not hasattr(comm, "Split_type"):
        return 1
    from mpi4py import MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    n = node.Get_size()
    node.Free()
    return n
