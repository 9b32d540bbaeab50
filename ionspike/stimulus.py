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

from ionspike.checks import user_values
from ionspike.errors import StimulusError
from ionspike.units import json_number, parse_quantity

STEPS_PER_SEGMENT = 4
JUMP_TOL = 1e-13   # s: a time this close to an edge is at the edge (next_jump returns the one after)


def _first_after(t, candidates):
    """The smallest of ``candidates`` (a list of arrays broadcastable with ``t``) later than
    ``t + JUMP_TOL``; ``inf`` if none."""
    out = jnp.full(jnp.shape(t), jnp.inf)
    for c in candidates:
        out = jnp.minimum(out, jnp.where(c > t + JUMP_TOL, c, jnp.inf))
    return out


def _arr(name: str, value: Any, *, lo: float = -math.inf, lo_open: bool = False, unit: str = "",
         allow_inf: bool = False) -> np.ndarray:
    """A stimulus field as a float array (0-d or 1-D, one value per neuron), validated.

    Accepts numbers, unit strings (``"1 ms"``), lists and NumPy/JAX arrays; refuses bools,
    non-numeric arrays, 2-D or empty arrays, NaN, infinities (unless ``allow_inf``) and values
    below ``lo``, with a StimulusError naming the field, the value and what is allowed.
    """
    a = _float_array(name, value, unit)
    if a.ndim > 1 or a.size == 0:
        raise StimulusError(f"{name}: expected a scalar or a non-empty 1-D array (one value per neuron), "
                            f"got shape {a.shape}")
    if np.isnan(a).any():
        raise StimulusError(f"{name} contains NaN; allowed: finite values")
    allowed = (f"{'(' if lo_open else '['}{lo:g}, inf{']' if allow_inf else ')'} {unit}".rstrip()
               if lo > -math.inf else "any value")
    if not allow_inf and np.isinf(a).any():
        raise StimulusError(f"{name} = {a[np.isinf(a)].flat[0]:g} {unit} is out of range: allowed finite values"
                            + (f" in {allowed}" if lo > -math.inf else ""))
    bad = (a <= lo) if lo_open else (a < lo)
    if bad.any():
        raise StimulusError(f"{name} = {a[bad].flat[0]:g}{' ' + unit if unit else ''} is out of range: "
                            f"allowed {allowed}")
    return a


def _float_array(name: str, value: Any, unit: str = "") -> np.ndarray:
    """``value`` (a number, a unit string, a list or a NumPy/JAX array of numbers) as floats;
    bools and anything non-numeric are refused."""
    if isinstance(value, str):
        value = parse_quantity(value, unit, name=name)
    if isinstance(value, (bool, np.bool_)):
        raise StimulusError(f"{name} = {value!r}: expected a number{' in ' + unit if unit else ''}, not a bool")
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):  # ragged nested lists
        a = np.asarray(None)
    if a.dtype.kind not in "iuf":
        raise StimulusError(f"{name} = {_short(value)}: expected numbers{' in ' + unit if unit else ''}, "
                            f"got {type(value).__name__} of {a.dtype}")
    return a.astype(float)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(name: str, a: np.ndarray) -> np.ndarray:
    """``a`` if every value is a whole number or inf."""
    if np.any(np.isfinite(a) & (a != np.floor(a))):
        raise StimulusError(f"{name} = {a[np.isfinite(a) & (a != np.floor(a))].flat[0]:g} is not a whole "
                            "number: allowed 0, 1, 2, ... or inf")
    return a


def _same_length(owner: str, **fields: np.ndarray) -> None:
    sizes = {k: int(np.size(v)) for k, v in fields.items() if np.size(v) != 1}
    if len(set(sizes.values())) > 1:
        raise StimulusError(f"{owner}: per-neuron fields have different lengths {sizes}; allowed: one length n "
                            "for every per-neuron field (or scalars)")


def _concrete(record) -> bool:
    """True when the fields hold user values (validate them); False for the copies JAX builds
    while transforming a function (see :func:`ionspike.checks.user_values`)."""
    return user_values(getattr(record, f.name) for f in dataclasses.fields(record))


def _set(record, **validated: np.ndarray) -> None:
    """Store validated fields; a JAX array stays the JAX array it was (already placed, batched)."""
    for name, value in validated.items():
        if not isinstance(getattr(record, name), jax.Array):
            object.__setattr__(record, name, value)


