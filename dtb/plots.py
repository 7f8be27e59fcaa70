"""PNG figures of a run (matplotlib, no screen needed), readable at atlas scale: time in seconds,
stimulus periods shaded, and beyond a handful of regions a heat map of region x time (regions
named, grouped by hemisphere) with a few named regions drawn as lines."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dtb.results import RunResults

#: above this many regions (or populations) lines give way to heat maps and summaries
MANY = 10


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


# ---------------------------------------------------------------------------- helpers
def hemisphere(name: str) -> str:
    """"left", "right" or "" from a region name (l_/lh_/Left-/_L conventions)."""
    n = name.lower()
    if re.match(r"^(l_|lh[._-]|left[-_ ])", n) or re.search(r"[._-](l|lh|left)$", n):
        return "left"
    if re.match(r"^(r_|rh[._-]|right[-_ ])", n) or re.search(r"[._-](r|rh|right)$", n):
        return "right"
    return ""


def region_order(regions: list[str]) -> tuple[np.ndarray, list[str]]:
    """Regions grouped by hemisphere (left, right, then the rest; config order inside each):
    (the order, the hemisphere of each in that order)."""
    hemi = [hemisphere(r) for r in regions]
    rank = {"left": 0, "right": 1, "": 2}
    order = np.array(sorted(range(len(regions)), key=lambda i: (rank[hemi[i]], i)), dtype=int)
    return order, [hemi[i] for i in order]


def stimulus_periods(spec) -> list[tuple[float, float]]:
    """Periods (s) when a time-limited stimulus (a current step, a task event) is on, merged."""
    spans = sorted((s.start, min(s.stop, spec.simulation.duration)) for s in spec.stimuli
                   if s.start > 0 or np.isfinite(s.stop))
    merged: list[list[float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def shade(ax, periods, label: bool = True) -> None:
    for k, (a, b) in enumerate(periods):
        ax.axvspan(a, b, color="gold", alpha=0.25, lw=0, label="stimulus" if label and k == 0 else None)


#: most region names written along one axis of a matrix (more would overlap)
MATRIX_LABELS = 24


def matrix_ticks(ax, names: list[str], hemi: list[str]) -> None:
    """Region names on both axes of a region x region matrix (every one up to MATRIX_LABELS,
    else every k-th, at a readable size) and lines between hemispheres, each side named."""
    n = len(names)
    step = max(1, int(np.ceil(n / MATRIX_LABELS)))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=6)
    ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=6)
    starts = [0] + [k for k in range(1, n) if hemi[k] != hemi[k - 1]]
    for k in starts[1:]:
        ax.axhline(k - 0.5, color="k", lw=0.8)
        ax.axvline(k - 0.5, color="k", lw=0.8)
    if len(starts) > 1:
        for a, b in zip(starts, starts[1:] + [n]):
            ax.text((a + b - 1) / 2, -1.0, hemi[a] or "other", ha="center", va="bottom", fontsize=7)


def heatmap(ax, fig, t: np.ndarray, values: np.ndarray, regions: list[str], label: str, cmap: str = "viridis",
            colorbar: str = "right"):
    """Region x time image (``t``: the samples' times, evenly spaced), regions grouped by
    hemisphere and named (as many as fit), with a line between the hemispheres."""
    order, hemi = region_order(regions)
    half = 0.5 * (t[1] - t[0]) if len(t) > 1 else 0.5
    im = ax.imshow(values[:, order].T, aspect="auto", origin="lower", cmap=cmap, interpolation="nearest",
                   extent=(t[0] - half, t[-1] + half, -0.5, len(order) - 0.5))
    step = max(1, int(np.ceil(len(order) / 70)))
    ax.set_yticks(range(0, len(order), step), [regions[i] for i in order[::step]], fontsize=max(3, 7 - len(order) // 40))
    for k in range(1, len(hemi)):
        if hemi[k] != hemi[k - 1]:
            ax.axhline(k - 0.5, color="white", lw=1)
            ax.text(t[0], k - 0.5, f" {hemi[k] or 'other'} ↑", color="white", fontsize=7, va="bottom")
    if colorbar == "top":
        fig.colorbar(im, ax=ax, location="top", fraction=0.04, pad=0.02, aspect=60, label=label)
    else:
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label=label)
    return order


# ---------------------------------------------------------------------------- figures
def raster_and_rates(res: RunResults, path: str | Path, max_points: int = 200_000) -> Path:
    """Spike raster above the population rates. A few populations: every neuron (subsampled to
    ``max_points`` spikes), one colour each. Many: the first neurons of each population (about 1,500
    rows in all), in bands per region grouped by hemisphere and named, excitatory blue and
    inhibitory red; the rates as the mean and range of the excitatory and of the inhibitory
    populations."""
    plt = _plt()
    spec = res.spec
    many = len(spec.populations) > 12
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 8 if many else 7), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    if many:
        _banded_raster(ax1, res)
    else:
        _full_raster(ax1, res, max_points)
    ax1.set_title(f"{Path(spec.source).name}: {spec.n_neurons} neurons, {res.n_ranks} rank(s), seed {spec.simulation.seed}")
    _rates_panel(ax2, res, many)
    shade(ax1, stimulus_periods(spec), label=False)
    shade(ax2, stimulus_periods(spec))
    ax2.legend(fontsize=7, ncol=1 if many else 3)
    ax2.set_xlabel("time (s)")
    ax2.set_xlim(0, res.duration)
    fig.tight_layout()
    return save_png(fig, path)


def _full_raster(ax, res: RunResults, max_points: int) -> None:
    spec = res.spec
    t, g = res.spike_times, res.spike_gids
    if len(g) > max_points:
        keep = np.linspace(0, len(g) - 1, max_points).astype(np.int64)
        t, g = t[keep], g[keep]
    pop = spec.population_index(g)
    cmap = _plt().get_cmap("tab20")
    for k, p in enumerate(spec.populations):
        sel = pop == k
        ax.scatter(t[sel], g[sel], s=0.5, color=cmap(k % 20), rasterized=True, label=p.name)
    ax.set_ylabel("global neuron id")
    ax.legend(loc="upper right", markerscale=10, fontsize=7, ncol=2)


def _banded_raster(ax, res: RunResults, rows: int = 1500) -> None:
    """The first neurons of each population, one band per region (hemispheres grouped)."""
    spec = res.spec
    per_pop = max(1, rows // len(spec.populations))
    order, _ = region_order(list(spec.regions))
    rank = {spec.regions[r]: k for k, r in enumerate(order)}
    pops = sorted(range(len(spec.populations)), key=lambda k: (rank[spec.populations[k].region], k))
    row_of = np.full(spec.n_neurons, -1, dtype=np.int64)
    ticks, names, row = [], [], 0
    for k in pops:
        p = spec.populations[k]
        n = min(per_pop, p.size)
        if not names or names[-1] != p.region:
            ticks.append(row)
            names.append(p.region)
        row_of[p.first_gid:p.first_gid + n] = np.arange(row, row + n)
        row += n
    rows_hit = row_of[res.spike_gids]
    sel = rows_hit >= 0
    inhibitory = np.array([p.kind == "inhibitory" for p in spec.populations])[spec.population_index(res.spike_gids)]
    for mask, color, label in ((sel & ~inhibitory, "tab:blue", "excitatory"), (sel & inhibitory, "tab:red", "inhibitory")):
        ax.scatter(res.spike_times[mask], rows_hit[mask], s=0.6, color=color, rasterized=True, label=label)
    step = max(1, int(np.ceil(len(names) / 70)))
    ax.set_yticks(ticks[::step], names[::step], fontsize=max(3, 7 - len(names) // 40))
    ax.set_ylim(-1, row)
    ax.set_ylabel(f"region (first {per_pop} neurons of each population)")
    ax.legend(loc="upper right", markerscale=10, fontsize=7)


def _rates_panel(ax, res: RunResults, many: bool) -> None:
    spec = res.spec
    tb, rates = res.rates()
    if many:
        for kind, color in (("excitatory", "tab:blue"), ("inhibitory", "tab:red")):
            cols = [k for k, p in enumerate(spec.populations) if p.kind == kind]
            if cols:
                r = rates[:, cols]
                ax.fill_between(tb, r.min(axis=1), r.max(axis=1), color=color, alpha=0.2, lw=0)
                ax.plot(tb, r.mean(axis=1), color=color, lw=1, label=f"{kind}: mean over {len(cols)} populations "
                                                                    f"(band: min-max)")
    else:
        cmap = _plt().get_cmap("tab20")
        for k, p in enumerate(spec.populations):
            ax.plot(tb, rates[:, k], color=cmap(k % 20), lw=0.8, label=p.name)
    ax.set_ylabel(f"rate (Hz, {spec.monitors.rate_bin * 1e3:g} ms bins)")


def region_activity(res: RunResults, path: str | Path) -> Path:
    """Regional activity against time: a few regions as lines (excitatory and inhibitory synaptic
    current); many as a heat map of the firing rate per neuron (regions named, by hemisphere) above
    the lines of the four regions that vary most."""
    plt = _plt()
    spec = res.spec
    t = np.arange(1, len(res.region_exc) + 1) * res.region_interval
    periods = stimulus_periods(spec)
    regions = list(spec.regions)
    if len(regions) <= MANY:
        fig, ax = plt.subplots(figsize=(11, 4))
        _current_lines(ax, t, res, range(len(regions)), regions)
        shade(ax, periods)
        ax.legend(fontsize=7, ncol=2)
    else:
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 9), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
        rate = _smooth(res.region_rate, max(1, int(round(0.02 / res.region_interval))))
        heatmap(ax1, fig, t, rate, regions, "rate per neuron (Hz, 20 ms mean)", colorbar="top")
        fig.suptitle(f"{Path(spec.source).name}: regional firing rate, {len(regions)} regions", fontsize=11)
        for a, b in periods:
            ax1.axvline(a, color="gold", lw=1)
            ax1.axvline(b, color="gold", lw=1, ls=":")
        top = np.argsort(-rate.std(axis=0))[:4]
        _current_lines(ax2, t, res, top, regions)
        shade(ax2, periods)
        ax2.legend(fontsize=7, ncol=2, title="the four regions that vary most", title_fontsize=7)
    fig.axes[-1 if len(regions) <= MANY else 1].set_xlabel("time (s)")
    fig.tight_layout()
    return save_png(fig, path)


def _current_lines(ax, t, res, columns, regions) -> None:
    for k in columns:
        line, = ax.plot(t, res.region_exc[:, k], lw=0.8, label=f"{regions[k]} (AMPA+NMDA)")
        ax.plot(t, res.region_inh[:, k], lw=0.8, ls="--", color=line.get_color())
    ax.set_ylabel("synaptic current per neuron (pA)\n(solid: excitatory, dashed: inhibitory)", fontsize=8)


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    """Mean over windows of ``n`` samples (the last one shorter), keeping the length."""
    if n <= 1:
        return x
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    idx = np.arange(len(x))
    lo = np.maximum(idx - n + 1, 0)
    return (c[idx + 1] - c[lo]) / (idx + 1 - lo)[:, None]
