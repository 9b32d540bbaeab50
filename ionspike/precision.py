"""Numerical precision, chosen per call by ionspike's entry points, never for the whole process.

The circuit level needs float64: resistances span 1e6..1e12 Ohm, energies are differences of
nearly equal terms, and event times are interpolated inside microsecond steps. Network training
runs in float32. Importing ionspike changes no JAX setting; each entry point that needs 64-bit
types (:func:`ionspike.simulate`, the protocols, calibration, the SPICE cross-check) runs inside
:func:`x64`, which enables them for that call, in that thread, and restores the caller's setting
afterwards. Arrays an entry point returns are NumPy (or xarray) arrays, so they keep float64
whatever the caller's JAX setting.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, TypeVar

import jax

F = TypeVar("F", bound=Callable)


def _context():
    manager = getattr(jax, "enable_x64", None)
    if manager is None:  # older JAX: the same context manager lived in jax.experimental
        from jax.experimental import enable_x64 as manager  # type: ignore[no-redef]
    return manager(True)


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
