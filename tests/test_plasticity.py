"""Cerebellar PF->PC plasticity (dtb.models.plasticity) in the engine.

Against the rule's closed form (LTP per parallel-fibre spike, LTD per climbing-fibre spike times
the kernel-weighted parallel-fibre activity before it) on a two-neuron case; LTD only with a
coincident climbing fibre; the same weights on 1 and 2 ranks and after a checkpoint resumed on
another rank count; config mistakes are clear errors."""

import h5py
import numpy as np
import pytest

from conftest import run_dtb
from dtb.engine.kernel import Simulation
from dtb.errors import ConfigError
from dtb.models.plasticity import kernel, pf_pc_weight
from dtb.spec import spec_from_dict, load_spec

RULE = {"teacher": "IO", "tau": "100 ms", "ltp": "0.002 nS", "ltd": "0.005 nS", "w_max": "3 nS"}


def two_neurons(pf_rate: float, io_rate: float, duration: float = 2.0):
    return spec_from_dict({
        "simulation": {"dt": "0.5 ms", "duration": f"{duration} s", "seed": 3},
        "populations": [{"name": "PF", "region": "cb", "size": 1, "kind": "excitatory"},
                        {"name": "IO", "region": "cb", "size": 1, "kind": "excitatory"},
                        {"name": "PC", "region": "cb", "size": 1, "kind": "inhibitory"}],
        "projections": [{"source": "PF", "target": "PC", "rule": "one_to_one", "receptor": "ampa", "weight": "1 nS",
                         "delay": "1 ms", "plasticity": RULE},
                        {"source": "IO", "target": "PC", "rule": "one_to_one", "receptor": "ampa", "weight": "1 nS",
                         "delay": "2 ms"}],
        "stimuli": [{"type": "poisson", "population": "PF", "rate": f"{pf_rate} Hz", "weight": "6 nS"},
                    {"type": "poisson", "population": "IO", "rate": f"{io_rate} Hz", "weight": "6 nS"}]})


def engine_and_reference(pf_rate, io_rate):
    spec = two_neurons(pf_rate, io_rate)
    sim = Simulation(spec)
    sim.run(spec.simulation.duration)
    g, s = sim.local_spikes()
    dt, n = spec.simulation.dt, int(round(spec.simulation.duration / spec.simulation.dt))
    pf = (s[g == 0] + 2) * dt          # arrival: spike step + delay (1 ms = 2 steps)
    cf = (s[g == 1] + 4) * dt
    pf = pf[pf < n * dt - 1e-9]
    cf = cf[cf < (n - 1) * dt - 1e-9]  # the depression acts one step after arrival
    ref = pf_pc_weight(1e-9, pf, cf, tau=0.1, ltp=2e-12, ltd=5e-12, w_min=0.0, w_max=3e-9, dt=dt, quantum=1e-14)
    return sim.plastic_weights()[0, 4], ref, len(pf), len(cf)


def test_kernel_peaks_tau_before_the_climbing_fibre():
    s = np.linspace(0, 1, 10001)
    k = kernel(s, 0.15)
    assert s[np.argmax(k)] == pytest.approx(0.15, abs=1e-4) and k.max() == pytest.approx(1.0)
    # one PF spike 150 ms before one CF: w0 + ltp - ltd x 1
    w = pf_pc_weight(1e-9, np.array([0.1]), np.array([0.25 - 5e-4]), tau=0.15, ltp=1e-11, ltd=1e-10,
                     w_min=0, w_max=1e-8, dt=5e-4, quantum=1e-14)
    assert w == pytest.approx(1e-9 + 1e-11 - 1e-10, abs=1e-14)


def test_two_neurons_follow_the_rule_and_ltd_needs_a_coincident_climbing_fibre():
    both, ref, n_pf, n_cf = engine_and_reference(2200, 1600)
    assert n_pf > 50 and n_cf > 50
    assert both == pytest.approx(ref, abs=1e-15)              # the same weight quanta
    pf_only, ref_pf, n_pf2, _ = engine_and_reference(2200, 0)
    assert pf_only == pytest.approx(ref_pf, abs=1e-15)
    assert pf_only == pytest.approx(min(1e-9 + n_pf2 * 2e-12, 3e-9), abs=1e-15)   # pure LTP
    cf_only, ref_cf, _, n_cf3 = engine_and_reference(0, 1600)
    assert n_cf3 > 50 and cf_only == pytest.approx(1e-9, abs=1e-15)  # no PF activity: no LTD
    assert both < pf_only - 20 * 5e-12                       # LTD with coincident CF input


