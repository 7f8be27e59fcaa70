"""Writing a config dict back as TOML (the subset dtb configs use: tables, arrays of tables,
strings, numbers, booleans, inline tables and lists)."""

from __future__ import annotations

import json


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dumps(data: dict, header: str = "") -> str:
    out = [f"# {ln}" for ln in header.splitlines()] + ([""] if header else [])
    for key, val in data.items():
        if isinstance(val, dict):
            out.append(f"[{key}]")
            out += [f"{k} = {_value(v)}" for k, v in val.items()]
            out.append("")
    for key, val in data.items():
        if isinstance(val, list) and val and isinstance(val[0], dict):
            for item in val:
                out.append(f"[[{key}]]")
                out += [f"{k} = {_value(v)}" for k, v in item.items()]
                out.append("")
    return "\n".join(out)
