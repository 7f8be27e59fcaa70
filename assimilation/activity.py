"""Firing rates and synchrony of a free run (``dtb validate``), from the regional spike counts
the BOLD recorder receives every TR (summed over ranks).

Synchrony: per region and TR, the population rate in 10-ms bins; its coefficient of variation
with the Poisson counting noise removed, sqrt(max(var - mean, 0)) / mean (counts of a region of
n neurons firing independently at a steady rate have var = mean, so an asynchronous region
scores about 0 whatever its size; a region whose neurons fire together in bursts scores above
1). Reported: the fraction of (region, TR) windows above 1.
"""

from __future__ import annotations

import numpy as np

#: bin of the population rate for the synchrony measure [s]
SYNCHRONY_BIN = 0.01


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
        sim.bold.listeners.append(self._on_tr)

    def start(self) -> None:
        self.active = True

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
                "sync_fraction": float(self.synchronous.sum() / max(self.windows * len(sizes), 1))}
