"""PNG figures of a run (matplotlib, no screen needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dtb.results import RunResults


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` atomically (temporary file, then rename) and close it."""
    from dtb.files import atomic_path
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    _plt().close(fig)
    return path


def raster_and_rates(res: RunResults, path: str | Path, max_points: int = 200_000) -> Path:
    """Spike raster (coloured by population, subsampled to ``max_points``) above population rates."""
    plt = _plt()
    spec = res.spec
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    t = res.spike_times * 1e3
    g = res.spike_gids
    if len(g) > max_points:
        keep = np.linspace(0, len(g) - 1, max_points).astype(np.int64)
        t, g = t[keep], g[keep]
    pop = spec.population_index(g)
    cmap = plt.get_cmap("tab20")
    for k, p in enumerate(spec.populations):
        sel = pop == k
        ax1.scatter(t[sel], g[sel], s=0.5, color=cmap(k % 20), label=p.name, rasterized=True)
    ax1.set_ylabel("global neuron id")
    ax1.set_title(f"{Path(spec.source).name}: {spec.n_neurons} neurons, {res.n_ranks} rank(s), seed {spec.simulation.seed}")
    if len(spec.populations) <= 12:
        ax1.legend(loc="upper right", markerscale=10, fontsize=7)
    tb, rates = res.rates()
    for k, p in enumerate(spec.populations[:20]):
        ax2.plot(tb * 1e3, rates[:, k], color=cmap(k % 20), lw=0.8)
    ax2.set_xlabel("time (ms)")
    ax2.set_ylabel(f"rate (Hz, {spec.monitors.rate_bin * 1e3:g} ms bins)")
    ax2.set_xlim(0, res.duration * 1e3)
    fig.tight_layout()
    path = Path(path)
    return save_png(fig, path)


def region_activity(res: RunResults, path: str | Path) -> Path:
    """Mean excitatory and inhibitory synaptic current per region over time."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    t = np.arange(1, len(res.region_exc) + 1) * res.region_interval * 1e3
    for k, name in enumerate(res.spec.regions[:20]):
        line, = ax.plot(t, res.region_exc[:, k], lw=0.8, label=f"{name} exc")
        ax.plot(t, res.region_inh[:, k], lw=0.8, ls="--", color=line.get_color())
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("synaptic current per neuron (pA)")
    ax.set_title("regional synaptic activity (solid: AMPA+NMDA, dashed: GABAa+GABAb)")
    if len(res.spec.regions) <= 10:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    return save_png(fig, path)
