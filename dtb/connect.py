"""Connection rules, drawn per target neuron from counter-based random numbers.

Every function here is pure: the synapses arriving on target gid ``t`` depend only on the seed,
the projection's index and ``t``. So any rank can build exactly its incoming synapses, and the
network is the same whatever the number of ranks (Arbor's recipe idea, NEST's rule names).

Rules (NEST semantics): ``fixed_indegree`` (K sources drawn with replacement, multapses allowed),
``fixed_probability`` (each source independently with probability p, by geometric skipping),
``one_to_one``. Autapses are excluded unless the projection allows them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dtb import rng
from dtb.spec import Distribution, Population, Projection


@dataclass
class Incoming:
    """Synapses onto a set of targets: parallel arrays, one entry per synapse."""

    source: np.ndarray       # source gids (int64)
    target: np.ndarray       # target gids (int64)
    slot: np.ndarray         # per-target synapse ordinal, the counter for weight and delay draws

    def __len__(self) -> int:
        return len(self.source)


def _stream(proj_index: int, stream: int) -> int:
    return (proj_index + 1) << 8 | stream


def draw_sources(proj: Projection, proj_index: int, src: Population, tgt: Population,
                 targets: np.ndarray, seed: int) -> Incoming:
    """Presynaptic sources of ``targets`` (gids inside ``tgt``, any order) for one projection."""
    targets = np.asarray(targets, dtype=np.int64)
    no_self = (src.name == tgt.name) and not proj.allow_autapses
    if proj.rule == "one_to_one":
        s = src.first_gid + (targets - tgt.first_gid)
        keep = ~(no_self & (s == targets))
        return Incoming(s[keep], targets[keep], np.zeros(int(keep.sum()), dtype=np.int64))
    if proj.rule == "fixed_indegree":
        return _fixed_indegree(proj, proj_index, src, targets, seed, no_self)
    return _fixed_probability(proj, proj_index, src, targets, seed, no_self)


def _fixed_indegree(proj, proj_index, src, targets, seed, no_self) -> Incoming:
    k = proj.indegree
    n_src = src.size - (1 if no_self else 0)
    if k == 0 or len(targets) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Incoming(empty, empty, empty)
    if n_src <= 0:
        raise ValueError(f"projection {proj.source}->{proj.target}: no source left once autapses are excluded")
    slot = np.tile(np.arange(k, dtype=np.int64), len(targets))
    tgt = np.repeat(targets, k)
    u = rng.uniform(seed, _stream(proj_index, rng.STREAM_SOURCES), tgt, slot)
    local = np.minimum((u * n_src).astype(np.int64), n_src - 1)
    if no_self:
        local += local >= (tgt - src.first_gid)
    return Incoming(src.first_gid + local, tgt, slot)


def _fixed_probability(proj, proj_index, src, targets, seed, no_self) -> Incoming:
    p = proj.probability
    if p <= 0 or len(targets) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Incoming(empty, empty, empty)
    stream = _stream(proj_index, rng.STREAM_SOURCES)
    log_q = np.log1p(-p) if p < 1 else -np.inf
    pos = np.full(len(targets), -1, dtype=np.int64)
    active = np.arange(len(targets))
    srcs, tgts, slots = [], [], []
    m = 0
    while len(active):
        u = rng.uniform_open(seed, stream, targets[active], m)
        gap = np.zeros(len(active), dtype=np.int64) if p >= 1 else np.floor(np.log(u) / log_q).astype(np.int64)
        pos[active] += gap + 1
        inside = pos[active] < src.size
        active = active[inside]
        if len(active):
            srcs.append(src.first_gid + pos[active])
            tgts.append(targets[active])
            slots.append(np.full(len(active), m, dtype=np.int64))
        m += 1
    s, t, sl = np.concatenate(srcs), np.concatenate(tgts), np.concatenate(slots)
    if no_self:
        keep = s != t
        s, t, sl = s[keep], t[keep], sl[keep]
    return Incoming(s, t, sl)


def draw_values(dist: Distribution, seed: int, proj_index: int, stream: int, stream2: int,
                targets: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Per-synapse values (SI) of a weight or delay distribution, keyed by (target gid, slot)."""
    n = len(targets)
    if dist.kind == "constant":
        return np.full(n, dist.value)
    s1, s2 = _stream(proj_index, stream), _stream(proj_index, stream2)
    if dist.kind == "uniform":
        return dist.low + (dist.high - dist.low) * rng.uniform(seed, s1, targets, slots)
    z = rng.normal(seed, s1, s2, targets, slots)
    if dist.kind == "normal":
        x = dist.mean + dist.std * z
    else:  # lognormal with the given mean and std of the variable itself
        sigma2 = np.log1p((dist.std / dist.mean) ** 2)
        x = np.exp(np.log(dist.mean) - sigma2 / 2 + np.sqrt(sigma2) * z)
    return np.clip(x, dist.low, dist.high)


def draw_weights(proj: Projection, proj_index: int, inc: Incoming, seed: int) -> np.ndarray:
    """Synaptic weights (siemens)."""
    return draw_values(proj.weight, seed, proj_index, rng.STREAM_WEIGHT, rng.STREAM_WEIGHT2, inc.target, inc.slot)


def draw_delay_steps(proj: Projection, proj_index: int, inc: Incoming, seed: int, dt: float) -> np.ndarray:
    """Synaptic delays in whole time steps (at least one)."""
    d = draw_values(proj.delay, seed, proj_index, rng.STREAM_DELAY, rng.STREAM_DELAY2, inc.target, inc.slot)
    return np.maximum(np.rint(d / dt), 1).astype(np.int64)


def delay_steps_lower_bound(proj: Projection, dt: float) -> int:
    """The smallest number of steps :func:`draw_delay_steps` can return for this projection."""
    return max(int(np.rint(proj.delay.lower_bound / dt)), 1)
