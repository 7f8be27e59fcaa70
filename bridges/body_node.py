"""The body as a rosbridge client (its own process): ``dtb body``.

Topics (defaults; ``/dtb/body`` is ``prefix``):

* subscribes ``/dtb/motor`` (std_msgs/Float64MultiArray): 8 motor-pool rates (Hz), flexor and
  extensor of LF, RF, LH, RH (see :mod:`bridges.body`);
* subscribes ``/dtb/body/joint_command`` (sensor_msgs/JointState): for your own controllers,
  ``name`` lists actuators (any of the rat's 38) and ``position`` their ctrl in [-1, 1], which
  replaces the spinal mapping for them (an empty ``position`` hands them back); applied from
  the next period;
* publishes, after every control period of physics,
  ``/dtb/sensory`` (std_msgs/Float64MultiArray): paw contact force / body weight, LF, RF, LH, RH;
  ``/dtb/body/joint_states`` (sensor_msgs/JointState): the 8 driven joints (rad, rad/s);
  ``/dtb/body/pose`` (geometry_msgs/Pose): torso position (m) and orientation.

Modes: ``lockstep``: one control period of physics per motor message (the brain waits for the
sensory reply, so brain and body share one clock); ``realtime``: the body steps on the wall
clock and applies the latest motor message. The node ends when the server goes away, after
``duration`` of body time, or on SIGINT/SIGTERM, and then writes its trajectory file (HDF5,
atomically):

    /t                  (n,) body time at the end of each control period, s
    /joints/position    (n, 8) rad; attr names
    /joints/velocity    (n, 8) rad/s
    /torso/position     (n, 3) m (x forward, y left, z up)
    /torso/orientation  (n, 4) quaternion w, x, y, z
    /contacts           (n, 4) paw contact force / body weight (LF, RF, LH, RH)
    /motor              (n, 8) motor rates applied (Hz)
    attrs: period_s, mode, support, mapping (JSON), messages_in, messages_out, step_wall_s
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bridges.body import LIMBS, RodentBody, SpinalMapping
from dtb.files import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BodySettings:
    host: str = "127.0.0.1"
    port: int = 9090
    period: float = 0.01             # s of physics per control period
    mode: str = "lockstep"
    motor_topic: str = "/dtb/motor"
    sensory_topic: str = "/dtb/sensory"
    prefix: str = "/dtb/body"
    support: float = 0.6
    duration: float = float("inf")   # s of body time
    connect_timeout: float = 60.0    # s to wait for the server
    auth_secret: str | None = None   # rosauth secret, for a server that requires authentication


class Trajectory:
    """Readings after each control period: time, joints, motor, sensory, and the body's extra
    rows (``body.record()``: dataset path -> values)."""

    def __init__(self):
        self.rows: dict[str, list] = {k: [] for k in ("t", "q", "qd", "motor", "sensory")}
        self.extra: dict[str, list] = {}

    def add(self, body, motor: np.ndarray, sensory: np.ndarray) -> None:
        r = self.rows
        r["t"].append(body.time)
        r["q"].append(body.joint_positions())
        r["qd"].append(body.joint_velocities())
        r["motor"].append(np.asarray(motor, float))
        r["sensory"].append(np.asarray(sensory, float))
        for key, value in body.record().items():
            self.extra.setdefault(key, []).append(np.asarray(value, float))

    def write(self, path: Path, body, attrs: dict) -> None:
        import h5py

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        r = self.rows
        n = len(r["t"])

        def arr(rows, width):
            return np.array(rows, dtype=float).reshape(n, width)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("t", data=np.array(r["t"], dtype=float))
            j = f.create_group("joints")
            nj = len(body.joint_names)
            j.create_dataset("position", data=arr(r["q"], nj)).attrs["names"] = body.joint_names
            j.create_dataset("velocity", data=arr(r["qd"], nj))
            f.create_dataset("motor", data=arr(r["motor"], len(body.motor_labels))).attrs["labels"] = \
                list(body.motor_labels)
            f.create_dataset("sensory", data=arr(r["sensory"], len(body.sensory_labels))).attrs["labels"] = \
                list(body.sensory_labels)
            for key, rows in self.extra.items():
                f.create_dataset(key, data=np.array(rows, dtype=float).reshape(n, -1))
            if "contacts" in f:
                f["contacts"].attrs["limbs"] = list(LIMBS)
            f.attrs["body"] = body.kind
            for k, v in attrs.items():
                f.attrs[k] = v


def read_motor(msg: dict, labels) -> np.ndarray:
    """The rates of a motor message, one per label of the body's motor inputs; ValueError if it
    has another length."""
    data = np.asarray(msg.get("data", []), dtype=float)
    if data.shape != (len(labels),):
        raise ValueError(f"motor message with {data.size} values; the body needs {len(labels)} "
                         f"({', '.join(labels)})")
    return data


def run_body(settings: BodySettings, out: Path | None, mapping: SpinalMapping = SpinalMapping(),
             body=None) -> dict:
    """Connect, run until the brain leaves (or duration / a signal), write ``out``; returns stats.
    ``body``: any body object (default: the rat with ``mapping``)."""
    import roslibpy

    if body is None:
        body = RodentBody(support=settings.support, mapping=mapping)
    ros = _connect(roslibpy, settings)
    inbox: queue.Queue = queue.Queue()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ros.on("close", lambda *_: stop.set())
    motor_sub = roslibpy.Topic(ros, settings.motor_topic, "std_msgs/Float64MultiArray")
    motor_sub.subscribe(inbox.put)
    commands: queue.Queue = queue.Queue()
    roslibpy.Topic(ros, settings.prefix + "/joint_command", "sensor_msgs/JointState").subscribe(commands.put)
    pub = {name: roslibpy.Topic(ros, topic, kind) for name, topic, kind in (
        ("sensory", settings.sensory_topic, "std_msgs/Float64MultiArray"),
        ("joints", settings.prefix + "/joint_states", "sensor_msgs/JointState"),
        ("pose", settings.prefix + "/pose", "geometry_msgs/Pose"))}
    for t in pub.values():
        t.advertise()
    traj = Trajectory()
    n_motor = len(body.motor_labels)
    motor = np.zeros(n_motor)
    stats = {"messages_in": 0, "messages_out": 0, "bad_messages": 0, "step_wall_s": 0.0}
    log.info("body: %s (%d joints driven), %s mode, %.0f ms control period, ws://%s:%d",
             body.kind, len(body.joint_names), settings.mode, settings.period * 1e3, settings.host, settings.port)
    next_tick = time.perf_counter()
    while not stop.is_set() and body.time < settings.duration - 1e-9 and ros.is_connected:
        if settings.mode == "lockstep":
            try:
                msg = inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            motor = _accept(msg, motor, body.motor_labels, stats)
        else:
            while True:
                try:
                    motor = _accept(inbox.get_nowait(), motor, body.motor_labels, stats)
                except queue.Empty:
                    break
        while not commands.empty():
            _command(body, commands.get_nowait(), stats)
        t0 = time.perf_counter()
        body.step(motor, settings.period)
        sensory = body.sensory()
        stats["step_wall_s"] += time.perf_counter() - t0
        traj.add(body, motor, sensory)
        _publish(pub, body, sensory, stats)
        if settings.mode == "realtime":
            next_tick += settings.period
            time.sleep(max(0.0, next_tick - time.perf_counter()))
    try:
        ros.close()
    except Exception:
        pass
    stats.update(steps=len(traj.rows["t"]), body_time_s=body.time)
    if out is not None:
        attrs = {"period_s": settings.period, "mode": settings.mode, **stats}
        if body.kind == "rodent":
            attrs.update(support=settings.support, mapping=json.dumps(asdict(mapping)))
        else:
            attrs.update(perturbation=json.dumps({k: v for k, v in asdict(body.perturbation).items()}),
                         rate_full=body.rate_full)
        traj.write(out, body, attrs)
        log.info("body: %d control periods (%.2f s), wrote %s", stats["steps"], body.time, out)
    return stats


def _connect(roslibpy, s: BodySettings):
    deadline = time.monotonic() + s.connect_timeout
    while True:
        ros = roslibpy.Ros(host=s.host, port=s.port)
        if s.auth_secret:
            from bridges.auth import client_auth
            ros.authenticate(**client_auth(s.auth_secret, s.host))
        try:
            ros.run(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            _no_delay(ros)
            return ros
        except Exception:
            try:
                ros.close()
            except Exception:
                pass
            if time.monotonic() > deadline:
                from dtb.errors import DtbError
                raise DtbError(f"body: no rosbridge server at ws://{s.host}:{s.port} within {s.connect_timeout:g} s "
                               f"(is the brain running with a [bridge] section?)") from None
            time.sleep(0.5)


def _no_delay(ros) -> None:
    """Switch off Nagle's algorithm on roslibpy's socket: our messages are small and come in
    bursts from another thread than the reactor's, and Nagle + delayed ACKs would hold each
    burst's second message for ~40 ms."""
    from twisted.internet import reactor

    def _set(proto):
        reactor.callFromThread(proto.transport.setTcpNoDelay, True)
    ros.factory.on_ready(_set)


