"""The rosbridge v2 protocol (ROSBRIDGE_PROTOCOL.md of rosbridge_suite) as JSON objects in and
queued JSON texts out, apart from any socket (:mod:`bridges.rosbridge` is the websocket transport).

Operations: ``auth`` (rosauth's MAC, when a secret is set: what a client sends before it is held,
a few messages at most, and handled once it authenticates; a failed auth closes the connection),
``advertise`` / ``unadvertise`` / ``publish`` / ``subscribe`` (``throttle_rate`` ms,
``queue_length``) / ``unsubscribe``; ``advertise_service`` / ``unadvertise_service`` /
``call_service`` / ``service_response``; ``set_level``; ``fragment`` (reassembled within a
server-wide byte budget and a wall-clock timeout). The rosapi services roslibpy uses are served
(:mod:`bridges.rosapi`).

As rosbridge_suite does, mistakes are logged by the server and not sent to the client, unless
the client asked for ``status`` messages with ``set_level`` (roslibpy has no handler for them).
Message types are those of :mod:`bridges.messages`, checked field by field; an unknown type is
refused (rosbridge_suite cannot import it either) unless the server allows unknown types.

Everything a client can make the server hold is capped (:class:`Limits`): its outgoing queue
(messages and bytes, oldest dropped first), topics, subscription ids, services, pending calls and
fragments; a topic is forgotten when its last publisher and subscriber leave. A client that
subscribes to a topic under several ids gets each message once (the subscriptions merge: the
smallest throttle, the largest queue), as in rosbridge_suite.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from bridges import messages
from bridges.outbox import Outbox

log = logging.getLogger(__name__)

LEVELS = {"info": 0, "warning": 1, "error": 2, "none": 3}


@dataclass(frozen=True)
class Limits:
    """Caps on what clients can make the server hold (sizes in bytes, times in s)."""
    max_message_size: int = 10 * 2**20        # one message, whole or reassembled (rosbridge_suite: 10 MB)
    max_clients: int = 64
    queue_messages: int = 1000                # waiting to be sent to one client
    queue_bytes: int = 4 * 2**20
    topics_per_client: int = 1000             # advertised, published or subscribed
    ids_per_topic: int = 100                  # subscription / advertisement ids of one client on one topic
    services_per_client: int = 100
    calls_per_client: int = 100               # calls waiting for a response
    fragmented_per_client: int = 16           # messages being reassembled
    reassembly_bytes: int = 32 * 2**20        # held in reassembly, all clients together
    max_fragments: int = 100_000
    fragment_timeout: float = 600.0           # rosbridge_suite's default
    service_timeout: float = 30.0
    drop_warning_interval: float = 1.0        # at most one warning per client per interval
    early_messages: int = 32                  # held from a client before it authenticates (with a secret)
    early_bytes: int = 64 * 2**10


def resolve_name(raw: str) -> str:
    """A graph name resolved in the root namespace: "/" + its non-empty parts ("a//b/" -> "/a/b")."""
    return "/" + "/".join(part for part in raw.split("/") if part)


class ProtocolError(Exception):
    """A bad message from a client: logged, and sent as a status error if the client asked."""


class Refused(Exception):
    """The client must go (not authenticated): the transport closes the connection."""


@dataclass
class SubOptions:
    throttle_s: float
    queue_length: int


@dataclass
class TopicDelivery:
    """One client's merged subscriptions to one topic."""
    ids: dict[str, SubOptions] = field(default_factory=dict)
    name: str = ""                             # the topic as this client spelled it (messages carry it back)
    last_sent: float = -1e30
    pending: Any = None                        # the latest message held back by the throttle
    held: list = field(default_factory=list)   # messages held back (up to queue_length)
    flush_scheduled: bool = False

    @property
    def throttle_s(self) -> float:
        return min(o.throttle_s for o in self.ids.values())

    @property
    def queue_length(self) -> int:
        return max(o.queue_length for o in self.ids.values())


