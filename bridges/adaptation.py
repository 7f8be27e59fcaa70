"""The motor-adaptation experiment (``dtb experiment adaptation``): analysis, files and figures.

One continuous closed-loop run with the forelimb: a settling period (``settle`` s, the config's
``[bridge.error] start``, during which the olive gets no error signal while the CPGs and the limb
reach their rhythm), then ``baseline`` trials, ``perturbation`` trials
with the perturbation on (``gain`` on the force of one joint's muscles, or a ``load``), then
``washout`` trials without it. Per trial (from run.h5's ``/bridge/error``, the intended and the
reported joint angles the inferior olive compared, every control period):

* **tracking error** of the perturbed joint: its signed amplitude error
  ``1 - slope`` of the reported angle regressed on the intended one (both centred over the
  trial); +0.3 means the joint moves 30 % less than intended, negative values an overshoot. This
  is the systematic error a perturbation causes and learning removes; the RMS error per joint,
  which also holds the trial-to-trial noise the cerebellum cannot predict, is reported beside it;
* movement amplitude per joint (half the 5-95 % range of the angle, rad);
* the mean rate of every population over the trial (Hz);
* the PF->PC weights (mean and standard deviation over each plastic projection's synapses, nS)
  at the end of the trial (run.h5 ``/plasticity/<k>/history``, sampled every
  ``monitors.plasticity_interval``; the sample nearest the trial's end).

``experiment.h5`` layout::

    /trials/phase            (n,) 0 baseline, 1 perturbation, 2 washout
    /trials/signed_error     (n,) of the perturbed joint
    /trials/rms_error        (n, joints) rad
    /trials/amplitude        (n, joints) rad
    /trials/rates            (n, populations) Hz; attr columns
    /trials/weight_mean      (n, plastic projections) nS; attrs source, target
    /trials/weight_std       (n, plastic projections) nS
    /trajectory/{t, intended, angle}   every control period (s, rad)
    attrs: trial_s, settle_s, baseline, perturbation, washout, joint, gain, load, condition
    (trial k spans settle_s + k trial_s to settle_s + (k + 1) trial_s of the run)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from bridges.forelimb import JOINTS
from dtb.files import atomic_path

PHASES = ("baseline", "perturbation", "washout")


@dataclass(frozen=True)
class Schedule:
    trial: float = 2.0            # s
    baseline: int = 4
    perturbation: int = 8
    washout: int = 5
    joint: str = "elbow"
    gain: float = 0.5
    load: float = 0.0             # N m
    settle: float = 0.0           # s before trial 0 (no error signal to the olive)

    @property
    def n_trials(self) -> int:
        return self.baseline + self.perturbation + self.washout

    @property
    def duration(self) -> float:
        return self.settle + self.n_trials * self.trial

    @property
    def start(self) -> float:
        """Run time (s) the perturbation starts."""
        return self.window(self.baseline)[0]

    @property
    def stop(self) -> float:
        return self.window(self.baseline + self.perturbation)[0]

    def window(self, k: int) -> tuple[float, float]:
        """Run time (s) trial ``k`` begins and ends."""
        lo = self.settle + k * self.trial
        return lo, lo + self.trial

    def phase(self) -> np.ndarray:
        return np.repeat([0, 1, 2], [self.baseline, self.perturbation, self.washout])


def signed_amplitude_error(intended: np.ndarray, angle: np.ndarray) -> float:
    """1 - slope of ``angle`` on ``intended`` (both centred): + undershoot, - overshoot."""
    x = intended - intended.mean()
    y = angle - angle.mean()
    return float(1.0 - np.sum(x * y) / max(np.sum(x * x), 1e-12))


def analyse(run_h5: Path, body_h5: Path, schedule: Schedule) -> dict:
    with h5py.File(run_h5, "r") as f:
        t = f["bridge/error/t_ms"][()] / 1e3
        intended = f["bridge/error/intended"][()]
        angle = f["bridge/error/angle"][()]
        table = f["network/populations"]
        pops = [p.decode() if isinstance(p, bytes) else str(p) for p in table["name"]]
        regions = [r.decode() if isinstance(r, bytes) else str(r) for r in table["region"]]
        spikes = {p: f["spikes"][p]["timestamps"][()] / 1e3 for p in pops}
        node_ids = {p: f["spikes"][p]["node_ids"][()] for p in pops}
        sizes = dict(zip(pops, f["network/populations"]["size"]))
        plastic = []
        for k in sorted(f.get("plasticity", {}), key=int):
            g = f["plasticity"][k]
            if "history" in g:
                plastic.append((g.attrs["source"], g.attrs["target"], g["history_t_ms"][()] / 1e3, g["history"][()]))
        condition = str(f["summary"].attrs.get("condition", ""))
    with h5py.File(body_h5, "r") as f:
        perturbed = f["perturbed"][()].reshape(-1) if "perturbed" in f else np.zeros(0)
    j = JOINTS.index(schedule.joint)
    n = schedule.n_trials
    signed = np.full(n, np.nan)
    rms = np.full((n, len(JOINTS)), np.nan)
    amp = np.full((n, len(JOINTS)), np.nan)
    rates = np.zeros((n, len(pops)))
    w_mean = np.full((n, len(plastic)), np.nan)
    w_std = np.full((n, len(plastic)), np.nan)
    for k in range(n):
        lo, hi = schedule.window(k)
        sel = (t > lo + 1e-9) & (t <= hi + 1e-9)
        if sel.sum() > 2:
            e = intended[sel] - angle[sel]
            rms[k] = np.sqrt(np.mean(e ** 2, axis=0))
            amp[k] = (np.percentile(angle[sel], 95, axis=0) - np.percentile(angle[sel], 5, axis=0)) / 2
            signed[k] = signed_amplitude_error(intended[sel, j], angle[sel, j])
        for i, p in enumerate(pops):
            ts = spikes[p]
            rates[k, i] = np.count_nonzero((ts >= lo) & (ts < hi)) / sizes[p] / schedule.trial
        for i, (_, _, ht, hist) in enumerate(plastic):
            if len(ht):
                m = int(np.argmin(np.abs(ht - hi)))
                w_mean[k, i], w_std[k, i] = hist[m, 0], hist[m, 1]
    return {"schedule": schedule, "condition": condition, "phase": schedule.phase(), "signed_error": signed,
            "rms_error": rms, "amplitude": amp, "rates": rates, "populations": pops,
            "weight_mean": w_mean, "weight_std": w_std,
            "plastic": [(s, tg) for s, tg, _, _ in plastic], "t": t, "intended": intended, "angle": angle,
            "spikes": spikes, "node_ids": node_ids, "regions": regions, "sizes": sizes,
            "perturbed_fraction": float(perturbed.mean()) if len(perturbed) else 0.0}


def error_reduction(perturbed: np.ndarray) -> tuple[float, float, float]:
    """(early, late, 1 - late / early): the mean signed error of the first two and of the last two
    perturbed trials (one each with fewer than four; a single trial's error varies by about
    0.03 from trial to trial, a tenth of the effect)."""
    n = 2 if len(perturbed) >= 4 else 1
    early, late = float(np.mean(perturbed[:n])), float(np.mean(perturbed[-n:]))
    return early, late, (1 - late / early) if early else float("nan")


def summary(res: dict) -> dict:
    """The experiment's figures (JSON-ready)."""
    s: Schedule = res["schedule"]
    ph, e = res["phase"], res["signed_error"]
    pert, wash, base = e[ph == 1], e[ph == 2], e[ph == 0]
    rates = res["rates"]
    pops = res["populations"]

    def mean_rate(prefix: str, phase: int | None = None) -> float:
        cols = [i for i, p in enumerate(pops) if p == prefix or p.startswith(prefix + "_")]
        rows = rates if phase is None else rates[ph == phase]
        return float(rows[:, cols].mean()) if cols and len(rows) else float("nan")

    settled = slice(0 if s.settle > 0 else 1, None)   # without a settling period trial 0 holds the start-up
    early, late, reduction = error_reduction(pert)
    out = {"schedule": asdict(s), "condition": res["condition"],
           "signed_error_first_perturbed": float(pert[0]), "signed_error_last_perturbed": float(pert[-1]),
           "signed_error_early_perturbed": early, "signed_error_late_perturbed": late, "error_reduction": reduction,
           "signed_error_baseline_mean": float(np.mean(base[settled])) if len(base[settled]) else float("nan"),
           "after_effect_first_washout": float(wash[0]) if len(wash) else float("nan"),
           "signed_error_last_washout": float(wash[-1]) if len(wash) else float("nan"),
           "amplitude_baseline_rad": {jn: float(np.mean(res["amplitude"][ph == 0][settled, i]))
                                      for i, jn in enumerate(JOINTS)} if len(base[settled]) else {},
           "rates_hz": {name: mean_rate(name) for name in ("M1", "M2", "S1", "D1", "D2", "GPe", "STN", "GPi", "Thal",
                                                           "MF", "GrC", "GoC", "PC", "DCN", "IO")},
           "signed_error_per_trial": [float(x) for x in e],
           "rms_error_per_trial": res["rms_error"].tolist()}
    return out


