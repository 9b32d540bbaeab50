"""Numerical precision, chosen per call by ionspike's entry points, never for the whole process.

The circuit level needs float64: resistances span 1e6..1e12 Ohm, energies are differences of
nearly equal terms, and event times are interpolated inside microsecond steps. Network training
runs in float32. Importing ionspike changes no JAX setting; each entry point that needs 64-bit
types (:func:`ionspike.simulate`, the protocols, calibration, the SPICE cross-check) runs inside
:func:`x64`, which enables them for that call, in that thread, and restores the caller's setting
afterwards. Arrays an entry point returns are NumPy (or xarray) arrays, so they keep float64
whatever the caller's JAX setting.

:func:`ionspike.simulate` also runs in float32 on request (``precision="float32"``, for large
stochastic batches, chiefly on a GPU): :func:`context` gives the context of either precision, and
code on the simulation path names its floating type with :func:`real` rather than ``float64``.
docs/model.md §6.11 states what float32 costs in accuracy.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, TypeVar

import jax
import numpy as np

from ionspike.errors import ParameterError

F = TypeVar("F", bound=Callable)

PRECISIONS = ("float64", "float32")


def _context(enabled: bool = True):
    manager = getattr(jax, "enable_x64", None)
    if manager is None:  # older JAX: the same context manager lived in jax.experimental
        from jax.experimental import enable_x64 as manager  # type: ignore[no-redef]
    return manager(enabled)


def check(precision: str) -> str:
    """``precision`` validated: one of :data:`PRECISIONS`."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ParameterError(f"precision = {precision!r}: allowed {', '.join(map(repr, PRECISIONS))}")
    return precision


def context(precision: str):
    """Context: JAX's floating type is ``precision`` (``"float64"`` or ``"float32"``) for the
    enclosed code (this thread only)."""
    return _context(check(precision) == "float64")


def real():
    """The floating dtype of the current context (float64 inside :func:`float64`, else float32)."""
    return jax.dtypes.canonicalize_dtype(np.float64)


@contextlib.contextmanager
def float64():
    """Context: JAX 64-bit types on for the enclosed code (this thread only)."""
    with _context():
        yield


def x64(fn: F) -> F:
    """Decorator: run ``fn`` with JAX 64-bit types enabled (see :func:`float64`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _context():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def per_call(fn: F) -> F:
    """Decorator for entry points with a ``precision`` keyword (default ``"float64"``): the call
    runs in that precision's :func:`context`; ``fn`` receives the validated name."""

    @functools.wraps(fn)
    def wrapper(*args, precision: str = "float64", **kwargs):
        with context(precision):
            return fn(*args, precision=precision, **kwargs)

    return wrapper  # type: ignore[return-value]
