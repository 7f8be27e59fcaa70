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
params = {{v_init = "-70 mV", V_th = "0 mV"}}

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
    # the conductance is recorded at the start of each step; an event delivered in step s is
    # added after that step's synapses, so it shows from the record of step s + 1 on
    jumps = np.flatnonzero(np.diff(g) > 0.5e-9) + 1
    expected = spike_steps + d + 1
    expected = expected[expected < len(t)]
    np.testing.assert_array_equal(np.rint(t[jumps] / dt).astype(int), expected)
    # and the jump is the synaptic weight on top of the decayed conductance
    tau = 2e-3
    for s in expected:
        assert g[s] - g[s - 1] * np.exp(-dt * 1e-3 / tau) == pytest.approx(2e-9, rel=1e-6)