NETWORK = """
[simulation]
dt = "0.5 ms"
duration = "1 s"
seed = 11

[monitors]
plasticity_interval = "250 ms"

[[populations]]
name = "GrC"
region = "cb"
size = 300
kind = "excitatory"

[[populations]]
name = "IO"
region = "cb"
size = 20
kind = "excitatory"

[[populations]]
name = "PC"
region = "cb"
size = 20
kind = "inhibitory"

[[projections]]
source = "GrC"
target = "PC"
rule = "fixed_indegree"
indegree = 60
receptor = "ampa"
weight = { distribution = "uniform", low = "1 nS", high = "3 nS" }
delay = { distribution = "uniform", low = "1 ms", high = "4 ms" }
[projections.plasticity]
teacher = "IO"
tau = "100 ms"
ltp = "0.003 nS"
ltd = "0.03 nS"
w_max = "5 nS"

[[projections]]
source = "IO"
target = "PC"
rule = "fixed_indegree"
indegree = 1
receptor = "ampa"
weight = "20 nS"
delay = "2 ms"

[[projections]]
source = "PC"
target = "GrC"
rule = "fixed_indegree"
indegree = 2
receptor = "gabaa"
weight = "1 nS"
delay = "3 ms"

[[stimuli]]
type = "poisson"
population = "GrC"
rate = "1500 Hz"
weight = "4 nS"

[[stimuli]]
type = "poisson"
population = "IO"
rate = "1200 Hz"
weight = "4 nS"
"""


def weights(path):
    with h5py.File(path, "r") as f:
        g = f["plasticity/0"]
        return g["target"][()], g["source"][()], g["weight"][()], g["history"][()]


def test_weights_identical_on_1_and_2_ranks_and_after_resume(write_config, tmp_path):
    cfg = write_config(NETWORK)
    one, two, cut = tmp_path / "one", tmp_path / "two", tmp_path / "cut"
    r1 = run_dtb(["run", str(cfg), "--out", str(one), "--no-plots"])
    assert r1.returncode == 0, r1.stderr
    r2 = run_dtb(["run", str(cfg), "--out", str(two), "--no-plots", "--partition", "round-robin"], ranks=2)
    assert r2.returncode == 0, r2.stderr
    t1, s1, w1, h1 = weights(one / "run.h5")
    t2, s2, w2, h2 = weights(two / "run.h5")
    assert len(w1) == 20 * 60
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(w1, w2)
    assert np.abs(w1 - 2.0).mean() > 0.05                    # they learned: not the initial distribution
    assert len(h1) == 4 and np.allclose(h1, h2)
    # 2 ranks for 0.5 s with a checkpoint, then resumed on 1 rank to 1 s: the same weights
    r3 = run_dtb(["run", str(cfg), "--out", str(cut), "--no-plots", "--duration", "500 ms",
                  "--checkpoint-every", "500 ms"], ranks=2)
    assert r3.returncode == 0, r3.stderr
    r4 = run_dtb(["run", "--resume", str(cut), "--duration", "1 s", "--no-plots"])
    assert r4.returncode == 0, r4.stderr
    t3, s3, w3, _ = weights(cut / "run.h5")
    np.testing.assert_array_equal(w1, w3)


@pytest.mark.parametrize("edit, field, words", [
    ('source = "IO"\ntarget = "PC"', "plasticity.teacher", "no projection from 'IO' to 'PC'"),
    ('tau = "100 ms"', "plasticity.tau", "must be positive"),
])
def test_plasticity_config_errors(write_config, edit, field, words):
    text = NETWORK.replace(edit, {'tau = "100 ms"': 'tau = "0 ms"'}.get(edit, 'source = "IO"\ntarget = "GrC"'))
    with pytest.raises(ConfigError) as e:
        load_spec(write_config(text))
    assert field in str(e.value) and words in str(e.value)


def test_inhibitory_plastic_source_and_unknown_condition_are_clear_errors(write_config):
    text = NETWORK.replace('source = "GrC"\ntarget = "PC"', 'source = "PC"\ntarget = "GrC"', 1)
    with pytest.raises(ConfigError):
        inhibitory = text.replace('receptor = "ampa"\nweight = { distribution', 'receptor = "gabaa"\nweight = { distribution', 1)
        load_spec(write_config(inhibitory))
    from dtb.spec import apply_condition
    with pytest.raises(ConfigError) as e:
        apply_condition(load_spec(write_config(NETWORK)), "nope")
    assert "conditions.nope" in str(e.value)
