"""BOLD as fMRIPrep writes it: a preprocessed 4D image in another grid of the atlas's space with its
confounds TSV beside it (a small synthetic derivatives folder made here), resampled to the
atlas's regions, checked for space and alignment, confounds regressed with a fit on the training
part; and through dtb assimilate."""

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import run_dtb
from dtb.errors import DtbError

R = 6
T = 200
ATLAS_AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
ATLAS_AFFINE[:3, 3] = (-30.0, -40.0, -20.0)
ATLAS = "tpl-MNI152NLin2009cAsym_atlas-test_dseg.nii.gz"      # its space in its name, as TemplateFlow names it
MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def make_atlas(d):
    labels = np.zeros((30, 36, 30), dtype=np.int16)
    for k in range(R):                                    # three blocks per hemisphere
        x0 = 2 if k < 3 else 18
        y0 = 4 + 10 * (k % 3)
        labels[x0:x0 + 9, y0:y0 + 9, 10:19] = k + 1
    nib.save(nib.Nifti1Image(labels, ATLAS_AFFINE), d / ATLAS)
    names = [f"{'l' if k < 3 else 'r'}_area{k % 3}" for k in range(R)]
    (d / "labels.csv").write_text("name,label\n" + "".join(f"{n},{k + 1}\n" for k, n in enumerate(names)))
    return labels, names


