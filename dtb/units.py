"""Quantities written as strings with units ("5 ms", "0.1 nS") and their conversion to SI floats.

Configs carry units so that a unit mistake (a delay written in mV) is caught at load time.
Values are converted to plain SI floats at this boundary; Brian2 units are attached again in
:mod:`dtb.models`.
"""

from __future__ import annotations

import re

# dimension name -> {symbol: factor to SI}
UNITS: dict[str, dict[str, float]] = {
    "time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0},
    "voltage": {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6},
    "conductance": {"S": 1.0, "mS": 1e-3, "uS": 1e-6, "µS": 1e-6, "nS": 1e-9, "pS": 1e-12},
    "current": {"A": 1.0, "mA": 1e-3, "uA": 1e-6, "µA": 1e-6, "nA": 1e-9, "pA": 1e-12},
    "capacitance": {"F": 1.0, "uF": 1e-6, "µF": 1e-6, "nF": 1e-9, "pF": 1e-12},
    "rate": {"Hz": 1.0, "kHz": 1e3},
    "velocity": {"m/s": 1.0, "mm/ms": 1.0, "mm/s": 1e-3},
    "length": {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6},
}

_SYMBOL_TO_DIM = {sym: dim for dim, table in UNITS.items() for sym in table}
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*?\s*([^\s\d.][^\s]*)\s*$")


class UnitError(ValueError):
    """A quantity string could not be parsed or has the wrong dimension."""


def parse_quantity(value: object, dimension: str) -> float:
    """Parse ``"5 ms"`` (or ``"5*ms"``) into an SI float, checking its dimension.

    Plain numbers are refused (so that "5" for a delay is not silently seconds),
    except zero, which is the same in every unit.
    """
    if dimension not in UNITS:
        raise KeyError(dimension)
    if isinstance(value, bool):
        raise UnitError(f"expected a {dimension} with a unit (e.g. {_example(dimension)}), got {value!r}")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise UnitError(
            f"expected a {dimension} with a unit, e.g. \"{value} {next(iter(_example_unit(dimension)))}\", "
            f"got the bare number {value!r}"
        )
    if not isinstance(value, str):
        raise UnitError(f"expected a {dimension} such as {_example(dimension)}, got {value!r}")
    try:
        bare = float(value)
    except ValueError:
        bare = None
    if bare is not None and bare != 0:
        a, b = list(UNITS[dimension])[:2]
        raise UnitError(f"{value!r} has no unit: a {dimension} needs one, e.g. \"{value.strip()} {a}\" or "
                        f"\"{value.strip()} {b}\"")
    m = _QUANTITY.match(value)
    if not m:
        raise UnitError(f"cannot read {value!r} as a {dimension}; write e.g. {_example(dimension)}")
    number, symbol = float(m.group(1)), m.group(2)
    dim = _SYMBOL_TO_DIM.get(symbol)
    if dim is None:
        known = ", ".join(UNITS[dimension])
        raise UnitError(f"unknown unit {symbol!r} in {value!r}; a {dimension} takes one of: {known}")
    if dim != dimension:
        raise UnitError(f"{value!r} is a {dim}, but a {dimension} is expected (e.g. {_example(dimension)})")
    return number * UNITS[dimension][symbol]


def _example_unit(dimension: str) -> list[str]:
    prefer = {"time": "ms", "voltage": "mV", "conductance": "nS", "current": "pA",
              "capacitance": "pF", "rate": "Hz", "velocity": "m/s", "length": "mm"}
    return [prefer[dimension]]


def _example(dimension: str) -> str:
    return f"\"1.5 {_example_unit(dimension)[0]}\""


def format_quantity(value_si: float, unit: str) -> str:
    """Inverse of :func:`parse_quantity` for messages and saved configs: ``format_quantity(0.005, "ms") == "5 ms"``."""
    dim = _SYMBOL_TO_DIM[unit]
    return f"{value_si / UNITS[dim][unit]:g} {unit}"
