"""Leaky integration (docs/model.md §2.3): pulses needed to fire rise with the gap between them."""

from __future__ import annotations

import numpy as np

from ionspike import checks
from ionspike.protocols.common import exp_decay_fit, first_after, key, resolve, swept
from ionspike.simulate import DEFAULT_DT_S, simulate
from ionspike.stimulus import PulseTrain

GAPS_S = (0.2e-3, 0.4e-3, 0.6e-3, 0.8e-3, 1.2e-3, 1.6e-3)


def leaky_integration(preset="paper", *, amplitude=0.9, width=1e-3, gaps=GAPS_S, duration=0.4, seed=0,
                      progress=None):
    """Trains of ``amplitude`` V, ``width`` s pulses with several gaps (one neuron per gap).

    Returns ``(ds, metrics)``: ``pulses_to_fire`` (gap s -> pulses delivered up to and
    including the one that fired; ``None`` if none in ``duration``) and ``decay_time_s``,
    the time constant of the filament's decay between pulses before the first spike,
    fitted from the recorded F (expected ``1/(gamma1 + beta)``).
    """
    p, name, dt = resolve(preset)
    gaps = swept("gaps", gaps, unit="s", positive=True)
    width = checks.positive("width", width, unit="s")
    period = width + gaps
    stim = PulseTrain(amplitude=amplitude, width=width, period=period)
    dt = dt or DEFAULT_DT_S
    ds = simulate(p, stim, duration=duration, dt=dt, deterministic=True, seed=seed,
                  signals=("V_in", "F", "R", "V_g", "I_d"), record_every=max(1, int(round(10e-6 / dt))),
                  progress=progress)
    first = first_after(ds, 0.0)
    pulses = [int(np.floor(t / T)) + 1 if np.isfinite(t) else None for t, T in zip(first, period)]
    # decay of F in the gaps before the first spike: F(t) = F0 exp(-t/tau) while nothing drives growth
    taus = []
    t = ds.time.values
    for i, T in enumerate(period):
        stop = first[i] if np.isfinite(first[i]) else duration
        phase = np.mod(t, T)
        in_gap = (phase > width + 0.1 * gaps[i]) & (t < stop - T) & (t > T)
        k = np.floor(t / T)
        for j in np.unique(k[in_gap])[:20]:
            sel = in_gap & (k == j)
            if sel.sum() >= 4:
                taus.append(exp_decay_fit(t[sel], ds.F.values[sel, i])[1])
    tau = float(np.median(taus)) if taus else float("nan")
    ds = ds.assign_coords(gap=("neuron", gaps))
    ds["pulses_to_fire"] = ("neuron", np.array([np.nan if k is None else k for k in pulses], float), {"units": "1"})
    ds["first_spike"] = ("neuron", first, {"units": "s"})
    ds.attrs.update(protocol="leaky_integration", amplitude_V=amplitude, width_s=width)
    metrics = {
        "pulses_to_fire": {key(g): n for g, n in zip(gaps, pulses)},
        "first_spike_s": {key(g): (float(f) if np.isfinite(f) else None) for g, f in zip(gaps, first)},
        "decay_time_s": tau,
        "amplitude_V": amplitude, "width_s": width, "preset": name,
    }
    return ds, metrics
