"""Figures of an assimilation run (``dtb assimilate``, ``dtb validate``), each labelled with the
part of the data it shows (training: in-sample; held-out)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plots(run_path: Path, out: Path) -> list[Path]:
    """PNGs of ``dtb assimilate``: hyperparameters over the training part, the filter on the
    training part, and the held-out forecast skill (when there is a held-out part)."""
    written = [_hyperparameters(run_path, out / "hyperparameters.png"), _training_fit(run_path, out / "bold_fit.png")]
    with h5py.File(run_path, "r") as h:
        has_heldout = "heldout" in h
        has_structure = "structure/fic" in h or "structure/ec" in h
    if has_structure:
        written.append(structure_figure(run_path, out / "structure.png"))
    if has_heldout:
        written.append(forecast_skill(run_path, out / "forecast_skill.png"))
    return written


def structure_figure(run_path: Path, path: Path) -> Path:
    """The twin's structure fitted on the training part: each region's excitatory rate after
    feedback inhibition control against its target (and the factor on its inhibition), and the
    effective connectivity beside the structural mask it was fitted on."""
    plt = _plt()
    with h5py.File(run_path, "r") as h:
        g = h["structure"]
        fic = {k: g[f"fic/{k}"][()] for k in ("rates", "scale")} if "fic" in g else None
        fic_attrs = dict(g["fic"].attrs) if "fic" in g else {}
        ec = g["ec/C"][()] if "ec" in g else None
        ec_attrs = dict(g["ec"].attrs) if "ec" in g else {}
    panels = [p for p in ((fic, "fic"), (ec, "ec")) if p[0] is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, (_, kind) in zip(axes[0], panels):
        if kind == "fic":
            target, tol = float(fic_attrs["target_hz"]), float(fic_attrs["tolerance"])
            x = np.arange(len(fic["rates"]))
            ax.axhspan(target * (1 - tol), target * (1 + tol), color="0.85", label=f"target ± {100 * tol:.0f} %")
            ax.plot(x, fic["rates"], "o", ms=3, label="excitatory rate (members' mean)")
            ax.set_xlabel("region")
            ax.set_ylabel("rate (Hz)")
            twin = ax.twinx()
            twin.plot(x, fic["scale"], "-", color="C3", lw=0.8)
            twin.set_ylabel("factor on inhibition onto E", color="C3")
            ax.set_title(f"feedback inhibition control ({'converged' if fic_attrs['converged'] else 'NOT converged'})")
            ax.legend(fontsize=7, loc="lower left")
        else:
            im = ax.imshow(ec, cmap="magma", interpolation="nearest")
            fig.colorbar(im, ax=ax, label="C (1/TR)")
            ax.set_xlabel("source region")
            ax.set_ylabel("target region")
            ax.set_title(f"effective connectivity (loop gain {ec_attrs['gain']:.2f}, training FC r "
                         f"{ec_attrs['fc_r_train']:.2f})")
    fig.suptitle("the twin's structure, fitted on the training part")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _hyperparameters(run_path: Path, path: Path) -> Path:
    plt = _plt()
    with h5py.File(run_path, "r") as h:
        hps = json.loads(h.attrs["hyperparameters"])
        tr = float(h.attrs["tr_s"])
        hp_m, hp_s = h["hp/mean"][()], h["hp/std"][()]
        regions = [r.decode() for r in h["network/regions"][()]]
    t = np.arange(len(hp_m)) * tr
    fig, axes = plt.subplots(len(hps), 1, figsize=(10, 2.6 * len(hps)), squeeze=False)
    for k, name in enumerate(hps):
        ax = axes[k, 0]
        for r in range(min(len(regions), 8)):
            ax.plot(t, hp_m[:, r, k], lw=1, label=regions[r])
            ax.fill_between(t, hp_m[:, r, k] - hp_s[:, r, k], hp_m[:, r, k] + hp_s[:, r, k], alpha=0.15)
        ax.set_ylabel(f"{name} scale")
    axes[0, 0].legend(fontsize=6, ncol=4, loc="upper right")
    axes[-1, 0].set_xlabel("time in the training part (s)")
    axes[0, 0].set_title(f"posterior hyperparameters (ensemble mean ± sd; {min(len(regions), 8)} of {len(regions)} regions)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _training_fit(run_path: Path, path: Path) -> Path:
    plt = _plt()
    with h5py.File(run_path, "r") as h:
        regions = [r.decode() for r in h["network/regions"][()]]
        tr, n_train = float(h.attrs["tr_s"]), int(h.attrs["n_train"])
        obs = h["observed"][:n_train]
        f_mean, f_sd, a_mean = h["forecast/mean"][()], h["forecast/std"][()], h["analysis/mean"][()]
        r_f = h["metrics/r_forecast"][()]
    t = np.arange(n_train) * tr
    order = np.argsort(-np.nan_to_num(r_f, nan=-2))[:4]
    fig, axes = plt.subplots(len(order), 1, figsize=(10, 2.2 * len(order)), squeeze=False)
    for ax, r in zip(axes[:, 0], order):
        ax.plot(t, obs[:, r], "k", lw=1, label="observed")
        ax.plot(t, f_mean[:, r], "C0", lw=1, label="filter forecast (1 TR ahead)")
        ax.fill_between(t, f_mean[:, r] - f_sd[:, r], f_mean[:, r] + f_sd[:, r], color="C0", alpha=0.2)
        ax.plot(t, a_mean[:, r], "C1--", lw=0.8, label="analysis")
        ax.set_ylabel("BOLD (z)", fontsize=8)
        ax.set_title(f"{regions[r]} (training forecast r {r_f[r]:.2f})", fontsize=8, loc="left")
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper right")
    fig.suptitle("training part (in-sample: these data fitted the hyperparameters); the 4 regions forecast best; "
                 "BOLD z-scored with training-part statistics", fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def forecast_skill(run_path: Path, path: Path) -> Path:
    """Skill (1 - MSE / MSE(persistence)) and r against horizon, per model, on the held-out part."""
    from assimilation.pipeline import read_scores
    plt = _plt()
    with h5py.File(run_path, "r") as h:
        scores, horizons, label = read_scores(h)
        n = len(h["heldout/origins"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for k, (name, s) in enumerate(scores.items()):
        style = dict(lw=2.2, marker="o") if name.startswith("twin") else dict(lw=1, marker=".", ls="--")
        a1.plot(horizons, s["skill"], label=name, color=f"C{k}", **style)
        a2.plot(horizons, s["r"], label=name, color=f"C{k}", **style)
    a1.axhline(0, color="0.5", lw=0.8)
    a1.set_ylabel("skill: 1 - MSE / MSE(persistence)")
    a2.set_ylabel("Pearson r (mean over regions)")
    for ax in (a1, a2):
        ax.set_xlabel("horizon (TRs)")
        ax.set_xticks(horizons)
    a1.legend(fontsize=7)
    from assimilation.forecast import unscored
    missing = unscored(scores, horizons)
    if missing:
        a1.text(0.02, 0.02, "\n".join(missing), transform=a1.transAxes, fontsize=7, va="bottom", wrap=True)
    fig.suptitle(f"held-out forecasts ({n} origins; every model fitted on the training part only)"
                 + (f" [{label}]" if label else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def fc_figure(run_path: Path, path: Path) -> Path:
    """The held-out FC of the data and of the free-running twin (members' mean FC), with the FC r
    of the twin and of each baseline."""
    plt = _plt()
    from assimilation.validation import fc_table
    with h5py.File(run_path, "r") as h:
        v = dict(h["validation"].attrs)
        model, data = h["validation/fc/model"][()], h["validation/fc/observed"][()]
        regions = [r.decode() for r in h["network/regions"][()]]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    for ax, m, title in ((axes[0], data, "data, held-out part"), (axes[1], model, "twin, free run (members' mean FC)")):
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(title, fontsize=9)
        if len(regions) <= 30:
            ax.set_xticks(range(len(regions)), regions, rotation=90, fontsize=5)
            ax.set_yticks(range(len(regions)), regions, fontsize=5)
        else:
            ax.set_xlabel(f"{len(regions)} regions (config order)")
    fig.colorbar(im, ax=axes[:2], shrink=0.8, label="FC (Pearson r)")
    axes[2].axis("off")
    axes[2].text(0, 0.95, fc_table(v), family="monospace", fontsize=7, va="top")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
