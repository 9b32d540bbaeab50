"""Unit strings at the edges: "250 MOhm", "10 pF", "550 1/(s*V)" -> SI floats.

Inside ionspike every number is SI. Strings are accepted only where a user types
them (presets, CLI, keyword arguments) and are parsed here, once, with pint and a
strict grammar: a number, optional whitespace, an optional unit expression. Anything
else (for example "250 Mohms?") is rejected with a :class:`UnitError`.
"""

from __future__ import annotations

import functools
import math
import re

from ionspike.errors import UnitError

# number [unit]; the unit may use letters, digits, '/', '*', '^', '.', parentheses and spaces
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf"
_QUANTITY = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[A-Za-z0-9_/*^().\s]*)\s*$")

# spellings users type that pint does not know
_SPELLINGS = [
    (re.compile(r"Ω"), "ohm"),
    (re.compile(r"(?<![A-Za-z])(?P<p>[yzafpnumkMGTPE]?)Ohms?(?![A-Za-z])"), r"\g<p>ohm"),
    (re.compile(r"[µμ]"), "u"),
]

# dimension names accepted in field declarations -> pint unit used to check them
DIMENSIONS = {
    "": "dimensionless",
    "V": "volt",
    "A": "ampere",
    "s": "second",
    "1/s": "1/second",
    "1/(s*V)": "1/(second*volt)",
    "1/V": "1/volt",
    "ohm": "ohm",
    "F": "farad",
    "K": "kelvin",
    "J": "joule",
    "A/V^2": "ampere/volt**2",
    "Hz": "hertz",
}


@functools.lru_cache(maxsize=1)
def _registry():
    import pint

    return pint.UnitRegistry()


def _normalise(text: str) -> str:
    for pattern, repl in _SPELLINGS:
        text = pattern.sub(repl, text)
    return text


def parse_quantity(value: str | float | int, unit: str, *, name: str = "value") -> float:
    """Convert ``value`` to a float in the SI unit ``unit``.

    Args:
        value: a number (taken as already SI) or a string such as ``"250 MOhm"``.
            A bare number in a string (``"0.8"``) is taken as SI.
        unit: the expected SI unit, one of :data:`DIMENSIONS` (``"ohm"``, ``"F"``, ...).
        name: the field name used in error messages.

    Returns:
        The value in SI units.

    Raises:
        UnitError: malformed string, unknown unit, or wrong dimension.
    """
    if isinstance(value, bool):
        raise UnitError(f"{name} = {value!r}: expected a number or a quantity string in {unit or 'no unit'}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"{name} = {value!r}: expected a number or a string like '10 pF', got {type(value).__name__}")
    match = _QUANTITY.match(_normalise(value))
    if match is None:
        raise UnitError(
            f"{name} = {value!r} is not a quantity: write a number and a unit, e.g. "
            f"'250 MOhm', '10 pF', '2 us' (expected unit: {unit or 'none'})"
        )
    number = float(match.group("num"))
    unit_text = match.group("unit").strip()
    target = DIMENSIONS.get(unit)
    if target is None:
        raise ValueError(f"internal: unknown declared unit {unit!r}")
    if not unit_text:
        return number
    reg = _registry()
    try:
        q = reg.Quantity(1.0, unit_text)
    except Exception as exc:  # pint raises several types for bad units
        raise UnitError(f"{name} = {value!r}: unknown unit {unit_text!r} ({exc})") from None
    try:
        factor = q.to(target).magnitude
    except Exception:
        raise UnitError(
            f"{name} = {value!r} has unit {q.units:~P} [{q.dimensionality}], expected {unit or 'dimensionless'}"
        ) from None
    result = number * float(factor)
    if math.isnan(result):
        raise UnitError(f"{name} = {value!r} is NaN")
    return result


_PREFIXES = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"),
             (1e-9, "n"), (1e-12, "p"), (1e-15, "f"), (1e-18, "a")]


def format_quantity(value: float, unit: str, digits: int = 4) -> str:
    """Format an SI value with an engineering prefix: ``format_quantity(2.5e8, "Ohm") == "250 MOhm"``."""
    if value == 0 or not math.isfinite(value) or unit in ("", "1/s", "1/(s*V)", "A/V^2", "1/V"):
        return f"{value:.{digits}g} {unit}".strip()
    mag = abs(value)
    for scale, prefix in _PREFIXES:
        if mag >= scale * 0.9999999:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"


def json_number(value):
    """A float for JSON: ``inf``/``-inf``/``nan`` become strings (JSON has none); lists recurse."""
    if isinstance(value, list):
        return [json_number(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
