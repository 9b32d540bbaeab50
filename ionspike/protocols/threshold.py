"""Threshold firing (docs/model.md §2.4): no output below a threshold input, an all-or-none
spike above it whose height does not track the input."""

from __future__ import annotations

import numpy as np

from ionspike.protocols.common import first_after, key, resolve, swept
from ionspike.simulate import DEFAULT_DT_S, simulate
from ionspike.stimulus import DC, PulseTrain


def threshold(preset="paper", *, pulse_amplitudes=None, dc_levels=None, width=1e-3, period=2e-3,
              duration=0.3, seed=0, progress=None):
    """Pulse-amplitude sweep and DC sweep, deterministic, one neuron per level.

    Metrics: ``threshold_pulse_V`` and ``threshold_dc_V`` (lowest level that fires within
    ``duration``; the sweep resolution is reported beside it), ``spike_amplitude_cv`` (CV of
    the peak drain current over the levels that fire: all-or-none means ~0) and the
    per-level first-spike times.
    """
    p, name, dt = resolve(preset)
    dt = dt or DEFAULT_DT_S
    if pulse_amplitudes is None:
        pulse_amplitudes = np.round(np.arange(0.40, 1.2001, 0.05), 3)
    if dc_levels is None:
        dc_levels = np.round(np.arange(0.40, 0.8001, 0.01), 3)
    pulse_amplitudes = swept("pulse_amplitudes", pulse_amplitudes, unit="V")
    dc_levels = swept("dc_levels", dc_levels, unit="V")
    rec = max(1, int(round(5e-6 / dt)))
    sig = ("V_in", "V_g", "I_d")
    half = (lambda f: progress(0.5 * f)) if progress else None
    ds_p = simulate(p, PulseTrain(amplitude=pulse_amplitudes, width=width, period=period), duration=duration, dt=dt,
                    deterministic=True, seed=seed, signals=sig, record_every=rec, progress=half)
    ds_d = simulate(p, DC(amplitude=dc_levels), duration=duration, dt=dt, deterministic=True, seed=seed,
                    signals=("V_in", "V_g"), record_every=rec * 20,
                    progress=(lambda f: progress(0.5 + 0.5 * f)) if progress else None)
    fp, fd = first_after(ds_p, 0.0), first_after(ds_d, 0.0)
    fires_p, fires_d = np.isfinite(fp), np.isfinite(fd)
    th_p = float(pulse_amplitudes[fires_p].min()) if fires_p.any() else None
    th_d = float(dc_levels[fires_d].min()) if fires_d.any() else None
    peak = ds_p.I_d.max("time").values
    heights = peak[fires_p]
    cv = float(heights.std() / heights.mean()) if heights.size > 1 else None
    ds = ds_p.assign_coords(amplitude=("neuron", pulse_amplitudes))
    ds["dc_level"] = ("dc", dc_levels, {"units": "V"})
    ds["dc_first_spike_time"] = ("dc", fd, {"units": "s"})
    ds["dc_V_g"] = (("dc_time", "dc"), ds_d.V_g.values, {"units": "V"})
    ds = ds.assign_coords(dc_time=("dc_time", ds_d.time.values, {"units": "s"}))
    ds["peak_I_d"] = ("neuron", peak, {"units": "A"})
    ds["first_spike"] = ("neuron", fp, {"units": "s", "long_name": "first spike (NaN: none)"})
    ds.attrs.update(protocol="threshold", width_s=width, period_s=period)
    metrics = {
        "threshold_pulse_V": th_p, "threshold_dc_V": th_d,
        "pulse_resolution_V": float(np.min(np.diff(pulse_amplitudes))) if pulse_amplitudes.size > 1 else None,
        "dc_resolution_V": float(np.min(np.diff(dc_levels))) if dc_levels.size > 1 else None,
        "spike_amplitude_cv": cv,
        "peak_I_d_A": {key(a): float(h) for a, h, f in zip(pulse_amplitudes, peak, fires_p) if f},
        "first_spike_pulse_s": {key(a): (float(t) if np.isfinite(t) else None) for a, t in zip(pulse_amplitudes, fp)},
        "first_spike_dc_s": {key(a): (float(t) if np.isfinite(t) else None) for a, t in zip(dc_levels, fd)},
        "duration_s": duration, "preset": name,
    }
    return ds, metrics
