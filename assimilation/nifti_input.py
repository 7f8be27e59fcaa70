"""BOLD from a 4D NIfTI, as fMRIPrep writes it (``*_space-MNI152..._desc-preproc_bold.nii.gz`` beside
``*_desc-confounds_timeseries.tsv``), in any grid of the atlas's space:

* the space: a BIDS ``space-`` entity in the file name must be the atlas's (MNI152 for the bundled
  atlas); the alignment: the centre of the image's brain (voxels brighter than a fifth of the
  brightest mean) must lie within :data:`MAX_OFFSET_MM` of the atlas labels' centre, and the image
  must cover :data:`MIN_COVERAGE` of the labelled voxels, and no shift of the labels by whole
  voxels of the image's grid may put :data:`SHIFT_GAIN` more of them inside the image's brain
  than its own affine does (the tolerance: less than a voxel of the image, 2-3 mm in fMRIPrep's
  outputs). A mismatch is an error, never a silent acceptance (an image shifted by 8 mm, or 20, is
  refused);
* region means with nilearn's NiftiLabelsMasker, the labels resampled to the image's grid
  (nearest neighbour);
* confounds chosen with nilearn's fMRIPrep interface (``load_confounds_strategy``): ``"simple"``
  (the default when a confounds file is there: the 6 motion parameters, the white-matter and CSF
  signals and the cosine drift regressors: motion="basic", wm_csf="basic") or ``"compcor"``
  (nilearn's defaults); ``"none"``. They are regressed out by
  :func:`regress_confounds`, fitted on the training part only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assimilation.settings import CONFOUND_STRATEGIES
from dtb.errors import DtbError

MAX_OFFSET_MM = 12.0
MIN_COVERAGE = 0.9


#: BIDS entities in the order BIDS writes them (the specification's entity table; cohort, a
#: TemplateFlow entity fMRIPrep writes, after space)
ENTITIES = ("sub", "ses", "sample", "task", "tracksys", "acq", "nuc", "voi", "ce", "trc", "stain", "rec", "dir",
            "run", "mod", "echo", "flip", "inv", "mt", "part", "proc", "hemi", "space", "cohort", "split", "recording",
            "chunk", "seg", "res", "den", "label", "desc")
#: the entities fMRIPrep adds to a derivative of the raw series, which its confounds file has not
DERIVATIVE_ENTITIES = ("space", "cohort", "res", "den", "desc")


def bids_parts(name: str) -> tuple[dict[str, str], str, str]:
    """(entities {key: label} in file order, suffix, extension) of a BIDS file name, e.g.
    sub-01_task-rest_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz ->
    ({sub: 01, task: rest, space: ..., res: 2, desc: preproc}, "bold", ".nii.gz")."""
    base, dot, ext = name.partition(".")
    parts = base.split("_")
    entities, suffix = {}, ""
    for i, part in enumerate(parts):
        key, sep, value = part.partition("-")
        if sep and value:
            entities[key] = value
        elif i == len(parts) - 1:
            suffix = part
    return entities, suffix, dot + ext


def bids_name(entities: dict[str, str], suffix: str, extension: str) -> str:
    """A BIDS file name from its entities, written in BIDS order (others after them, as given)."""
    keys = [k for k in ENTITIES if k in entities] + [k for k in entities if k not in ENTITIES]
    return "_".join([f"{k}-{entities[k]}" for k in keys] + [suffix]) + extension


def space_of(path: str | Path) -> str | None:
    """The BIDS ``space-`` (or TemplateFlow ``tpl-``) entity of a file name, if any."""
    entities = bids_parts(Path(path).name)[0]
    return entities.get("space") or entities.get("tpl")


def confounds_path(path: Path) -> Path:
    """fMRIPrep's confounds file of a preprocessed image: the image's entities without those a
    derivative adds (space-, cohort-, res-, den-, desc-), desc-confounds, suffix timeseries."""
    entities, _, _ = bids_parts(path.name)
    raw = {k: v for k, v in entities.items() if k not in DERIVATIVE_ENTITIES}
    return path.with_name(bids_name({**raw, "desc": "confounds"}, "timeseries", ".tsv"))


def atlas_space(atlas: str | Path) -> str | None:
    """The atlas's template space (atlas.io.template_space)."""
    from atlas.io import template_space
    return template_space(atlas)


