"""BOLD: the balloon-Windkessel model against its fixed point, its known impulse response, a
finer time step and neurolib's independent implementation; the recorder, outputs and bad input."""

import h5py
import nibabel as nib
import numpy as np
import pytest

from conftest import SMALL_NETWORK, run_dtb
from dtb.bold import BoldSettings, bold_from_activity, check_tr, paint_regions
from atlas.io import read_label_table
from dtb.errors import DtbError
from dtb.models.balloon import BalloonState, PRESETS, bold_signal, fixed_point, preset, simulate_bold


@pytest.mark.parametrize("name", list(PRESETS))
def test_constant_input_reaches_the_analytic_fixed_point(name):
    p = preset(name)
    u0 = 0.3 / p.efficacy                      # efficacy * u = 0.3 /s
    st, b = fixed_point(np.array([u0]), p)
    # the fixed point zeroes the right-hand side, written out here once more
    f, v, q = np.exp(st.lf), np.exp(st.lv), np.exp(st.lq)
    E = 1 - (1 - p.E0) ** (1 / f)
    assert abs(p.efficacy * u0 - p.gamma * (f - 1)) < 1e-12
    assert abs(f - v ** (1 / p.alpha)) < 1e-12
    assert abs(f * E / p.E0 - v ** (1 / p.alpha) * q / v) < 1e-12
    # and the integration from rest settles on it
    u = np.full((120_000, 1), u0)
    sig, final = simulate_bold(u, 1e-3, p)
    assert sig[-1, 0] == pytest.approx(b[0], rel=1e-6)
    assert np.exp(final.lf[0]) == pytest.approx(f[0], rel=1e-6)
    assert np.exp(final.lq[0]) == pytest.approx(q[0], rel=1e-6)


def _box_response(p, dt, t_end=20.0):
    n = int(round(t_end / dt))
    t = (np.arange(n) + 1) * dt
    u = np.zeros((n, 1))
    u[(t > 0.1) & (t <= 0.6)] = 1.0
    sig, _ = simulate_bold(u, dt, p)
    return t, sig[:, 0]


def test_impulse_response_of_the_friston_preset():
    # a 0.5 s box from t = 0.1 s peaks about 3.2 s after its onset, then undershoots (neurolib's
    # implementation gives the same; SPM's double-gamma peaks later, at about 5 s, which is a
    # different model)
    t, b = _box_response(preset("friston2000"), 1e-4)
    t_peak = t[np.argmax(b)] - 0.1
    assert 3.1 < t_peak < 3.3
    assert b.max() == pytest.approx(0.0151, rel=0.02)
    after = t > t[np.argmax(b)] + 2
    assert b[after].min() < -0.002                  # undershoot below baseline
    assert abs(b[-1]) < abs(b[after].min())         # recovering


