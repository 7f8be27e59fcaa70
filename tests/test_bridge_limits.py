"""The rosbridge server under hostile clients (localhost only, bounded loops): a consumer that
never reads, unfinished fragments, topics left behind, repeated subscriptions, oversized
messages, browsers from other sites, clients that do not authenticate; and roslibpy never
printing a traceback."""

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT

roslibpy = pytest.importorskip("roslibpy")
from websockets.sync.client import connect  # noqa: E402

from bridges.auth import client_auth, mac  # noqa: E402
from bridges.protocol import Limits  # noqa: E402
from bridges.rosbridge import RosbridgeServer  # noqa: E402

FLOAT = "std_msgs/Float64"
TEXT = "std_msgs/String"


class BridgeProcess:
    """``dtb bridge`` in its own process, so that its memory is measured alone."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "dtb", "bridge", "--port", "0", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        assert m, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.port = int(m.group(1))
        self.url = f"ws://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        return err


def raw_client(port: int, frames: list[str]) -> socket.socket:
    """A websocket client that sends ``frames`` and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(1)
    assert b" 101 " in reply
    for text in frames:
        payload, mask = text.encode(), os.urandom(4)
        n = len(payload)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def round_trip(ws, topic: str) -> float:
    """Seconds from a publish to its echo on the same client's subscription."""
    t0 = time.perf_counter()
    ws.send(json.dumps({"op": "publish", "topic": topic, "msg": {"data": t0}}))
    while True:
        msg = json.loads(ws.recv(timeout=5))
        if msg.get("op") == "publish" and msg["msg"]["data"] == t0:
            return time.perf_counter() - t0


def test_a_consumer_that_never_reads_costs_bounded_memory():
    bridge = BridgeProcess()
    try:
        slow = raw_client(bridge.port, [json.dumps({"op": "subscribe", "topic": "/flood", "type": TEXT})])
        with connect(bridge.url) as good, connect(bridge.url, max_size=None) as flood:
            good.send(json.dumps({"op": "subscribe", "topic": "/ping", "type": FLOAT}))
            time.sleep(0.3)
            start = bridge.rss_mb()
            body = json.dumps({"op": "publish", "topic": "/flood", "msg": {"data": "x" * 10_000}})
            trips, peak = [], start
            for k in range(20_000):
                flood.send(body)
                if k % 1000 == 999:
                    trips.append(round_trip(good, "/ping"))
                    peak = max(peak, bridge.rss_mb())
        slow.close()
    finally:
        bridge.stop()
    assert peak - start < 50, (start, peak)
    # 20 round trips measured during the flood (before the outbox: 2.1 s). On a machine shared with
    # other jobs the OS can hold the server back for a time slice now and then, so the bounds are
    # on the median and on 18 of 20; every one stays below a second. (18 of 20 below 0.1 s failed
    # once at 0.11 s with two benchmark processes on this machine's two cores, median 7 ms.)
    trips.sort()
    assert trips[10] < 0.02 and trips[-3] < 0.25 and trips[-1] < 1.0, trips


def test_unfinished_fragments_are_capped_server_wide():
    bridge = BridgeProcess()
    try:
        start = bridge.rss_mb()
        part = "x" * 2**20
        stack = contextlib.ExitStack()
        clients = [stack.enter_context(connect(bridge.url, max_size=None)) for _ in range(3)]
        for c in clients:
            c.send(json.dumps({"op": "set_level", "level": "error"}))
        refused = 0
        for m in range(16):                             # 16 messages of 10 MB per client, never finished
            for c in clients:
                for num in range(10):
                    c.send(json.dumps({"op": "fragment", "id": f"m{m}", "data": part, "num": num, "total": 11}))
        for c in clients:
            c.send(json.dumps({"op": "set_level", "level": "none"}))
            c.send(json.dumps({"op": "subscribe", "topic": "/sync", "type": FLOAT}))
        time.sleep(1.0)
        peak = bridge.rss_mb()
        for c in clients:
            while True:
                try:
                    refused += "unfinished fragmented messages" in json.loads(c.recv(timeout=0.5))["msg"]
                except TimeoutError:
                    break
        stack.close()
    finally:
        bridge.stop()
    assert refused > 0                                   # the cap was hit, and said so
    assert peak - start < Limits.reassembly_bytes / 2**20 + 40, (start, peak)


@pytest.fixture()
def server():
    s = RosbridgeServer("127.0.0.1", 0, Limits(fragment_timeout=0.5)).start_in_thread()
    yield s
    s.stop()