class Stimulus(abc.ABC):
    """Base of all waveforms. Subclasses are frozen dataclasses of per-neuron arrays."""

    @abc.abstractmethod
    def value(self, t):
        """``V_in`` at time ``t`` (s), in V: shape ``(n,)``, or ``()`` when shared by all neurons."""

    def min_segment(self) -> float:
        """Shortest piece of the waveform, in s (``inf`` for a constant)."""
        return math.inf

    def next_jump(self, t):
        """The first time after ``t`` (s, per neuron) where the waveform or its slope is
        discontinuous (``inf`` if none): an adaptive solver ends a step there, so that no step
        straddles an edge. A time within :data:`JUMP_TOL` of an edge counts as at the edge."""
        return jnp.full(jnp.shape(t), jnp.inf)

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
        f = dict(
            amplitude=_arr("PulseTrain.amplitude", self.amplitude, unit="V"),
            width=_arr("PulseTrain.width", self.width, lo=0, lo_open=True, unit="s"),
            period=_arr("PulseTrain.period", self.period, lo=0, lo_open=True, unit="s"),
            delay=_arr("PulseTrain.delay", self.delay, lo=0, unit="s"),
            n_pulses=_whole("PulseTrain.n_pulses", _arr("PulseTrain.n_pulses", self.n_pulses, lo=0, allow_inf=True)),
            baseline=_arr("PulseTrain.baseline", self.baseline, unit="V"),
            duration=_arr("PulseTrain.duration", self.duration, lo=0, lo_open=True, unit="s", allow_inf=True),
        )
        _same_length("PulseTrain", **f)
        w, p = f["width"], f["period"]
        if np.any(w > p):
            raise StimulusError(f"PulseTrain.width = {np.max(w):g} s exceeds period = {np.min(p):g} s: "
                                "allowed width in (0, period]")
        _set(self, **f)

    def value(self, t):
        s = t - self.delay
        k = jnp.floor(s / self.period)
        phase = s - k * self.period
        on = (s >= 0) & (phase < self.width) & (k < self.n_pulses) & (k * self.period < self.duration)
        return jnp.where(on, self.amplitude, self.baseline)

    def next_jump(self, t):
        s = t - self.delay
        k = jnp.maximum(jnp.floor(s / self.period), 0.0)
        # the last pulse delivered: index < n_pulses and starting before `duration`
        last = jnp.minimum(self.n_pulses - 1.0, jnp.ceil(self.duration / self.period) - 1.0)
        edges = []
        for j in (k - 1.0, k, k + 1.0):
            start = self.delay + j * self.period
            ok = (j >= 0) & (j <= last)
            edges += [jnp.where(ok, start, jnp.inf), jnp.where(ok, start + self.width, jnp.inf)]
        return _first_after(t, edges)

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
    _same_length("paired_pulses", width=w, gap=g)
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
        f = dict(amplitude=_arr("DC.amplitude", self.amplitude, unit="V"),
                 delay=_arr("DC.delay", self.delay, lo=0, unit="s"),
                 baseline=_arr("DC.baseline", self.baseline, unit="V"))
        _same_length("DC", **f)
        _set(self, **f)

    def value(self, t):
        return jnp.where(t >= self.delay, self.amplitude, self.baseline)

    def next_jump(self, t):
        return _first_after(t, [jnp.where(self.delay > 0, self.delay, jnp.inf)])

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
        f = dict(
            peak=_arr("Triangle.peak", self.peak, unit="V"),
            rise=_arr("Triangle.rise", self.rise, lo=0, lo_open=True, unit="s"),
            fall=_arr("Triangle.fall", self.fall, lo=0, unit="s"),
            delay=_arr("Triangle.delay", self.delay, lo=0, unit="s"),
            period=_arr("Triangle.period", self.period, lo=0, lo_open=True, unit="s", allow_inf=True),
            baseline=_arr("Triangle.baseline", self.baseline, unit="V"),
            hold_peak=_arr("Triangle.hold_peak", self.hold_peak, lo=0),
        )
        _same_length("Triangle", **f)
        r, fall, p = f["rise"], f["fall"], f["period"]
        if np.any(r + fall > p):
            raise StimulusError(f"Triangle: rise + fall = {np.max(r + fall):g} s exceeds period = {np.min(p):g} s")
        with np.errstate(over="ignore"):
            swing = f["peak"] - f["baseline"]
        if not np.all(np.isfinite(swing)):
            raise StimulusError("Triangle: peak - baseline overflows a float; allowed finite voltage differences")
        if np.any((f["hold_peak"] != 0) & (f["hold_peak"] != 1)):
            raise StimulusError(f"Triangle.hold_peak = {f['hold_peak'].flat[0]:g}: allowed 0 (fall back) or 1 (hold)")
        _set(self, **f)

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

    def next_jump(self, t):
        s = t - self.delay
        once = jnp.isinf(self.period)
        period = jnp.where(once, 1.0, self.period)
        k = jnp.where(once, 0.0, jnp.maximum(jnp.floor(s / period), 0.0))
        edges = []
        for j in (k - 1.0, k, k + 1.0):
            start = self.delay + j * period
            ok = (j >= 0) & (~once | (j == 0))
            for offset in (0.0, self.rise, self.rise + jnp.where(self.hold_peak > 0, jnp.inf, self.fall)):
                edges.append(jnp.where(ok, start + offset, jnp.inf))
        return _first_after(t, edges)

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
        t = _float_array("Sampled.times", self.times, "s")
        v = _float_array("Sampled.values", self.values, "V")
        if t.ndim != 1 or t.size < 2:
            raise StimulusError(f"Sampled.times: expected a 1-D array of at least 2 times, got shape {t.shape}")
        if not np.isfinite(t).all() or np.any(np.diff(t) <= 0):
            raise StimulusError("Sampled.times must be finite and strictly increasing")
        if v.ndim not in (1, 2) or v.shape[-1] != t.size or v.size == 0:
            raise StimulusError(f"Sampled.values: expected shape ({t.size},) or (n, {t.size}) with n >= 1, "
                                f"got {v.shape}")
        if not np.isfinite(v).all():
            i = np.argwhere(~np.isfinite(v))[0]
            what = "NaN" if np.isnan(v[tuple(i)]) else f"{v[tuple(i)]:g}"
            raise StimulusError(f"Sampled.values contains {what} at index {tuple(int(k) for k in i)} "
                                f"(t = {t[i[-1]]:g} s); allowed: finite voltages")
        with np.errstate(over="ignore"):
            steps_finite = np.isfinite(np.diff(v, axis=-1)).all() and np.isfinite(np.diff(t)).all()
        if not steps_finite:
            raise StimulusError("Sampled: a step between neighbouring samples overflows a float; "
                                "allowed finite differences of times and voltages")
        _set(self, times=t, values=v)

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
        if jnp.ndim(t) == 1:   # one time per neuron (an adaptive solver's neurons keep their own clocks)
            return jax.vmap(lambda row, ti: jnp.interp(ti, self.times, row))(self.values, t)
        return jax.vmap(lambda row: jnp.interp(t, self.times, row))(self.values)

    def next_jump(self, t):
        i = jnp.searchsorted(self.times, t + JUMP_TOL, side="right")
        return jnp.where(i < self.times.shape[0], self.times[jnp.minimum(i, self.times.shape[0] - 1)], jnp.inf)

    def min_segment(self) -> float:
        return float(np.min(np.diff(np.asarray(self.times))))

    def max_voltage(self) -> float:
        return float(np.max(self.values))