@dataclass
class Session:
    cid: int
    outbox: Outbox
    authenticated: bool = True
    level: int | None = None                   # None: no status messages (rosbridge_suite's behaviour)
    subscriptions: dict[str, TopicDelivery] = field(default_factory=dict)
    advertised: dict[str, set] = field(default_factory=dict)
    published: set = field(default_factory=set)
    services: set = field(default_factory=set)
    fragments: dict[str, dict] = field(default_factory=dict)
    last_drop_warning: float = -1e30
    errors: int = 0
    errors_logged: int = 0
    last_error_log: float = -1e30
    early: list = field(default_factory=list)  # messages that came before its auth (handled after it)
    early_bytes: int = 0

    def topics(self) -> set:
        return set(self.subscriptions) | set(self.advertised) | self.published


@dataclass
class Topic:
    type: str | None = None
    latest: Any = None
    watched: bool = False                      # the hosting process listens to or publishes it


class BridgeProtocol:
    """The server's state and operations. ``schedule(delay_s, fn)`` runs ``fn`` later (the
    transport's event loop); ``auth_secret``: rosauth's shared secret (None: no authentication);
    ``allow_unknown_types``: accept types the bridge cannot check (unchecked)."""

    def __init__(self, limits: Limits, schedule: Callable[[float, Callable], Any], auth_secret: str | None = None,
                 allow_unknown_types: bool = False):
        from bridges import rosapi
        self.limits, self.schedule = limits, schedule
        self.auth_secret, self.allow_unknown_types = auth_secret, allow_unknown_types
        self.sessions: dict[int, Session] = {}
        self.topics: dict[str, Topic] = {}
        self.services: dict[str, tuple[str, int | None, Callable | None]] = {}   # name -> (type, provider, local fn)
        self.service_spelling: dict[str, str] = {}   # name -> the name as its client provider advertised it
        self.pending_calls: dict[str, tuple[int, Any, str]] = {}                 # our id -> (caller, caller id, service)
        self.local_handlers: dict[str, list[Callable[[dict], None]]] = {}
        self.reassembly_bytes = 0
        self.stats: dict[str, int] = {}
        self._ids = itertools.count(1)
        rosapi.register(self)

    def count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    # -------------------------------------------------------------- sessions
    def open(self) -> Session:
        """A new client (raises Refused beyond ``max_clients``)."""
        if len(self.sessions) >= self.limits.max_clients:
            raise Refused(f"more than {self.limits.max_clients} clients")
        s = Session(next(self._ids), Outbox(self.limits.queue_messages, self.limits.queue_bytes),
                    authenticated=self.auth_secret is None)
        self.sessions[s.cid] = s
        self.count("connections")
        return s

    def close(self, s: Session) -> None:
        """Forget everything the client held; callers of its services get an error response."""
        self._drop_fragments(s, list(s.fragments))
        for our_id, (caller, caller_id, service) in list(self.pending_calls.items()):
            if caller == s.cid:
                del self.pending_calls[our_id]
            elif resolve_name(service) in s.services:
                del self.pending_calls[our_id]
                self._respond(caller, caller_id, service, "the service's provider disconnected", False)
        for name in s.services:
            self.services.pop(name, None)
            self.service_spelling.pop(name, None)
        topics = s.topics()
        s.subscriptions.clear()
        s.advertised.clear()
        s.published.clear()
        s.services.clear()
        self.sessions.pop(s.cid, None)
        s.outbox.close()
        for t in topics:
            self._maybe_forget(t)
        self.count("disconnections")

    def _maybe_forget(self, topic: str) -> None:
        """Forget a topic nobody publishes, subscribes to or watches any more (its latest message too)."""
        t = self.topics.get(topic)
        if t is None or t.watched or topic in self.local_handlers:
            return
        if any(topic in s.topics() for s in self.sessions.values()):
            return
        del self.topics[topic]

    # ------------------------------------------------------------- messages
    def handle_text(self, s: Session, frame: str | bytes) -> None:
        """One websocket frame from client ``s``."""
        self.count("frames")
        msg_id = None
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
            if isinstance(msg, dict) and isinstance(msg.get("id"), (str, int)):
                msg_id = msg["id"]
            self.handle(s, msg)
        except ProtocolError as e:
            self.count("errors")
            self._log_error(s, str(e))
            self.status(s, "error", str(e), msg_id)

    def _log_error(self, s: Session, text: str) -> None:
        """Log a client's mistake; a flood of them gives one line per second (with the count)."""
        s.errors += 1
        now = time.monotonic()
        if now - s.last_error_log >= 1.0:
            more = s.errors - s.errors_logged - 1
            log.warning("client %d: %s%s", s.cid, text, f" (and {more} more error(s) since the last)" if more else "")
            s.last_error_log, s.errors_logged = now, s.errors

    def handle(self, s: Session, msg: Any) -> None:
        if not isinstance(msg, dict):
            raise ProtocolError(f"a rosbridge message is a JSON object, got {type(msg).__name__}")
        op = msg.get("op")
        if not s.authenticated and op != "auth":
            self._hold_early(s, msg)
            return
        from bridges.operations import OPS
        handler = OPS.get(op) if isinstance(op, str) else None
        if handler is None:
            raise ProtocolError(f"unknown op {op!r}" if op is not None else "missing field 'op'")
        handler(self, s, msg)

    def _hold_early(self, s: Session, msg: dict) -> None:
        """A message from a client not yet authenticated: held, up to ``early_messages`` and
        ``early_bytes``, and handled once its auth is accepted (a client may send its first call
        before its auth reaches the server: roslibpy does); beyond that the client must go."""
        size = len(json.dumps(msg))
        if len(s.early) >= self.limits.early_messages or s.early_bytes + size > self.limits.early_bytes:
            raise Refused(f"client {s.cid} sent more than {self.limits.early_messages} messages or "
                          f"{self.limits.early_bytes} bytes before authenticating")
        s.early.append(msg)
        s.early_bytes += size

    def authenticated(self, s: Session) -> None:
        """``s`` has authenticated: what it sent before is handled now, in its order."""
        s.authenticated = True
        early, s.early, s.early_bytes = s.early, [], 0
        for msg in early:
            msg_id = msg.get("id") if isinstance(msg.get("id"), (str, int)) else None
            try:
                self.handle(s, msg)
            except ProtocolError as e:
                self.count("errors")
                self._log_error(s, str(e))
                self.status(s, "error", str(e), msg_id)

    def send(self, s: Session, message: dict, key: str | None = None, limit: int = 0) -> None:
        """Queue ``message`` for client ``s``; a drop (slow client) is logged, and reported to the
        client as a status warning at most once per ``drop_warning_interval``."""
        dropped = s.outbox.put(json.dumps(message), key, limit)
        if dropped:
            self.count("dropped", dropped)
            now = time.monotonic()
            if now - s.last_drop_warning >= self.limits.drop_warning_interval:
                s.last_drop_warning = now
                text = (f"client {s.cid} reads too slowly: {s.outbox.dropped} message(s) dropped so far (queue cap "
                        f"{self.limits.queue_messages} messages / {self.limits.queue_bytes} bytes)")
                log.warning(text)
                self.status(s, "warning", text)

    def status(self, s: Session, level: str, text: str, msg_id=None) -> None:
        if s.level is None or LEVELS[level] < s.level:
            return
        out = {"op": "status", "level": level, "msg": text}
        if msg_id is not None:
            out["id"] = msg_id
        s.outbox.put(json.dumps(out))

    # ------------------------------------------------------------ delivery
    def deliver(self, topic: str, body: dict, sender: int | None) -> None:
        """A message published on ``topic``: to the hosting process's handlers and to every
        subscribed client once."""
        t = self.topics[topic]
        if t.watched or topic in self.local_handlers:
            t.latest = body
        self.count("published")
        for fn in self.local_handlers.get(topic, ()):
            try:
                fn(body)
            except Exception:
                log.exception("local handler of %s failed", topic)
        now = time.monotonic()
        for s in list(self.sessions.values()):
            d = s.subscriptions.get(topic)
            if d is not None:
                self._offer(s, topic, d, body, now)

    def _offer(self, s: Session, topic: str, d: TopicDelivery, body: dict, now: float) -> None:
        throttle, qlen = d.throttle_s, d.queue_length
        if now - d.last_sent >= throttle and not d.held:
            d.last_sent = now
            self.send(s, {"op": "publish", "topic": d.name or topic, "msg": body}, key=topic, limit=qlen)
            return
        if qlen == 0:
            self.count("dropped")
            return
        d.held.append(body)
        del d.held[:-qlen]
        if not d.flush_scheduled:
            d.flush_scheduled = True
            self.schedule(max(throttle - (now - d.last_sent), 0.0), lambda: self._flush(s, topic, d))

    def _flush(self, s: Session, topic: str, d: TopicDelivery) -> None:
        d.flush_scheduled = False
        if s.cid not in self.sessions or s.subscriptions.get(topic) is not d or not d.held:
            return
        body = d.held.pop(0)
        d.last_sent = time.monotonic()
        self.send(s, {"op": "publish", "topic": d.name or topic, "msg": body}, key=topic, limit=d.queue_length)
        if d.held:
            d.flush_scheduled = True
            self.schedule(d.throttle_s, lambda: self._flush(s, topic, d))

    # ------------------------------------------------------------- checks
    @staticmethod
    def name(msg: dict, key: str) -> str:
        """A topic or service name of a message, resolved as ROS resolves a name given to the
        bridge's node in the root namespace: relative names ("rosapi/topics", what roslibjs asks
        for) are global ("/rosapi/topics"), repeated and trailing slashes dropped."""
        raw = BridgeProtocol.field(msg, key, str)
        resolved = resolve_name(raw)
        if resolved == "/":
            raise ProtocolError(f"{msg.get('op')}: field {key!r} must name a topic or service, got {raw!r:.60}")
        return resolved

    @staticmethod
    def field(msg: dict, name: str, kind, required: bool = True, default=None):
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

    def check_type(self, op: str, type_name: str) -> None:
        if not messages.known(type_name) and not self.allow_unknown_types:
            raise ProtocolError(f"{op}: unknown message type {type_name!r}; this bridge checks "
                                f"{', '.join(messages.MESSAGE_TYPES)} (start it with --allow-unknown-types to pass "
                                f"other types unchecked)")

    def claim_topic(self, s: Session, topic: str) -> Topic:
        """The topic, counted against the client's cap."""
        if topic not in s.topics() and len(s.topics()) >= self.limits.topics_per_client:
            raise ProtocolError(f"more than {self.limits.topics_per_client} topics for one client")
        return self.topics.setdefault(topic, Topic())

    def _respond(self, caller: int, caller_id, service: str, values, ok: bool) -> None:
        s = self.sessions.get(caller)
        if s is not None:
            out = {"op": "service_response", "service": service, "values": values, "result": ok}
            if caller_id is not None:
                out["id"] = caller_id
            self.send(s, out)

    def _drop_fragments(self, s: Session, keys) -> None:
        for k in keys:
            buf = s.fragments.pop(k, None)
            if buf is not None:
                self.reassembly_bytes -= buf["bytes"]

    def expire_fragments(self) -> None:
        """Forget reassemblies older than ``fragment_timeout`` (the transport calls it every second)."""
        now = time.monotonic()
        for s in list(self.sessions.values()):
            old = [k for k, f in s.fragments.items() if now - f["t"] > self.limits.fragment_timeout]
            if old:
                log.warning("client %d: %d fragmented message(s) not completed within %g s: dropped", s.cid,
                            len(old), self.limits.fragment_timeout)
                self._drop_fragments(s, old)

