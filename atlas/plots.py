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
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    w = np.asarray(weights, float)
    for ax, m, title in ((axes[0], np.log10(w, where=w > 0, out=np.full_like(w, np.nan)), "log10 weight"),
                         (axes[1], np.where(w > 0, lengths, np.nan), "tract length (mm)")):
        im = ax.imshow(m, cmap="viridis")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(title)
        ax.set_xlabel("source region")
        ax.set_ylabel("target region")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
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


def parcellation_png(labels: np.ndarray, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    cx, cy, cz = (np.array(labels.shape) // 2)
    rng = np.random.default_rng(0)
    colors = rng.uniform(0.2, 1.0, size=(int(labels.max()) + 1, 3))
    colors[0] = 0
    for ax, sl, title in ((axes[0], labels[cx, :, :].T, "sagittal"), (axes[1], labels[:, cy, :].T, "coronal"),
                          (axes[2], labels[:, :, cz].T, "axial")):
        ax.imshow(colors[sl], origin="lower")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
