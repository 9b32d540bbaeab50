"""Argument checks at the API's edge: one style for every "name = value: allowed ..." error.

Each helper takes the argument's ``name`` (as the user wrote it), its ``value`` and what is
allowed; it returns the value in its canonical Python type, or raises an
:class:`~ionspike.errors.IonspikeError` subclass (``error``, default
:class:`~ionspike.errors.ParameterError`) whose message names the argument, the value it got
and the allowed range or type. Nothing is coerced silently: ``2.5`` is not an integer,
``True`` is not a number, a string is not a seed.

>>> integer("n", 3, lo=1)
3
>>> integer("n", 2.5, lo=1)
Traceback (most recent call last):
...
ionspike.errors.ParameterError: n = 2.5 (float): expected an integer in [1, inf)

The helpers check plain Python/NumPy values; JAX tracers never reach them (they run before
any transformation). Stable interface: ``integer``, ``real``, ``positive``, ``flag``,
``choice``, ``seed``, ``SEED_MAX``, and ``user_values`` (does a record hold user input?).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, TypeVar

import jax
import numpy as np

from ionspike.errors import IonspikeError, ParameterError

T = TypeVar("T")

SEED_MAX = 2**63 - 1  # largest seed jax.random.key accepts (int64)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _interval(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False,
              unit: str = "") -> str:
    a = "-inf" if lo is None else (str(lo) if isinstance(lo, int) else f"{lo:g}")
    b = "inf" if hi is None else (str(hi) if isinstance(hi, int) else f"{hi:g}")
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{a}, {b}{right}" + (f" {unit}" if unit else "")


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def integer(name: str, value: Any, lo: int | None = None, hi: int | None = None, *,
            error: type[IonspikeError] = ParameterError) -> int:
    """``value`` as an ``int`` in ``[lo, hi]`` (``None``: unbounded).

    Accepts Python and NumPy integers; refuses bools, floats (even ``2.0``), strings and
    anything else, naming the type it got.
    """
    if _is_bool(value) or not isinstance(value, (numbers.Integral, np.integer)):
        raise error(f"{name} = {_shown(value)} ({type(value).__name__}): expected an integer in "
                    f"{_interval(lo, hi)}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise error(f"{name} = {v} is out of range: allowed integers in {_interval(lo, hi)}")
    return v


def real(name: str, value: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
         hi_open: bool = False, unit: str = "", allow_inf: bool = False,
         error: type[IonspikeError] = ParameterError) -> float:
    """``value`` as a ``float`` in the interval from ``lo`` to ``hi`` (open ends if asked).

    Accepts Python and NumPy reals (not bools); NaN is refused; ``±inf`` only with
    ``allow_inf`` (and then only where the interval includes it). ``unit`` is printed
    after the interval (SI, e.g. ``"s"``).
    """
    if _is_bool(value) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise error(f"{name} = {_shown(value)} ({type(value).__name__}): expected a number in "
                    f"{_interval(lo, hi, lo_open, hi_open, unit)}")
    try:
        v = float(value)
    except OverflowError:
        raise error(f"{name} = {_shown(value)} does not fit a float: allowed "
                    f"{_interval(lo, hi, lo_open, hi_open, unit)}") from None
    allowed = _interval(lo, hi, lo_open, hi_open, unit)
    if math.isnan(v):
        raise error(f"{name} = nan is not a number: allowed {allowed}")
    if math.isinf(v) and not allow_inf:
        raise error(f"{name} = {v} is out of range: allowed finite values in {allowed}")
    below = lo is not None and (v <= lo if lo_open else v < lo)
    above = hi is not None and (v >= hi if hi_open else v > hi)
    if below or above:
        raise error(f"{name} = {v!r}{' ' + unit if unit else ''} is out of range: allowed {allowed}")
    return v


def positive(name: str, value: Any, *, unit: str = "", allow_inf: bool = False,
             error: type[IonspikeError] = ParameterError) -> float:
    """``value`` as a ``float`` in ``(0, inf)`` (finite unless ``allow_inf``)."""
    return real(name, value, 0.0, None, lo_open=True, unit=unit, allow_inf=allow_inf, error=error)


def flag(name: str, value: Any, *, error: type[IonspikeError] = ParameterError) -> bool:
    """``value`` as a ``bool``: only ``True``/``False`` (Python or NumPy), not ``0``/``1`` or strings."""
    if not _is_bool(value):
        raise error(f"{name} = {_shown(value)} ({type(value).__name__}): expected True or False")
    return bool(value)


def choice(name: str, value: T, allowed: Iterable[T], *, error: type[IonspikeError] = ParameterError) -> T:
    """``value`` if it is one of ``allowed`` (compared with ``==``; unhashable values are refused)."""
    options = list(allowed)
    if not any(_same(value, a) for a in options):
        raise error(f"{name} = {_shown(value)}: allowed {', '.join(repr(a) for a in options)}")
    return value


def _same(value: Any, option: Any) -> bool:
    if _is_bool(value) != _is_bool(option):  # True is not 1
        return False
    try:
        equal = value == option
    except Exception:  # an object whose comparison fails is not one of the choices
        return False
    return isinstance(equal, (bool, np.bool_)) and bool(equal)  # an array compared elementwise is not


def seed(value: Any, name: str = "seed", *, error: type[IonspikeError] = ParameterError) -> int:
    """A random seed: an integer in ``[0, SEED_MAX]`` (what ``jax.random.key`` takes)."""
    return integer(name, value, 0, SEED_MAX, error=error)


_VALUE_TYPES = (numbers.Number, str, list, tuple, np.ndarray, np.generic, jax.Array, type(None))


def user_values(values: Iterable[Any]) -> bool:
    """True when a record's field values are user input to validate; False for the copies JAX
    builds while transforming a function: any field a tracer, or every field a placeholder
    (the ``object()`` proxies of ``vmap``'s axis specs, shape structs). ``None`` counts as user
    input (JAX never puts it in a leaf), so the record's own checks refuse it."""
    values = list(values)
    if any(isinstance(v, jax.core.Tracer) for v in values):
        return False
    return any(isinstance(v, _VALUE_TYPES) for v in values)
