"""Helpers shared by the characterisation protocols: parameter resolution and checks, statistics, fits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from ionspike import checks
from ionspike.errors import ParameterError
from ionspike.params import NeuronParams
from ionspike.presets import Preset
from ionspike.presets import resolve as resolve_preset


def resolve(preset: Any) -> tuple[NeuronParams, str, float | None]:
    """(params, name, recommended dt) of a preset name/path, a Preset or NeuronParams
    (:func:`ionspike.presets.resolve`; custom parameters are named ``"custom"``)."""
    p: Preset = resolve_preset(preset)
    return p.params, p.name or "custom", p.dt


def check_trials(trials: int, name: str = "trials") -> int:
    """A number of trials: an integer >= 1."""
    return checks.integer(name, trials, 1)


def swept(name: str, values: Any, *, unit: str = "", positive: bool = False) -> np.ndarray:
    """A protocol's swept values (a number or a sequence of numbers, SI ``unit``) as a non-empty
    1-D float array of finite values (> 0 with ``positive``), each checked with :mod:`ionspike.checks`."""
    items = list(values) if isinstance(values, (list, tuple, np.ndarray)) and np.ndim(values) == 1 else [values]
    if not items:
        raise ParameterError(f"{name} = {values!r}: expected at least one value")
    if positive:
        return np.array([checks.positive(f"{name}[{i}]", v, unit=unit) for i, v in enumerate(items)])
    return np.array([checks.real(f"{name}[{i}]", v, unit=unit) for i, v in enumerate(items)])


def derived_seed(seed: int, offset: int) -> int:
    """The seed of a protocol's ``offset``-th further run: ``seed + offset``, wrapped into the seed range."""
    return (checks.seed(seed) + offset) % (checks.SEED_MAX + 1)


def first_after(ds: xr.Dataset, t0, t1=np.inf, event: str = "spike_time") -> np.ndarray:
    """Per neuron: the first event time in [t0, t1) (s), NaN if none. ``t0``/``t1`` scalars or per neuron."""
    t = ds[event].values
    t0 = np.broadcast_to(np.asarray(t0, float), (t.shape[0],))[:, None]
    t1 = np.broadcast_to(np.asarray(t1, float), (t.shape[0],))[:, None]
    inside = np.where((t >= t0) & (t < t1), t, np.inf)
    first = inside.min(axis=1, initial=np.inf)
    return np.where(np.isfinite(first), first, np.nan)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95 % interval of a binomial proportion k/n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def exp_decay_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit ``y = A exp(-x/tau)`` by least squares on ``log y`` (positive y only): (A, tau)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return (math.nan, math.nan)
    slope, intercept = np.polyfit(x[ok], np.log(y[ok]), 1)
    return (float(np.exp(intercept)), float(-1.0 / slope) if slope < 0 else math.inf)


def key(x: float) -> str:
    """JSON key for a swept value in SI (``2e-4`` -> ``"0.0002"``)."""
    return f"{x:.6g}"


def none_if_nan(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