def wait_for(cond, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_fragments_expire_by_the_wall_clock(server):
    with connect(f"ws://127.0.0.1:{server.port}") as ws:
        ws.send(json.dumps({"op": "fragment", "id": "a", "data": "x" * 1000, "num": 0, "total": 2}))
        assert wait_for(lambda: server.protocol.reassembly_bytes == 1000)
        assert wait_for(lambda: server.protocol.reassembly_bytes == 0, timeout=4)     # no further fragment needed
        assert not any(c.fragments for c in server.clients.values())


def test_topics_are_forgotten_when_their_clients_leave(server):
    with connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        for k in range(100):
            ws.send(json.dumps({"op": "advertise", "topic": f"/big{k}", "type": TEXT}))
            ws.send(json.dumps({"op": "publish", "topic": f"/big{k}", "msg": {"data": "x" * 2**20}}))
        assert wait_for(lambda: sum(t.startswith("/big") for t in server.topics) == 100)
        # nobody listens in the hosting process: the bridge keeps no copy of the messages
        assert all(server.topics[f"/big{k}"].latest is None for k in range(100))
    assert wait_for(lambda: not any(t.startswith("/big") for t in server.topics))


def test_one_delivery_per_client_whatever_the_subscription_ids(server):
    with connect(f"ws://127.0.0.1:{server.port}") as ws:
        ws.send(json.dumps({"op": "set_level", "level": "error"}))
        for k in range(150):
            ws.send(json.dumps({"op": "subscribe", "topic": "/once", "type": FLOAT, "id": f"s{k}"}))
        errors = []
        while True:
            try:
                errors.append(json.loads(ws.recv(timeout=0.5)))
            except TimeoutError:
                break
        assert len(errors) == 50 and "more than 100 subscriptions" in errors[0]["msg"]   # capped at 100 ids
        server.publish("/once", {"data": 1.0}, FLOAT)
        got = [json.loads(ws.recv(timeout=5))]
        with pytest.raises(TimeoutError):
            got.append(ws.recv(timeout=0.5))
        assert got[0]["msg"] == {"data": 1.0}
        ws.send(json.dumps({"op": "unsubscribe", "topic": "/once", "id": "s0"}))
        server.publish("/once", {"data": 2.0}, FLOAT)
        assert json.loads(ws.recv(timeout=5))["msg"] == {"data": 2.0}      # the other ids still deliver


def test_messages_above_the_size_limit_close_the_connection():
    s = RosbridgeServer("127.0.0.1", 0, Limits(max_message_size=4096)).start_in_thread()
    try:
        with connect(f"ws://127.0.0.1:{s.port}", max_size=None) as ws:
            ws.send(json.dumps({"op": "publish", "topic": "/t", "msg": {"data": "x" * 200_000}}))
            with pytest.raises(Exception) as e:
                ws.recv(timeout=5)
            assert "1009" in str(e.value) or "too big" in str(e.value)
        with connect(f"ws://127.0.0.1:{s.port}") as ws:     # fragments add up to the same limit
            ws.send(json.dumps({"op": "set_level", "level": "error"}))
            for num in range(3):
                ws.send(json.dumps({"op": "fragment", "id": "f", "data": "y" * 2000, "num": num, "total": 4}))
            assert "exceeds 4096 bytes" in json.loads(ws.recv(timeout=5))["msg"]
    finally:
        s.stop()


def test_browser_origins_are_refused_unless_allowed():
    s = RosbridgeServer("127.0.0.1", 0, allowed_origins=("http://localhost:8000",)).start_in_thread()
    try:
        with pytest.raises(Exception) as e:
            connect(f"ws://127.0.0.1:{s.port}", origin="http://evil.example")
        assert "403" in str(e.value)
        with connect(f"ws://127.0.0.1:{s.port}", origin="http://localhost:8000") as ws:
            ws.send(json.dumps({"op": "subscribe", "topic": "/ok", "type": FLOAT}))
            assert wait_for(lambda: s.subscribers("/ok") == 1)
        with connect(f"ws://127.0.0.1:{s.port}") as ws:           # no Origin header: not a browser
            ws.send(json.dumps({"op": "subscribe", "topic": "/ok2", "type": FLOAT}))
            assert wait_for(lambda: s.subscribers("/ok2") == 1)
    finally:
        s.stop()


SECRET = "0123456789abcdef-secret"


def auth_op(secret: str = SECRET, t: float | None = None) -> dict:
    t = int(time.time()) if t is None else int(t)
    end = t + 60
    return {"op": "auth", "mac": mac(secret, "10.0.0.1", "10.0.0.2", "r4nd", t, "admin", end), "client": "10.0.0.1",
            "dest": "10.0.0.2", "rand": "r4nd", "t": {"secs": t, "nsecs": 0}, "level": "admin", "end": end}


def test_authentication_is_required_when_a_secret_is_set():
    s = RosbridgeServer("127.0.0.1", 0, auth_secret=SECRET).start_in_thread()
    url = f"ws://127.0.0.1:{s.port}"
    try:
        for first in (auth_op("another-secret-0123456789"), auth_op(t=time.time() - 60)):
            with connect(url) as ws:
                ws.send(json.dumps(first))
                with pytest.raises(Exception) as e:
                    ws.recv(timeout=5)
                assert "1008" in str(e.value)
        # what comes before the auth is held, not done, and done once the client authenticates
        # (a client's own order, call before auth, must not break it); a flood of it closes
        with connect(url) as ws:
            ws.send(json.dumps({"op": "subscribe", "topic": "/x", "type": FLOAT}))
            ws.send(json.dumps({"op": "call_service", "service": "rosapi/topics", "id": "early"}))
            time.sleep(0.3)
            assert s.subscribers("/x") == 0
            ws.send(json.dumps(auth_op()))
            assert wait_for(lambda: s.subscribers("/x") == 1)
            reply = json.loads(ws.recv(timeout=10))
            assert reply["op"] == "service_response" and reply["id"] == "early" and "/x" in reply["values"]["topics"]
        with connect(url) as ws:
            for k in range(40):
                ws.send(json.dumps({"op": "subscribe", "topic": f"/flood{k}", "type": FLOAT}))
            with pytest.raises(Exception) as e:
                ws.recv(timeout=5)
            assert "1008" in str(e.value)
        # roslibpy authenticates the same way (as dtb body does with --auth-secret)
        ros = roslibpy.Ros(host="127.0.0.1", port=s.port)
        ros.authenticate(**client_auth(SECRET, "127.0.0.1"))
        ros.run(timeout=10)
        roslibpy.set_rosapi_timeout(20)     # its default, 3 s, timed out once under full load (CI-like)
        assert ros.get_topics() is not None
        ros.close()
    finally:
        s.stop()


ROSLIBPY_CLIENT = """
import sys, time, roslibpy
ros = roslibpy.Ros(host="127.0.0.1", port=int(sys.argv[1]))
ros.run(timeout=10)
got = []
roslibpy.Topic(ros, "/chat", "std_msgs/String").subscribe(got.append)
pub = roslibpy.Topic(ros, "/chat", "std_msgs/String")
pub.advertise()
time.sleep(0.2)
pub.publish(roslibpy.Message({"data": "hello"}))
pub.publish(roslibpy.Message({"data": 5}))              # a mistake: logged by the server, as rosbridge_suite does
roslibpy.Topic(ros, "/odd", "no_such/Type").advertise() # refused
print(sorted(ros.get_topics()))
end = time.time() + 5
while not got and time.time() < end:
    time.sleep(0.05)
print("received", [m["data"] for m in got])
ros.close()
"""


def test_roslibpy_prints_no_traceback():
    s = RosbridgeServer("127.0.0.1", 0).start_in_thread()
    try:
        p = subprocess.run([sys.executable, "-c", ROSLIBPY_CLIENT, str(s.port)], capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
    finally:
        s.stop()
    assert p.returncode == 0, p.stderr
    assert "received ['hello']" in p.stdout and "/chat" in p.stdout
    assert "Traceback" not in p.stderr and "No handler registered" not in p.stderr, p.stderr


def test_bridge_section_reads_the_security_settings(tmp_path):
    from dtb.errors import ConfigError
    from dtb.spec import load_spec
    text = """
[simulation]
duration = "10 ms"
[[populations]]
name = "M"
size = 10
kind = "excitatory"
[[populations]]
name = "S"
size = 10
kind = "excitatory"
[[stimuli]]
type = "poisson"
population = "S"
rate = "0 Hz"
weight = "1 nS"
[bridge]
motor = ["M"]
sensory = ["S"]
auth_secret = "secret.txt"
allow_origin = ["http://localhost:8000"]
"""
    cfg = tmp_path / "net.toml"
    cfg.write_text(text)
    spec = load_spec(cfg)
    assert spec.bridge.auth_secret == str(tmp_path / "secret.txt")
    assert spec.bridge.allow_origin == ("http://localhost:8000",)
    cfg.write_text(text.replace('allow_origin = ["http://localhost:8000"]', "allow_origin = [3]"))
    with pytest.raises(ConfigError, match="bridge.allow_origin"):
        load_spec(cfg)
