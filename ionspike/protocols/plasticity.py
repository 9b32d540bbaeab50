"""Intrinsic plasticity (docs/model.md §2.6): after firing, the residue R makes the next
input fire sooner; the advance fades as R decays (~1/gamma2)."""

from __future__ import annotations

import numpy as np

from ionspike import checks
from ionspike.protocols.common import exp_decay_fit, first_after, key, resolve, swept
from ionspike.params import repeat_neurons
from ionspike.simulate import DEFAULT_DT_S, simulate
from ionspike.stimulus import PulseTrain, paired_pulses

GAPS_S = (3e-3, 30e-3, 80e-3, 200e-3, 1.0)
PAPER_FIRST_INTEGRATION_S = 13e-3     # Fig. 4a: the first 2 V, 20 ms pulse fires after ~13 ms
PAPER_ADVANCE_RATIO = 2.4 / 5.7       # advance(200 ms) / advance(3 ms), Fig. 4b


MATCH_AMPLITUDES_V = np.round(np.arange(0.6, 2.5001, 0.02), 3)   # the grid match_amplitude chooses from, V
RATIO_GAPS_S = (3e-3, 200e-3)         # the two gaps of the paper's advance ratio


def _times_to_fire(ds, width, gaps):
    """Per neuron of a paired-pulse run: time to fire within the first pulse, within the second (from
    its onset, after ``gaps``), and the advance (first minus second), s; NaN where a pulse does not fire."""
    onset2 = width + np.asarray(gaps)
    t1 = first_after(ds, 0.0, width)
    t2 = first_after(ds, onset2, onset2 + width) - onset2
    return t1, t2, t1 - t2


def match_amplitudes(p, width, target, dt, seed=0, *, neurons: int = 1):
    """Per neuron of ``p`` (``neurons`` of them, per-neuron parameter arrays allowed): the input
    amplitude (V, from :data:`MATCH_AMPLITUDES_V`) whose single pulse of ``width`` s fires closest
    to ``target`` s after onset; the largest amplitude where none fires. One batched simulation of
    ``neurons`` x the grid."""
    amps = MATCH_AMPLITUDES_V
    k = len(amps)
    ds = simulate(repeat_neurons(p, k), PulseTrain(amplitude=np.tile(amps, neurons), width=width, period=width, n_pulses=1),
                  duration=width, dt=dt, deterministic=True, seed=seed, signals=(), n=neurons * k)
    t = first_after(ds, 0.0).reshape(neurons, k)
    best = np.where(np.isfinite(t).any(axis=1), np.nanargmin(np.where(np.isfinite(t), np.abs(t - target), np.inf),
                                                             axis=1), k - 1)
    return amps[best]


def match_amplitude(p, width, target, dt, seed=0):
    """Input amplitude (V) whose single pulse of ``width`` s fires closest to ``target`` s after onset."""
    return float(match_amplitudes(p, width, target, dt, seed)[0])


def advance_ratios(p, amplitude, width, dt, seed=0, *, neurons: int = 1) -> np.ndarray:
    """Per neuron of ``p``: the advance ratio advance(200 ms) / advance(3 ms) of paired pulses of
    ``amplitude`` V (scalar or per neuron) and ``width`` s, deterministic; NaN where the first
    pulse or the second does not fire. One batched simulation of 2 x ``neurons``."""
    gaps = np.tile(np.asarray(RATIO_GAPS_S), neurons)
    amps = np.repeat(np.broadcast_to(np.asarray(amplitude, np.float64), (neurons,)), 2)
    duration = float(2 * width + max(RATIO_GAPS_S) + 5e-3)
    ds = simulate(repeat_neurons(p, 2), paired_pulses(amps, np.full(2 * neurons, width), gaps), duration=duration, dt=dt,
                  deterministic=True, seed=seed, signals=(), n=2 * neurons)
    _, _, advance = _times_to_fire(ds, width, gaps)
    advance = advance.reshape(neurons, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return advance[:, 1] / advance[:, 0]


def intrinsic_plasticity(preset="paper", *, amplitude="auto", width=20e-3, gaps=GAPS_S, seed=0, progress=None):
    """Paired pulses (``amplitude`` V, ``width`` s) at several gaps, deterministic.

    The paper used 2 V / 20 ms pulses on a device that integrated for ~13 ms; ``"auto"``
    scales the protocol to the preset by choosing the amplitude whose first pulse fires
    after 13/20 of the pulse width (``match_amplitude``). Metrics: ``advance_s`` (gap ->
    time-to-fire of the first pulse minus that of the second), ``recovery_time_s`` (fit of
    ``advance = A exp(-gap/tau)``), ``advance_ratio_200ms_3ms`` against the paper's 0.42.
    """
    p, name, dt = resolve(preset)
    dt = dt or DEFAULT_DT_S
    width = checks.positive("width", width, unit="s")
    if isinstance(amplitude, str) and amplitude == "auto":
        amplitude = match_amplitude(p, width, PAPER_FIRST_INTEGRATION_S * width / 20e-3, dt, seed)
    gaps = swept("gaps", gaps, unit="s", positive=True)
    duration = float(2 * width + gaps.max() + 5e-3)
    ds = simulate(p, paired_pulses(amplitude, width, gaps), duration=duration, dt=dt, deterministic=True,
                  seed=seed, signals=("V_in", "F", "R", "V_g"), record_every=max(1, int(round(50e-6 / dt))),
                  progress=progress)
    t1, t2, advance = _times_to_fire(ds, width, gaps)
    amp_a, tau = exp_decay_fit(gaps, advance)
    by_gap = dict(zip(np.round(gaps, 6), advance))
    ratio = by_gap.get(0.2, np.nan) / by_gap.get(0.003, np.nan) if 0.2 in by_gap and 0.003 in by_gap else None
    ds = ds.assign_coords(gap=("neuron", gaps))
    ds["advance"] = ("neuron", advance, {"units": "s"})
    ds.attrs.update(protocol="intrinsic_plasticity", amplitude_V=amplitude, width_s=width)
    metrics = {
        "advance_s": {key(g): (float(a) if np.isfinite(a) else None) for g, a in zip(gaps, advance)},
        "time_to_fire_first_s": float(t1[0]) if np.isfinite(t1[0]) else None,
        "time_to_fire_second_s": {key(g): (float(t) if np.isfinite(t) else None) for g, t in zip(gaps, t2)},
        "recovery_time_s": tau if np.isfinite(tau) else None,
        "advance_ratio_200ms_3ms": float(ratio) if ratio is not None and np.isfinite(ratio) else None,
        "paper_advance_ratio": PAPER_ADVANCE_RATIO,
        "amplitude_V": amplitude, "width_s": width, "preset": name,
    }
    return ds, metrics