def check_space(path: Path, atlas: str) -> None:
    data_space, template = space_of(path), atlas_space(atlas)
    if data_space and template and not data_space.upper().startswith(template.upper()[:6]):
        raise DtbError(f"{path}: the image is in space {data_space}, the atlas ({atlas}) in {template}; use the "
                       f"output in the atlas's space (fMRIPrep: --output-spaces {template}NLin2009cAsym)")


def check_alignment(path: Path, img, atlas_img, atlas: str) -> None:
    """The image's brain and the atlas's labels overlap (see the module docstring)."""
    import nibabel as nib
    mean = np.asarray(img.dataobj[..., :min(img.shape[3], 20)], dtype=np.float64).mean(axis=3)
    brain_mask = mean > 0.2 * mean.max()
    bright = np.argwhere(brain_mask)
    labels = np.asanyarray(atlas_img.dataobj)
    labelled = nib.affines.apply_affine(atlas_img.affine, np.argwhere(labels > 0))
    if not len(bright) or not len(labelled):
        raise DtbError(f"{path}: no brain in the image (or no labels in {atlas})")
    brain = nib.affines.apply_affine(img.affine, bright)
    offset = float(np.linalg.norm(brain.mean(axis=0) - labelled.mean(axis=0)))
    if offset > MAX_OFFSET_MM:
        raise DtbError(f"{path}: the image's brain lies {offset:.0f} mm from the atlas's labels ({atlas}): its affine "
                       f"does not put it in the atlas's space (shifted, or another space)")
    ijk = nib.affines.apply_affine(np.linalg.inv(img.affine), labelled)
    inside = np.all((ijk > -0.5) & (ijk < np.array(img.shape[:3]) - 0.5), axis=1).mean()
    if inside < MIN_COVERAGE:
        raise DtbError(f"{path}: the image covers {100 * inside:.0f} % of the atlas's labelled voxels; at least "
                       f"{100 * MIN_COVERAGE:.0f} % are needed")
    zooms = np.array(img.header.get_zooms()[:3], dtype=float)
    shift, as_given, best = label_shift(brain_mask, labels_on_grid(atlas_img, img), MAX_OFFSET_MM, float(zooms.min()))
    if best - as_given > SHIFT_GAIN:
        mm = shift * zooms
        raise DtbError(f"{path}: the image's brain looks shifted by about ({mm[0]:+.0f}, {mm[1]:+.0f}, {mm[2]:+.0f}) mm "
                       f"from the atlas's labels ({atlas}): {100 * as_given:.0f} % of the labelled voxels lie inside "
                       f"it as given, {100 * best:.0f} % after that shift; its affine does not put it in the atlas's "
                       f"space")


#: a shift of the labels by whole voxels that puts this much more of them inside the image's brain
#: than the image's own affine does is a misalignment (one voxel of the image's grid or more)
SHIFT_GAIN = 0.03


def labels_on_grid(atlas_img, img) -> np.ndarray:
    """The atlas's labelled voxels (bool) on the image's grid (nearest neighbour)."""
    import nibabel as nib
    from nilearn.image import resample_img
    ref = nib.Nifti1Image(np.zeros(img.shape[:3], dtype=np.int8), img.affine)
    out = resample_img(atlas_img, target_affine=ref.affine, target_shape=ref.shape, interpolation="nearest",
                       force_resample=True, copy_header=True)
    return np.asanyarray(out.dataobj) > 0


