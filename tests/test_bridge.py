"""The rosbridge v2 server: roslibpy as a real client (topics, services, rosapi), 1,000 malformed
frames each answered by a status error (the client asked for them) while a well-behaved client
keeps working, fragments, throttling, status levels, and clients that disconnect mid-message
leaving nothing behind. Hostile clients: tests/test_bridge_limits.py."""

import json
import time

import pytest

roslibpy = pytest.importorskip("roslibpy")
from websockets.sync.client import connect  # noqa: E402

from bridges.rosbridge import RosbridgeServer  # noqa: E402

FLOATS = "std_msgs/Float64MultiArray"


@pytest.fixture(scope="module")
def server():
    s = RosbridgeServer("127.0.0.1", 0).start_in_thread()
    s.advertise_local_service("/dtb/status", "std_srvs/Trigger", lambda args: {"success": True, "message": "running"})
    s.on("/motor", lambda msg: None)
    yield s
    s.stop()


def ros_client(server):
    ros = roslibpy.Ros(host="127.0.0.1", port=server.port)
    ros.run(timeout=10)
    assert ros.is_connected
    return ros


def wait_for(cond, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_roslibpy_topics_and_services(server):
    a, b = ros_client(server), ros_client(server)
    got = []
    sub = roslibpy.Topic(b, "/motor", FLOATS)
    sub.subscribe(lambda m: got.append(m))
    pub = roslibpy.Topic(a, "/motor", FLOATS)
    pub.advertise()
    time.sleep(0.2)
    for k in range(5):
        pub.publish(roslibpy.Message({"data": [k, 2.0 * k]}))
    assert wait_for(lambda: len(got) == 5)
    assert got[-1]["data"] == [4.0, 8.0] and got[-1]["layout"] == {"dim": [], "data_offset": 0}
    assert server.latest("/motor")["data"] == [4.0, 8.0]           # the hosting process watches /motor (fixture)
    # the hosting process publishes (e.g. motor output) and clients receive it
    twist = []
    roslibpy.Topic(b, "/cmd_vel", "geometry_msgs/Twist").subscribe(lambda m: twist.append(m))
    time.sleep(0.2)
    server.publish("/cmd_vel", {"linear": {"x": 0.3}}, "geometry_msgs/Twist")
    assert wait_for(lambda: twist)
    assert twist[0]["linear"] == {"x": 0.3, "y": 0.0, "z": 0.0}
    # a service served by one client, called by another
    service = roslibpy.Service(a, "/add", "rospy_tutorials/AddTwoInts")

    def add(request, response):
        response["sum"] = request["a"] + request["b"]
        return True
    service.advertise(add)
    time.sleep(0.2)
    result = roslibpy.Service(b, "/add", "rospy_tutorials/AddTwoInts").call(roslibpy.ServiceRequest({"a": 2, "b": 40}),
                                                                           timeout=5)
    assert result["sum"] == 42
    # a service of the hosting process
    status = roslibpy.Service(b, "/dtb/status", "std_srvs/Trigger").call(roslibpy.ServiceRequest(), timeout=5)
    assert status["message"] == "running"
    # rosapi, as roslibpy looks around
    topics = b.get_topics()
    assert "/motor" in topics and "/cmd_vel" in topics
    assert b.get_topic_type("/motor") == FLOATS
    assert "/add" in b.get_services() and "/rosapi/topics" in b.get_services()
    assert b.get_service_type("/add") == "rospy_tutorials/AddTwoInts"
    service.unadvertise()
    pub.unadvertise()
    sub.unsubscribe()
    a.close()
    b.close()


def malformed_frames():
    """1,000 frames of many kinds of mistake and hostility."""
    kinds = [
        "{not json", "[1, 2, 3]", '"a string"', "42", "null", '{"id": 1}', '{"op": 7}', '{"op": "launch_missiles"}',
        '{"op": "publish"}', '{"op": "publish", "topic": "/typed", "msg": "text"}',
        '{"op": "publish", "topic": "/typed", "msg": {"data": "text"}}',
        '{"op": "publish", "topic": "/typed", "msg": {"data": 1.0, "extra": 1}}',
        '{"op": "publish", "topic": 5, "msg": {}}', '{"op": "subscribe", "topic": "/x", "throttle_rate": -1}',
        '{"op": "subscribe", "topic": "/x", "queue_length": "many"}', '{"op": "subscribe"}',
        '{"op": "unsubscribe", "topic": "/never"}', '{"op": "unadvertise", "topic": "/never"}',
        '{"op": "advertise", "topic": "/typed", "type": "std_msgs/String"}',
        '{"op": "call_service", "service": "/nope"}', '{"op": "call_service", "service": "/dtb/status", "args": 3}',
        '{"op": "service_response", "id": "forged", "values": {}}', '{"op": "set_level", "level": "loud"}',
        '{"op": "fragment", "id": "f", "data": "x", "num": 5, "total": 2}',
        '{"op": "fragment", "id": "g", "data": "x", "num": 0, "total": 100000000}',
        '{"op": "fragment", "id": [1], "data": "x", "num": 0, "total": 1}',
        '{"op": "fragment", "id": "h", "data": "{bad", "num": 0, "total": 1}',
        "[" * 100_000 + "]" * 100_000,
        '{"op": "advertise_service", "service": "", "type": "x"}', '{"op": "advertise", "topic": "/y"}',
        '{"op": "advertise", "topic": "/z", "type": "no_such/Type"}',
        '{"op": "publish", "topic": "/untyped", "msg": {}}',
    ]
    return [kinds[i % len(kinds)] for i in range(1000)]


def test_malformed_frames_get_status_errors_and_the_server_keeps_serving(server):
    good = ros_client(server)
    typed = roslibpy.Topic(good, "/typed", "std_msgs/Float64")
    typed.advertise()
    received = []
    roslibpy.Topic(good, "/echo", "std_msgs/String").subscribe(lambda m: received.append(m))
    time.sleep(0.2)
    frames = malformed_frames()
    errors = 0
    with connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        ws.send(json.dumps({"op": "set_level", "level": "error"}))      # status messages only on request
        for k, frame in enumerate(frames):
            ws.send(frame)
            reply = json.loads(ws.recv(timeout=5))
            if frame.startswith('{"op": "call_service"'):      # every call is answered, as rosbridge answers it
                assert reply["op"] == "service_response" and reply["result"] is False, (frame, reply)
            else:
                assert reply["op"] == "status" and reply["level"] == "error", (frame[:80], reply)
            errors += 1
            if k % 100 == 0:     # the well-behaved client is served throughout
                pub = roslibpy.Topic(good, "/echo", "std_msgs/String")
                pub.publish(roslibpy.Message({"data": f"still here {k}"}))
    assert errors == 1000
    assert wait_for(lambda: len(received) == 10)
    assert received[-1]["data"] == "still here 900"
    good.close()


def test_errors_carry_the_message_id_and_respect_the_level(server):
    with connect(f"ws://127.0.0.1:{server.port}") as ws:
        ws.send(json.dumps({"op": "publish", "id": "p16"}))              # no status unless asked (rosbridge_suite)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        ws.send(json.dumps({"op": "set_level", "level": "warning"}))
        ws.send(json.dumps({"op": "publish", "id": "p17"}))
        reply = json.loads(ws.recv(timeout=5))
        assert reply["id"] == "p17" and "missing field 'topic'" in reply["msg"] and reply["level"] == "error"
        ws.send(json.dumps({"op": "set_level", "level": "none"}))
        ws.send("{broken")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        ws.send(json.dumps({"op": "set_level", "level": "error"}))
        ws.send(json.dumps({"op": "advertise", "topic": "/custom", "type": "my_msgs/Thing", "id": "adv"}))
        reply = json.loads(ws.recv(timeout=5))
        assert reply["level"] == "error" and reply["id"] == "adv" and "unknown message type" in reply["msg"]
    assert "/custom" not in server.topics


def test_fragments_are_reassembled(server):
    with connect(f"ws://127.0.0.1:{server.port}") as sub, connect(f"ws://127.0.0.1:{server.port}") as pub:
        sub.send(json.dumps({"op": "subscribe", "topic": "/frag", "type": FLOATS}))
        time.sleep(0.1)
        whole = json.dumps({"op": "publish", "topic": "/frag", "msg": {"data": list(range(1000))}})
        parts = [whole[i:i + 700] for i in range(0, len(whole), 700)]
        for num in reversed(range(len(parts))):          # out of order
            pub.send(json.dumps({"op": "fragment", "id": "big", "data": parts[num], "num": num, "total": len(parts)}))
        msg = json.loads(sub.recv(timeout=5))
        assert msg["op"] == "publish" and msg["msg"]["data"][-1] == 999.0


def test_throttle_rate_and_queue_length(server):
    url = f"ws://127.0.0.1:{server.port}"
    with connect(url) as fast, connect(url) as queued:
        fast.send(json.dumps({"op": "subscribe", "topic": "/thr", "type": "std_msgs/Float64", "throttle_rate": 300}))
        queued.send(json.dumps({"op": "subscribe", "topic": "/thr", "type": "std_msgs/Float64", "throttle_rate": 100,
                                "queue_length": 2}))
        time.sleep(0.1)
        for k in range(20):
            server.publish("/thr", {"data": float(k)}, "std_msgs/Float64")
        time.sleep(0.6)

        def drain(ws):
            out = []
            while True:
                try:
                    out.append(json.loads(ws.recv(timeout=0.2))["msg"]["data"])
                except TimeoutError:
                    return out
        assert drain(fast) == [0.0]                       # the rest fell inside the 300 ms window, no queue
        assert drain(queued) == [0.0, 18.0, 19.0]         # the first, then the queue's two latest


def test_disconnect_mid_message_leaks_nothing(server):
    closed = server.stats["disconnections"]
    for k in range(20):
        with connect(f"ws://127.0.0.1:{server.port}") as ws:     # leaves with a fragment half-sent
            ws.send(json.dumps({"op": "subscribe", "topic": f"/leak{k}", "type": "std_msgs/String"}))
            ws.send(json.dumps({"op": "advertise_service", "service": f"/svc{k}", "type": "std_srvs/Trigger"}))
            ws.send(json.dumps({"op": "fragment", "id": "half", "data": '{"op": "pub', "num": 0, "total": 3}))
            time.sleep(0.02)

    def ours_left():      # clients of earlier tests may still be closing, so count only what these 20 made
        return (any(name.startswith("/svc") for name in list(server.services))
                or any(t.startswith("/leak") for c in list(server.clients.values()) for t in list(c.subscriptions))
                or any(c.fragments for c in list(server.clients.values())))
    # all 20 handlers have run to the end (not merely not started yet), then nothing of theirs is left
    assert wait_for(lambda: server.stats["disconnections"] >= closed + 20 and not ours_left(), timeout=20), \
        (server.stats, sorted(server.services), len(server.clients))
    # a call pending on a provider that disconnects is answered with an error
    with connect(f"ws://127.0.0.1:{server.port}") as provider, connect(f"ws://127.0.0.1:{server.port}") as caller:
        provider.send(json.dumps({"op": "advertise_service", "service": "/slow", "type": "std_srvs/Trigger"}))
        time.sleep(0.1)
        caller.send(json.dumps({"op": "call_service", "service": "/slow", "id": "c1"}))
        assert json.loads(provider.recv(timeout=5))["op"] == "call_service"
        provider.close()
        reply = json.loads(caller.recv(timeout=5))
        assert reply["op"] == "service_response" and reply["id"] == "c1" and reply["result"] is False
    assert wait_for(lambda: not server.pending_calls)


def test_names_resolve_as_ros_resolves_them_and_every_call_is_answered(server):
    """A relative name ("rosapi/topics", as roslibjs asks) is the global one; a subscriber gets
    its messages under the name it used; a call to a service that does not exist, or with bad
    arguments, is answered with result false and the error (rosbridge_suite's answer), so a
    client waiting for the response gets one."""
    a = ros_client(server)
    pub = roslibpy.Topic(a, "/relative_demo", "std_msgs/String")
    pub.advertise()
    with connect(f"ws://127.0.0.1:{server.port}") as ws:
        ws.send(json.dumps({"op": "subscribe", "topic": "relative_demo", "type": "std_msgs/String"}))
        ws.send(json.dumps({"op": "call_service", "service": "rosapi/topics", "id": "t"}))
        reply = json.loads(ws.recv(timeout=5))
        assert reply["op"] == "service_response" and reply["id"] == "t" and reply["result"] is True
        assert reply["service"] == "rosapi/topics" and "/relative_demo" in reply["values"]["topics"]
        time.sleep(0.2)
        pub.publish(roslibpy.Message({"data": "hello"}))
        got = json.loads(ws.recv(timeout=5))
        assert got["op"] == "publish" and got["topic"] == "relative_demo" and got["msg"] == {"data": "hello"}
        for k, (service, args) in enumerate((("/no/such", {}), ("rosapi/topics", 3))):
            ws.send(json.dumps({"op": "call_service", "service": service, "args": args, "id": f"c{k}"}))
            reply = json.loads(ws.recv(timeout=5))
            assert reply["op"] == "service_response" and reply["id"] == f"c{k}" and reply["result"] is False
            assert isinstance(reply["values"], str) and reply["values"]
    service = roslibpy.Service(a, "/no/such/service", "std_srvs/Trigger")
    with pytest.raises(Exception, match="does not exist"):
        service.call(roslibpy.ServiceRequest(), timeout=10)
