"""Figures that read at atlas scale: region names on FC matrices few enough to read, hemispheres
marked; z-maps that say when nothing passes the threshold (no blank brain, no warning)."""

import warnings

import numpy as np


def test_fc_matrix_names_are_readable_at_atlas_scale():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dtb.plots import MATRIX_LABELS, matrix_ticks, region_order
    regions = [f"{h}_area{k}" for h in ("l", "r") for k in range(34)]
    order, hemi = region_order(regions)
    fig, ax = plt.subplots()
    ax.imshow(np.eye(len(regions)))
    matrix_ticks(ax, [regions[i] for i in order], hemi)
    labels = ax.get_xticklabels()
    assert 10 <= len(labels) <= MATRIX_LABELS and all(t.get_fontsize() >= 6 for t in labels)
    assert {t.get_text() for t in ax.texts} == {"left", "right"}
    assert len(ax.lines) == 2                          # the line between the hemispheres, on both axes
    plt.close(fig)


def test_a_z_map_with_nothing_above_threshold_says_so(tmp_path):
    import nibabel as nib

    from dtb.task_outputs import _glass_brains
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = (-90, -126, -72)
    weak = nib.Nifti1Image(np.full((46, 55, 46), 1.0, dtype=np.float32), affine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # nilearn's "empty mask" would be one
        (path,) = _glass_brains({"weak": weak}, tmp_path)
    assert path.stat().st_size > 5000
