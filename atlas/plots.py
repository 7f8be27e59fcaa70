"""PNG figures of an atlas: connectome, neurons per region, the parcellation in three slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def connectome_png(weights: np.ndarray, lengths: np.ndarray, names: list[str], path: Path) -> Path:
    """The connectome's weights and tract lengths, regions named and grouped by hemisphere (a
    line between the hemispheres), source on x and target on y."""
    from dtb.plots import region_order
    plt = _plt()
    order, hemi = region_order(list(names))
    fig, axes = plt.subplots(1, 2, figsize=(15, 7))
    w = np.asarray(weights, float)[np.ix_(order, order)]
    ln = np.asarray(lengths, float)[np.ix_(order, order)]
    labels = [names[i] for i in order]
    size = 6 if len(labels) <= 40 else max(3, 6 - len(labels) // 40)
    for ax, m, title in ((axes[0], np.log10(w, where=w > 0, out=np.full_like(w, np.nan)), "log10 weight"),
                         (axes[1], np.where(w > 0, ln, np.nan), "tract length (mm)")):
        im = ax.imshow(m, cmap="viridis")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(title)
        if len(labels) <= 120:
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=size)
            ax.set_yticks(range(len(labels)), labels, fontsize=size)
        ax.set_xlabel("source region")
        ax.set_ylabel("target region")
        for k in range(1, len(hemi)):
            if hemi[k] != hemi[k - 1]:
                ax.axhline(k - 0.5, color="0.4", lw=0.8)
                ax.axvline(k - 0.5, color="0.4", lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def neurons_png(names: list[str], neurons: np.ndarray, volumes: np.ndarray, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.16), 4.5))
    ax.bar(range(len(names)), neurons, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylabel("neurons")
    ax2 = ax.twinx()
    ax2.plot(range(len(names)), volumes, "k.", ms=3)
    ax2.set_ylabel("volume (mm³ or voxels)")
    ax.set_title("neurons per region (bars) follow region volume (dots)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def parcellation_png(labels: np.ndarray, path: Path, affine: np.ndarray | None = None,
                     at_mm: tuple[float, float, float] = (-40.0, -20.0, 20.0)) -> Path:
    """Three slices of the label volume through the point ``at_mm`` (x: a sagittal slice through
    the left hemisphere, not the empty midline), each region in its own colour, axes in mm (voxels
    without an ``affine``)."""
    plt = _plt()
    unit = "mm" if affine is not None else "voxels"
    affine = np.eye(4) if affine is None else np.asarray(affine, float)
    inv = np.linalg.inv(affine)
    ijk = np.rint(inv[:3, :3] @ np.asarray(at_mm) + inv[:3, 3]).astype(int)
    ijk = np.clip(ijk, 0, np.array(labels.shape) - 1)
    origin = affine[:3, 3]
    step = np.diag(affine)[:3]
    extent = [(origin[d], origin[d] + step[d] * (labels.shape[d] - 1)) for d in range(3)]
    rng = np.random.default_rng(0)
    colors = rng.uniform(0.25, 1.0, size=(int(labels.max()) + 1, 3))
    colors[0] = 0
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    views = ((labels[ijk[0], :, :].T, 1, 2, f"sagittal, x = {at_mm[0]:g} {unit}"),
             (labels[:, ijk[1], :].T, 0, 2, f"coronal, y = {at_mm[1]:g} {unit}"),
             (labels[:, :, ijk[2]].T, 0, 1, f"axial, z = {at_mm[2]:g} {unit}"))
    for ax, (sl, a, b, title) in zip(axes, views):
        ax.imshow(colors[sl], origin="lower", extent=(*extent[a], *extent[b]))
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("xyz"[a] + f" ({unit})")
        ax.set_ylabel("xyz"[b] + f" ({unit})")
    fig.suptitle(f"parcellation: {len(np.unique(labels)) - 1} labels", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