def table(res: dict) -> str:
    s: Schedule = res["schedule"]
    j = JOINTS.index(s.joint)
    pops = res["populations"]
    zone = [i for i, p in enumerate(pops) if p.endswith(f"{s.joint}_flexor")]
    cols = {name: next((i for i in zone if pops[i].startswith(name + "_")), None) for name in ("PC", "DCN", "IO", "M1")}
    w = [i for i, (src, tgt) in enumerate(res["plastic"]) if tgt == f"PC_{s.joint}_flexor" and src.endswith("_flexor")]
    lines = [f"dtb experiment adaptation: {s.joint} x{s.gain:g}" + (f", load {s.load:g} N m" if s.load else "") +
             (f", condition {res['condition']}" if res["condition"] else "") +
             (f"; trials after {s.settle:g} s of settling (no error signal)" if s.settle else ""),
             f"{'trial':>5} {'phase':<12} {'signed':>7} {'rms ' + s.joint:>10} {'amp':>6} "
             f"{'PC':>6} {'DCN':>6} {'IO':>6} {'M1':>6} {'PF-PC nS':>9}   ({s.joint} flexor microzone, Hz)"]
    for k in range(s.n_trials):
        r = res["rates"][k]
        lines.append(f"{k:>5} {PHASES[res['phase'][k]]:<12} {res['signed_error'][k]:+7.3f} {res['rms_error'][k, j]:10.3f} "
                     f"{res['amplitude'][k, j]:6.3f} " + " ".join(f"{r[cols[c]]:6.1f}" if cols[c] is not None else "     -"
                                                              for c in ("PC", "DCN", "IO", "M1")) +
                     (f" {res['weight_mean'][k, w[0]]:9.3f}" if w else ""))
    sm = summary(res)
    lines.append(f"perturbation: signed error {sm['signed_error_early_perturbed']:+.3f} -> "
                 f"{sm['signed_error_late_perturbed']:+.3f}, first and last two trials ({100 * sm['error_reduction']:.0f} "
                 f"% less); washout: "
                 f"{sm['after_effect_first_washout']:+.3f} -> {sm['signed_error_last_washout']:+.3f}")
    return "\n".join(lines)