_PULSE_SPEC = re.compile(r"^\s*([^,]+),([^,]+),([^,]+)\s*$")


def parse_pulse(spec: str, name: str = "--pulse") -> PulseTrain:
    """Parse the CLI form ``"AMPLITUDE,WIDTH,PERIOD"``, e.g. ``"0.8V,1ms,2ms"``.

    Raises:
        StimulusError, UnitError: not three comma-separated quantities (V, s, s), or a
            pulse that cannot exist (width > period, non-finite values); ``name`` is the
            option or key named in the message.
    """
    m = _PULSE_SPEC.match(spec) if isinstance(spec, str) else None
    if not m:
        raise StimulusError(f"{name} {_short(spec)}: expected AMPLITUDE,WIDTH,PERIOD such as 0.8V,1ms,2ms")
    amp = parse_quantity(m.group(1).strip(), "V", name=f"{name} amplitude")
    width = parse_quantity(m.group(2).strip(), "s", name=f"{name} width")
    period = parse_quantity(m.group(3).strip(), "s", name=f"{name} period")
    return PulseTrain(amplitude=amp, width=width, period=period)


def from_defaults(defaults: dict, where: str = "defaults") -> "PulseTrain | DC":
    """The stimulus a preset's ``[defaults]`` names: ``dc = "0.8 V"`` or ``pulse = "0.8V,1ms,2ms"``
    (0.8 V, 1 ms / 2 ms pulses when neither is given)."""
    if "dc" in defaults:
        return DC(parse_quantity(defaults["dc"], "V", name=f"{where}.dc"))
    return parse_pulse(defaults.get("pulse", "0.8V,1ms,2ms"), name=f"{where}.pulse")
