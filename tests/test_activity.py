"""The free run's synchrony measure (assimilation.activity) on spike counts whose answer is known:
independent Poisson firing scores about 0 at any region size, bursts of the whole population
score above 1."""

from types import SimpleNamespace as NS

import numpy as np

from assimilation.activity import ActivityMonitor


def _monitor(sizes):
    bold = NS(listeners=[])
    sim = NS(region_every=1, dt=1e-3, spec=NS(regions=[f"R{i}" for i in range(len(sizes))], region_sizes=sizes),
             bold=bold)
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
