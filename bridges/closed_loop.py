"""`dtb closed-loop`: brain (dtb run with [cpg] and [bridge]), body (dtb body) and bridge together,
then a summary and plots of what happened.

Outputs in OUT:
    run.h5          the brain's run (dtb.results layout; /cpg holds the oscillator outputs)
    body.h5         the body's trajectory (bridges.body_node layout)
    closed_loop.json  distance walked, speed, stepping and CPG frequency, realtime_factor (wall s per biological s), bridge counts
    closed_loop.png torso path and joint angles / CPG outputs and motor-pool rates / footfalls
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from bridges.body import LIMBS
from dtb.models.matsuoka import measured_frequency


def stepping_frequency(t: np.ndarray, angle: np.ndarray, skip: float = 0.5) -> float:
    """Stepping frequency (Hz) from a proximal joint angle: mean interval between upward crossings
    of its mean after ``skip`` s."""
    return measured_frequency(t, angle, skip=skip)


def cpg_frequency(t: np.ndarray, y: np.ndarray, group: np.ndarray, skip: float = 0.5) -> float:
    """Frequency (Hz) of the CPG network from its recorded outputs (n_t, N, 2): per group, that of
    the group's mean flexor minus extensor output; then the mean over groups (groups in antiphase
    must not be averaged together: their sum would oscillate at twice the frequency)."""
    s = y[:, :, 0] - y[:, :, 1]
    return float(np.mean([measured_frequency(t, s[:, group == g].mean(axis=1), skip=skip) for g in np.unique(group)]))


def read_body(body_h5: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray, dict]:
    """(t, torso position, joint angles, joint names, paw contacts, file attributes) of body.h5."""
    with h5py.File(body_h5, "r") as f:
        return (f["t"][()], f["torso/position"][()], f["joints/position"][()],
                list(f["joints/position"].attrs["names"]), f["contacts"][()], dict(f.attrs))


def summarize(run_h5: Path, body_h5: Path, skip: float = 0.5) -> dict:
    """Numbers a user asks first: how far, how fast, at what frequency, how close to real time."""
    t, pos, q, names, contacts, body_attrs = read_body(body_h5)
    with h5py.File(run_h5, "r") as f:
        run = dict(f["summary"].attrs)
        cpg = (f["cpg/t_ms"][()] / 1e3, f["cpg/y"][()], f["cpg/group"][()]) if "cpg" in f else None
    out: dict = {"body_time_s": float(t[-1]) if len(t) else 0.0, "control_periods": int(len(t))}
    if len(t) > 1:
        dx = pos[-1] - pos[0]
        out.update(distance_forward_m=float(dx[0]), distance_sideways_m=float(dx[1]),
                   speed_m_per_s=float(dx[0] / (t[-1] - t[0])),
                   torso_height_mean_m=float(pos[:, 2].mean()))
        freqs = {n: stepping_frequency(t, q[:, k], skip) for k, n in enumerate(names[:len(LIMBS)])}
        out["stepping_frequency_hz"] = {n: round(float(v), 4) for n, v in freqs.items()}
        valid = [v for v in freqs.values() if np.isfinite(v)]
        out["stepping_frequency_mean_hz"] = float(np.mean(valid)) if valid else float("nan")
        out["paw_contact_fraction"] = {l: float((contacts[:, k] > 0.01).mean()) for k, l in enumerate(LIMBS)}
    if cpg is not None:
        out["cpg_frequency_hz"] = cpg_frequency(*cpg, skip=skip)
    out["realtime_factor"] = float(run.get("realtime_factor", float("nan")))
    out["brain_wall_s"] = float(run.get("wall_s", float("nan")))
    for k in ("bridge_sent", "bridge_received", "bridge_wait_s"):
        if k in run:
            out[k] = float(run[k])
    for k in ("messages_in", "messages_out", "bad_messages", "step_wall_s"):
        if k in body_attrs:
            out[f"body_{k}"] = float(body_attrs[k])
    return out


def plot(run_h5: Path, body_h5: Path, path: Path) -> Path:
    """One figure: torso path and joint angles; CPG outputs and motor-pool rates; footfalls."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, pos, q, names, contacts, _ = read_body(body_h5)
    with h5py.File(run_h5, "r") as f:
        cols = list(f["rates"].attrs["columns"])
        rates = f["rates"][()]
        bin_s = f["rates"].attrs["bin_ms"] / 1e3
        cpg = (f["cpg/t_ms"][()] / 1e3, f["cpg/y"][()], list(f["cpg"].attrs["groups"]),
               f["cpg/group"][()]) if "cpg" in f else None
    fig, ax = plt.subplots(5, 1, figsize=(10, 12), sharex=True)
    ax[0].plot(t, pos[:, 0] * 100, label="forward")
    ax[0].plot(t, pos[:, 1] * 100, label="sideways")
    ax[0].set_ylabel("torso (cm)")
    ax[0].legend(loc="upper left")
    for k, n in enumerate(names):
        ax[1].plot(t, q[:, k], lw=0.8, label=n)
    ax[1].set_ylabel("joint angle (rad)")
    ax[1].legend(loc="upper left", ncol=4, fontsize=7)
    if cpg is not None:
        ct, y, groups, gidx = cpg
        for g, name in enumerate(groups):
            sel = gidx == g
            ax[2].plot(ct, (y[:, sel, 0] - y[:, sel, 1]).mean(axis=1), label=name)
        ax[2].set_ylabel("CPG flexor - extensor")
        ax[2].legend(loc="upper left", ncol=4, fontsize=7)
    tb = np.arange(len(rates)) * bin_s
    for k, c in enumerate(cols):
        if c.endswith("_flexor") or c.endswith("_extensor"):
            ax[3].plot(tb, rates[:, k], lw=0.8, label=c)
    ax[3].set_ylabel("motor pool rate (Hz)")
    ax[3].legend(loc="upper left", ncol=4, fontsize=7)
    for k, limb in enumerate(LIMBS):
        on = contacts[:, k] > 0.01
        ax[4].fill_between(t, k - 0.4, k + 0.4, where=on, step="mid", color=f"C{k}")
    ax[4].set_yticks(range(len(LIMBS)), LIMBS)
    ax[4].set_ylabel("paw contact")
    ax[4].set_xlabel("time (s)")
    fig.tight_layout()
    from dtb.plots import save_png
    return save_png(fig, path, dpi=100)
