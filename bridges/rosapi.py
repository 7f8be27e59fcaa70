"""The rosapi services that ROS clients call to look around (roslibpy's ``get_topics``,
``get_topic_type``, ``get_services``, ``get_service_type``), served by the bridge itself."""

from __future__ import annotations

from bridges.protocol import BridgeProtocol, resolve_name


def register(p: BridgeProtocol) -> None:
    def topics(_args: dict) -> dict:
        names = sorted(p.topics)
        return {"topics": names, "types": [p.topics[n].type or "" for n in names]}

    def topic_type(args: dict) -> dict:
        t = p.topics.get(resolve_name(str(args.get("topic", ""))))
        return {"type": t.type or "" if t is not None else ""}

    def services(_args: dict) -> dict:
        return {"services": sorted(p.services)}

    def service_type(args: dict) -> dict:
        held = p.services.get(resolve_name(str(args.get("service", ""))))
        return {"type": held[0] if held is not None else ""}

    for name, type_name, fn in (("/rosapi/topics", "rosapi/Topics", topics),
                                ("/rosapi/topic_type", "rosapi/TopicType", topic_type),
                                ("/rosapi/services", "rosapi/Services", services),
                                ("/rosapi/service_type", "rosapi/ServiceType", service_type)):
        p.services[name] = (type_name, None, fn)
