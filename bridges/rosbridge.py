"""A rosbridge v2 server (JSON over websockets), so that real ROS tooling (roslibjs, roslibpy, ROS
web tools) can publish sensory input to the twin and subscribe to its motor output.

Operations (rosbridge v2.0 protocol, ROSBRIDGE_PROTOCOL.md of rosbridge_suite):
``advertise`` / ``unadvertise`` / ``publish`` / ``subscribe`` (``throttle_rate`` ms,
``queue_length``) / ``unsubscribe``; ``advertise_service`` / ``unadvertise_service`` /
``call_service`` / ``service_response``; ``set_level``; ``fragment`` (reassembled; limits on
count and size); replies ``status`` (``level``, ``msg``, and the ``id`` of the offending message)
for every error, filtered by the client's level (default ``error``). Messages of the known types
(:mod:`bridges.messages`) are checked field by field. A malformed or hostile frame gets a status
error and never stops the server; a client that disconnects leaves nothing behind (its
subscriptions, advertisements, services, half-received fragments and pending calls go; callers
of its services get an error).

The process that hosts the server (dtb, a body model) talks to it in-process:
:meth:`RosbridgeServer.publish`, :meth:`RosbridgeServer.latest`, :meth:`RosbridgeServer.on`
and :meth:`RosbridgeServer.advertise_local_service`, thread-safe while the server runs in its own
thread (:meth:`start_in_thread`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from bridges import messages

log = logging.getLogger(__name__)

LEVELS = {"info": 0, "warning": 1, "error": 2, "none": 3}
MAX_FRAME_BYTES = 16 * 2**20          # one websocket frame
MAX_MESSAGE_BYTES = 64 * 2**20        # a reassembled fragmented message
MAX_FRAGMENTS = 100_000
MAX_PENDING_FRAGMENTED = 16           # messages being reassembled per client
FRAGMENT_TIMEOUT_S = 60.0
SERVICE_TIMEOUT_S = 30.0


class ProtocolError(Exception):
    """A bad message: becomes a status error to its sender."""


@dataclass
class Subscription:
    throttle_s: float = 0.0
    queue_length: int = 0
    last_sent: float = -1e30
    queue: collections.deque = field(default_factory=collections.deque)
    flush_scheduled: bool = False


@dataclass
class Client:
    cid: int
    send: Callable[[str], Any]                      # coroutine function
    level: int = LEVELS["error"]
    subscriptions: dict[str, dict[str, Subscription]] = field(default_factory=dict)   # topic -> sub id -> Subscription
    advertised: dict[str, set] = field(default_factory=dict)                         # topic -> advertise ids
    services: set = field(default_factory=set)
    fragments: dict[str, dict] = field(default_factory=dict)                         # id -> {total, parts, bytes, t}


@dataclass
class Topic:
    type: str | None = None
    latest: Any = None


class RosbridgeServer:
    """Bind to ``host:port`` (port 0: any free port, see :attr:`port` after start)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9090):
        self.host, self.port = host, port
        self.clients: dict[int, Client] = {}
        self.topics: dict[str, Topic] = {}
        self.services: dict[str, tuple[str, int | None, Callable | None]] = {}   # name -> (type, provider cid, local fn)
        self.pending_calls: dict[str, tuple[int | None, Any, str, Any]] = {}     # our id -> (caller, caller id, service, future)
        self._local_handlers: dict[str, list[Callable[[dict], None]]] = collections.defaultdict(list)
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.stats = collections.Counter()

    # ------------------------------------------------------------------ running
    async def serve(self) -> None:
        """Serve until cancelled."""
        import websockets
        self._loop = asyncio.get_running_loop()
        async with websockets.serve(self._connection, self.host, self.port, max_size=MAX_FRAME_BYTES,
                                    ping_interval=20, ping_timeout=20, close_timeout=1) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await asyncio.Future()

    def start_in_thread(self) -> "RosbridgeServer":
        """Run the server in a daemon thread; returns once it listens."""
        def _run():
            try:
                asyncio.run(self.serve())
            except asyncio.CancelledError:
                pass
        self._thread = threading.Thread(target=_run, name="rosbridge", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the rosbridge server did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(self._loop)])
        if self._thread is not None:
            self._thread.join(5)

    # --------------------------------------------------------- in-process API
    def publish(self, topic: str, msg: dict, type_name: str | None = None) -> None:
        """Publish from the hosting process (thread-safe)."""
        if type_name is not None:
            msg = messages.validate(type_name, msg)
        if self._loop is None:
            raise RuntimeError("the server is not running")
        self._loop.call_soon_threadsafe(self._deliver, topic, msg, type_name, None)

    def latest(self, topic: str) -> Any:
        """The last message published on ``topic`` (by anyone), or None."""
        t = self.topics.get(topic)
        return None if t is None else t.latest

    def subscribers(self, topic: str) -> int:
        """How many clients subscribe to ``topic`` now."""
        return sum(1 for c in list(self.clients.values()) if c.subscriptions.get(topic))

    def on(self, topic: str, fn: Callable[[dict], None]) -> None:
        """Call ``fn(msg)`` (in the server thread) for every message published on ``topic``."""
        self._local_handlers[topic].append(fn)

    def advertise_local_service(self, name: str, type_name: str, fn: Callable[[dict], dict]) -> None:
        """Serve ``name`` from the hosting process: ``fn(args) -> values``."""
        self.services[name] = (type_name, None, fn)

    # ------------------------------------------------------------ connections
    async def _connection(self, ws) -> None:
        import websockets
        cid = next(self._ids)

        async def send(text: str) -> None:
            try:
                await ws.send(text)
            except websockets.ConnectionClosed:
                pass
        client = Client(cid, send)
        self.clients[cid] = client
        self.stats["connections"] += 1
        try:
            async for frame in ws:
                await self._frame(client, frame)
        except websockets.ConnectionClosed:
            pass
        except Exception:     # never let one client take the server down
            log.exception("client %d: unexpected error", cid)
        finally:
            self._drop(client)

    def _drop(self, client: Client) -> None:
        """Forget everything ``client`` held. It leaves ``clients`` last, so another thread that sees
        it gone also sees its services, subscriptions and calls gone."""
        client.fragments.clear()
        client.subscriptions.clear()
        for name in list(client.services):
            self.services.pop(name, None)
        for our_id, (caller, caller_id, service, _) in list(self.pending_calls.items()):
            if caller == client.cid:                 # its own calls: nobody to answer
                del self.pending_calls[our_id]
            elif service in client.services:        # calls it was serving: the callers get an error
                del self.pending_calls[our_id]
                caller_client = self.clients.get(caller)
                if caller_client is not None:
                    asyncio.ensure_future(caller_client.send(json.dumps(
                        {"op": "service_response", "id": caller_id, "service": service, "values": {},
                         "result": False})))
        client.services.clear()
        client.advertised.clear()
        self.clients.pop(client.cid, None)
        self.stats["disconnections"] += 1

    async def _frame(self, client: Client, frame) -> None:
        self.stats["frames"] += 1
        try:
            if isinstance(frame, bytes):
                try:
                    frame = frame.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError("binary frame that is not UTF-8 JSON (BSON is not supported)") from None
            try:
                msg = json.loads(frame)
            except (ValueError, RecursionError) as e:
                raise ProtocolError(f"invalid JSON: {str(e)[:120]}") from None
            await self._message(client, msg)
        except ProtocolError as e:
            self.stats["errors"] += 1
            await self._status(client, "error", str(e), getattr(e, "msg_id", None))

    async def _message(self, client: Client, msg: Any) -> None:
        if not isinstance(msg, dict):
            raise ProtocolError(f"a rosbridge message is a JSON object, got {type(msg).__name__}")
        op = msg.get("op")
        msg_id = msg.get("id")
        if msg_id is not None and not isinstance(msg_id, (str, int)):
            msg_id = None
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            e = ProtocolError(f"unknown op {op!r}" if op is not None else "missing field 'op'")
            e.msg_id = msg_id
            raise e
        try:
            await handler(self, client, msg)
        except ProtocolError as e:
            e.msg_id = msg_id
            raise

    async def _status(self, client: Client, level: str, text: str, msg_id=None) -> None:
        if LEVELS[level] < client.level:
            return
        out = {"op": "status", "level": level, "msg": text}
        if msg_id is not None:
            out["id"] = msg_id
        await client.send(json.dumps(out))

    # ------------------------------------------------------------- operations
    @staticmethod
    def _field(msg: dict, name: str, kind, required: bool = True, default=None):
        if name not in msg:
            if required:
                raise ProtocolError(f"{msg.get('op')}: missing field {name!r}")
            return default
        v = msg[name]
        if kind is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        elif kind is int:
            ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
        else:
            ok = isinstance(v, kind)
        if not ok or (kind is str and not v):
            raise ProtocolError(f"{msg.get('op')}: field {name!r} must be a "
                                f"{'non-negative ' if kind in (int, float) else 'non-empty ' if kind is str else ''}"
                                f"{kind.__name__}, got {v!r:.60}")
        return v

    async def _op_advertise(self, client: Client, msg: dict) -> None:
        topic = self._field(msg, "topic", str)
        type_name = self._field(msg, "type", str)
        t = self.topics.setdefault(topic, Topic())
        if t.type is not None and t.type != type_name:
            raise ProtocolError(f"advertise: topic {topic} already has type {t.type}, not {type_name}")
        if not messages.known(type_name):
            await self._status(client, "warning", f"advertise: type {type_name} is not checked by this bridge",
                               msg.get("id"))
        t.type = type_name
        client.advertised.setdefault(topic, set()).add(msg.get("id"))

    async def _op_unadvertise(self, client: Client, msg: dict) -> None:
        topic = self._field(msg, "topic", str)
        if topic not in client.advertised:
            raise ProtocolError(f"unadvertise: topic {topic} is not advertised by this client")
        del client.advertised[topic]

    async def _op_publish(self, client: Client, msg: dict) -> None:
        topic = self._field(msg, "topic", str)
        body = self._field(msg, "msg", dict)
        t = self.topics.get(topic)
        type_name = t.type if t is not None else None
        if type_name is not None and messages.known(type_name):
            try:
                body = messages.validate(type_name, body)
            except ValueError as e:
                raise ProtocolError(f"publish on {topic} ({type_name}): {e}") from None
        self._deliver(topic, body, type_name, client.cid)

    def _deliver(self, topic: str, body: dict, type_name: str | None, sender: int | None) -> None:
        t = self.topics.setdefault(topic, Topic(type=type_name))
        t.latest = body
        self.stats["published"] += 1
        for fn in self._local_handlers.get(topic, ()):
            try:
                fn(body)
            except Exception:
                log.exception("local handler of %s failed", topic)
        now = time.monotonic()
        for c in list(self.clients.values()):
            for sub in c.subscriptions.get(topic, {}).values():
                self._offer(c, topic, sub, body, now)

    def _offer(self, c: Client, topic: str, sub: Subscription, body: dict, now: float) -> None:
        if now - sub.last_sent >= sub.throttle_s and not sub.queue:
            sub.last_sent = now
            asyncio.ensure_future(c.send(json.dumps({"op": "publish", "topic": topic, "msg": body})))
            return
        if sub.queue_length == 0:
            self.stats["dropped"] += 1
            return
        sub.queue.append(body)
        while len(sub.queue) > sub.queue_length:
            sub.queue.popleft()
            self.stats["dropped"] += 1
        if not sub.flush_scheduled:
            sub.flush_scheduled = True
            delay = max(sub.throttle_s - (now - sub.last_sent), 0.0)
            asyncio.get_running_loop().call_later(delay, self._flush, c, topic, sub)

    def _flush(self, c: Client, topic: str, sub: Subscription) -> None:
        sub.flush_scheduled = False
        if c.cid not in self.clients or not sub.queue:
            return
        body = sub.queue.popleft()
        sub.last_sent = time.monotonic()
        asyncio.ensure_future(c.send(json.dumps({"op": "publish", "topic": topic, "msg": body})))
        if sub.queue:
            sub.flush_scheduled = True
            asyncio.get_running_loop().call_later(sub.throttle_s, self._flush, c, topic, sub)

    async def _op_subscribe(self, client: Client, msg: dict) -> None:
        topic = self._field(msg, "topic", str)
        type_name = self._field(msg, "type", str, required=False)
        throttle = self._field(msg, "throttle_rate", float, required=False, default=0)
        qlen = self._field(msg, "queue_length", int, required=False, default=0)
        t = self.topics.setdefault(topic, Topic())
        if type_name and t.type is not None and t.type != type_name:
            raise ProtocolError(f"subscribe: topic {topic} has type {t.type}, not {type_name}")
        if type_name and t.type is None:
            t.type = type_name
        sub_id = str(msg.get("id", f"subscribe:{topic}"))
        client.subscriptions.setdefault(topic, {})[sub_id] = Subscription(throttle / 1000.0, min(qlen, 10_000))

    async def _op_unsubscribe(self, client: Client, msg: dict) -> None:
        topic = self._field(msg, "topic", str)
        subs = client.subscriptions.get(topic)
        if not subs:
            raise ProtocolError(f"unsubscribe: not subscribed to {topic}")
        if "id" in msg and str(msg["id"]) in subs:
            del subs[str(msg["id"])]
        else:
            subs.clear()
        if not subs:
            del client.subscriptions[topic]

    async def _op_advertise_service(self, client: Client, msg: dict) -> None:
        name = self._field(msg, "service", str)
        type_name = self._field(msg, "type", str)
        holder = self.services.get(name)
        if holder is not None and holder[1] != client.cid:
            raise ProtocolError(f"advertise_service: {name} is already served by another client")
        self.services[name] = (type_name, client.cid, None)
        client.services.add(name)

    async def _op_unadvertise_service(self, client: Client, msg: dict) -> None:
        name = self._field(msg, "service", str)
        if name not in client.services:
            raise ProtocolError(f"unadvertise_service: {name} is not served by this client")
        client.services.discard(name)
        self.services.pop(name, None)

    async def _op_call_service(self, client: Client, msg: dict) -> None:
        name = self._field(msg, "service", str)
        args = msg.get("args", {})
        if isinstance(args, list):       # positional args (old clients): not meaningful here
            args = {}
        if not isinstance(args, dict):
            raise ProtocolError(f"call_service: field 'args' must be an object, got {type(args).__name__}")
        if name not in self.services:
            raise ProtocolError(f"call_service: no service {name}")
        type_name, provider, fn = self.services[name]
        caller_id = msg.get("id")
        if fn is not None:
            try:
                values, ok = fn(args), True
            except Exception as e:         # the service failed: an error response, not a crash
                values, ok = {"error": str(e)}, False
            await client.send(json.dumps({"op": "service_response", "id": caller_id, "service": name,
                                          "values": values, "result": ok}))
            return
        our_id = f"dtb_call:{next(self._ids)}"
        self.pending_calls[our_id] = (client.cid, caller_id, name, None)
        await self.clients[provider].send(json.dumps({"op": "call_service", "id": our_id, "service": name,
                                                      "args": args}))
        asyncio.get_running_loop().call_later(SERVICE_TIMEOUT_S, self._expire_call, our_id)

    def _expire_call(self, our_id: str) -> None:
        call = self.pending_calls.pop(our_id, None)
        if call is not None and call[0] in self.clients:
            asyncio.ensure_future(self.clients[call[0]].send(json.dumps(
                {"op": "service_response", "id": call[1], "service": call[2], "values": {"error": "timeout"},
                 "result": False})))

    async def _op_service_response(self, client: Client, msg: dict) -> None:
        our_id = msg.get("id")
        call = self.pending_calls.get(our_id) if isinstance(our_id, str) else None
        if call is None:
            raise ProtocolError(f"service_response: no pending call with id {our_id!r}")
        caller, caller_id, name, _ = call
        if name not in client.services:
            raise ProtocolError(f"service_response: this client does not serve {name}")
        del self.pending_calls[our_id]
        values = msg.get("values", {})
        result = msg.get("result", True)
        if caller in self.clients:
            await self.clients[caller].send(json.dumps({"op": "service_response", "id": caller_id, "service": name,
                                                        "values": values, "result": bool(result)}))

    async def _op_set_level(self, client: Client, msg: dict) -> None:
        level = self._field(msg, "level", str)
        if level not in LEVELS:
            raise ProtocolError(f"set_level: level must be one of {', '.join(LEVELS)}, got {level!r}")
        client.level = LEVELS[level]

    async def _op_fragment(self, client: Client, msg: dict) -> None:
        fid = msg.get("id")
        if not isinstance(fid, (str, int)):
            raise ProtocolError("fragment: field 'id' must be a string or integer")
        data = self._field(msg, "data", str)
        num = self._field(msg, "num", int)
        total = self._field(msg, "total", int)
        if not 1 <= total <= MAX_FRAGMENTS or num >= total:
            client.fragments.pop(str(fid), None)
            raise ProtocolError(f"fragment: num {num} / total {total} out of range (at most {MAX_FRAGMENTS} fragments)")
        now = time.monotonic()
        for k in [k for k, f in client.fragments.items() if now - f["t"] > FRAGMENT_TIMEOUT_S]:
            del client.fragments[k]
        key = str(fid)
        buf = client.fragments.get(key)
        if buf is None:
            if len(client.fragments) >= MAX_PENDING_FRAGMENTED:
                raise ProtocolError(f"fragment: more than {MAX_PENDING_FRAGMENTED} messages being reassembled")
            buf = client.fragments[key] = {"total": total, "parts": {}, "bytes": 0, "t": now}
        if buf["total"] != total:
            del client.fragments[key]
            raise ProtocolError(f"fragment {key}: total changed from {buf['total']} to {total}")
        if num not in buf["parts"]:
            buf["bytes"] += len(data)
            buf["parts"][num] = data
        if buf["bytes"] > MAX_MESSAGE_BYTES:
            del client.fragments[key]
            raise ProtocolError(f"fragment {key}: the message exceeds {MAX_MESSAGE_BYTES} bytes")
        if len(buf["parts"]) == total:
            del client.fragments[key]
            whole = "".join(buf["parts"][i] for i in range(total))
            try:
                inner = json.loads(whole)
            except (ValueError, RecursionError) as e:
                raise ProtocolError(f"fragment {key}: the reassembled message is not JSON ({str(e)[:80]})") from None
            if isinstance(inner, dict) and inner.get("op") == "fragment":
                raise ProtocolError(f"fragment {key}: nested fragments are not allowed")
            await self._message(client, inner)

    _ops = {"advertise": _op_advertise, "unadvertise": _op_unadvertise, "publish": _op_publish,
            "subscribe": _op_subscribe, "unsubscribe": _op_unsubscribe,
            "advertise_service": _op_advertise_service, "unadvertise_service": _op_unadvertise_service,
            "call_service": _op_call_service, "service_response": _op_service_response,
            "set_level": _op_set_level, "fragment": _op_fragment}


def serve_forever(host: str, port: int) -> None:
    """``dtb bridge``: run the server in the foreground until Ctrl-C."""
    server = RosbridgeServer(host, port)
    try:
        asyncio.run(_announce(server))
    except KeyboardInterrupt:
        pass


async def _announce(server: RosbridgeServer) -> None:
    task = asyncio.ensure_future(server.serve())
    while not server._ready.is_set():
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    log.info("rosbridge v2 server on ws://%s:%d", server.host, server.port)
    print(f"dtb bridge: rosbridge v2 server on ws://{server.host}:{server.port} (Ctrl-C to stop)", flush=True)
    await task
