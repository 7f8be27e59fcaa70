"""[cpg]: Matsuoka half-centers as a Brian2 group inside a run, driving LIF motor pools.

Checked against the standalone RK4 integration of the same equations (dtb.models.matsuoka, itself
checked against Matsuoka's formula in test_matsuoka), and for what the coupling must do: groups half
a cycle apart in antiphase, equal phases in phase; the pools fire with their oscillator; the same
spikes on 1 and 2 ranks and after a checkpoint/resume; config mistakes are clear errors."""

import h5py
import numpy as np
import pytest

from conftest import assert_same_spikes, run_dtb
from dtb.engine.cpg import coupling_pairs
from dtb.errors import ConfigError
from dtb.models.matsuoka import MatsuokaParameters, measured_frequency, simulate
from dtb.spec import load_spec

POOLS = "".join(f"""
[[populations]]
name = "{limb}_{side}"
region = "M2"
size = 120
kind = "excitatory"
""" for limb in ("L", "R") for side in ("flexor", "extensor"))

NETWORK = f"""
[simulation]
dt = "0.5 ms"
duration = "2 s"
seed = 5

[monitors]
rate_bin = "10 ms"
region_interval = "10 ms"
{POOLS}
[[projections]]
source = "L_flexor"
target = "R_extensor"
rule = "fixed_indegree"
indegree = 10
receptor = "ampa"
weight = "0.5 nS"
delay = "2 ms"

[[stimuli]]
type = "poisson"
population = "L_flexor"
rate = "200 Hz"
weight = "4 nS"

[cpg]
tau_r = "50 ms"
tau_a = "100 ms"
coupling = {{coupling}}
rate = "3000 Hz"
weight = "4 nS"
record_interval = "2 ms"

[[cpg.groups]]
name = "L"
count = 6
flexor = "L_flexor"
extensor = "L_extensor"
phase = 0.0

[[cpg.groups]]
name = "R"
count = 4
flexor = "R_flexor"
extensor = "R_extensor"
phase = {{phase}}
"""


def config(tmp_path, coupling=0.2, phase=0.5, name="cpg.toml", **replace):
    text = NETWORK.format(coupling=coupling, phase=phase)
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    p = tmp_path / name
    p.write_text(text)
    return p


def run(cfg, out, ranks=1, *extra):
    p = run_dtb(["run", str(cfg), "--out", str(out), "--no-plots", "-q", *extra], ranks=ranks)
    assert p.returncode == 0, p.stderr
    return out / "run.h5"


