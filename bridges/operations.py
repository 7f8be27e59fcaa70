"""The rosbridge v2 operations, one small function each (rosbridge_suite's capabilities):
``op(protocol, session, msg)``; a mistake raises :class:`bridges.protocol.ProtocolError`."""

from __future__ import annotations

import json
import time

from bridges import messages
from bridges.protocol import (BridgeProtocol, ProtocolError, Refused, Session, SubOptions, TopicDelivery,
                              resolve_name)

Field = BridgeProtocol.field
Name = BridgeProtocol.name


def auth(p: BridgeProtocol, s: Session, msg: dict) -> None:
    """rosauth's MAC: sha512(secret + client + dest + rand + t + level + end) (t and end in whole
    seconds), t within 5 s of now and end in the future."""
    if p.auth_secret is None:
        return                                  # nothing to check: accepted, as a server without auth would
    from bridges.auth import verify
    problem = verify(p.auth_secret, msg)
    if problem:
        raise Refused(f"client {s.cid}: authentication failed ({problem})")
    p.authenticated(s)


def advertise(p: BridgeProtocol, s: Session, msg: dict) -> None:
    topic = Name(msg, "topic")
    type_name = Field(msg, "type", str)
    p.check_type("advertise", type_name)
    t = p.topics.get(topic)
    if t is not None and t.type is not None and t.type != type_name:
        raise ProtocolError(f"advertise: topic {topic} already has type {t.type}, not {type_name}")
    ids = s.advertised.get(topic, set())
    if len(ids) >= p.limits.ids_per_topic:
        raise ProtocolError(f"advertise: more than {p.limits.ids_per_topic} advertisements of {topic}")
    t = p.claim_topic(s, topic)
    t.type = type_name
    s.advertised.setdefault(topic, set()).add(msg.get("id"))


def unadvertise(p: BridgeProtocol, s: Session, msg: dict) -> None:
    topic = Name(msg, "topic")
    if topic not in s.advertised:
        raise ProtocolError(f"unadvertise: topic {topic} is not advertised by this client")
    del s.advertised[topic]
    s.published.discard(topic)
    p._maybe_forget(topic)


def publish(p: BridgeProtocol, s: Session, msg: dict) -> None:
    topic = Name(msg, "topic")
    body = Field(msg, "msg", dict)
    t = p.topics.get(topic)
    if t is None or t.type is None:
        raise ProtocolError(f"publish: topic {topic} has no type yet: advertise it first")
    if messages.known(t.type):
        try:
            body = messages.validate(t.type, body)
        except ValueError as e:
            raise ProtocolError(f"publish on {topic} ({t.type}): {e}") from None
    if topic not in s.topics():
        p.claim_topic(s, topic)
        s.published.add(topic)
    p.deliver(topic, body, s.cid)


def subscribe(p: BridgeProtocol, s: Session, msg: dict) -> None:
    topic = Name(msg, "topic")
    type_name = Field(msg, "type", str, required=False)
    throttle = Field(msg, "throttle_rate", float, required=False, default=0)
    qlen = Field(msg, "queue_length", int, required=False, default=0)
    t = p.topics.get(topic)
    if type_name:
        p.check_type("subscribe", type_name)
        if t is not None and t.type is not None and t.type != type_name:
            raise ProtocolError(f"subscribe: topic {topic} has type {t.type}, not {type_name}")
    d = s.subscriptions.get(topic)
    sub_id = str(msg.get("id", f"subscribe:{topic}"))
    if d is not None and sub_id not in d.ids and len(d.ids) >= p.limits.ids_per_topic:
        raise ProtocolError(f"subscribe: more than {p.limits.ids_per_topic} subscriptions to {topic}")
    t = p.claim_topic(s, topic)
    if type_name and t.type is None:
        t.type = type_name
    d = s.subscriptions.setdefault(topic, TopicDelivery())
    d.name = msg["topic"]
    d.ids[sub_id] = SubOptions(throttle / 1000.0, min(qlen, p.limits.queue_messages))


def unsubscribe(p: BridgeProtocol, s: Session, msg: dict) -> None:
    topic = Name(msg, "topic")
    d = s.subscriptions.get(topic)
    if d is None:
        raise ProtocolError(f"unsubscribe: not subscribed to {topic}")
    if "id" in msg and str(msg["id"]) in d.ids:
        del d.ids[str(msg["id"])]
    else:
        d.ids.clear()
    if not d.ids:
        del s.subscriptions[topic]
        p._maybe_forget(topic)


def advertise_service(p: BridgeProtocol, s: Session, msg: dict) -> None:
    name = Name(msg, "service")
    type_name = Field(msg, "type", str)
    holder = p.services.get(name)
    if holder is not None and holder[1] != s.cid:
        raise ProtocolError(f"advertise_service: {name} is already served by "
                            f"{'the bridge' if holder[1] is None else 'another client'}")
    if name not in s.services and len(s.services) >= p.limits.services_per_client:
        raise ProtocolError(f"advertise_service: more than {p.limits.services_per_client} services for one client")
    p.services[name] = (type_name, s.cid, None)
    p.service_spelling[name] = msg["service"]     # calls reach the provider under its own name
    s.services.add(name)


def unadvertise_service(p: BridgeProtocol, s: Session, msg: dict) -> None:
    name = Name(msg, "service")
    if name not in s.services:
        raise ProtocolError(f"unadvertise_service: {name} is not served by this client")
    s.services.discard(name)
    p.services.pop(name, None)
    p.service_spelling.pop(name, None)


