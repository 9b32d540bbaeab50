"""Input waveforms as data: small frozen records evaluated as ``V_in(t)`` inside ``jit``.

Every field may be a scalar (same for every neuron) or an array of length ``n`` (one
value per neuron), so one batch can sweep amplitudes or gaps. Times in s, voltages in V.
Construction validates the values (``width <= period``, no NaN samples, ...) and raises
:class:`~ionspike.errors.StimulusError` naming the field, the value and the allowed range.

``min_segment()`` is the shortest constant or linear piece of the waveform; the solver
requires ``dt <= min_segment()/4`` so every edge is resolved by at least four steps.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ionspike.errors import StimulusError
from ionspike.units import json_number, parse_quantity

STEPS_PER_SEGMENT = 4


def _arr(name: str, value: Any, *, lo: float = -math.inf, lo_open: bool = False, unit: str = "") -> np.ndarray:
    if isinstance(value, str):
        value = parse_quantity(value, unit, name=name)
    a = np.asarray(value, dtype=float)
    if a.ndim > 1:
        raise StimulusError(f"{name}: expected a scalar or a 1-D array (one value per neuron), got shape {a.shape}")
    if np.isnan(a).any():
        raise StimulusError(f"{name} contains NaN; allowed: finite values")
    bad = (a <= lo) if lo_open else (a < lo)
    if bad.any():
        raise StimulusError(f"{name} = {a[bad].flat[0]:g} {unit} is out of range: allowed "
                            f"{'(' if lo_open else '['}{lo:g}, inf) {unit}")
    return a


def _concrete(record) -> bool:
    """True when every field holds plain numbers (validate); False under jit/pytree rebuilds."""
    for f in dataclasses.fields(record):
        v = getattr(record, f.name)
        if isinstance(v, jax.Array) or not isinstance(v, (int, float, str, list, tuple, np.ndarray, np.number)):
            return False
    return True


class Stimulus(abc.ABC):
    """Base of all waveforms. Subclasses are frozen dataclasses of per-neuron arrays."""

    @abc.abstractmethod
    def value(self, t):
        """``V_in`` at time ``t`` (s), in V: shape ``(n,)``, or ``()`` when shared by all neurons."""

    def min_segment(self) -> float:
        """Shortest piece of the waveform, in s (``inf`` for a constant)."""
        return math.inf

    @abc.abstractmethod
    def max_voltage(self) -> float:
        """Largest input voltage, in V."""

    def max_abs_voltage(self) -> float:
        """Largest input magnitude, in V (the drive of a symmetric device)."""
        fields = [np.asarray(getattr(self, f.name), float) for f in dataclasses.fields(self)
                  if f.name in ("amplitude", "baseline", "peak", "values")]
        return float(max(np.max(np.abs(v)) for v in fields))

    def size(self) -> int:
        """Batch size implied by the per-neuron fields (1 if all are scalars)."""
        sizes = {np.size(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in _NOT_BATCHED}
        sizes.discard(1)
        if len(sizes) > 1:
            raise StimulusError(f"{type(self).__name__}: per-neuron fields have different lengths {sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def batched(self, n: int) -> "Stimulus":
        """The waveform as JAX arrays for ``n`` neurons: per-neuron fields become ``(n,)``,
        shared fields stay 0-d so ``value`` computes them once per step for the whole batch."""
        kw = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in _NOT_BATCHED:
                kw[f.name] = jnp.asarray(v)
                continue
            a = np.asarray(v, dtype=float)
            if a.size not in (1, n):
                raise StimulusError(f"{type(self).__name__}.{f.name} has {a.size} values for {n} neurons")
            kw[f.name] = jnp.asarray(a.reshape(-1)) if a.size > 1 else jnp.asarray(a.reshape(()))
        return dataclasses.replace(self, **kw)

    def describe(self) -> dict:
        """JSON-ready description: kind and fields (lists for per-neuron values)."""
        out = {"kind": type(self).__name__}
        for f in dataclasses.fields(self):
            v = np.asarray(getattr(self, f.name))
            out[f.name] = json_number(v.tolist()) if v.size <= 64 else f"<{v.size} values>"
        return out


_NOT_BATCHED = {"times"}


def _register(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    jax.tree_util.register_dataclass(cls, data_fields=names, meta_fields=[])
    return cls


@_register
@dataclass(frozen=True)
class PulseTrain(Stimulus):
    """Rectangular pulses: ``amplitude`` (V) for ``width`` (s) every ``period`` (s) after ``delay`` (s).

    The train stops after ``n_pulses`` pulses or once ``duration`` (s, from ``delay``) has
    passed, whichever comes first (``inf`` = until the end of the run); a pulse that starts
    within ``duration`` is delivered whole. Between pulses the input is ``baseline``.
    Paired pulses are a train of two: see :func:`paired_pulses`.
    """

    amplitude: Any
    width: Any
    period: Any
    delay: Any = 0.0
    n_pulses: Any = math.inf
    baseline: Any = 0.0
    duration: Any = math.inf

    def __post_init__(self):
        if not _concrete(self):
            return
        object.__setattr__(self, "amplitude", _arr("PulseTrain.amplitude", self.amplitude, unit="V"))
        w = _arr("PulseTrain.width", self.width, lo=0, lo_open=True, unit="s")
        p = _arr("PulseTrain.period", self.period, lo=0, lo_open=True, unit="s")
        if np.any(np.broadcast_to(w, np.broadcast(w, p).shape) > np.broadcast_to(p, np.broadcast(w, p).shape)):
            raise StimulusError(f"PulseTrain.width = {np.max(w):g} s exceeds period = {np.min(p):g} s: allowed width in (0, period]")
        object.__setattr__(self, "width", w)
        object.__setattr__(self, "period", p)
        object.__setattr__(self, "delay", _arr("PulseTrain.delay", self.delay, lo=0, unit="s"))
        object.__setattr__(self, "n_pulses", _arr("PulseTrain.n_pulses", self.n_pulses, lo=0))
        object.__setattr__(self, "baseline", _arr("PulseTrain.baseline", self.baseline, unit="V"))
        object.__setattr__(self, "duration", _arr("PulseTrain.duration", self.duration, lo=0, lo_open=True, unit="s"))

    def value(self, t):
        s = t - self.delay
        k = jnp.floor(s / self.period)
        phase = s - k * self.period
        on = (s >= 0) & (phase < self.width) & (k < self.n_pulses) & (k * self.period < self.duration)
        return jnp.where(on, self.amplitude, self.baseline)

    def min_segment(self) -> float:
        w = np.asarray(self.width, float)
        gap = np.asarray(self.period, float) - w
        gap = np.where(gap > 0, gap, np.inf)  # width == period is a constant level
        single = np.asarray(self.n_pulses) <= 1
        gap = np.where(single, np.inf, gap)
        return float(min(np.min(w), np.min(gap)))

    def max_voltage(self) -> float:
        return float(max(np.max(self.amplitude), np.max(self.baseline)))


def paired_pulses(amplitude, width, gap, delay=0.0) -> PulseTrain:
    """Two pulses of ``width`` separated by ``gap`` (end of the first to start of the second), in s."""
    w = _arr("paired_pulses.width", width, lo=0, lo_open=True, unit="s")
    g = _arr("paired_pulses.gap", gap, lo=0, lo_open=True, unit="s")
    return PulseTrain(amplitude=amplitude, width=w, period=w + g, delay=delay, n_pulses=2.0)


@_register
@dataclass(frozen=True)
class DC(Stimulus):
    """A constant level ``amplitude`` (V) from ``delay`` (s) on; ``baseline`` (V) before."""

    amplitude: Any
    delay: Any = 0.0
    baseline: Any = 0.0

    def __post_init__(self):
        if not _concrete(self):
            return
        object.__setattr__(self, "amplitude", _arr("DC.amplitude", self.amplitude, unit="V"))
        object.__setattr__(self, "delay", _arr("DC.delay", self.delay, lo=0, unit="s"))
        object.__setattr__(self, "baseline", _arr("DC.baseline", self.baseline, unit="V"))

    def value(self, t):
        return jnp.where(t >= self.delay, self.amplitude, self.baseline)

    def max_voltage(self) -> float:
        return float(max(np.max(self.amplitude), np.max(self.baseline)))


@_register
@dataclass(frozen=True)
class Triangle(Stimulus):
    """A triangular sweep ``baseline -> peak -> baseline`` (``rise`` then ``fall`` seconds), repeated
    every ``period`` (``inf`` = once) after ``delay``. A ramp is a triangle with ``fall = 0``
    held at the peak: see :func:`ramp`."""

    peak: Any
    rise: Any
    fall: Any
    delay: Any = 0.0
    period: Any = math.inf
    baseline: Any = 0.0
    hold_peak: Any = 0.0  # 1.0: stay at the peak after the rise (ramp)

    def __post_init__(self):
        if not _concrete(self):
            return
        object.__setattr__(self, "peak", _arr("Triangle.peak", self.peak, unit="V"))
        r = _arr("Triangle.rise", self.rise, lo=0, lo_open=True, unit="s")
        f = _arr("Triangle.fall", self.fall, lo=0, unit="s")
        p = _arr("Triangle.period", self.period, lo=0, lo_open=True, unit="s")
        if np.any(r + f > p):
            raise StimulusError(f"Triangle: rise + fall = {np.max(r + f):g} s exceeds period = {np.min(p):g} s")
        for k, v in (("rise", r), ("fall", f), ("period", p)):
            object.__setattr__(self, k, v)
        object.__setattr__(self, "delay", _arr("Triangle.delay", self.delay, lo=0, unit="s"))
        object.__setattr__(self, "baseline", _arr("Triangle.baseline", self.baseline, unit="V"))
        object.__setattr__(self, "hold_peak", _arr("Triangle.hold_peak", self.hold_peak, lo=0))

    def value(self, t):
        s = t - self.delay
        period = jnp.where(jnp.isinf(self.period), jnp.inf, self.period)
        k = jnp.where(jnp.isinf(period), 0.0, jnp.floor(s / period))
        ph = s - jnp.where(jnp.isinf(period), 0.0, k * period)
        up = self.baseline + (self.peak - self.baseline) * ph / self.rise
        fall = jnp.where(self.fall > 0, self.fall, 1.0)
        down = self.peak - (self.peak - self.baseline) * (ph - self.rise) / fall
        v = jnp.where(ph < self.rise, up,
                      jnp.where(self.hold_peak > 0, self.peak,
                                jnp.where(ph < self.rise + self.fall, down, self.baseline)))
        return jnp.where(s >= 0, v, self.baseline)

    def min_segment(self) -> float:
        f = np.asarray(self.fall, float)
        return float(min(np.min(self.rise), np.min(np.where(f > 0, f, np.inf))))

    def max_voltage(self) -> float:
        return float(max(np.max(self.peak), np.max(self.baseline)))


def ramp(start, stop, duration, delay=0.0) -> Triangle:
    """A linear ramp from ``start`` to ``stop`` volts over ``duration`` s, then held at ``stop``."""
    return Triangle(peak=stop, rise=duration, fall=0.0, delay=delay, baseline=start, hold_peak=1.0)


@_register
@dataclass(frozen=True)
class Sampled(Stimulus):
    """An arbitrary waveform: ``values`` (V) at ``times`` (s), linearly interpolated.

    ``times`` is shared by all neurons, shape ``(m,)``, strictly increasing; ``values`` is
    ``(m,)`` or ``(n, m)`` (one row per neuron). Outside the samples the end values hold.
    """

    times: Any
    values: Any

    def __post_init__(self):
        if not _concrete(self):
            return
        t = np.asarray(self.times, float)
        v = np.asarray(self.values, float)
        if t.ndim != 1 or t.size < 2:
            raise StimulusError(f"Sampled.times: expected a 1-D array of at least 2 times, got shape {t.shape}")
        if np.isnan(t).any() or np.any(np.diff(t) <= 0):
            raise StimulusError("Sampled.times must be finite and strictly increasing")
        if v.shape[-1] != t.size or v.ndim > 2:
            raise StimulusError(f"Sampled.values: expected shape ({t.size},) or (n, {t.size}), got {v.shape}")
        if np.isnan(v).any():
            i = np.argwhere(np.isnan(v))[0]
            raise StimulusError(f"Sampled.values contains NaN at index {tuple(int(k) for k in i)} "
                                f"(t = {t[i[-1]]:g} s); allowed: finite voltages")
        object.__setattr__(self, "times", t)
        object.__setattr__(self, "values", v)

    def size(self) -> int:
        v = np.asarray(self.values)
        return v.shape[0] if v.ndim == 2 else 1

    def batched(self, n: int) -> "Sampled":
        v = np.asarray(self.values, float)
        if v.ndim == 2 and v.shape[0] not in (1, n):
            raise StimulusError(f"Sampled.values has {v.shape[0]} rows for {n} neurons")
        v = np.broadcast_to(v.reshape(-1, v.shape[-1]), (n, v.shape[-1]))
        return Sampled(times=jnp.asarray(self.times), values=jnp.asarray(v))

    def value(self, t):
        return jax.vmap(lambda row: jnp.interp(t, self.times, row))(self.values)

    def min_segment(self) -> float:
        return float(np.min(np.diff(np.asarray(self.times))))

    def max_voltage(self) -> float:
        return float(np.max(self.values))


_PULSE_SPEC = re.compile(r"^\s*([^,]+),([^,]+),([^,]+)\s*$")


def parse_pulse(spec: str) -> PulseTrain:
    """Parse the CLI form ``"AMPLITUDE,WIDTH,PERIOD"``, e.g. ``"0.8V,1ms,2ms"``."""
    m = _PULSE_SPEC.match(spec)
    if not m:
        raise StimulusError(f"--pulse {spec!r}: expected AMPLITUDE,WIDTH,PERIOD such as 0.8V,1ms,2ms")
    amp = parse_quantity(m.group(1).strip(), "V", name="pulse amplitude")
    width = parse_quantity(m.group(2).strip(), "s", name="pulse width")
    period = parse_quantity(m.group(3).strip(), "s", name="pulse period")
    return PulseTrain(amplitude=amp, width=width, period=period)


def from_defaults(defaults: dict, where: str = "defaults") -> "PulseTrain | DC":
    """The stimulus a preset's ``[defaults]`` names: ``dc = "0.8 V"`` or ``pulse = "0.8V,1ms,2ms"``
    (0.8 V, 1 ms / 2 ms pulses when neither is given)."""
    if "dc" in defaults:
        return DC(parse_quantity(defaults["dc"], "V", name=f"{where}.dc"))
    return parse_pulse(defaults.get("pulse", "0.8V,1ms,2ms"))
