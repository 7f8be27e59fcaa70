"""Counter-based random numbers and connection rules: statistics, and independence from how
targets are split over ranks."""

import numpy as np
import pytest
from scipy import stats

from dtb import connect, rng
from dtb.spec import Distribution, Population, Projection


def test_poisson_counts_have_poisson_statistics():
    for lam in (0.05, 0.5, 3.0):
        k = rng.poisson_count(11, 0, np.arange(200_000), 17, lam)
        assert k.mean() == pytest.approx(lam, rel=0.02)
        assert k.var() == pytest.approx(lam, rel=0.03)
        # goodness of fit on the first few counts
        obs = np.bincount(k, minlength=6)[:6]
        exp = stats.poisson.pmf(np.arange(6), lam) * len(k)
        keep = exp > 20
        assert stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue > 1e-3


def test_compiled_noise_equals_numpy_twin():
    """The compiled draw of the neuron pass gives the same counts as the numpy code, including
    the tail beyond the cached sums and after the rate changes (its cumulative sums are cached,
    for one rate at a time)."""
    from numba import njit

    from dtb.engine import neuron_kernel

    poisson = neuron_kernel.load_kernel(neuron_kernel.kernel_source(("ampa",), (), ("ampa",), frozenset()))
    module = __import__(poisson.__module__)
    draw = njit(lambda key, step, lam, p0, cdf: [module._poisson(key[i], step, lam[i], p0[i], cdf)
                                                  for i in range(len(key))])
    gids = np.arange(500) + 1000
    key = rng.key_hash(77, 2, gids)
    cdf = np.full(neuron_kernel.POISSON_CACHE, np.nan)
    for step, top in ((2, 4.0), (3, 4.0), (4, 9.0), (5, 9.0)):   # the third step changes every rate
        lam = np.linspace(0, top, len(gids))
        if step == 5:                                              # runs of neurons sharing a rate
            lam = np.repeat(lam[::50], 50)
        got = np.array(draw(key, step, lam, np.exp(-lam), cdf))
        np.testing.assert_array_equal(got, rng.poisson_count(77, 2, gids, step, lam))
        assert (got >= 4).sum() > 50
    assert (got >= neuron_kernel.POISSON_CACHE - 3).sum() > 5       # the tail beyond the cache
    assert got.sum() > 500


def _proj(rule, **kw):
    base = dict(source="S", target="T", rule=rule, receptor="ampa",
                weight=Distribution("normal", mean=1e-9, std=0.2e-9, low=0.0),
                delay=Distribution("uniform", low=1e-3, high=5e-3))
    base.update(kw)
    return Projection(**base)


S = Population("S", "R", 1000, "excitatory", first_gid=0)
T = Population("T", "R", 300, "excitatory", first_gid=1000)


@pytest.mark.parametrize("proj", [_proj("fixed_indegree", indegree=50), _proj("fixed_probability", probability=0.07)])
def test_synapses_of_a_target_do_not_depend_on_the_split(proj):
    targets = np.arange(T.first_gid, T.first_gid + T.size)
    whole = connect.draw_sources(proj, 3, S, T, targets, seed=5)
    parts = [connect.draw_sources(proj, 3, S, T, chunk, seed=5) for chunk in np.array_split(targets[::-1], 7)]
    key = lambda inc: sorted(zip(inc.target.tolist(), inc.slot.tolist(), inc.source.tolist()))
    merged = connect.Incoming(*(np.concatenate([getattr(p, a) for p in parts]) for a in ("source", "target", "slot")))
    assert key(whole) == key(merged)
    w1 = connect.draw_weights(proj, 3, whole, 5)
    w2 = connect.draw_weights(proj, 3, merged, 5)
    assert sorted(w1.tolist()) == sorted(w2.tolist())


def test_fixed_indegree_counts_and_uniform_sources():
    proj = _proj("fixed_indegree", indegree=40)
    inc = connect.draw_sources(proj, 0, S, T, np.arange(1000, 1300), seed=1)
    assert np.all(np.bincount(inc.target - 1000) == 40)
    counts = np.bincount(inc.source, minlength=1000)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_fixed_probability_indegree_is_binomial():
    p = 0.05
    proj = _proj("fixed_probability", probability=p)
    inc = connect.draw_sources(proj, 1, S, T, np.arange(1000, 1300), seed=2)
    k = np.bincount(inc.target - 1000, minlength=300)
    assert k.mean() == pytest.approx(p * 1000, rel=0.03)
    assert k.var() == pytest.approx(1000 * p * (1 - p), rel=0.25)
    # no duplicate pairs in a Bernoulli rule
    pairs = inc.source * 10_000 + inc.target
    assert len(np.unique(pairs)) == len(pairs)


def test_no_autapses_unless_allowed():
    proj = Projection(source="T", target="T", rule="fixed_indegree", receptor="ampa", indegree=299,
                      weight=Distribution("constant", value=1e-9), delay=Distribution("constant", value=1e-3))
    inc = connect.draw_sources(proj, 0, T, T, np.arange(1000, 1300), seed=3)
    assert not np.any(inc.source == inc.target)


def test_weight_and_delay_distributions():
    proj = _proj("fixed_indegree", indegree=200)
    inc = connect.draw_sources(proj, 2, S, T, np.arange(1000, 1300), seed=4)
    w = connect.draw_weights(proj, 2, inc, 4)
    assert w.mean() == pytest.approx(1e-9, rel=0.01) and w.std() == pytest.approx(0.2e-9, rel=0.03)
    d = connect.draw_delay_steps(proj, 2, inc, 4, 1e-4)
    assert d.min() == 10 and d.max() == 50
    logn = Distribution("lognormal", mean=2e-9, std=1e-9, low=0.0, high=np.inf)
    x = connect.draw_values(logn, 4, 2, 17, 18, inc.target, inc.slot)
    assert x.mean() == pytest.approx(2e-9, rel=0.02) and x.std() == pytest.approx(1e-9, rel=0.05)
