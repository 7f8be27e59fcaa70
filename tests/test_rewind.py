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


def test_spike_buffer_forgets_the_oldest_but_counts_them():
    from dtb.engine.common import SpikeBuffer
    b = SpikeBuffer(4)
    for step in range(10):
        b.append(np.array([step, step + 100]), step)
    tail = b.tail(6, keep_from=len(b))                 # a snapshot at 20 spikes, steps 6 on kept
    b.forget_before(5, keep_from=16)
    assert (b.first, len(b)) == (10, 20)
    np.testing.assert_array_equal(b.since(14)[1], [7, 7, 8, 8, 9, 9])
    b.forget_before(9, keep_from=14)                   # position 14 is still unread: kept
    assert b.first == 14
    with pytest.raises(RuntimeError, match="forgotten"):
        b.since(12)
    b.append(np.array([1]), 10)
    b.forget_before(11, keep_from=21)
    b.rewind_to(20, tail)                              # back to 20 spikes, from the tail
    assert (b.first, len(b)) == (12, 20)
    np.testing.assert_array_equal(b.since(12)[1], [6, 6, 7, 7, 8, 8, 9, 9])


def test_forgetting_old_spikes_changes_nothing(tmp_path):
    """keep_spikes=False (the data assimilation) holds only the recent spikes, also across a
    rewind, and the network runs exactly as with every spike kept."""
    from dtb.engine import Simulation
    from dtb.spec import load_spec
    cfg = tmp_path / "net.toml"
    cfg.write_text(SMALL_NETWORK)
    spec = load_spec(cfg)

    def run(keep: bool):
        sim = Simulation(spec, keep_spikes=keep)
        sim.run(0.15)
        snap = sim.snapshot()
        sim.run(0.25)                                  # trims at steps 2000, 3000, 4000
        sim.rewind(snap)
        sim.run(0.2)
        return sim
    full, lean = run(True), run(False)
    g0, s0 = full.local_spikes()
    g1, s1 = lean.local_spikes()
    assert len(full.spikes) == len(lean.spikes) == len(g0)
    assert 0 < lean.spikes.first and len(g1) < len(g0) / 3
    assert s1.min() <= lean.current_step() - lean.spike_window()
    recent = s0 >= s1.min()
    np.testing.assert_array_equal(g0[recent], g1)
    np.testing.assert_array_equal(s0[recent], s1)
    np.testing.assert_array_equal(np.array(full.region_rows), np.array(lean.region_rows))
