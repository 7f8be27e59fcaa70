"""What ``dtb task`` writes beside run.h5: the events, the first-level GLM's z-maps (NIfTI and
glass-brain PNGs), the region z-scores and a figure of the most responsive regions against the
design's regressors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dtb.errors import DtbError

log = logging.getLogger(__name__)


def write_task_outputs(spec, res, events, out: Path, plots: bool = True) -> tuple[list[Path], list[str]]:
    """events.tsv, zmap_<type>.nii.gz (and .png), region_z.tsv, task_timecourses.png; returns the
    files and one summary line per contrast."""
    import nibabel as nib
    from atlas.io import read_label_table
    from dtb.bold import save_nifti
    from dtb.task import fit_glm, region_glm, write_events

    written = [write_events(out / "events.tsv", events)]
    if len(res.bold) < 4:
        raise DtbError(f"the run has {len(res.bold)} TRs: too few for a GLM")
    label_img = nib.load(spec.bold.atlas)
    table = read_label_table(spec.bold.labels)
    labels = np.asanyarray(label_img.dataobj)
    mask = nib.Nifti1Image(np.isin(labels, [table[r] for r in spec.regions]).astype(np.uint8), label_img.affine)
    if any(e.amplitude != 1.0 for e in events):
        log.info("GLM: the events' amplitudes modulate their regressors")
    log.info("GLM on %d volumes x %d voxels of the atlas's labels (nilearn FirstLevelModel, %s HRF)...",
             len(res.bold), int(np.asarray(mask.dataobj).sum()), spec.task.hrf_model)
    model, zmaps = fit_glm(nib.load(out / "bold.nii.gz"), events, spec.bold.tr, spec.task, mask_img=mask)
    written += [save_nifti(img, out / f"zmap_{t}.nii.gz") for t, img in zmaps.items()]
    # per region: the same GLM on the region time series (equal to the voxels' z inside each label)
    z_by_type = region_glm(res.bold, events, spec.bold.tr, spec.task)
    lines = ["region\t" + "\t".join(f"z_{t}" for t in zmaps)]
    lines += [r + "\t" + "\t".join(f"{z_by_type[t][k]:.3f}" for t in zmaps) for k, r in enumerate(spec.regions)]
    (out / "region_z.tsv").write_text("\n".join(lines) + "\n")
    written.append(out / "region_z.tsv")
    notes = []
    for t, z in z_by_type.items():
        top = np.argsort(-z)[:8]
        notes.append(f"contrast {t}: {int((z > Z_THRESHOLD).sum())} of {len(z)} regions above z = {Z_THRESHOLD}; top: "
                     + ", ".join(f"{spec.regions[i]} {z[i]:.1f}" for i in top))
    if plots:
        log.info("figures: z-maps (glass brains) and the most responsive regions' time courses...")
        written += _glass_brains(zmaps, out)
        written.append(_timecourses(spec, res, model, zmaps, z_by_type, out / "task_timecourses.png"))
    return written, notes


#: the z-maps' display threshold (one-sided p = 0.001, uncorrected)
Z_THRESHOLD = 3.1


def _glass_brains(zmaps: dict, out: Path) -> list[Path]:
    """zmap_<type>.png: the z-map above Z_THRESHOLD on a glass brain, the title saying what its
    colour bar shows (nilearn's bar has no room for a label); a map with no voxel above it says so
    (and its largest z) instead of a blank brain."""
    from nilearn import plotting
    written = []
    for t, img in zmaps.items():
        peak = float(np.nanmax(np.asanyarray(img.dataobj)))
        title = f"{t}: first-level GLM z > {Z_THRESHOLD} (colour bar: z)" if peak > Z_THRESHOLD else \
            f"{t}: no voxel above z = {Z_THRESHOLD} (largest z {peak:.1f})"
        if peak > Z_THRESHOLD:
            display = plotting.plot_glass_brain(img, threshold=Z_THRESHOLD, colorbar=True, plot_abs=False, title=title)
        else:                                              # nothing to draw: the brain alone, no empty-mask warning
            display = plotting.plot_glass_brain(None, title=title)
        display.savefig(str(out / f"zmap_{t}.png"))
        display.close()
        written.append(out / f"zmap_{t}.png")
    return written


def _timecourses(spec, res, model, zmaps: dict, z_by_type: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dm = model.design_matrices_[0]
    fig, ax = plt.subplots(figsize=(11, 4))
    t_s = np.arange(1, len(res.bold) + 1) * spec.bold.tr
    z_first = z_by_type[next(iter(z_by_type))]
    for k in np.argsort(-z_first)[:4]:
        b = res.bold[:, k]
        ax.plot(t_s, (b - b.mean()) / (b.std() + 1e-12), lw=1, label=spec.regions[k])
    for t in zmaps:
        reg = dm[t].to_numpy()
        ax.plot(t_s, (reg - reg.mean()) / (reg.std() + 1e-12), "k--", lw=1.5, label=f"regressor {t}")
    from dtb.plots import shade, stimulus_periods
    shade(ax, stimulus_periods(spec))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("z-scored BOLD")
    ax.legend(fontsize=7)
    ax.set_title("most responsive regions and the design's regressors")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
