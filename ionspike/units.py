"""Unit strings at the edges: "250 MOhm", "10 pF", "550 1/(s*V)" -> SI floats.

Inside ionspike every number is SI. Strings are accepted only where a user types
them (presets, CLI, keyword arguments) and are parsed here, once, by a strict grammar:

    quantity := number [unit]
    number   := decimal or scientific literal (``-1.5e-3``), or ``inf``
    unit     := ["1" "/"] factor (("*" | "/") factor)*
    factor   := (symbol | "(" unit ")") [power]
    symbol   := letters, with the spellings ``Ω``, ``Ohm(s)``, ``µ``/``μ`` (micro)
    power    := ("^" | "**") ["-"] digit             (|exponent| <= 4)

e.g. ``"250 MOhm"``, ``"2 µs"``, ``"550 1/(s*V)"``, ``"9.75e-4 A/V^2"``. No numbers inside
the unit other than a leading ``1/``, no nested powers, at most :data:`MAX_UNIT_LENGTH`
characters: the expression pint finally converts is small and vetted (pint evaluates
what it is given; ``"1 s*10**10**10"`` would never return). Anything else is rejected with a
:class:`UnitError` naming the field, the text and the expected unit.
"""

from __future__ import annotations

import functools
import math
import numbers
import re

import numpy as np

from ionspike.errors import UnitError

MAX_UNIT_LENGTH = 40       # characters of the unit expression
MAX_EXPONENT = 4           # |n| in "^n" / "**n"
MAX_DEPTH = 2              # nested parentheses

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|Inf|INF)"
_QUANTITY = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>.*?)\s*$", re.DOTALL)
_TOKEN = re.compile(r"\s*(?:(?P<sym>[A-Za-zΩµμ]+)|(?P<pow>\^|\*\*)\s*(?P<exp>[+-]?\d+)|(?P<op>[*/()])"
                    r"|(?P<one>1)(?=\s*/))")
_OHM = re.compile(r"^(?P<p>[yzafpnumkMGTPE]?)(?:Ohms?|Ω)$")

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


def _symbol(text: str) -> str:
    """One unit symbol in pint's spelling: ``MOhm``/``MΩ`` -> ``Mohm``, ``µs`` -> ``us``."""
    text = text.replace("µ", "u").replace("μ", "u")
    m = _OHM.match(text)
    return f"{m.group('p')}ohm" if m else text


def _vet_unit(text: str) -> str:
    """The unit expression in pint's spelling, if ``text`` follows the grammar; else a reason.

    Raises:
        ValueError: with the reason the text is not a unit expression.
    """
    if len(text) > MAX_UNIT_LENGTH:
        raise ValueError(f"a unit has at most {MAX_UNIT_LENGTH} characters")
    out: list[str] = []
    depth, pos = 0, 0
    expect_factor = True          # at the start, after an operator or "("
    powered_group: list[bool] = [False]   # per open group: does it contain a power?
    last_group_had_power = False
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            rest = text[pos:].strip()
            if rest and (rest[0].isdigit() or rest[0] in ".+-"):
                raise ValueError("numbers are allowed only before the unit (and as '1/')")
            raise ValueError(f"unexpected {rest[:10]!r}")
        pos = m.end()
        if m.group("sym") is not None:
            if not expect_factor:
                raise ValueError("write '*' between unit symbols")
            out.append(_symbol(m.group("sym")))
            expect_factor, last_group_had_power = False, False
        elif m.group("one") is not None:
            if out or not expect_factor:
                raise ValueError("numbers are allowed only before the unit (and as a leading '1/')")
            out.append("1")
            expect_factor = False
        elif m.group("pow") is not None:
            if expect_factor or out[-1] == "1":
                raise ValueError("a power must follow a unit symbol or a parenthesised unit")
            if out[-1].startswith("**") or last_group_had_power:
                raise ValueError("nested powers are not allowed")
            exponent = int(m.group("exp"))
            if abs(exponent) > MAX_EXPONENT:
                raise ValueError(f"unit exponents are limited to |n| <= {MAX_EXPONENT}")
            out.append(f"**{exponent}")
            powered_group[-1] = True
        else:
            op = m.group("op")
            if op == "(":
                if not expect_factor:
                    raise ValueError("write '*' before '('")
                depth += 1
                if depth > MAX_DEPTH:
                    raise ValueError(f"at most {MAX_DEPTH} levels of parentheses")
                powered_group.append(False)
                out.append("(")
            elif op == ")":
                if expect_factor or depth == 0:
                    raise ValueError("unbalanced parentheses")
                depth -= 1
                last_group_had_power = powered_group.pop()
                powered_group[-1] = powered_group[-1] or last_group_had_power
                out.append(")")
                continue
            else:  # * or /
                if expect_factor:
                    raise ValueError(f"'{op}' needs a unit on both sides")
                out.append(op)
                expect_factor = True
            last_group_had_power = False
    if depth:
        raise ValueError("unbalanced parentheses")
    if expect_factor:
        raise ValueError("the unit ends with an operator")
    if out == ["1"]:
        raise ValueError("'1' alone is not a unit")
    return "".join(out)