def call_service(p: BridgeProtocol, s: Session, msg: dict) -> None:
    """Every call is answered with a service_response: a failure (no such service, bad arguments,
    a service that raised, a timeout) with result false and the error as text, as rosbridge_suite
    answers (a client waits for the response, not for a status message)."""
    name = Name(msg, "service")
    caller_id = msg.get("id")
    spelled = msg["service"]
    args = msg.get("args", {})
    if isinstance(args, list):       # positional args (old clients): not meaningful here
        args = {}
    if not isinstance(args, dict):
        p._respond(s.cid, caller_id, spelled, f"call_service: field 'args' must be an object, got "
                   f"{type(args).__name__}", False)
        return
    if name not in p.services:
        p._respond(s.cid, caller_id, spelled, f"Service {name} does not exist", False)
        return
    _, provider, fn = p.services[name]
    if fn is not None:
        try:
            values, ok = fn(args), True
        except Exception as e:         # the service failed: an error response, not a crash
            values, ok = str(e), False
        p._respond(s.cid, caller_id, spelled, values, ok)
        return
    mine = sum(1 for c in p.pending_calls.values() if c[0] == s.cid)
    if mine >= p.limits.calls_per_client:
        p._respond(s.cid, caller_id, spelled, f"call_service: more than {p.limits.calls_per_client} calls waiting "
                   f"for a response", False)
        return
    our_id = f"dtb_call:{next(p._ids)}"
    p.pending_calls[our_id] = (s.cid, caller_id, spelled)
    p.send(p.sessions[provider], {"op": "call_service", "id": our_id, "service": p.service_spelling.get(name, name),
                                  "args": args})
    p.schedule(p.limits.service_timeout, lambda: _expire_call(p, our_id))


def _expire_call(p: BridgeProtocol, our_id: str) -> None:
    call = p.pending_calls.pop(our_id, None)
    if call is not None:
        p._respond(call[0], call[1], call[2], "timeout: the service's provider did not answer", False)


def service_response(p: BridgeProtocol, s: Session, msg: dict) -> None:
    our_id = msg.get("id")
    call = p.pending_calls.get(our_id) if isinstance(our_id, str) else None
    if call is None:
        raise ProtocolError(f"service_response: no pending call with id {our_id!r}")
    caller, caller_id, spelled = call
    name = resolve_name(spelled)
    if name not in s.services:
        raise ProtocolError(f"service_response: this client does not serve {name}")
    del p.pending_calls[our_id]
    values = msg.get("values", {})
    ok = bool(msg.get("result", True))
    p._respond(caller, caller_id, spelled, values if isinstance(values, dict) or not ok else {}, ok)


def set_level(p: BridgeProtocol, s: Session, msg: dict) -> None:
    from bridges.protocol import LEVELS
    level = Field(msg, "level", str)
    if level not in LEVELS:
        raise ProtocolError(f"set_level: level must be one of {', '.join(LEVELS)}, got {level!r}")
    s.level = LEVELS[level]


def fragment(p: BridgeProtocol, s: Session, msg: dict) -> None:
    fid = msg.get("id")
    if not isinstance(fid, (str, int)):
        raise ProtocolError("fragment: field 'id' must be a string or integer")
    data = Field(msg, "data", str)
    num = Field(msg, "num", int)
    total = Field(msg, "total", int)
    key = str(fid)
    lim = p.limits
    if not 1 <= total <= lim.max_fragments or num >= total:
        p._drop_fragments(s, [key])
        raise ProtocolError(f"fragment: num {num} / total {total} out of range (at most {lim.max_fragments} fragments)")
    buf = s.fragments.get(key)
    if buf is None:
        if len(s.fragments) >= lim.fragmented_per_client:
            raise ProtocolError(f"fragment: more than {lim.fragmented_per_client} messages being reassembled")
        buf = s.fragments[key] = {"total": total, "parts": {}, "bytes": 0, "t": time.monotonic()}
    if buf["total"] != total:
        p._drop_fragments(s, [key])
        raise ProtocolError(f"fragment {key}: total changed from {buf['total']} to {total}")
    if num not in buf["parts"]:
        if buf["bytes"] + len(data) > lim.max_message_size:
            p._drop_fragments(s, [key])
            raise ProtocolError(f"fragment {key}: the message exceeds {lim.max_message_size} bytes")
        if p.reassembly_bytes + len(data) > lim.reassembly_bytes:
            p._drop_fragments(s, [key])
            raise ProtocolError(f"fragment {key}: the server holds {lim.reassembly_bytes} bytes of unfinished "
                                f"fragmented messages already; try again later")
        buf["bytes"] += len(data)
        p.reassembly_bytes += len(data)
        buf["parts"][num] = data
    if len(buf["parts"]) == total:
        p._drop_fragments(s, [key])
        whole = "".join(buf["parts"][i] for i in range(total))
        try:
            inner = json.loads(whole)
        except (ValueError, RecursionError) as e:
            raise ProtocolError(f"fragment {key}: the reassembled message is not JSON ({str(e)[:80]})") from None
        if isinstance(inner, dict) and inner.get("op") == "fragment":
            raise ProtocolError(f"fragment {key}: nested fragments are not allowed")
        p.handle(s, inner)


OPS = {"auth": auth, "advertise": advertise, "unadvertise": unadvertise, "publish": publish, "subscribe": subscribe,
       "unsubscribe": unsubscribe, "advertise_service": advertise_service, "unadvertise_service": unadvertise_service,
       "call_service": call_service, "service_response": service_response, "set_level": set_level,
       "fragment": fragment}
