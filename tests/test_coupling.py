"""dtb run with [bridge]: the twin publishes motor rates every control period and, in lockstep,
waits for the body's sensory message, whose values set a sensory population's input; with no
body, lockstep ends with a clear error."""

import json
import socket
import threading
import time

import h5py
import pytest

from conftest import SMALL_NETWORK, run_dtb
from dtb.results import read_spikes

pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port: int, timeout: str = "20 s") -> str:
    return SMALL_NETWORK + f"""
[[stimuli]]
type = "poisson"
population = "A_E"
rate = "0 Hz"
weight = "1.2 nS"

[bridge]
motor = ["B_E", "B_I"]
sensory = ["A_E"]
period = "10 ms"
rate_per_unit = "1000 Hz"
port = {port}
timeout = "{timeout}"
"""


def body(port: int, log: list, stop: threading.Event) -> None:
    """A stand-in body: for every motor message, a sensory message; 0 for the first 15, then 1."""
    deadline = time.time() + 60
    while time.time() < deadline and not stop.is_set():
        try:
            ws = connect(f"ws://127.0.0.1:{port}")
            break
        except OSError:
            time.sleep(0.05)
    else:
        return
    with ws:
        ws.send(json.dumps({"op": "subscribe", "topic": "/dtb/motor", "type": "std_msgs/Float64MultiArray"}))
        ws.send(json.dumps({"op": "advertise", "topic": "/dtb/sensory", "type": "std_msgs/Float64MultiArray"}))
        while not stop.is_set():
            try:
                msg = json.loads(ws.recv(timeout=1))
            except TimeoutError:
                continue
            except Exception:
                return
            if msg.get("op") != "publish":
                continue
            log.append(msg["msg"])
            value = 0.0 if len(log) <= 15 else 1.0
            ws.send(json.dumps({"op": "publish", "topic": "/dtb/sensory", "msg": {"data": [value]}}))


@pytest.mark.parametrize("ranks", [1, 2])
def test_lockstep_loop_with_a_body(tmp_path, ranks):
    port = free_port()
    cfg = tmp_path / "net.toml"
    cfg.write_text(config(port))
    log, stop = [], threading.Event()
    t = threading.Thread(target=body, args=(port, log, stop), daemon=True)
    t.start()
    p = run_dtb(["run", str(cfg), "--out", str(tmp_path / "out"), "--no-plots", "-q"], ranks=ranks)
    stop.set()
    t.join(5)
    assert p.returncode == 0, p.stderr
    # 300 ms at 10 ms: 30 motor messages, each the rates of B_E and B_I
    assert len(log) == 30
    assert log[0]["layout"]["dim"][0]["label"] == "B_E,B_I" and len(log[0]["data"]) == 2
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["bridge_sent"] == 30 and s["bridge_received"] == 30
    # the motor rates published agree with the spikes recorded
    gids, t_ms = read_spikes(tmp_path / "out" / "run.h5", unit="ms")
    with h5py.File(tmp_path / "out" / "run.h5") as f:
        pops = {r["name"].decode() if isinstance(r["name"], bytes) else r["name"]: (int(r["first_gid"]), int(r["size"]))
                for r in f["network/populations"][()]}
    first, size = pops["B_E"]
    in_b = (gids >= first) & (gids < first + size)
    published = sum(m["data"][0] for m in log) * 0.01 * size
    assert published == pytest.approx(in_b[t_ms < 300 - 1e-9].sum(), abs=3)
    # the sensory value 1 (from the 16th period, t = 150 ms) adds 1000 Hz of input to A_E
    first, size = pops["A_E"]
    a = (gids >= first) & (gids < first + size)
    before = a[(t_ms > 50) & (t_ms < 150)].sum()
    after = a[(t_ms > 170) & (t_ms < 270)].sum()
    assert after > 1.5 * before


def test_lockstep_without_a_body_is_a_clear_error(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(config(free_port(), timeout="1 s"))
    p = run_dtb(["run", str(cfg), "--out", str(tmp_path / "out"), "--no-plots", "-q"])
    assert p.returncode == 2
    assert "lockstep: no subscriber to /dtb/motor" in p.stderr and "is the body running" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "out" / "run.h5").exists()