def fmriprep_folder(d, labels, affine=None, shape=(25, 29, 24), space="MNI152NLin2009cAsym", seed=0, n=T):
    """func/sub-01_task-rest_space-<space>_desc-preproc_bold.nii.gz and its confounds: each region
    carries its own signal plus a motion artefact shared by all, in a 3-mm grid."""
    rng = np.random.default_rng(seed)
    if affine is None:
        affine = np.diag([3.0, 3.0, 3.0, 1.0])
        affine[:3, 3] = (-36.0, -45.0, -27.0)
    signals = np.zeros((n, R))                            # stationary AR(1) signals (drift regressors leave them)
    for t in range(1, n):
        signals[t] = 0.7 * signals[t - 1] + rng.standard_normal(R)
    motion = rng.standard_normal((n, 6)) * 2.0
    artefact = motion @ rng.uniform(0.5, 1.5, 6)
    ijk = np.indices(shape).reshape(3, -1).T
    world = nib.affines.apply_affine(affine, ijk)
    a_ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(ATLAS_AFFINE), world)).astype(int)
    ok = np.all((a_ijk >= 0) & (a_ijk < np.array(labels.shape)), axis=1)
    lab = np.zeros(len(ijk), dtype=int)
    lab[ok] = labels[tuple(a_ijk[ok].T)]
    data = np.zeros((len(ijk), n), dtype=np.float32)
    inside = lab > 0
    data[inside] = 1000 + 10 * signals[:, lab[inside] - 1].T + 4 * artefact[None, :] \
        + rng.standard_normal((inside.sum(), n))
    func = d / "func"
    func.mkdir(parents=True, exist_ok=True)
    img = func / f"sub-01_task-rest_space-{space}_desc-preproc_bold.nii.gz"
    image = nib.Nifti1Image(data.reshape(*shape, n), affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_zooms(image.header.get_zooms()[:3] + (1.0,))
    nib.save(image, img)
    cols = list(MOTION) + ["white_matter", "csf", "global_signal", "cosine00", "cosine01"]
    rows = np.column_stack([motion, rng.standard_normal((n, 3)), np.cos(np.outer(np.arange(n), [0.05, 0.1]))])
    tsv = func / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    tsv.write_text("\t".join(cols) + "\n" + "".join("\t".join(f"{v:.6f}" for v in r) + "\n" for r in rows))
    (func / "sub-01_task-rest_desc-confounds_timeseries.json").write_text(json.dumps({c: {} for c in cols}))
    return img, signals


@pytest.fixture(scope="module")
def derivatives(tmp_path_factory):
    d = tmp_path_factory.mktemp("fmriprep")
    labels, names = make_atlas(d)
    img, signals = fmriprep_folder(d, labels)
    return d, labels, names, img, signals


def spec_for(d, names, confounds="auto"):
    from dtb.spec import spec_from_dict
    from atlas.build import AtlasNetworkSettings, network_config
    w = np.ones((R, R)) - np.eye(R)
    net = network_config(names, np.full(R, 100.0), w, 40 + 10 * w, AtlasNetworkSettings(neurons=100 * R, min_neurons=50,
                                                                                        seed=1, dt=5e-4))
    net["bold"] = {"tr": "1 s", "preset": "dtb", "drive": "rate", "atlas": str(d / ATLAS),
                   "labels": str(d / "labels.csv")}
    net["monitors"] = {"region_interval": "1 ms"}
    net["assimilation"] = {"members": 4, "hyperparameters": ["ampa"], "spinup": "3 s", "confounds": confounds,
                           "forecast_horizons": [1, 2]}
    return spec_from_dict(net, source=str(d / "net.toml")), net


def test_regions_come_out_of_another_grid_with_the_confounds_regressed(derivatives):
    from assimilation.pipeline import load_observed
    d, labels, names, img, signals = derivatives
    spec, _ = spec_for(d, names)
    clean, n_train = load_observed(spec, str(img), None, 0.5)
    spec_raw, _ = spec_for(d, names, confounds="none")
    raw, _ = load_observed(spec_raw, str(img), None, 0.5)
    assert clean.shape == (T, R) and n_train == T // 2
    from assimilation.pipeline import preprocessed
    truth = preprocessed(signals, spec, fit_rows=n_train)
    r_clean = [np.corrcoef(clean[:, k], truth[:, k])[0, 1] for k in range(R)]
    r_raw = [np.corrcoef(raw[:, k], truth[:, k])[0, 1] for k in range(R)]
    assert np.mean(r_clean) > 0.85 and np.mean(r_clean) > np.mean(r_raw) + 0.15, (r_clean, r_raw)


def test_the_confound_fit_uses_the_training_part_only():
    from assimilation.nifti_input import regress_confounds
    rng = np.random.default_rng(1)
    data, conf = rng.standard_normal((80, 3)), rng.standard_normal((80, 2))
    changed = data.copy()
    changed[40:] += 10 * rng.standard_normal((40, 3))
    a, b = regress_confounds(data, conf, 40), regress_confounds(changed, conf, 40)
    np.testing.assert_array_equal(a[:40], b[:40])


@pytest.mark.parametrize("mm,words", [(20.0, "mm from the atlas's labels"),
                                      (8.0, r"looks shifted by about \(\+8, \+0, \+0\) mm")])
def test_a_shifted_image_or_another_space_is_refused(derivatives, tmp_path, mm, words):
    from assimilation.nifti_input import region_means
    d, labels, names, img, signals = derivatives
    padded = np.pad(labels, ((6, 6), (0, 0), (0, 0)))     # the atlas's grid, 12 mm wider on each side
    shifted = ATLAS_AFFINE.copy()
    shifted[0, 3] += mm - 12.0                             # and moved
    moved, _ = fmriprep_folder(tmp_path / "moved", padded, affine=shifted, shape=padded.shape)
    data = np.asanyarray(nib.load(moved).dataobj)
    fixed = np.zeros_like(data)                            # the brain where the atlas's labels are, in voxels
    for k in range(R):
        fixed[padded == k + 1] = 1000 + k
    nib.save(nib.Nifti1Image(fixed + np.random.default_rng(2).standard_normal(fixed.shape).astype(np.float32),
                             shifted), moved)
    with pytest.raises(DtbError, match=words):
        region_means(moved, str(d / ATLAS), str(d / "labels.csv"), names)
    native, _ = fmriprep_folder(tmp_path / "native", labels, space="T1w")
    with pytest.raises(DtbError, match="in space T1w"):
        region_means(native, str(d / ATLAS), str(d / "labels.csv"), names)


def test_fmriprep_names_are_read_by_entities(derivatives, tmp_path):
    """Any output-space variant (res-, cohort-, den-, BIDS order kept) finds its confounds file;
    without one the strategy 'auto' regresses nothing and says so with a warning."""
    import logging
    import shutil

    from assimilation.nifti_input import bids_name, bids_parts, confounds_for, confounds_path
    from assimilation.pipeline import load_observed
    d, _, names, img, _ = derivatives
    name = "sub-01_ses-2_task-rest_run-1_space-MNI152NLin2009cAsym_cohort-1_res-2_desc-preproc_bold.nii.gz"
    assert confounds_path(tmp_path / name).name == "sub-01_ses-2_task-rest_run-1_desc-confounds_timeseries.tsv"
    entities, suffix, ext = bids_parts(name)
    assert bids_name(entities, suffix, ext) == name and entities["res"] == "2" and suffix == "bold"
    folder = tmp_path / "func"
    folder.mkdir()
    variant = folder / "sub-01_task-rest_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"
    shutil.copy(img, variant)
    shutil.copy(img.with_name("sub-01_task-rest_desc-confounds_timeseries.tsv"), folder)
    shutil.copy(img.with_name("sub-01_task-rest_desc-confounds_timeseries.json"), folder)
    conf, note = confounds_for(variant, "simple")
    assert conf.shape == (T, 10) and "10 confounds regressed" in note
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(img, alone / variant.name)
    spec, _ = spec_for(d, names)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("assimilation.pipeline").addHandler(handler)
    try:
        load_observed(spec, str(alone / variant.name), None, 0.5)
    finally:
        logging.getLogger("assimilation.pipeline").removeHandler(handler)
    assert any(r.levelno == logging.WARNING and "no confounds regressed" in r.getMessage() for r in records)


def test_a_header_tr_other_than_the_configs_is_refused(derivatives, tmp_path):
    from assimilation.nifti_input import header_tr
    from assimilation.pipeline import load_observed
    d, _, names, img, _ = derivatives
    assert header_tr(img) == 1.0
    image = nib.load(img)
    image.header.set_xyzt_units("mm", "msec")
    image.header.set_zooms(image.header.get_zooms()[:3] + (720.0,))
    other = tmp_path / img.name
    nib.save(image, other)
    assert header_tr(other) == pytest.approx(0.72)
    spec, _ = spec_for(d, names)
    with pytest.raises(DtbError, match=r"header's TR is 0.72 s, the config's \[bold\] tr 1 s"):
        load_observed(spec, str(other), None, 0.5)


def test_the_fmriprep_folder_through_dtb_assimilate(derivatives, tmp_path):
    from atlas import toml
    d, labels, names, _, _ = derivatives
    img, _ = fmriprep_folder(tmp_path / "short", labels, n=40)
    _, net = spec_for(d, names)
    cfg = tmp_path / "net.toml"
    cfg.write_text(toml.dumps(net, "fMRIPrep input test"))
    p = run_dtb(["assimilate", str(cfg), "--bold", str(img), "--out", str(tmp_path / "out"), "--no-plots"])
    assert p.returncode == 0, p.stderr
    assert "10 confounds regressed (simple: " in p.stderr and "trans_x" in p.stderr
    import h5py
    with h5py.File(tmp_path / "out" / "assimilation.h5") as f:
        assert f["observed"].shape == (40, R) and f["heldout/updating/forecast/mean"].shape[2] == R
        assert json.loads(f.attrs["settings"])["confounds"] == "auto"
