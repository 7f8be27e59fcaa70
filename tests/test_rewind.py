"""Simulation.snapshot / rewind: the network runs ahead, comes back, and goes on exactly as if it
had never left (the data assimilation's held-out forecasts branch off the filter this way)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import MPIEXEC, ROOT, SMALL_NETWORK

WORKER = textwrap.dedent('''
    import sys, tomllib
    import numpy as np
    from dtb.bold import attach_bold
    from dtb.engine import Simulation
    from dtb.spec import spec_from_dict
    text = open(sys.argv[1]).read()
    spec = spec_from_dict(tomllib.loads(text), source=sys.argv[1], text=text)

    def spikes(sim, since):
        g, s = sim.local_spikes()
        keep = s >= since
        parts = sim.comm.allgather(np.stack([g[keep], s[keep]], axis=1))
        out = np.concatenate(parts)
        return out[np.lexsort((out[:, 0], out[:, 1]))]

    def bold(sim):
        return np.array(sim.bold.signal)

    sim = Simulation(spec)
    attach_bold(sim)
    sim.run(0.06)
    sim.finish_exchange()
    snap = sim.snapshot()
    start = sim.current_step()
    sim.run(0.08)
    sim.finish_exchange()
    ahead, bold_ahead = spikes(sim, start), bold(sim)
    sim.rewind(snap)
    back_at = sim.current_step()
    sim.run(0.08)
    sim.finish_exchange()
    again, bold_again = spikes(sim, start), bold(sim)
    sim.forget(snap)
    if sim.rank == 0:
        np.savez(sys.argv[2], ahead=ahead, again=again, back_at=back_at, start=start,
                 bold_ahead=bold_ahead, bold_again=bold_again)
''')

BOLD = '\n[bold]\ntr = "20 ms"\npreset = "dtb"\n'


@pytest.mark.parametrize("ranks, exchange", [(1, "blocking"), (2, "blocking"), (2, "overlap"), (2, "targeted")])
def test_rewind_replays_the_same_spikes(tmp_path, ranks, exchange):
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK.replace('seed = 99', f'seed = 99\nexchange = "{exchange}"') + BOLD)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "out.npz"
    cmd = [sys.executable, str(script), str(cfg), str(out)]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks), *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    r = np.load(out)
    assert int(r["back_at"]) == int(r["start"]) == 600
    assert len(r["ahead"]) > 200                      # enough spikes after the snapshot to tell
    np.testing.assert_array_equal(r["ahead"], r["again"])
    assert len(r["bold_ahead"]) == 7                  # BOLD every 20 ms over 140 ms
    np.testing.assert_array_equal(r["bold_ahead"], r["bold_again"])


def test_uninterrupted_run_matches_the_rewound_one(tmp_path):
    """Running ahead and rewinding leaves no trace: the spikes after the rewind equal those of a
    run that never took a snapshot."""
    from dtb.engine import Simulation
    from dtb.spec import load_spec
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    spec = load_spec(cfg)
    plain = Simulation(spec)
    plain.run(0.1)
    g0, s0 = plain.local_spikes()
    del plain
    sim = Simulation(spec)
    sim.run(0.04)
    snap = sim.snapshot()
    sim.run(0.03)
    sim.set_stimulus_rates({0: 100.0})               # a change made while ahead is undone too
    sim.run(0.03)
    sim.rewind(snap)
    sim.run(0.06)
    g1, s1 = sim.local_spikes()
    assert len(g0) > 500
    np.testing.assert_array_equal(g0, g1)
    np.testing.assert_array_equal(s0, s1)