def test_halving_dt_changes_the_signal_by_less_than_half_a_percent_of_its_range():
    rng = np.random.default_rng(0)
    n = 30_000                                      # 30 s at 1 ms
    u1 = np.repeat(rng.uniform(0, 0.02, size=(n // 100, 3)), 100, axis=0)   # piecewise constant drive
    p = preset("dtb")
    s1, _ = simulate_bold(u1, 1e-3, p)
    s2, _ = simulate_bold(np.repeat(u1, 2, axis=0), 5e-4, p, every=2)
    span = s1.max() - s1.min()
    assert span > 0.005
    assert np.max(np.abs(s1 - s2)) < 0.005 * span


def test_agrees_with_neurolib():
    tim = pytest.importorskip("neurolib.models.bold.timeIntegration")
    dt = 1e-4
    rng = np.random.default_rng(1)
    n = 150_000                                     # 15 s
    u = np.repeat(rng.uniform(0, 1.5, size=(n // 5000, 4)), 5000, axis=0)
    ours, _ = simulate_bold(u, dt, preset("friston2000"))
    ones = np.ones(4)
    theirs = tim.simulateBOLD(u.T.copy(), dt, ones, X=np.zeros(4), F=ones, Q=ones, V=ones)[0].T
    peak = np.max(np.abs(theirs))
    assert peak > 0.01
    # different integrators of the same equations (theirs: Euler on f, v, q; ours: on their logs)
    assert np.max(np.abs(ours - theirs)) < 0.01 * peak


def test_extreme_input_keeps_every_state_finite():
    p = preset("stephan2007")
    u = np.concatenate([np.full((2000, 2), 1e4), np.full((2000, 2), -50.0), np.zeros((20000, 2))])
    sig, st = simulate_bold(u, 1e-3, p)
    assert np.all(np.isfinite(sig))
    for x in (st.s, st.lf, st.lv, st.lq):
        assert np.all(np.isfinite(x))


def test_members_by_regions_shape_and_chunks():
    p = preset("dtb")
    u = np.random.default_rng(2).uniform(0, 0.02, size=(4000, 5, 7))
    whole, st = simulate_bold(u, 1e-3, p, every=1000)
    a, st1 = simulate_bold(u[:2500], 1e-3, p, every=500)
    b, st2 = simulate_bold(u[2500:], 1e-3, p, state=BalloonState.from_array(st1.as_array()), every=500)
    assert whole.shape == (4, 5, 7)
    np.testing.assert_array_equal(np.concatenate([a, b])[[1, 3, 5, 7]], whole)
    np.testing.assert_array_equal(bold_signal(st2, p), bold_signal(st, p))


def test_bad_inputs():
    s = BoldSettings(tr=0.01)
    with pytest.raises(DtbError, match="NaN"):
        bold_from_activity(np.array([[1.0, np.nan]]), np.zeros((1, 2)), 1e-3, s)
    with pytest.raises(DtbError, match="at least one sample"):
        bold_from_activity(np.zeros((0, 2)), np.zeros((0, 2)), 1e-3, s)
    with pytest.raises(DtbError, match="shorter than the time step"):
        check_tr(5e-5, 1e-4, 1e-3)
    with pytest.raises(DtbError, match="whole multiple"):
        check_tr(0.0025, 1e-4, 1e-3)


def _atlas(tmp_path):
    labels = np.zeros((6, 5, 4), dtype=np.int16)
    labels[:2] = 10
    labels[2:4, :3] = 20
    labels[4:, :, :2] = 30
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    affine[:3, 3] = [-6, -5, -4]
    img = nib.Nifti1Image(labels, affine)
    nib.save(img, tmp_path / "atlas.nii.gz")
    (tmp_path / "labels.tsv").write_text("index\tname\n10\tA\n20\tB\n30\tC\n")
    return img


def test_paint_regions_into_the_atlas(tmp_path):
    img = _atlas(tmp_path)
    table = read_label_table(tmp_path / "labels.tsv")
    signal = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = paint_regions(img, table, ["A", "B", "C"], signal, tr=2.0)
    data = np.asanyarray(out.dataobj)
    labels = np.asanyarray(img.dataobj)
    assert data.shape == (6, 5, 4, 2)
    np.testing.assert_array_equal(out.affine, img.affine)
    assert out.header.get_zooms()[3] == pytest.approx(2.0)
    assert np.all(data[labels == 20][:, 1] == 5.0) and np.all(data[labels == 0] == 0)
    with pytest.raises(DtbError, match="no label for region"):
        paint_regions(img, table, ["A", "B", "D"], np.zeros((2, 3)), tr=2.0)
    with pytest.raises(DtbError, match="not in the volume"):
        paint_regions(img, {**table, "C": 99}, ["A", "B", "C"], np.zeros((2, 3)), tr=2.0)


BOLD_SECTION = """
[bold]
tr = "100 ms"
preset = "dtb"
drive = "rate"
atlas = "atlas.nii.gz"
labels = "labels.tsv"
"""


@pytest.fixture(scope="module")
def bold_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bold")
    _atlas(d)
    (d / "labels.tsv").write_text("index\tname\n10\tA\n20\tB\n")
    cfg = d / "net.toml"
    cfg.write_text(SMALL_NETWORK + BOLD_SECTION)
    out = {}
    for n in (1, 2):
        p = run_dtb(["run", str(cfg), "--out", str(d / f"r{n}"), "--no-plots", "-q"], ranks=n)
        assert p.returncode == 0, p.stderr
        out[n] = d / f"r{n}"
    return d, out


def test_online_bold_is_recorded_and_rank_independent(bold_runs):
    d, out = bold_runs
    with h5py.File(out[1] / "run.h5") as a, h5py.File(out[2] / "run.h5") as b:
        sa, sb = a["bold/signal"][()], b["bold/signal"][()]
        assert sa.shape == (3, 2) and a["bold"].attrs["tr_s"] == pytest.approx(0.1)
        np.testing.assert_array_equal(sa, sb)
        assert np.all(np.isfinite(sa)) and np.abs(sa).max() > 1e-5   # (starts with the initial dip)
    img = nib.load(out[1] / "bold.nii.gz")
    assert img.shape == (6, 5, 4, 3)
    np.testing.assert_array_equal(img.affine, nib.load(d / "atlas.nii.gz").affine)


def test_offline_bold_equals_online(bold_runs, tmp_path):
    d, out = bold_runs
    import shutil
    run = tmp_path / "run.h5"
    shutil.copy(out[1] / "run.h5", run)
    with h5py.File(run) as f:
        online = f["bold/signal"][()]
    p = run_dtb(["bold", str(run)])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "bold.h5") as f:
        np.testing.assert_allclose(f["bold/signal"][()], online, rtol=1e-12, atol=0)
        assert [r.decode() for r in f["network/regions"][()]] == ["A", "B"]
    with h5py.File(run) as f:                              # the run itself is left as it was
        np.testing.assert_array_equal(f["bold/signal"][()], online)
    assert (tmp_path / "bold.png").exists()
    # a different TR and the synaptic drive
    p = run_dtb(["bold", str(run), "--tr", "50 ms", "--drive", "synaptic", "--atlas", str(d / "atlas.nii.gz"),
                 "--labels", str(d / "labels.tsv"), "--into-run"])
    assert p.returncode == 0, p.stderr
    with h5py.File(run) as f:
        assert f["bold/signal"].shape == (6, 2) and f["bold"].attrs["drive"] == "synaptic"
    assert nib.load(tmp_path / "bold.nii.gz").shape == (6, 5, 4, 6)


def test_bold_cli_errors(bold_runs, tmp_path):
    d, out = bold_runs
    p = run_dtb(["bold", str(out[1] / "run.h5"), "--tr", "2.5 ms"])
    assert p.returncode == 2 and "whole multiple" in p.stderr and "Traceback" not in p.stderr
    p = run_dtb(["bold", str(tmp_path / "missing.h5")])
    assert p.returncode == 2 and "not found" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "bad.tsv").write_text("index\tname\n10\tA\n")
    p = run_dtb(["bold", str(out[1] / "run.h5"), "--atlas", str(d / "atlas.nii.gz"), "--labels",
                 str(tmp_path / "bad.tsv"), "--out", str(tmp_path)])
    assert p.returncode == 2 and "no label for region(s) B" in p.stderr and "Traceback" not in p.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text(SMALL_NETWORK + BOLD_SECTION.replace('tr = "100 ms"', 'tr = "0.05 ms"'))
    p = run_dtb(["run", str(cfg)])
    assert p.returncode == 2 and "bold.tr" in p.stderr and "shorter than the time step" in p.stderr


def test_nilearn_reads_the_painted_signal_back(bold_runs):
    """nilearn (as users analyse fMRI) extracts each label's mean from the 4D NIfTI: the signal."""
    maskers = pytest.importorskip("nilearn.maskers")
    d, out = bold_runs
    masker = maskers.NiftiLabelsMasker(labels_img=str(d / "atlas.nii.gz"), standardize=None)
    extracted = masker.fit_transform(str(out[1] / "bold.nii.gz"))
    with h5py.File(out[1] / "run.h5") as f:
        signal = f["bold/signal"][()]
    # labels 10 and 20 are regions A and B; label 30 has no region and stays 0
    np.testing.assert_allclose(extracted[:, :2], signal, rtol=1e-6)
    assert np.all(extracted[:, 2] == 0)


def test_dropping_used_region_samples_keeps_memory_flat_and_the_bold_equal(tmp_path):
    from dtb.bold import attach_bold
    from dtb.engine import Simulation
    from dtb.spec import load_spec
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK + BOLD_SECTION.split("atlas =")[0])
    spec = load_spec(cfg)
    kept, dropped = Simulation(spec), Simulation(spec, keep_region_rows=False)
    for sim in (kept, dropped):
        attach_bold(sim)
        sim.run(0.35)
    per_tr = dropped.bold.per_tr
    assert len(kept.region_rows) == 175 and len(dropped.region_rows) <= per_tr     # a sample every 2 ms
    np.testing.assert_array_equal(np.array(kept.bold.signal), np.array(dropped.bold.signal))
