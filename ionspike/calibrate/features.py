"""Features of measured (or simulated) device data, the targets of calibration.

Pure NumPy. Every function takes a :class:`~ionspike.calibrate.data.DCSweeps` or
:class:`~ionspike.calibrate.data.PulseTrials` and returns one value per sweep/trial, NaN
where the feature does not exist in that sweep/trial (the device never switched, never
released, ...). Currents enter as magnitudes ``|I|`` (instruments differ in sign
convention); voltages of DC sweeps as ``|V|`` (positive and negative sweeps alike).
Units are SI: V, A, s, Ohm. Every level or threshold is a keyword argument.

DC sweeps: a sweep's *rising branch* runs from its first point to the first point of
largest ``|V|`` (inclusive), its *falling branch* from there to the end.

Pulse trials: the *pulse* is the main rectangular pulse found by :func:`pulse_edges`.
"""

from __future__ import annotations

import math

import numpy as np

from ionspike.calibrate.data import DataError, DCSweeps, PulseTrials
from ionspike.errors import ParameterError

__all__ = [
    "threshold_hold_voltages", "threshold_hold_from_readings", "abrupt_release", "release_currents",
    "switching_fraction",
    "require_switching", "on_off_resistance",
    "detect_compliance", "pulse_edges", "switching_delays", "relaxation_times", "on_current",
    "ks_distance", "describe",
]


def _sweeps(obj) -> DCSweeps:
    if not isinstance(obj, DCSweeps):
        raise ParameterError(f"expected DCSweeps (build one with DCSweeps(voltage=..., current=...)), "
                             f"got {type(obj).__name__}")
    return obj


def _trials(obj) -> PulseTrials:
    if not isinstance(obj, PulseTrials):
        raise ParameterError(f"expected PulseTrials (build one with PulseTrials(time=..., voltage=..., "
                             f"current=...)), got {type(obj).__name__}")
    return obj


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ParameterError(f"{name}={value!r}: must be a finite number > 0")
    return value


def _fraction(name: str, value: float, *, closed: bool = False) -> float:
    value = float(value)
    ok = 0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0
    if not (math.isfinite(value) and ok):
        raise ParameterError(f"{name}={value!r}: allowed {'[0, 1]' if closed else '(0, 1)'}")
    return value


