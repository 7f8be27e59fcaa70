"""BOLD from a simulated brain: the neural drive, the online recorder, offline computation,
NIfTI output and figures. The haemodynamics themselves are in :mod:`dtb.models.balloon`.

Neural drive (``[bold] drive``), computed per region from the engine's regional samples
(every ``monitors.region_interval``):

* ``"rate"`` (default, as in the Digital Twin Brain): u = firing rate per neuron in spikes per
  millisecond (kHz). With the ``dtb`` preset's efficacy of 200, 10 Hz gives efficacy * u = 2 /s.
* ``"synaptic"``: u = mean excitatory (AMPA + NMDA) synaptic current per neuron divided by
  ``reference_current`` (default 1 nA), the synaptic-activity drive of Friston et al. 2000.

Scanner noise (``[bold] noise``, default 0): white Gaussian noise of that standard deviation
(in BOLD units, e.g. 0.002 = 0.2 % signal change) added to every region's sample, as thermal noise
in a scanner; counter-based (seed, region, TR), so it does not depend on the rank count.

Start (``[bold] start``): ``"steady"`` (default) puts the haemodynamic state at the steady state
of the first TR's mean drive, as a scanner's discarded dummy volumes would; ``"rest"`` starts from
rest (s = 0, f = v = q = 1), so the first volumes show the rise to the network's baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from dtb.errors import DtbError
from dtb.files import atomic_edit, atomic_path
from dtb.models.balloon import (BalloonIntegrator, BalloonParameters, BalloonState, bold_signal, fixed_point, preset,
                                simulate_bold)

DRIVES = ("rate", "synaptic")


@dataclass(frozen=True)
class BoldSettings:
    tr: float = 2.0                      # [s] scanner repetition time
    preset: str = "dtb"                  # balloon parameters, see dtb.models.balloon.PRESETS
    drive: str = "rate"                  # "rate" or "synaptic"
    reference_current: float = 1e-9      # [A] scale of the synaptic drive
    start: str = "steady"                # "steady" or "rest"
    noise: float = 0.0                   # [BOLD units] standard deviation of added scanner noise
    atlas: str | None = None             # label volume (NIfTI) to paint the signal into
    labels: str | None = None            # table mapping region names to label values

    @property
    def parameters(self) -> BalloonParameters:
        return preset(self.preset)


def drive_from_regions(rate_hz: np.ndarray, i_exc_pa: np.ndarray, settings: BoldSettings) -> np.ndarray:
    """The balloon model's input u from regional rates (Hz) and excitatory currents (pA)."""
    if settings.drive == "rate":
        u = np.asarray(rate_hz, dtype=np.float64) / 1000.0
    elif settings.drive == "synaptic":
        u = np.asarray(i_exc_pa, dtype=np.float64) * 1e-12 / settings.reference_current
    else:
        raise ValueError(f"unknown drive {settings.drive!r}; known: {', '.join(DRIVES)}")
    if u.ndim != 2 or len(u) == 0:
        raise DtbError(f"regional activity must be (samples x regions) with at least one sample, got shape {u.shape}")
    if not np.all(np.isfinite(u)):
        raise DtbError("regional activity holds NaN or infinite values")
    return u


def scanner_noise(n_tr: int, n_regions: int, seed: int, sigma: float, first: int = 0) -> np.ndarray:
    """White Gaussian noise (n_tr x n_regions) of standard deviation ``sigma``, keyed by (seed,
    region, TR index from ``first``)."""
    from dtb import rng
    if sigma <= 0 or n_tr == 0:
        return np.zeros((n_tr, n_regions))
    tr_index = np.arange(first, first + n_tr)[:, None]
    region = np.arange(n_regions)[None, :]
    return sigma * rng.normal(seed, rng.STREAM_SCANNER, rng.STREAM_SCANNER2, region, tr_index)


def check_tr(tr: float, dt: float, interval: float) -> int:
    """Samples of regional activity per TR; errors if the TR is not a positive multiple of them."""
    if not tr >= dt:
        raise DtbError(f"TR ({tr:g} s) is shorter than the time step ({dt:g} s)")
    n = int(round(tr / interval))
    if n < 1 or abs(n * interval - tr) > 1e-9 * max(tr, 1.0):
        raise DtbError(f"TR ({tr:g} s) must be a whole multiple of the regional sampling interval ({interval:g} s)")
    return n