def read_cpg(path):
    with h5py.File(path) as f:
        return f["cpg/t_ms"][()] / 1e3, f["cpg/y"][()], f["cpg/group"][()], f["rates"][()], list(f["rates"].attrs["columns"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cpg")
    return {"uncoupled": run(config(d, coupling=0.0, name="u.toml"), d / "u"),
            "anti": run(config(d, name="a.toml"), d / "a"),
            "anti2": run(config(d, name="a.toml"), d / "a2", 2),
            "inphase": run(config(d, phase=0.0, name="i.toml"), d / "i"), "dir": d}


def test_uncoupled_oscillators_follow_the_rk4_integration(runs):
    t, y, group, *_ = read_cpg(runs["uncoupled"])
    p = MatsuokaParameters(tau_r=0.05, tau_a=0.1, beta=2.5, w=2.5, drive=1.0)
    tr, yr = simulate(p, 2.0, 1e-4)
    expected = measured_frequency(tr, yr[:, 0] - yr[:, 1], skip=0.5)
    for k in range(y.shape[1]):
        f = measured_frequency(t, y[:, k, 0] - y[:, k, 1], skip=0.5)
        assert f == pytest.approx(expected, rel=0.01)
    # flexor and extensor of one half-center alternate
    assert np.corrcoef(y[250:, 0, 0], y[250:, 0, 1])[0, 1] < -0.5


def test_coupling_sets_antiphase_and_inphase_groups(runs):
    for key, sign in (("anti", -1), ("inphase", 1)):
        t, y, group, *_ = read_cpg(runs[key])
        s = y[:, :, 0] - y[:, :, 1]
        late = t > 1.0
        left, right = s[late][:, group == 0].mean(axis=1), s[late][:, group == 1].mean(axis=1)
        assert sign * np.corrcoef(left, right)[0, 1] > 0.95, key
        # oscillators of one group lock in phase despite their different start
        assert np.corrcoef(s[late][:, 0], s[late][:, 5])[0, 1] > 0.99
    # antiphase coupling between these groups does not stop the rhythm
    t, y, group, *_ = read_cpg(runs["anti"])
    assert 1.5 < measured_frequency(t, y[:, 0, 0] - y[:, 0, 1], skip=0.5) < 2.5


def test_pools_fire_with_their_oscillator(runs):
    t, y, group, rates, cols = read_cpg(runs["anti"])
    # rates in 10 ms bins; the oscillator's flexor output averaged over the same bins
    flex = y[:, group == 0, 0].mean(axis=1)
    n = len(rates)
    flex_binned = flex[: n * 5].reshape(n, 5).mean(axis=1)
    r_flex = rates[:, cols.index("L_flexor")]
    r_ext = rates[:, cols.index("L_extensor")]
    assert np.corrcoef(flex_binned[20:], r_flex[20:])[0, 1] > 0.7
    assert np.corrcoef(flex_binned[20:], r_ext[20:])[0, 1] < -0.3
    assert r_flex.max() > 20 and r_ext.max() > 20


def test_same_spikes_and_oscillators_on_two_ranks(runs):
    assert_same_spikes(runs["anti"], runs["anti2"])
    np.testing.assert_array_equal(read_cpg(runs["anti"])[1], read_cpg(runs["anti2"])[1])


def test_checkpoint_and_resume_is_identical(runs):
    d = runs["dir"]
    cfg = d / "a.toml"
    run(cfg, d / "part", 2, "--duration", "1.2 s", "--checkpoint-every", "1.2 s")
    resumed = run(cfg, d / "part", 1, "--resume", str(d / "part"), "--duration", "2 s")
    assert_same_spikes(runs["anti"], resumed)
    a, b = read_cpg(runs["anti"]), read_cpg(resumed)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_coupling_pairs_connect_each_joint_to_the_other_groups(tmp_path):
    spec = load_spec(config(tmp_path))
    src, tgt, w, anti = coupling_pairs(spec.cpg)
    # every oscillator hears its counterpart in the other group (antiphase: groups 0.5 apart)
    cross = (src < 6) != (tgt < 6)
    assert cross.sum() == 10 and anti[cross].all()
    assert np.allclose(w[cross], 0.2 / 2)
    # and its two neighbours in its own group (a ring), in phase: every oscillator gets the same
    # neighbour input, so none runs at another frequency (a chain's ends did, and drifted apart)
    assert (~anti[~cross]).all() and (~cross).sum() == 2 * (6 + 4)
    total = np.bincount(tgt[~cross], weights=w[~cross], minlength=10)
    assert np.allclose(total, total[0])


@pytest.mark.parametrize("replace, field, words", [
    ({"phase = 0.0\n\n[[cpg.groups]]": "phase = 0.25\n\n[[cpg.groups]]"}, "cpg.groups", "differ by 0 or 0.5"),
    ({"count = 6": "count = 500"}, "cpg.groups[0].flexor", "fewer than the group's 500"),
    ({'flexor = "R_flexor"': 'flexor = "nope"'}, "cpg.groups[1].flexor", "unknown population"),
    ({'weight = "4 nS"\nrecord': 'weight = "3 nS"\nrecord'}, "cpg.weight", "must share one weight"),
    ({'tau_r = "50 ms"': 'tau_r = "50"'}, "cpg.tau_r", "has no unit"),
    ({"coupling = 0.2": "coupling = 0.2\nspeed = 3"}, "cpg.speed", "unknown field"),
    ({'record_interval = "2 ms"': 'record_interval = "0.1 ms"'}, "cpg.record_interval", "at least one time step"),
])
def test_config_mistakes_name_the_field(tmp_path, replace, field, words):
    with pytest.raises(ConfigError) as e:
        load_spec(config(tmp_path, **replace))
    assert field in str(e.value) and words in str(e.value), str(e.value)
