"""The free run's synchrony measure (assimilation.activity) on spike counts whose answer is known:
independent Poisson firing scores about 0 at any region size, bursts of the whole population
score above 1."""

from types import SimpleNamespace as NS

import numpy as np

from assimilation.activity import ActivityMonitor


def _monitor(sizes):
    bold = NS(listeners=[])
    regions = [f"R{i}" for i in range(len(sizes))]
    pops = [NS(region=r, kind=k, size=n * share) for r, n in zip(regions, sizes)
            for k, share in (("excitatory", 0.8), ("inhibitory", 0.2))]
    sim = NS(region_every=1, dt=1e-3, spec=NS(regions=regions, region_sizes=sizes, populations=pops), bold=bold,
             population_spikes=np.zeros(len(pops), dtype=np.int64), t=0.0, size=1)
    m = ActivityMonitor(sim)
    m.start()
    return m, bold.listeners[0]


def test_poisson_firing_is_asynchronous_and_bursts_are_synchronous():
    rng = np.random.default_rng(0)
    sizes = np.array([5.0, 50.0, 500.0])
    m, feed = _monitor(sizes)
    for _ in range(20):                                   # 20 TRs of 1 s at 1-ms samples
        rows = np.zeros((1000, 3, 3), dtype=np.int64)
        rows[:, 2, :] = rng.poisson(sizes * 10.0 * 1e-3, size=(1000, 3))       # 10 Hz, independent
        feed(rows)
    s = m.summary()
    assert s["sync_fraction"] == 0.0
    assert abs(s["rate_hz"] - 10.0) < 0.5 and s["rate_min_hz"] <= s["rate_hz"] <= s["rate_max_hz"]
    m, feed = _monitor(sizes)
    for _ in range(5):                                    # every neuron fires once in the same ms, every 100 ms
        rows = np.zeros((1000, 3, 3), dtype=np.int64)
        rows[::100, 2, :] = sizes.astype(np.int64)
        feed(rows)
    s = m.summary()
    assert s["sync_fraction"] == 1.0 and abs(s["rate_hz"] - 10.0) < 1e-9


def test_excitatory_rates_per_region_and_their_range():
    """Excitatory rates from the populations' spike counts since start: 2, 5 and 30 Hz in three
    regions (inhibitory spikes do not count); 2 of 3 in 1-10 Hz, one above 20 Hz."""
    sizes = np.array([10.0, 100.0, 1000.0])
    m, _ = _monitor(sizes)
    m.sim.population_spikes[:] = 7                       # before start: not counted
    m.start()
    m.sim.t = 4.0
    exc = sizes * 0.8 * 4.0 * np.array([2.0, 5.0, 30.0])
    m.sim.population_spikes[0::2] += exc.astype(np.int64)
    m.sim.population_spikes[1::2] += 10_000
    e = m.excitatory()
    assert e["rate_e_min_hz"] == 2.0 and e["rate_e_max_hz"] == 30.0
    assert abs(e["rate_e_hz"] - 37.0 / 3) < 1e-12
    assert e["rate_e_in_range"] == 2 / 3 and e["rate_e_over_ceiling"] == 1
