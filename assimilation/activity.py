"""Firing rates and synchrony of a free run (``dtb validate``), from the regional spike counts
the BOLD recorder receives every TR (summed over ranks).

Synchrony: per region and TR, the population rate in 10-ms bins; its coefficient of variation
with the Poisson counting noise removed, sqrt(max(var - mean, 0)) / mean (counts of a region of
n neurons firing independently at a steady rate have var = mean, so an asynchronous region
scores about 0 whatever its size; a region whose neurons fire together in bursts scores above
1). Reported: the fraction of (region, TR) windows above 1.

Excitatory rates: per region of every member (the spikes of its excitatory populations over
their size and the time since :meth:`ActivityMonitor.start`), their mean, lowest and highest,
the fraction in the physiological range EXCITATORY_RANGE and the number above EXCITATORY_CEILING.
"""

from __future__ import annotations

import numpy as np

#: bin of the population rate for the synchrony measure [s]
SYNCHRONY_BIN = 0.01
#: an excitatory rate in this range is physiological for cortex at rest [Hz]; none should exceed the ceiling
EXCITATORY_RANGE, EXCITATORY_CEILING = (1.0, 10.0), 20.0


class ActivityMonitor:
    """Attach to a Simulation with BOLD: keeps per region the spike count and the number of TR
    windows whose excess rate CV exceeds 1 (from :meth:`start` on)."""

    def __init__(self, sim):
        self.sim = sim
        self.every = max(int(round(SYNCHRONY_BIN / (sim.region_every * sim.dt))), 1)   # samples per bin
        n = len(sim.spec.regions)
        self.spikes = np.zeros(n, dtype=np.int64)
        self.synchronous = np.zeros(n, dtype=np.int64)
        self.windows = 0
        self.seconds = 0.0
        self.active = False
        pops = sim.spec.populations
        names = sim.spec.regions
        self._exc_region = np.array([names.index(p.region) if p.kind == "excitatory" else -1 for p in pops])
        self._exc_size = np.bincount(self._exc_region[self._exc_region >= 0],
                                     weights=[p.size for p in pops if p.kind == "excitatory"], minlength=n)
        self._pop_start = np.zeros(len(pops), dtype=np.int64)
        self._t_start = 0.0
        sim.bold.listeners.append(self._on_tr)

    def start(self) -> None:
        self.active = True
        self._pop_start = self.sim.population_spikes.copy()
        self._t_start = self.sim.t

    def _on_tr(self, rows: np.ndarray) -> None:
        if not self.active:
            return
        counts = rows[:, 2, :]                                  # (samples, regions)
        nb = len(counts) // self.every
        if nb < 2:
            return
        binned = counts[:nb * self.every].reshape(nb, self.every, -1).sum(axis=1).astype(float)
        mean, var = binned.mean(axis=0), binned.var(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            cv = np.where(mean > 0, np.sqrt(np.maximum(var - mean, 0.0)) / mean, 0.0)
        self.synchronous += cv > 1.0
        self.spikes += counts.sum(axis=0)
        self.windows += 1
        self.seconds += len(counts) * self.sim.region_every * self.sim.dt

    def summary(self) -> dict[str, float]:
        """Mean rate over all neurons, the lowest and highest region's mean rate (Hz; E and I
        together), and the fraction of (region, TR) windows whose excess rate CV exceeds 1."""
        sizes = np.asarray(self.sim.spec.region_sizes, dtype=float)
        seconds = max(self.seconds, 1e-12)
        region = self.spikes / sizes / seconds
        return {"rate_hz": float(self.spikes.sum() / sizes.sum() / seconds), "rate_min_hz": float(region.min()),
                "rate_max_hz": float(region.max()),
                "sync_fraction": float(self.synchronous.sum() / max(self.windows * len(sizes), 1)),
                **self.excitatory()}

    def excitatory(self) -> dict[str, float]:
        """Excitatory rates per region of every member since :meth:`start` (collective: every rank
        calls it); empty without excitatory populations."""
        counts = self.sim.population_spikes - self._pop_start
        counts = self.sim.comm.allreduce(counts) if self.sim.size > 1 else counts
        keep = self._exc_region >= 0
        if not keep.any():
            return {}
        seconds = max(self.sim.t - self._t_start, 1e-12)
        spikes = np.bincount(self._exc_region[keep], weights=counts[keep], minlength=len(self._exc_size))
        has = self._exc_size > 0
        rate = spikes[has] / self._exc_size[has] / seconds
        low, high = EXCITATORY_RANGE
        return {"rate_e_hz": float(rate.mean()), "rate_e_min_hz": float(rate.min()), "rate_e_max_hz": float(rate.max()),
                "rate_e_in_range": float(np.mean((rate >= low) & (rate <= high))),
                "rate_e_over_ceiling": int(np.sum(rate > EXCITATORY_CEILING))}