@functools.lru_cache(maxsize=512)
def _factor(unit_text: str, target: str) -> tuple[float, str]:
    """(SI factor, "") of a vetted unit expression, or (nan, reason) when pint refuses it."""
    reg = _registry()
    try:
        q = reg.Quantity(1.0, unit_text)
    except Exception as exc:  # pint raises several types for unknown units
        return math.nan, f"unknown unit {unit_text!r} ({type(exc).__name__})"
    try:
        return float(q.to(target).magnitude), ""
    except Exception:
        return math.nan, f"has unit {q.units:~P} [{q.dimensionality}]"


def parse_quantity(value: str | float | int, unit: str, *, name: str = "value") -> float:
    """Convert ``value`` to a float in the SI unit ``unit``.

    Args:
        value: a number (taken as already SI) or a string such as ``"250 MOhm"``.
            A bare number in a string (``"0.8"``) is taken as SI.
        unit: the expected SI unit, one of :data:`DIMENSIONS` (``"ohm"``, ``"F"``, ...).
        name: the field name used in error messages.

    Returns:
        The value in SI units (``±inf`` only when written as ``inf``; never NaN).

    Raises:
        UnitError: malformed string, unknown unit, wrong dimension, NaN, or a value that
            overflows a float.
    """
    target = DIMENSIONS.get(unit)
    if target is None:
        raise ValueError(f"internal: unknown declared unit {unit!r}")
    expected = unit or "no unit"
    if isinstance(value, (bool, np.bool_)):
        raise UnitError(f"{name} = {value!r}: expected a number or a quantity string in {expected}")
    if isinstance(value, (numbers.Real, np.integer, np.floating)):
        try:
            number = float(value)
        except OverflowError:
            raise UnitError(f"{name} = {value!r} does not fit a float") from None
        if math.isnan(number):
            raise UnitError(f"{name} = nan is not a number")
        return number
    if not isinstance(value, str):
        raise UnitError(f"{name} = {_short(value)}: expected a number or a string like '10 pF', "
                        f"got {type(value).__name__}")
    match = _QUANTITY.match(value)
    if match is None:
        raise UnitError(
            f"{name} = {_short(value)} is not a quantity: write a number and a unit, e.g. "
            f"'250 MOhm', '10 pF', '2 us' (expected unit: {expected})"
        )
    number = float(match.group("num"))
    if math.isinf(number) and "inf" not in match.group("num").lower():
        raise UnitError(f"{name} = {_short(value)} overflows a float (largest {np.finfo(float).max:g}); "
                        "write 'inf' for an infinite value")
    unit_text = match.group("unit")
    if not unit_text:
        return number
    try:
        vetted = _vet_unit(unit_text)
    except ValueError as exc:
        raise UnitError(
            f"{name} = {_short(value)} is not a quantity: {exc}; write a number and a unit such as "
            f"'250 MOhm', '2 us', '550 1/(s*V)', '9.75e-4 A/V^2' (expected unit: {expected})"
        ) from None
    factor, problem = _factor(vetted, target)
    if problem:
        raise UnitError(f"{name} = {_short(value)}: {problem}, expected {expected}")
    result = number * factor
    if math.isnan(result):
        raise UnitError(f"{name} = {_short(value)} is not a number ({number:g} x {factor:g})")
    if math.isinf(result) and not math.isinf(number):
        raise UnitError(f"{name} = {_short(value)} overflows a float (largest {np.finfo(float).max:g})")
    return result


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