def label_shift(brain: np.ndarray, labelled: np.ndarray, reach_mm: float = MAX_OFFSET_MM,
                voxel_mm: float = 1.0) -> tuple[np.ndarray, float, float]:
    """(the shift s in voxels within ``reach_mm`` that puts the most labelled voxels inside the
    brain, the fraction inside as given, the fraction inside after s) for two boolean volumes on
    one grid: the overlap of the brain with the labels moved by s, for every s at once (FFT)."""
    from scipy.signal import fftconvolve
    total = labelled.sum()
    if total == 0:
        return np.zeros(3, dtype=int), 0.0, 0.0
    overlap = fftconvolve(brain.astype(float), labelled[::-1, ::-1, ::-1].astype(float), mode="full")
    centre = np.array(labelled.shape) - 1                 # index of no shift
    reach = max(int(np.ceil(reach_mm / voxel_mm)), 1)
    lo, hi = np.maximum(centre - reach, 0), centre + reach + 1
    window = overlap[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    best = np.array(np.unravel_index(np.argmax(window), window.shape)) + lo
    return best - centre, float(overlap[tuple(centre)] / total), float(window.max() / total)


def region_means(path: Path, atlas: str, labels: str, regions: list[str]) -> np.ndarray:
    """(regions, T) means of a 4D image over the atlas's labels, resampled to the image's grid."""
    import nibabel as nib
    from nilearn.maskers import NiftiLabelsMasker
    from atlas.io import read_label_table
    img = nib.load(path)
    if img.ndim != 4:
        raise DtbError(f"{path}: expected a 4D image, got {img.ndim}D")
    atlas_img = nib.load(atlas)
    check_space(path, atlas)
    check_alignment(path, img, atlas_img, atlas)
    masker = NiftiLabelsMasker(labels_img=atlas_img, resampling_target="data", strategy="mean",
                               keep_masked_labels=False, standardize=None)
    series = masker.fit_transform(img)                   # (T, labels present after resampling)
    # region_ids_: column -> label value (and "background" -> its value)
    column = {int(lab): k for k, lab in masker.region_ids_.items() if k != "background"}
    table = read_label_table(labels)
    missing = [r for r in regions if table[r] not in column]
    if missing:
        raise DtbError(f"{path}: region(s) {', '.join(missing[:5])} have no voxel at the image's resolution")
    return np.stack([series[:, column[table[r]]] for r in regions])


def header_tr(path: str | Path) -> float | None:
    """The TR (s) a 4D NIfTI's header states (pixdim[4] in its time unit), or None where it
    states none (0, or no time unit)."""
    import nibabel as nib
    header = nib.load(str(path)).header
    zooms = header.get_zooms()
    if len(zooms) < 4 or not zooms[3] > 0:
        return None
    unit = header.get_xyzt_units()[1]
    scale = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(unit)
    return None if scale is None else float(zooms[3]) * scale


def check_tr(path: str | Path, tr: float) -> None:
    """The image's header TR, where it states one, is ``tr`` (s) within 0.1 %."""
    stated = header_tr(path)
    if stated is not None and abs(stated - tr) > 1e-3 * tr:
        raise DtbError(f"{path}: the header's TR is {stated:g} s, the config's [bold] tr {tr:g} s; they must agree")


def confounds_for(path: Path, strategy: str) -> tuple[np.ndarray | None, str]:
    """The confound regressors (T, K) of an fMRIPrep image by ``strategy`` and what they are;
    (None, why not) for "none", or for "auto" without a confounds file."""
    if strategy not in CONFOUND_STRATEGIES:
        raise DtbError(f"confounds strategy {strategy!r} is not one of {', '.join(CONFOUND_STRATEGIES)}")
    if strategy == "none":
        return None, "no confounds regressed (none asked)"
    tsv = confounds_path(Path(path))
    if not tsv.exists():
        if strategy == "auto":
            return None, f"no confounds regressed (no {tsv.name} beside the image)"
        raise DtbError(f"{path}: confounds {strategy!r} asked, but there is no {tsv.name} beside it")
    from nilearn.interfaces.fmriprep import load_confounds_strategy
    chosen = "simple" if strategy == "auto" else strategy
    try:
        options = {"motion": "basic", "wm_csf": "basic"} if chosen == "simple" else {}
        frame, sample_mask = load_confounds_strategy(str(path), denoise_strategy=chosen, **options)
    except Exception as e:          # nilearn raises several types for files it cannot use
        raise DtbError(f"{tsv}: cannot select the {chosen!r} confounds ({type(e).__name__}: {e})") from None
    if sample_mask is not None:
        raise DtbError(f"{tsv}: the {chosen!r} strategy drops volumes, which a time series to forecast cannot have")
    names = ", ".join(frame.columns[:8]) + (", ..." if frame.shape[1] > 8 else "")
    return np.asarray(frame.fillna(0.0), dtype=np.float64), f"{frame.shape[1]} confounds regressed ({chosen}: {names})"


def regress_confounds(data: np.ndarray, confounds: np.ndarray, fit_rows: int) -> np.ndarray:
    """``data`` (T, R) less its least-squares fit on ``confounds`` (T, K) and a constant, the fit
    made on the first ``fit_rows`` rows (the training part) and applied to all."""
    if len(confounds) != len(data):
        raise DtbError(f"the confounds have {len(confounds)} rows, the BOLD {len(data)} volumes")
    design = np.column_stack([np.ones(len(data)), confounds])
    beta = np.linalg.lstsq(design[:fit_rows], data[:fit_rows], rcond=None)[0]
    return data - design[:, 1:] @ beta[1:]
