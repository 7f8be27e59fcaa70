"""Counter-based random numbers: a pure function of (seed, stream, key, counter).

Nothing here keeps state, so a neuron's random numbers do not depend on which rank it lives on
or in which order ranks draw them. The mixer is SplitMix64's finaliser (Steele, Lea & Flood 2014),
applied to each word in turn; the same arithmetic is compiled (numba, dtb.engine.neuron_kernel)
for the per-step background noise and run in numpy for connectivity and tests.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0

# streams: distinct uses of the generator never share numbers
STREAM_NOISE = 0          # background Poisson input, + receptor index (0..3)
STREAM_SOURCES = 16       # presynaptic source choice
STREAM_WEIGHT = 17
STREAM_WEIGHT2 = 18
STREAM_DELAY = 19
STREAM_DELAY2 = 20
STREAM_COUNT = 21         # in-degree of fixed-probability rules
STREAM_INIT = 22          # initial membrane potentials
STREAM_SCANNER = 23       # thermal (scanner) noise of the BOLD signal
STREAM_SCANNER2 = 24


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def key_hash(seed: int, stream: int, key) -> np.ndarray:
    """The counter-free part of :func:`hash_u64` (precomputed per neuron for the per-step noise)."""
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + _GOLDEN)
        h = _mix(h ^ (np.uint64(stream) + _GOLDEN))
        return _mix(h ^ (np.asarray(key).astype(np.uint64) + _GOLDEN))


def hash_u64(seed: int, stream: int, key, counter) -> np.ndarray:
    """64-bit hash of the words (seed, stream, key, counter); ``key`` and ``counter`` broadcast."""
    with np.errstate(over="ignore"):
        return _mix(key_hash(seed, stream, key) ^ (np.asarray(counter).astype(np.uint64) + _GOLDEN))


def uniform(seed: int, stream: int, key, counter) -> np.ndarray:
    """Uniform numbers in [0, 1) with 53 random bits."""
    return (hash_u64(seed, stream, key, counter) >> _S11).astype(np.float64) * _TWO_M53


def uniform_open(seed: int, stream: int, key, counter) -> np.ndarray:
    """Uniform numbers in (0, 1), safe for logarithms."""
    return ((hash_u64(seed, stream, key, counter) >> _S11).astype(np.float64) + 0.5) * _TWO_M53


def normal(seed: int, stream: int, stream2: int, key, counter) -> np.ndarray:
    """Standard normal numbers (Box-Muller from two streams)."""
    u1 = uniform_open(seed, stream, key, counter)
    u2 = uniform(seed, stream2, key, counter)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def poisson_count(seed: int, stream: int, key, counter, lam) -> np.ndarray:
    """Poisson counts by inversion of one counter-based uniform (numpy twin of the compiled neuron pass)."""
    u = np.broadcast_to(uniform(seed, stream, key, counter), np.broadcast(key, counter, lam).shape)
    return _poisson_from_uniform(u, np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape))


def _poisson_from_uniform(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Inversion: the count k is the number of Poisson CDF values below u (same operation order
    as the compiled neuron pass, so the results are bitwise equal)."""
    out = np.zeros(u.shape, dtype=np.int64)
    p = np.exp(-lam)
    cdf = p.copy()
    active = (lam > 0) & (u > cdf)
    k = 0
    while active.any() and k < 1000:
        k += 1
        out[active] = k
        p = np.where(active, p * lam / float(k), p)
        cdf = np.where(active, cdf + p, cdf)
        active &= u > cdf
    return out