def write(res: dict, path: Path) -> Path:
    """experiment.h5, atomically (layout in the module doc)."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        g = f.create_group("trials")
        for name in ("phase", "signed_error", "rms_error", "amplitude", "rates", "weight_mean", "weight_std"):
            g.create_dataset(name, data=res[name])
        g["rates"].attrs["columns"] = res["populations"]
        g["weight_mean"].attrs["source"] = [a for a, _ in res["plastic"]]
        g["weight_mean"].attrs["target"] = [b for _, b in res["plastic"]]
        tr = f.create_group("trajectory")
        for name in ("t", "intended", "angle"):
            tr.create_dataset(name, data=res[name])
        tr.attrs["joints"] = list(JOINTS)
        for k, v in asdict(res["schedule"]).items():
            f.attrs[{"trial": "trial_s", "settle": "settle_s"}.get(k, k)] = v
        f.attrs["condition"] = res["condition"]
        f.attrs["summary"] = json.dumps(summary(res))
    return path


def plot(res: dict, out: Path) -> list[Path]:
    """learning_curve.png, trajectories.png, weights.png and rasters.png (one panel per region,
    the first and the last perturbed trial) in ``out``."""
    from dtb.plots import _plt, save_png
    plt = _plt()

    s: Schedule = res["schedule"]
    j = JOINTS.index(s.joint)
    ph = res["phase"]
    k = np.arange(s.n_trials)
    colors = {0: "0.5", 1: "tab:red", 2: "tab:blue"}
    written = []

    fig, ax = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for p in (0, 1, 2):
        m = ph == p
        ax[0].plot(k[m], res["signed_error"][m], "o-", color=colors[p], label=PHASES[p])
        ax[1].plot(k[m], res["rms_error"][m, j], "o-", color=colors[p])
    ax[0].axhline(0, color="k", lw=0.5)
    ax[0].set_ylabel(f"{s.joint} signed amplitude error")
    ax[1].set_ylabel(f"{s.joint} RMS error (rad)")
    ax[1].set_xlabel("trial")
    ax[0].legend()
    ax[0].set_title(f"adaptation to {s.joint} x{s.gain:g}" + (f" ({res['condition']})" if res["condition"] else ""))
    fig.tight_layout()
    written.append(save_png(fig, out / "learning_curve.png", dpi=100))

    picks = [("last baseline", s.baseline - 1), ("first perturbed", s.baseline),
             ("last perturbed", s.baseline + s.perturbation - 1),
             ("first washout", s.baseline + s.perturbation), ("last washout", s.n_trials - 1)]
    picks = [(name, i) for name, i in picks if 0 <= i < s.n_trials]
    fig, axes = plt.subplots(1, len(picks), figsize=(3 * len(picks), 3), sharey=True)
    for a, (name, i) in zip(np.atleast_1d(axes), picks):
        lo, hi = s.window(i)
        sel = (res["t"] > lo) & (res["t"] <= hi)
        tt = res["t"][sel] - lo
        a.plot(tt, res["intended"][sel, j], "k--", label="intended")
        a.plot(tt, res["angle"][sel, j], color=colors[ph[i]], label="actual")
        a.set_title(f"{name} (trial {i})", fontsize=9)
        a.set_xlabel("s")
    np.atleast_1d(axes)[0].set_ylabel(f"{s.joint} angle (rad)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    written.append(save_png(fig, out / "trajectories.png", dpi=100))

    if res["plastic"]:
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (src, tgt) in enumerate(res["plastic"]):
            if s.joint in tgt:
                ax.plot(k, res["weight_mean"][:, i], "o-", label=f"{src} -> {tgt}")
        for b in (s.baseline - 0.5, s.baseline + s.perturbation - 0.5):
            ax.axvline(b, color="k", lw=0.5)
        ax.set_xlabel("trial")
        ax.set_ylabel("PF-PC weight, mean (nS)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(save_png(fig, out / "weights.png", dpi=100))

    regions = list(dict.fromkeys(res["regions"]))
    trials = [k for k in (s.baseline, s.baseline + s.perturbation - 1) if 0 <= k < s.n_trials]
    fig, axes = plt.subplots(len(regions), len(trials), figsize=(6 * len(trials), 1.3 * len(regions) + 1),
                             sharex="col", squeeze=False)
    for col, k in enumerate(trials):
        lo, hi = s.window(k)
        for row, region in enumerate(regions):
            a = axes[row, col]
            offset = 0
            for i, (p, reg) in enumerate(zip(res["populations"], res["regions"])):
                if reg != region:
                    continue
                ts, ids = res["spikes"][p], res["node_ids"][p]
                m = (ts >= lo) & (ts < hi)
                a.scatter(ts[m] - lo, ids[m] + offset, s=0.3, color=f"C{i % 10}", rasterized=True, label=p)
                offset += res["sizes"][p]
            a.set_yticks([])
            if col == len(trials) - 1:         # the populations of each region, named once per row
                a.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=6, markerscale=8, frameon=False)
            if col == 0:
                a.set_ylabel(region, rotation=0, ha="right", fontsize=8)
            if row == 0:
                a.set_title(f"trial {k} ({PHASES[res['phase'][k]]})", fontsize=9)
        axes[-1, col].set_xlabel("s into the trial")
    fig.tight_layout()
    written.append(save_png(fig, out / "rasters.png", dpi=90))
    return written

