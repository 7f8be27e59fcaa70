"""A spike crossing ranks arrives exactly at spike time + delay.

This also pins the Brian2 internal the exchange relies on (pushing source indices into a
``Synapses`` pathway's spike queue from a network operation): if a Brian2 upgrade changes it,
the delivered step moves and this test fails.
"""

import h5py
import numpy as np
import pytest

from conftest import run_dtb

TWO_NEURONS = """
[simulation]
dt = "0.1 ms"
duration = "80 ms"
seed = 3

[[populations]]
name = "pre"
size = 1
kind = "excitatory"
params = {{v_init = "-65 mV"}}

[[populations]]
name = "post"
size = 1
kind = "excitatory"
params = {{v_init = "-74 mV", V_th = "0 mV"}}

[[projections]]
source = "pre"
target = "post"
rule = "one_to_one"
receptor = "ampa"
weight = "2 nS"
delay = "{delay}"

[[stimuli]]
type = "current"
population = "pre"
amplitude = "900 pA"
start = "5 ms"

[monitors]
state = [{{population = "post", indices = [0], variables = ["g_ampa", "v"]}}]
"""


@pytest.mark.parametrize("delay_ms", [2.3, 7.0])
@pytest.mark.parametrize("ranks", [1, 2])
def test_remote_spike_arrives_at_spike_time_plus_delay(tmp_path, ranks, delay_ms):
    cfg = tmp_path / "two.toml"
    cfg.write_text(TWO_NEURONS.format(delay=f"{delay_ms} ms"))
    p = run_dtb(["run", str(cfg), "--out", str(tmp_path / "out"), "--no-plots", "-q"], ranks=ranks)
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "out" / "run.h5") as f:
        assert f.attrs["n_ranks"] == ranks
        if ranks == 2:
            assert f["summary"].attrs["synapses_remote"] == 1   # the one synapse crosses ranks
        spike_t = f["spikes/pre/timestamps"][()]
        assert len(f["spikes/post/timestamps"]) == 0
        g = f["state/0/g_ampa"][()][:, 0]
        t = f["state/0/t_ms"][()]
    dt = 0.1
    assert len(spike_t) >= 3
    spike_steps = np.rint(spike_t / dt).astype(int)
    d = int(round(delay_ms / dt))
    # Brian2's clock-driven semantics: the event is delivered in step e + d (after that step's
    # membrane update), so it first acts on the membrane in the update of step e + d + 1, whose
    # result is the record at step e + d + 2. Records are taken at the start of each step.
    with h5py.File(tmp_path / "out" / "run.h5") as f:
        v = f["state/0/v"][()][:, 0]
    jumps = np.flatnonzero(np.diff(g) > 0.5e-9) + 1
    expected = spike_steps + d + 2
    expected = expected[expected < len(t)]
    np.testing.assert_array_equal(np.rint(t[jumps] / dt).astype(int), expected)
    # the membrane, relaxing towards rest before, turns upward exactly at that record
    rises = np.flatnonzero((np.diff(v)[1:] > 0) & (np.diff(v)[:-1] <= 0)) + 2
    np.testing.assert_array_equal(rises[:len(expected)], expected)
    # and the jump is the synaptic weight (decayed over the step it was added in) on top of the
    # decayed conductance
    decay = np.exp(-dt * 1e-3 / 2e-3)
    for s in expected:
        assert g[s] - g[s - 1] * decay == pytest.approx(2e-9 * decay, rel=1e-6)
