"""The ROS message types the bridge checks, as field schemas (ROS 1 field names, as roslibpy sends
them): a message is a JSON object; missing fields take their ROS defaults, unknown fields and
wrong types are errors that name the field."""

from __future__ import annotations

import math
from typing import Any

# a schema is a dict field -> type, where type is "float64", "int32", "uint32", "string", a
# nested schema dict, or a one-element list [type] for a variable-length array
TIME = {"secs": "int32", "nsecs": "int32"}
HEADER = {"seq": "uint32", "stamp": TIME, "frame_id": "string"}
VECTOR3 = {"x": "float64", "y": "float64", "z": "float64"}
DIM = {"label": "string", "size": "uint32", "stride": "uint32"}

MESSAGE_TYPES: dict[str, dict] = {
    "std_msgs/Float64": {"data": "float64"},
    "std_msgs/String": {"data": "string"},
    "std_msgs/Float64MultiArray": {"layout": {"dim": [DIM], "data_offset": "uint32"}, "data": ["float64"]},
    "sensor_msgs/JointState": {"header": HEADER, "name": ["string"], "position": ["float64"],
                               "velocity": ["float64"], "effort": ["float64"]},
    "geometry_msgs/Twist": {"linear": VECTOR3, "angular": VECTOR3},
    "geometry_msgs/Pose": {"position": {"x": "float64", "y": "float64", "z": "float64"},
                           "orientation": {"x": "float64", "y": "float64", "z": "float64", "w": "float64"}},
}


def known(type_name: str) -> bool:
    return _canonical(type_name) in MESSAGE_TYPES


def _canonical(type_name: str) -> str:
    """ROS 2 spells types pkg/msg/Name; ROS 1 pkg/Name."""
    parts = str(type_name).split("/")
    return f"{parts[0]}/{parts[-1]}" if len(parts) == 3 and parts[1] == "msg" else str(type_name)


def validate(type_name: str, msg: Any) -> dict:
    """The message with defaults filled in, or ValueError naming the offending field."""
    schema = MESSAGE_TYPES.get(_canonical(type_name))
    if schema is None:
        raise ValueError(f"unknown message type {type_name!r}; the bridge knows {', '.join(MESSAGE_TYPES)}")
    return _check(schema, msg, "msg")


def _default(t):
    if isinstance(t, dict):
        return {k: _default(v) for k, v in t.items()}
    if isinstance(t, list):
        return []
    return "" if t == "string" else 0.0 if t == "float64" else 0


def _check(t, value, path: str):
    if isinstance(t, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {type(value).__name__}")
        extra = set(value) - set(t)
        if extra:
            raise ValueError(f"{path}: unknown field(s) {', '.join(sorted(map(str, extra)))}")
        return {k: (_check(sub, value[k], f"{path}.{k}") if k in value else _default(sub)) for k, sub in t.items()}
    if isinstance(t, list):
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected an array, got {type(value).__name__}")
        return [_check(t[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if t == "string":
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {type(value).__name__}")
        return value
    if t == "float64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: expected a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{path}: not a finite number")
        return float(value)
    # integers
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: expected an integer, got {type(value).__name__}")
    lo, hi = (0, 2**32 - 1) if t == "uint32" else (-2**31, 2**31 - 1)
    if not lo <= value <= hi:
        raise ValueError(f"{path}: {value} out of range for {t}")
    return value