def bold_from_activity(rate_hz: np.ndarray, i_exc_pa: np.ndarray, interval: float, settings: BoldSettings,
                       state: BalloonState | None = None, seed: int = 0) -> tuple[np.ndarray, BalloonState]:
    """BOLD at every TR (n_TR x regions) from regional samples taken every ``interval`` s, with the
    scanner noise of ``settings`` (keyed by ``seed``) added."""
    per_tr = check_tr(settings.tr, interval, interval)
    u = drive_from_regions(rate_hz, i_exc_pa, settings)
    if state is None:
        state = initial_state(u[:per_tr], settings)
    signal, final = simulate_bold(u, interval, settings.parameters, state, every=per_tr)
    return signal + scanner_noise(len(signal), signal.shape[1], seed, settings.noise), final


def initial_state(first_tr_drive: np.ndarray, settings: BoldSettings) -> BalloonState:
    """The haemodynamic state to start from, given the drive of the first TR (samples x regions)."""
    if settings.start == "rest":
        return BalloonState.rest(first_tr_drive.shape[1:])
    return fixed_point(np.mean(first_tr_drive, axis=0), settings.parameters)[0]


def regional_activity(rows: np.ndarray, sizes: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regional samples summed over ranks, (samples, channels, regions) int64 as the engine's
    recorder takes them (dtb.engine.recording), as mean excitatory and inhibitory synaptic current
    per neuron (pA) and firing rate per neuron (Hz) over each interval."""
    from dtb.engine.recording import CHARGE_QUANTUM
    to_pA = CHARGE_QUANTUM / interval / sizes * 1e12
    return rows[:, 0, :] * to_pA, rows[:, 1, :] * to_pA, rows[:, 2, :] / sizes / interval


def attach_bold(sim) -> "BoldRecorder | None":
    """Give ``sim`` (a dtb.engine Simulation) its BOLD recorder when its spec has [bold]
    (``sim.bold``); call it right after building, before any other hook."""
    if sim.spec.bold is not None and sim.bold is None:
        sim.bold = BoldRecorder(sim, sim.spec.bold)
    return sim.bold


def read_section(r, context) -> BoldSettings:
    """[bold]: BOLD computed while the network runs (``r``: a dtb.config.ConfigReader; ``context``:
    a dtb.config.SectionContext)."""
    from dtb.models.balloon import PRESETS

    d = BoldSettings()
    tr = r.quantity("tr", "time", d.tr, positive=True)
    try:
        check_tr(tr, context.simulation.dt, context.monitors.region_interval)
    except DtbError as e:
        raise r.error("tr", str(e)) from None
    preset = r.str("preset", d.preset, choices=tuple(PRESETS))
    drive = r.str("drive", d.drive, choices=DRIVES)
    ref = r.quantity("reference_current", "current", d.reference_current, positive=True)
    start = r.str("start", d.start, choices=("steady", "rest"))
    noise = r.float("noise", d.noise, low=0.0, high=1.0)
    base = context.folder
    atlas = r.str("atlas", None) if r.has("atlas") else None
    labels = r.str("labels", None) if r.has("labels") else None
    if (atlas is None) != (labels is None):
        raise r.error("labels" if atlas else "atlas", "atlas and labels go together: the label volume and the table "
                      "naming its regions")
    for key, val in (("atlas", atlas), ("labels", labels)):
        if val is not None and not (base / val).is_file():
            raise r.error(key, f"file not found: {base / val}")
    r.done()
    return BoldSettings(tr=tr, preset=preset, drive=drive, reference_current=ref, start=start, noise=noise,
                        atlas=str(base / atlas) if atlas else None, labels=str(base / labels) if labels else None)


class BoldRecorder:
    """Computes BOLD while the simulation runs: every TR, all ranks sum the regional samples of
    that TR (one allreduce per TR), step the balloon model through them and keep the signal."""

    def __init__(self, sim, settings: BoldSettings):
        self.sim, self.settings = sim, settings
        self.interval = sim.region_every * sim.dt
        self.per_tr = check_tr(settings.tr, sim.dt, self.interval)
        self.params = settings.parameters
        self.sizes = sim.spec.region_sizes
        self.integrator = None
        self.signal: list[np.ndarray] = []
        self.listeners: list = []               # called with each TR's rows, summed over ranks
        self._row = 0
        sim.add_hook(settings.tr, lambda s: self._on_tr())

    def _on_tr(self) -> None:
        rows = np.array(self.sim.region_rows[self._row:], dtype=np.int64)
        self._row = len(self.sim.region_rows)
        if not self.sim.keep_region_rows:           # used: drop them (see Simulation)
            del self.sim.region_rows[:]
            self._row = 0
        if self.sim.size > 1:
            from mpi4py import MPI
            self.sim.comm.Allreduce(MPI.IN_PLACE, rows, op=MPI.SUM)
        for listener in self.listeners:
            listener(rows)
        i_exc, _, rate = regional_activity(rows, self.sizes, self.interval)
        u = drive_from_regions(rate, i_exc, self.settings)
        if self.integrator is None:
            self.integrator = BalloonIntegrator(self.params, self.interval, initial_state(u, self.settings))
        for i in range(len(u)):
            self.integrator.step(u[i])
        self.signal.append(bold_signal(self.integrator.state, self.params))

    def capture(self) -> dict:
        """The recorder's state for a checkpoint (equal on every rank)."""
        return {"signal": np.array(self.signal).reshape(-1, len(self.sizes)), "row": self._row,
                "state": self.integrator.state.as_array() if self.integrator is not None else None}

    def restore(self, saved: dict) -> None:
        self.signal = [row for row in np.asarray(saved["signal"])]
        self._row = int(saved["row"])
        state = saved.get("state")
        self.integrator = (None if state is None else
                           BalloonIntegrator(self.params, self.interval, BalloonState.from_array(np.asarray(state))))

    @property
    def bold(self) -> np.ndarray:
        """The signal so far (TRs x regions), scanner noise included."""
        clean = np.array(self.signal).reshape(-1, len(self.sizes))
        return clean + scanner_noise(len(clean), clean.shape[1], self.sim.seed, self.settings.noise)


# ------------------------------------------------------------------------------- outputs
def write_bold_group(f: h5py.File, signal: np.ndarray, settings: BoldSettings, state: BalloonState | None = None) -> None:
    """Write /bold into an open run file (replacing one that is there)."""
    if "bold" in f:
        del f["bold"]
    g = f.create_group("bold")
    d = g.create_dataset("signal", data=signal)
    d.attrs["units"] = "fractional signal change"
    g.create_dataset("t_s", data=np.arange(1, len(signal) + 1) * settings.tr)
    g.attrs["tr_s"] = settings.tr
    g.attrs["preset"] = settings.preset
    g.attrs["drive"] = settings.drive
    g.attrs["reference_current_A"] = settings.reference_current
    g.attrs["start"] = settings.start
    g.attrs["noise"] = settings.noise
    g.attrs["parameters"] = json.dumps(settings.parameters.__dict__)
    if state is not None:
        g.create_dataset("state", data=state.as_array())


def write_bold_file(path: str | Path, signal: np.ndarray, regions: list[str], settings: BoldSettings,
                    state: BalloonState | None = None, source: str | Path = "") -> Path:
    """A BOLD file of its own (``dtb bold``): /bold as in run.h5, /network/regions, and the run it
    came from (attr source); written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["source"] = str(source)
        f.create_dataset("network/regions", data=np.array(regions, dtype="S"))
        write_bold_group(f, signal, settings, state)
    return path


def add_bold_to_run(path: str | Path, signal: np.ndarray, settings: BoldSettings, state: BalloonState) -> None:
    """Add /bold to an existing run file atomically (a copy is edited, then renamed over it)."""
    with atomic_edit(path) as tmp:
        with h5py.File(tmp, "r+") as f:
            write_bold_group(f, signal, settings, state)


def paint_regions(label_img, region_labels: dict[str, int], regions: list[str], signal: np.ndarray,
                  tr: float, source: str = "atlas"):
    """A 4D NIfTI (x, y, z, time) with each region's signal painted into its label's voxels; the
    atlas affine is kept and the time step set to TR. Voxels of no region stay 0."""
    import nibabel as nib
    from atlas.io import label_array
    labels = label_array(label_img, source)
    missing = [r for r in regions if r not in region_labels]
    if missing:
        raise DtbError(f"{source}: no label for region(s) {', '.join(missing)}")
    present = set(np.unique(labels).tolist())
    absent = [f"{r} ({region_labels[r]})" for r in regions if region_labels[r] not in present]
    if absent:
        raise DtbError(f"{source}: label value(s) not in the volume for region(s) {', '.join(absent)}")
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 2 or signal.shape[1] != len(regions):
        raise DtbError(f"signal has shape {signal.shape}, expected (time, {len(regions)} regions)")
    lut = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    for k, r in enumerate(regions):
        lut[region_labels[r]] = k
    region_of_voxel = np.where(labels >= 0, lut[np.clip(labels, 0, None)], -1)
    data = np.zeros(labels.shape + (len(signal),), dtype=np.float32)
    inside = region_of_voxel >= 0
    data[inside] = signal[:, region_of_voxel[inside]].T
    img = nib.Nifti1Image(data, label_img.affine)
    img.header.set_xyzt_units("mm", "sec")
    zooms = label_img.header.get_zooms()[:3]
    img.header.set_zooms(tuple(zooms) + (float(tr),))
    return img


def save_nifti(img, path: str | Path) -> Path:
    """Save atomically (temporary name, then rename)."""
    import nibabel as nib
    path = Path(path)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return path


#: the fewest volumes for which a BOLD figure draws functional connectivity
MIN_FC_VOLUMES = 20


def plot_bold(signal: np.ndarray, regions: list[str], tr: float, path: str | Path, periods=()) -> Path:
    """PNG: the regional BOLD over time (a few regions as lines; many as a heat map, named and
    grouped by hemisphere) with stimulus ``periods`` (s) shaded, and their functional connectivity
    (when at least MIN_FC_VOLUMES volumes; else the panel says why)."""
    from dtb.plots import MANY, _plt, heatmap, region_order, save_png, shade
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [2, 1]})
    t = np.arange(1, len(signal) + 1) * tr
    if signal.shape[1] <= MANY:
        for k in range(signal.shape[1]):
            ax1.plot(t, 100 * signal[:, k], lw=0.9, label=regions[k])
        ax1.set_ylabel("BOLD (% signal change)")
        shade(ax1, periods)
        ax1.legend(fontsize=7, ncol=2)
    else:
        heatmap(ax1, fig, t, 100 * signal, regions, "BOLD (% signal change)", cmap="magma")
        for a, b in periods:
            ax1.axvspan(a, b, ymin=0, ymax=0.02, color="gold")
    ax1.set_xlabel("time (s)")
    ax1.set_title(f"regional BOLD, {signal.shape[1]} regions, TR {tr:g} s, {len(signal)} volumes")
    _fc_panel(ax2, fig, signal, regions, region_order)
    fig.tight_layout()
    return save_png(fig, path)


def _fc_panel(ax, fig, signal: np.ndarray, regions: list[str], region_order) -> None:
    if len(signal) < MIN_FC_VOLUMES:
        ax.text(0.5, 0.5, f"functional connectivity needs at least {MIN_FC_VOLUMES} volumes;\nthis run has "
                f"{len(signal)}: an FC matrix of so few would be noise (run longer)", ha="center", va="center",
                fontsize=9, wrap=True)
        ax.axis("off")
        return
    from dtb.plots import matrix_ticks
    order, hemi = region_order(regions)
    fc = np.corrcoef(signal[:, order].T)
    im = ax.imshow(fc, vmin=-1, vmax=1, cmap="RdBu_r")
    fig.colorbar(im, ax=ax, fraction=0.046, label="Pearson r")
    ax.set_title(f"functional connectivity ({len(signal)} volumes)", pad=14)
    matrix_ticks(ax, [regions[i] for i in order], hemi)


def write_bold_outputs(signal: np.ndarray, regions: list[str], settings: BoldSettings, out: Path,
                       plots: bool = True, periods=()) -> list[Path]:
    """bold.png (stimulus ``periods`` shaded) and, with an atlas, bold.nii.gz (the signal painted
    into its labels); the files."""
    from atlas.io import read_label_table
    written = [plot_bold(signal, regions, settings.tr, out / "bold.png", periods)] if plots else []
    if settings.atlas:
        import nibabel as nib
        try:
            img = nib.load(settings.atlas)
        except Exception as e:   # nibabel raises several types for unreadable files
            raise DtbError(f"{settings.atlas}: cannot read as NIfTI: {e}") from None
        table = read_label_table(settings.labels)
        written.append(save_nifti(paint_regions(img, table, regions, signal, settings.tr, source=settings.atlas),
                                  out / "bold.nii.gz"))
    return written


def read_regional_activity(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray, float, BoldSettings, int]:
    """From a run file: (regions, rate (Hz), excitatory current (pA), sampling interval (s), the
    run's BOLD settings (defaults where it had none), seed)."""
    import dataclasses
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            regions = [r.decode() if isinstance(r, bytes) else r for r in f["network/regions"][()]]
            interval = float(f["regions"].attrs["interval_ms"]) / 1e3
            rate = f["regions/rate"][()]
            i_exc = f["regions/I_exc"][()]
            stored = dict(f["bold"].attrs) if "bold" in f else {}
            seed = int(f.attrs["seed"])
    except FileNotFoundError:
        raise DtbError(f"{path}: file not found") from None
    except (OSError, KeyError) as e:
        raise DtbError(f"{path}: not a dtb run file with regional activity ({e})") from None
    if not (np.isfinite(interval) and interval > 0):
        raise DtbError(f"{path}: regions.interval_ms is {interval * 1e3:g}; a positive sampling interval is expected")
    settings = BoldSettings()
    if stored:
        settings = dataclasses.replace(settings, tr=float(stored["tr_s"]), preset=str(stored["preset"]),
                                       drive=str(stored["drive"]), start=str(stored.get("start", "steady")),
                                       noise=float(stored.get("noise", 0.0)))
    return regions, rate, i_exc, interval, settings, seed