def _on_off_levels(i_on: float, i_off: float) -> tuple[float, float]:
    i_on, i_off = _positive("i_on", i_on), _positive("i_off", i_off)
    if i_off > i_on:
        raise ParameterError(f"i_off={i_off:g} A > i_on={i_on:g} A: the release level must not "
                             "exceed the switching level")
    return i_on, i_off


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True in ``mask``, or None."""
    k = int(np.argmax(mask)) if mask.size else 0
    return k if mask.size and mask[k] else None


def _peak_index(v_abs: np.ndarray) -> int:
    return int(np.argmax(v_abs))  # the first index of the largest |V|


# --------------------------------------------------------------------------------------
# DC sweeps


def _threshold_index(a: np.ndarray, peak: int, i_on: float) -> int | None:
    return _first(a[: peak + 1] > i_on)


def _hold_index(a: np.ndarray, peak: int, i_on: float, i_off: float) -> int | None:
    on = np.flatnonzero(a[peak:] >= i_on)
    if on.size == 0:
        return None
    on_end = peak + int(on[-1])  # last ON point of the falling branch
    k = _first(a[on_end + 1:] < i_off)
    return None if k is None else on_end + 1 + k


def threshold_hold_from_readings(v_abs, a_abs, i_on: float, i_off: float, xp=np):
    """The rule of :func:`threshold_hold_voltages` on arrays: ``v_abs`` ``|V|`` (V), ``(rows, points)``
    or one ``(points,)`` row shared by all; ``a_abs`` ``|I|`` (A), ``(rows, points)``. Returns
    ``(v_th, v_hold)``, each ``(rows,)``, NaN where absent. ``xp``: ``numpy`` or ``jax.numpy``
    (traceable: the DC fit's loss reads the simulated readings with the very rule the data gets).
    """
    a_abs = xp.asarray(a_abs)
    v_abs = xp.broadcast_to(xp.asarray(v_abs), a_abs.shape)
    points = a_abs.shape[-1]
    idx = xp.arange(points)[None, :]
    peak = xp.argmax(v_abs, axis=1)[:, None]            # the first point of largest |V|
    rows = xp.arange(a_abs.shape[0])
    switch = (idx <= peak) & (a_abs > i_on)             # rising branch, peak included
    k_th = xp.argmax(switch, axis=1)
    v_th = xp.where(xp.any(switch, axis=1), v_abs[rows, k_th], xp.nan)
    on = (idx >= peak) & (a_abs >= i_on)                # falling branch, peak included
    on_end = points - 1 - xp.argmax(on[:, ::-1], axis=1)   # the last ON point
    release = (idx > on_end[:, None]) & (a_abs < i_off)
    k_hold = xp.argmax(release, axis=1)
    v_hold = xp.where(xp.any(on, axis=1) & xp.any(release, axis=1), v_abs[rows, k_hold], xp.nan)
    return v_th, v_hold


def threshold_hold_voltages(sweeps: DCSweeps, i_on: float = 1e-8,
                            i_off: float = 1e-11) -> tuple[np.ndarray, np.ndarray]:
    """Threshold and hold voltage of each sweep, ``(v_th, v_hold)``, V, each ``(n_sweeps,)``.

    * ``v_th``: ``|V|`` at the first rising-branch point with ``|I| > i_on`` (A); NaN if
      the current never exceeds ``i_on`` on the rising branch.
    * ``v_hold``: the *ON end* is the last falling-branch point with ``|I| >= i_on``;
      ``v_hold`` is ``|V|`` at the first point after it with ``|I| < i_off`` (A). NaN if the
      falling branch never has ``|I| >= i_on`` or the current never falls below ``i_off``.

    Values sit on the sweep's voltage grid (no interpolation). Positive and negative sweeps
    alike (``|V|``).
    """
    s = _sweeps(sweeps)
    i_on, i_off = _on_off_levels(i_on, i_off)
    return threshold_hold_from_readings(np.abs(s.voltage), np.abs(s.current), i_on, i_off)


def abrupt_release(sweeps: DCSweeps, i_on: float = 1e-8, i_off: float = 1e-11) -> np.ndarray:
    """Per sweep: 1.0 if the point just before its hold point (:func:`threshold_hold_voltages`) is
    ON (``|I| >= i_on``): the device fell from ON to below ``i_off`` within one point; 0.0 if
    the current passed through the levels between (a gradual release, a conducting remnant);
    NaN where there is no hold."""
    s = _sweeps(sweeps)
    i_on, i_off = _on_off_levels(i_on, i_off)
    v_abs, a_abs = np.abs(s.voltage), np.abs(s.current)
    out = np.full(s.n_sweeps, np.nan)
    for n in range(s.n_sweeps):
        k = _hold_index(a_abs[n], _peak_index(v_abs[n]), i_on, i_off)
        if k is not None:
            out[n] = float(a_abs[n, k - 1] >= i_on)
    return out


def release_currents(sweeps: DCSweeps, i_on: float = 1e-8) -> np.ndarray:
    """Per sweep, ``|I|`` (A) at the first falling-branch point after the last ON one (``|I| >= i_on``):
    the current just after the release, the instrument floor for a device that drops to OFF, more
    for one whose remnant still conducts; NaN if the falling branch is never ON or ends ON."""
    s = _sweeps(sweeps)
    i_on = _positive("i_on", i_on)
    v_abs, a_abs = np.abs(s.voltage), np.abs(s.current)
    out = np.full(s.n_sweeps, np.nan)
    for n in range(s.n_sweeps):
        peak = _peak_index(v_abs[n])
        on = np.flatnonzero(a_abs[n, peak:] >= i_on)
        if on.size and peak + on[-1] + 1 < a_abs.shape[1]:
            out[n] = a_abs[n, peak + on[-1] + 1]
    return out


def _switched(current: np.ndarray, i_on: float) -> np.ndarray:
    return np.max(np.abs(current), axis=1) > i_on


def switching_fraction(data: DCSweeps | PulseTrials, i_on: float = 1e-8) -> float:
    """Fraction of sweeps (or trials) whose ``|I|`` exceeds ``i_on`` (A) anywhere.

    A sweep that switches only on its falling branch counts as switched here but has a
    NaN ``v_th`` in :func:`threshold_hold_voltages`.
    """
    if not isinstance(data, (DCSweeps, PulseTrials)):
        _sweeps(data)
    i_on = _positive("i_on", i_on)
    return float(np.mean(_switched(data.current, i_on)))


def require_switching(data: DCSweeps | PulseTrials, i_on: float = 1e-8) -> None:
    """Raise :class:`~ionspike.calibrate.data.DataError` if no sweep/trial switches.

    "Switches" means ``|I| > i_on`` (A) somewhere, as in :func:`switching_fraction`. The
    message gives ``i_on`` and the largest ``|I|`` found.
    """
    if not isinstance(data, (DCSweeps, PulseTrials)):
        _sweeps(data)
    i_on = _positive("i_on", i_on)
    if not _switched(data.current, i_on).any():
        word = "sweep" if isinstance(data, DCSweeps) else "trial"
        raise DataError(f"no {word} switches: |I| never exceeds i_on={i_on:g} A (largest |I| is "
                        f"{float(np.max(np.abs(data.current))):.3g} A)")


def detect_compliance(current, tol: float = 0.01, min_fraction: float = 0.05) -> float | None:
    """The compliance current, A, if the data sit at a clamp; else None.

    The clamp is the largest ``|I|`` of ``current`` (any shape); it counts as compliance if
    at least ``min_fraction`` of the samples lie within a relative ``tol`` of it
    (``|I| >= (1 - tol)·max|I|``). Non-finite samples are ignored.
    """
    tol = _fraction("tol", tol)
    min_fraction = _fraction("min_fraction", min_fraction, closed=True)
    a = np.abs(np.asarray(current, dtype=np.float64)).reshape(-1)
    a = a[np.isfinite(a)]
    if a.size == 0 or not a.max() > 0.0:
        return None
    top = float(a.max())
    return top if np.mean(a >= (1.0 - tol) * top) >= min_fraction else None


def on_off_resistance(sweeps: DCSweeps, i_on: float = 1e-8, i_off: float = 1e-11,
                      compliance: float | None = None, *, floor_factor: float = 10.0,
                      min_v_fraction: float = 0.05, tol: float = 0.01,
                      min_fraction: float = 0.2) -> dict:
    """OFF and ON resistance of each sweep, Ohm, from ``|V|/|I|``.

    * ``r_off_ohm``: median of ``|V|/|I|`` over rising-branch points before the threshold
      point (the whole rising branch if the sweep never switches) with
      ``|V| >= min_v_fraction·max|V|`` of the sweep and
      ``|I| > floor_factor·floor``, where ``floor`` is the smallest ``|I|`` of the whole
      data set (the instrument floor, which would bias the resistance upward).
    * ``r_on_ohm``: median of ``|V|/|I|`` over ON points (``|I| >= i_on``, both branches)
      that are not at compliance (``|I| < (1 - tol)·compliance``). ``compliance`` (A) is
      the given value, or :func:`detect_compliance` over all ON points of the data set
      with ``tol`` and ``min_fraction`` (``None`` if not detected: no points excluded).

    NaN where a sweep has no qualifying point. Returns
    ``{"r_off_ohm": (n_sweeps,), "r_on_ohm": (n_sweeps,), "compliance_A": float | None}``.
    """
    s = _sweeps(sweeps)
    i_on, i_off = _on_off_levels(i_on, i_off)  # i_off validated for a consistent signature
    floor_factor = _positive("floor_factor", floor_factor)
    min_v_fraction = _fraction("min_v_fraction", min_v_fraction, closed=True)
    tol = _fraction("tol", tol)
    v_abs, a_abs = np.abs(s.voltage), np.abs(s.current)
    if compliance is None:
        compliance = detect_compliance(a_abs[a_abs >= i_on], tol=tol, min_fraction=min_fraction)
    else:
        compliance = _positive("compliance", compliance)
    floor = float(a_abs.min())
    r_off = np.full(s.n_sweeps, np.nan)
    r_on = np.full(s.n_sweeps, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for n in range(s.n_sweeps):
            v, a = v_abs[n], a_abs[n]
            peak = _peak_index(v)
            k = _threshold_index(a, peak, i_on)
            stop = peak + 1 if k is None else k
            sel = np.zeros(v.size, bool)
            sel[:stop] = True
            sel &= (v >= min_v_fraction * v[peak]) & (a > floor_factor * floor) & (a > 0.0)
            if sel.any():
                r_off[n] = float(np.median(v[sel] / a[sel]))
            on = a >= i_on
            if compliance is not None:
                on &= a < (1.0 - tol) * compliance
            on &= v > 0.0
            if on.any():
                r_on[n] = float(np.median(v[on] / a[on]))
    return {"r_off_ohm": r_off, "r_on_ohm": r_on, "compliance_A": compliance}


# --------------------------------------------------------------------------------------
# pulse trials


def first_upward_crossing(t: np.ndarray, g: np.ndarray, start: int = 0) -> float:
    """Time, s, of the first upward zero crossing of a sampled ``g`` at or after sample ``start``.

    The event definition of :func:`ionspike.events.upward_crossing` (``g`` from < 0 to >= 0,
    linearly interpolated between the two samples), for one NumPy trace: the first sample
    ``k >= start`` with ``g[k] >= 0``; if ``g[k - 1] < 0`` the time is interpolated between
    ``t[k - 1]`` and ``t[k]``, else (the trace starts at or above zero) it is ``t[k]``. NaN if
    ``g`` never reaches 0. A level crossing is a crossing of ``y - level``, a downward one the
    upward crossing of ``level - y``. (NumPy here, for traces of any length without JAX; the
    JAX step form is the one in :mod:`ionspike.events`.)
    """
    k = _first(g[start:] >= 0.0)
    if k is None:
        return math.nan
    k += start
    if k == 0 or g[k - 1] >= 0.0:
        return float(t[k])
    frac = min(max(-g[k - 1] / (g[k] - g[k - 1]), 0.0), 1.0)
    return float(t[k - 1] + frac * (t[k] - t[k - 1]))


def _crossing_time(t: np.ndarray, y: np.ndarray, level: float, start: int, upward: bool) -> float:
    """Time, s, of the first crossing of ``level`` by ``y`` at or after sample ``start``: upward
    (``y >= level``) or downward (``y < level``, i.e. ``level - y > 0``), see :func:`first_upward_crossing`."""
    if upward:
        return first_upward_crossing(t, y - level, start)
    # below means y < level: one ulp down keeps y == level (level - y = 0) on the not-crossed side
    return first_upward_crossing(t, np.nextafter(level - y, -np.inf), start)


def _edges_one(t: np.ndarray, v: np.ndarray, level: float) -> tuple[float, float, float]:
    """(t_start, t_end, polarity) of one trial's main pulse."""
    polarity = 1.0 if abs(v.max()) >= abs(v.min()) else -1.0
    u = polarity * v
    lo, hi = float(u.min()), float(u.max())
    if not hi > lo:
        return math.nan, math.nan, polarity
    thr = lo + level * (hi - lo)
    t0 = _crossing_time(t, u, thr, 0, upward=True)
    if not math.isfinite(t0):
        return math.nan, math.nan, polarity
    k0 = int(np.searchsorted(t, t0, side="left"))  # the first sample at/above the threshold
    t1 = _crossing_time(t, u, thr, k0, upward=False) if k0 < t.size else math.nan
    if math.isfinite(t1) and not t1 > t0:
        t1 = math.nan
    return t0, t1, polarity


def pulse_edges(trials: PulseTrials, level: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Start and end time of each trial's main pulse, s, ``(t_start, t_end)``, each ``(n_trials,)``.

    The pulse polarity is the sign of the largest-magnitude voltage sample; with ``V`` made
    positive, the threshold is ``min V + level·(max V - min V)``. ``t_start`` is the first
    upward crossing of the threshold (``t[0]`` if the trial starts at or above it),
    ``t_end`` the next downward crossing (first sample below it), both interpolated linearly
    between samples. ``t_end`` is NaN if the pulse lasts to the end of the record; both are NaN
    for a constant voltage.
    """
    tr = _trials(trials)
    level = _fraction("level", level)
    out = np.array([_edges_one(tr.time[n], tr.voltage[n], level)[:2] for n in range(tr.n_trials)])
    return out[:, 0].copy(), out[:, 1].copy()


def _in_pulse(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return (t >= t0) & (t <= t1)


def _running_median_min(a: np.ndarray, window: int) -> float:
    if a.size <= window:
        return float(np.median(a))
    windows = np.lib.stride_tricks.sliding_window_view(a, window)
    return float(np.min(np.median(windows, axis=1)))


def _default_levels(tr: PulseTrials, level: float, on_fraction: float, window: int,
                    min_on_off: float) -> np.ndarray:
    """The default switching current level of each trial, A (NaN: did not switch)."""
    t_start, t_end = pulse_edges(tr, level)
    i_on = on_current(tr, fraction=on_fraction, level=level)
    out = np.full(tr.n_trials, np.nan)
    for n in range(tr.n_trials):
        if not (math.isfinite(t_start[n]) and math.isfinite(t_end[n]) and math.isfinite(i_on[n])):
            continue
        a = np.abs(tr.current[n][_in_pulse(tr.time[n], t_start[n], t_end[n])])
        i_off = _running_median_min(a, window)
        if i_on[n] > 0.0 and i_on[n] >= min_on_off * i_off:
            out[n] = 0.5 * (i_off + i_on[n])
    return out


def on_current(trials: PulseTrials, *, fraction: float = 0.2, level: float = 0.5) -> np.ndarray:
    """Median ``|I|``, A, over the last ``fraction`` of each trial's pulse (by time).

    The pulse is found by :func:`pulse_edges` with ``level``; NaN if it has no end or no
    sample falls in the window.
    """
    tr = _trials(trials)
    fraction = float(fraction)
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise ParameterError(f"fraction={fraction!r}: allowed (0, 1]")
    t_start, t_end = pulse_edges(tr, level)
    out = np.full(tr.n_trials, np.nan)
    for n in range(tr.n_trials):
        if not (math.isfinite(t_start[n]) and math.isfinite(t_end[n])):
            continue
        t = tr.time[n]
        sel = _in_pulse(t, t_end[n] - fraction * (t_end[n] - t_start[n]), t_end[n])
        if sel.any():
            out[n] = float(np.median(np.abs(tr.current[n][sel])))
    return out


def _levels(tr: PulseTrials, i_level, level, on_fraction, window, min_on_off) -> np.ndarray:
    if i_level is None:
        window = int(window)
        if window < 1:
            raise ParameterError(f"window={window}: must be >= 1 samples")
        return _default_levels(tr, level, on_fraction, window,
                               _positive("min_on_off", min_on_off))
    return np.full(tr.n_trials, _positive("i_level", i_level))


def switching_levels(trials: PulseTrials, *, level: float = 0.5, on_fraction: float = 0.2, window: int = 5,
                     min_on_off: float = 10.0) -> np.ndarray:
    """The default switching current level of each trial, A: ``(I_off + I_on)/2`` with ``I_on`` from
    :func:`on_current` and ``I_off`` the smallest ``window``-sample running median of ``|I|`` in the
    pulse; NaN where ``I_on < min_on_off * I_off`` (the trial did not switch)."""
    return _levels(_trials(trials), None, level, on_fraction, window, min_on_off)


def switching_delays(trials: PulseTrials, i_level: float | None = None, *, level: float = 0.5,
                     on_fraction: float = 0.2, window: int = 5,
                     min_on_off: float = 10.0) -> np.ndarray:
    """Switching delay of each trial, s: pulse start to the first time ``|I|`` reaches ``i_level``.

    The pulse is found by :func:`pulse_edges` (``level``). The crossing is searched within
    the pulse, interpolated linearly between samples; NaN if ``|I|`` never reaches
    ``i_level`` before the pulse ends, or the pulse has no start or end.

    ``i_level`` (A) given: the same level for every trial. ``i_level=None`` (default): per
    trial, halfway between OFF and ON current, ``(I_off + I_on)/2``, where ``I_on`` is
    :func:`on_current` (median ``|I|`` over the last ``on_fraction`` of the pulse) and
    ``I_off`` the smallest running median of ``|I|`` over ``window`` consecutive pulse
    samples (robust to noise and to a device that switches early in the pulse); the trial
    counts as not switched (NaN) if ``I_on < min_on_off·I_off``. The linear midpoint,
    rather than a geometric one, keeps the level far above the displacement-current spike
    at the pulse edge, which can reach ~100x the OFF current.
    """
    tr = _trials(trials)
    level = _fraction("level", level)
    levels = _levels(tr, i_level, level, on_fraction, window, min_on_off)
    t_start, t_end = pulse_edges(tr, level)
    out = np.full(tr.n_trials, np.nan)
    for n in range(tr.n_trials):
        if not (math.isfinite(levels[n]) and math.isfinite(t_start[n]) and math.isfinite(t_end[n])):
            continue
        t, a = tr.time[n], np.abs(tr.current[n])
        k0 = int(np.searchsorted(t, t_start[n], side="left"))
        tc = _crossing_time(t, a, levels[n], k0, upward=True)
        if math.isfinite(tc) and tc <= t_end[n]:
            out[n] = max(tc - t_start[n], 0.0)
    return out


def relaxation_times(trials: PulseTrials, i_level: float | None = None, *, level: float = 0.5,
                     on_fraction: float = 0.2, window: int = 5,
                     min_on_off: float = 10.0) -> np.ndarray:
    """Relaxation time of each trial, s: pulse end to the first time ``|I|`` falls below ``i_level``.

    The search starts at the pulse end (:func:`pulse_edges` with ``level``); the crossing is
    interpolated linearly between samples. NaN if ``|I|`` never falls below ``i_level``
    before the record ends, or the pulse has no end.

    ``i_level`` (A) given: the same level for every trial. ``i_level=None`` (default): the
    switching level of :func:`switching_delays` (same keywords) scaled to the read voltage,
    ``i_level·|V_read|/|V_pulse|``, with ``V_pulse`` the median voltage inside the pulse
    and ``V_read`` the median voltage after it (an ohmic ON state read at ``V_read``). NaN
    for a trial that did not switch, or whose read voltage is 0 (nothing to observe).
    """
    tr = _trials(trials)
    level = _fraction("level", level)
    t_start, t_end = pulse_edges(tr, level)
    if i_level is None:
        levels = _levels(tr, None, level, on_fraction, window, min_on_off)
        for n in range(tr.n_trials):
            if not math.isfinite(levels[n]):
                continue
            t, v = tr.time[n], tr.voltage[n]
            after = t > t_end[n]
            v_pulse = abs(float(np.median(v[_in_pulse(t, t_start[n], t_end[n])])))
            v_read = abs(float(np.median(v[after]))) if after.any() else 0.0
            levels[n] = levels[n] * v_read / v_pulse if v_read > 0.0 and v_pulse > 0.0 else math.nan
    else:
        levels = np.full(tr.n_trials, _positive("i_level", i_level))
    out = np.full(tr.n_trials, np.nan)
    for n in range(tr.n_trials):
        if not (math.isfinite(levels[n]) and math.isfinite(t_end[n])):
            continue
        t, a = tr.time[n], np.abs(tr.current[n])
        k0 = int(np.searchsorted(t, t_end[n], side="left"))
        if k0 >= t.size:
            continue
        tc = _crossing_time(t, a, levels[n], k0, upward=False)
        if math.isfinite(tc):
            out[n] = max(tc - t_end[n], 0.0)
    return out


# --------------------------------------------------------------------------------------
# distributions


def _finite(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ParameterError(f"ks_distance: sample {name} has no finite value")
    return a


def ks_distance(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``sup |F_a - F_b|`` in [0, 1].

    NaN/inf entries are dropped; raises ``ParameterError`` if either sample has no finite
    value. Same statistic as ``scipy.stats.ks_2samp(a, b).statistic``.
    """
    x, y = np.sort(_finite("a", a)), np.sort(_finite("b", b))
    pooled = np.concatenate([x, y])
    fx = np.searchsorted(x, pooled, side="right") / x.size
    fy = np.searchsorted(y, pooled, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def describe(samples) -> dict:
    """Summary of a sample as plain floats, JSON-ready.

    Keys: ``n`` (finite values), ``n_nan`` (non-finite values: NaN marks an absent
    feature), ``mean``, ``std`` (population, ddof=0), ``median``, ``q05``, ``q25``,
    ``q75``, ``q95`` (linear-interpolated quantiles), ``min``, ``max``; the statistics are
    ``None`` when there is no finite value.
    """
    a = np.asarray(samples, dtype=np.float64).reshape(-1)
    finite = a[np.isfinite(a)]
    out = {"n": int(finite.size), "n_nan": int(a.size - finite.size)}
    keys = ("mean", "std", "median", "q05", "q25", "q75", "q95", "min", "max")
    if finite.size == 0:
        return {**out, **{k: None for k in keys}}
    q = np.quantile(finite, [0.05, 0.25, 0.75, 0.95])
    return {**out, "mean": float(finite.mean()), "std": float(finite.std()),
            "median": float(np.median(finite)), "q05": float(q[0]), "q25": float(q[1]),
            "q75": float(q[2]), "q95": float(q[3]), "min": float(finite.min()),
            "max": float(finite.max())}
