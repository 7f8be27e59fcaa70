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


def test_joint_commands_replace_the_mapping_for_named_actuators():
    body = RodentBody()
    body.command(["shoulder_L"], [1.0])
    body.step(np.zeros(8), 0.5)
    up = body.joint_positions()[0]
    body.command(["shoulder_L"], [-1.0])
    body.step(np.zeros(8), 0.5)
    down = body.joint_positions()[0]
    assert up - down > 0.3                      # rad: the servo follows the command
    body.command(["shoulder_L"], [])             # back to the spinal mapping
    assert not body.overrides
    with pytest.raises(ValueError, match="unknown actuator 'tail'"):
        body.command(["tail"], [0.0])


def test_body_node_speaks_ros_topics(tmp_path):
    """dtb body (a roslibpy client) publishes joint states, pose and contacts and obeys joint
    commands, against our server hosted here."""
    import subprocess
    import sys
    import time
    from bridges.rosbridge import RosbridgeServer
    server = RosbridgeServer("127.0.0.1", 0).start_in_thread()
    seen = {"joints": [], "pose": [], "sensory": []}
    server.on("/dtb/body/joint_states", seen["joints"].append)
    server.on("/dtb/body/pose", seen["pose"].append)
    server.on("/dtb/sensory", seen["sensory"].append)
    body = subprocess.Popen([sys.executable, "-m", "dtb", "body", "--port", str(server.port), "--mode", "realtime",
                             "--duration", "1.5 s", "--out", str(tmp_path / "b.h5"), "-q"], cwd=ROOT)
    try:
        deadline = time.time() + 60
        while not seen["joints"] and time.time() < deadline:
            time.sleep(0.05)
        server.publish("/dtb/body/joint_command", {"name": ["shoulder_L"], "position": [1.0]}, "sensor_msgs/JointState")
        assert body.wait(timeout=60) == 0
    finally:
        if body.poll() is None:
            body.kill()
        server.stop()
    assert len(seen["joints"]) > 100 and len(seen["pose"]) > 100 and len(seen["sensory"]) > 100
    last = seen["joints"][-1]
    assert last["name"][0] == "shoulder_L" and last["position"][0] > 0.3     # followed the command
    assert set(seen["pose"][-1]["position"]) == {"x", "y", "z"} and len(seen["sensory"][-1]["data"]) == 4
