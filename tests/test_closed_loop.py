"""The closed loop: the MuJoCo rat driven by motor-pool rates walks forward at the frequency of
its drive; dtb closed-loop runs brain, bridge and body (its own process, a roslibpy client) in
lockstep, the rat moves forward, its stepping frequency matches the CPG frequency, and the
trajectory does not depend on the brain's rank count."""

import json

import h5py
import numpy as np
import pytest

from bridges.body import LIMBS, RodentBody
from conftest import ROOT, run_dtb
from dtb.models.matsuoka import MatsuokaParameters, measured_frequency, simulate

MOTOR_LOOP = ROOT / "dtb" / "examples" / "motor_loop.toml"


def trot_rates(y: np.ndarray, scale: float = 100.0) -> np.ndarray:
    """Pool rates (flexor, extensor per limb) for a trot from one half-center's outputs y (2,):
    LF and RH in phase, RF and LH in antiphase."""
    a = scale * y
    return np.concatenate([a, a[::-1], a[::-1], a])


def test_the_rat_walks_forward_at_the_frequency_of_its_drive():
    p = MatsuokaParameters(tau_r=0.05, tau_a=0.1)
    t, y = simulate(p, 3.0, 1e-3)
    drive_hz = measured_frequency(t, y[:, 0] - y[:, 1], skip=0.5)
    body = RodentBody()
    x0 = body.position()[0]
    q, ts = [], []
    for k in range(0, len(t), 10):
        body.step(trot_rates(y[k]), 0.01)
        q.append(body.joint_positions())
        ts.append(body.time)
    q, ts = np.array(q), np.array(ts)
    assert body.position()[0] - x0 > 0.3                 # metres in 3 s
    for k in range(len(LIMBS)):                           # proximal joints step with the drive
        assert measured_frequency(ts, q[:, k], skip=0.5) == pytest.approx(drive_hz, rel=0.02)
    # no drive, no walking (once the rat has settled into its posture)
    still = RodentBody()
    still.step(np.zeros(8), 0.5)
    x0 = still.position()[0]
    still.step(np.zeros(8), 1.0)
    assert abs(still.position()[0] - x0) < 0.02


@pytest.fixture(scope="module")
def loops(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop")
    out = {}
    for ranks in (1, 2):
        p = run_dtb(["closed-loop", str(MOTOR_LOOP), "--duration", "2 s", "--out", str(d / f"r{ranks}"),
                     "--ranks", str(ranks), "-q"], timeout=600)
        assert p.returncode == 0, p.stderr
        out[ranks] = d / f"r{ranks}"
    return out


def test_closed_loop_moves_the_rat_at_the_cpg_frequency(loops):
    out = loops[1]
    s = json.loads((out / "closed_loop.json").read_text())
    assert s["distance_forward_m"] > 0.2
    assert s["stepping_frequency_mean_hz"] == pytest.approx(s["cpg_frequency_hz"], rel=0.05)
    for f in s["stepping_frequency_hz"].values():
        assert f == pytest.approx(s["cpg_frequency_hz"], rel=0.05)
    # lockstep over the bridge: one body control period per motor message, every one answered
    assert s["control_periods"] == 200 and s["body_messages_in"] == 200 and s["bridge_sent"] == 200
    assert s["bridge_received"] >= 199 and s["body_bad_messages"] == 0
    assert (out / "closed_loop.png").stat().st_size > 10_000
    with h5py.File(out / "body.h5") as f:
        assert f["joints/position"].shape == (200, 8) and f["torso/position"].shape == (200, 3)
        assert list(f["joints/position"].attrs["names"])[:2] == ["shoulder_L", "shoulder_R"]
        contacts = f["contacts"][()]
        assert (contacts >= 0).all() and (contacts[:, 2:] > 0.01).mean() > 0.3   # hind paws carry weight
    with h5py.File(out / "run.h5") as f:
        assert f["cpg/y"].shape[1:] == (100, 2)


def test_closed_loop_is_the_same_on_two_ranks(loops):
    with h5py.File(loops[1] / "body.h5") as a, h5py.File(loops[2] / "body.h5") as b:
        np.testing.assert_array_equal(a["motor"][()], b["motor"][()])
        np.testing.assert_array_equal(a["torso/position"][()], b["torso/position"][()])


def test_body_without_a_server_is_a_clear_error(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = run_dtb(["body", "--port", str(port), "--connect-timeout", "1 s", "--out", str(tmp_path / "b.h5")])
    assert p.returncode == 2
    assert "no rosbridge server" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "b.h5").exists()


def test_closed_loop_needs_a_bridge_section(tmp_path):
    cfg = tmp_path / "nobridge.toml"
    text = MOTOR_LOOP.read_text()
    cfg.write_text(text[:text.index("[bridge]")])
    p = run_dtb(["closed-loop", str(cfg), "--out", str(tmp_path / "o")])
    assert p.returncode == 2 and "needs a [bridge] section" in p.stderr and "Traceback" not in p.stderr
