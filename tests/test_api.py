"""The Python API's edges: a finished run read back (dtb.open), state monitors as a table, spikes
in seconds, explicit errors where a result does not exist, derived networks checked, and no
Brian2 banner for the user's own errors."""

import subprocess
import sys

import numpy as np
import pytest

import dtb
from conftest import SMALL_NETWORK
from dtb.errors import ConfigError, DtbError
from dtb.results import read_spikes

STATE = '\n[[monitors.state]]\npopulation = "A_E"\nvariables = ["v", "g_ampa"]\nindices = [0, 1, 2]\ninterval = "1 ms"\n'


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    net = dtb.load(SMALL_NETWORK + STATE)
    return net, dtb.simulate(net, duration="100 ms", out=out), out / "run.h5"


def test_a_run_file_reads_back_as_the_results(run):
    net, res, path = run
    again = dtb.open(path)
    np.testing.assert_array_equal(again.spike_gids, res.spike_gids)
    np.testing.assert_array_equal(again.spike_steps, res.spike_steps)
    np.testing.assert_allclose(again.region_rate, res.region_rate)
    assert again.spec.n_neurons == net.n_neurons and again.duration == pytest.approx(0.1)
    import pandas as pd
    pd.testing.assert_frame_equal(again.states_frame(), res.states_frame(), check_exact=False, rtol=1e-12)
    gids, t = read_spikes(path)
    assert t.max() < 0.1 and np.allclose(read_spikes(path, unit="ms")[1], t * 1e3)
    with pytest.raises(DtbError, match="not a run file"):
        dtb.open(path.parent / "summary.json")
    with pytest.raises(DtbError, match="file not found"):
        dtb.open(path.parent / "nope.h5")


def test_state_monitors_as_one_table(run):
    _, res, _ = run
    frame = res.states_frame()
    assert list(frame.columns) == ["monitor", "time_s", "gid", "v", "g_ampa"]
    name, gids, t, data = res.states[0]
    assert len(frame) == len(t) * len(gids)
    row = frame.iloc[len(gids) + 1]                       # the second time, second neuron
    assert row.time_s == t[1] and row.gid == gids[1] and row.v == data["v"][1, 1]
    with pytest.raises(DtbError, match="no state monitor 'X'"):
        res.states_frame("X")


def test_missing_results_are_errors_not_none(run):
    _, res, _ = run
    with pytest.raises(DtbError, match=r"no BOLD: add a \[bold\] section"):
        res.bold_frame()


def test_derived_networks_are_checked(run):
    net, _, _ = run
    assert net.with_stimulus(0, rate="500 Hz").stimuli[0].rate == 500.0
    assert net.with_population("A_E", V_th="-52 mV").population("A_E").params["V_th"] == pytest.approx(-0.052)
    for bad in (lambda: net.with_stimulus(0, rate="3 mV"), lambda: net.with_stimulus(0, rate=float("nan")),
                lambda: net.with_projection(0, weight="-1 nS"), lambda: net.with_population("A_E", V_thr="1 mV"),
                lambda: net.with_projection(0, rule="one_to_one")):
        with pytest.raises(ConfigError):
            bad()


def test_the_users_own_errors_get_no_brian2_banner(tmp_path):
    script = tmp_path / "mine.py"
    script.write_text("import sys\nsys.path.insert(0, %r)\nimport dtb\nfrom conftest import SMALL_NETWORK\n"
                      "dtb.simulate(dtb.load(SMALL_NETWORK), duration='20 ms')\nraise ValueError('my own mistake')\n"
                      % str(__import__("pathlib").Path(__file__).parent))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 1 and "ValueError: my own mistake" in p.stderr
    assert "Brian 2" not in p.stderr and "report this issue" not in p.stderr