def _command(body, msg: dict, stats: dict) -> None:
    stats["commands"] = stats.get("commands", 0) + 1
    try:
        body.command(list(msg.get("name", [])), [float(v) for v in msg.get("position", [])])
    except (ValueError, TypeError) as e:
        stats["bad_messages"] += 1
        log.warning("body: joint command ignored: %s", e)


def _accept(msg: dict, current: np.ndarray, labels, stats: dict) -> np.ndarray:
    stats["messages_in"] += 1
    try:
        return read_motor(msg, labels)
    except (ValueError, TypeError) as e:
        stats["bad_messages"] += 1
        if stats["bad_messages"] == 1:
            log.warning("body: %s (keeping the previous command)", e)
        return current


def _publish(pub: dict, body, sensory: np.ndarray, stats: dict) -> None:
    import roslibpy

    # the sensory message first: in lockstep it releases the brain
    pub["sensory"].publish(roslibpy.Message({
        "layout": {"dim": [{"label": ",".join(body.sensory_labels), "size": len(sensory), "stride": len(sensory)}],
                   "data_offset": 0},
        "data": [float(c) for c in sensory]}))
    pub["joints"].publish(roslibpy.Message({
        "name": body.joint_names, "position": body.joint_positions().tolist(),
        "velocity": body.joint_velocities().tolist(), "effort": []}))
    stats["messages_out"] += 2
    if hasattr(body, "position"):
        p, q = body.position(), body.orientation()
        pub["pose"].publish(roslibpy.Message({"position": {"x": p[0], "y": p[1], "z": p[2]},
                                              "orientation": {"w": q[0], "x": q[1], "y": q[2], "z": q[3]}}))
        stats["messages_out"] += 1
