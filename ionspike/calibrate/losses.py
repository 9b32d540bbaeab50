"""What a fit minimises: medians on the voltage grid, KS distances with absent features, scores.

Pure functions of feature samples, NumPy or JAX (``xp``), no simulation here:

* :func:`grid_median`: the median of values on a voltage grid, read as spread over their grid
  cell (the interpolated median of grouped data): it moves continuously as sweeps move between
  grid points, so a fit can centre it to a fraction of a step; the plain median jumps a whole
  step at a time.
* :func:`dc_median_loss`: squared misses of the threshold and hold medians in grid steps.
* :func:`delay_median_loss`: squared log-miss of the median switching delay, 10 % = 1.
* :func:`ks_with_missing`, :func:`ks_sum`: two-sample KS distances with absent features
  (a sweep that never switches, never releases) placed where they belong (:data:`MISSING_AS`).
* :func:`pulse_score`: the pulse fit's grid-stage score (KS of the delays, ON-fraction gap,
  log-quantile tie-break).
"""

from __future__ import annotations

import math

import numpy as np

from ionspike.calibrate import features as feat

# where a missing feature belongs in its distribution: a sweep that never switches has its threshold
# above the sweep, one that never releases its hold below zero, a trial that never switches its
# delay after the pulse. KS distances count them there instead of dropping them.
MISSING_AS = {"vth_V": 1e30, "vhold_V": -1e30, "delay_s": 1e30}


def grid_median(x, step: float, xp=np):
    """Median of ``x`` (V) whose values sit on a grid of ``step`` (V), each value read as spread
    uniformly over its cell ``[v - step/2, v + step/2]``; NaN entries are dropped (NaN if none).

    With ``N`` values, ``c`` the lower middle one, ``F`` the count below its cell and ``f`` the
    count in it: ``c - step/2 + step (N/2 - F)/f``. Equal to ``c`` when the middle cell is
    centred on the median count; between two grid values when the counts sit between them.
    ``xp``: ``numpy`` or ``jax.numpy`` (traceable, for a loss).
    """
    x = xp.asarray(x).reshape(-1)
    if x.shape[0] == 0:
        return xp.asarray(math.nan)
    valid = ~xp.isnan(x)
    n = xp.sum(valid)
    ordered = xp.sort(xp.where(valid, x, xp.inf))
    c = ordered[xp.maximum((n - 1) // 2, 0)]
    half = 0.5 * step
    with np.errstate(invalid="ignore"):   # all NaN: c = inf, masked below
        below = xp.sum(valid & (x < c - half))
        inside = xp.sum(valid & (xp.abs(x - c) <= half))
        med = c - half + step * (0.5 * n - below) / xp.maximum(inside, 1)
    return xp.where(n > 0, med, xp.nan)


def dc_median_loss(th, hold, target_th: float, target_hold: float, step: float, v_max: float, xp=np):
    """Squared misses, in grid steps, of the grid medians of thresholds ``th`` and holds ``hold`` (V,
    per trial, NaN: absent) from the targets (V). A batch that never switches (never releases)
    scores as if at the sweep's far end, ``2 v_max`` (``-v_max``)."""
    m_th = grid_median(th, step, xp)
    m_ho = grid_median(hold, step, xp)
    m_th = xp.where(xp.isnan(m_th), 2 * v_max, m_th)
    m_ho = xp.where(xp.isnan(m_ho), -v_max, m_ho)
    return ((m_th - target_th) / step) ** 2 + ((m_ho - target_hold) / step) ** 2


def delay_median_loss(delays, target: float, late: float, xp=np):
    """Squared log-miss of the median delay (s) from ``target`` (s), 10 % off costs 1. NaN delays
    (no switch in the pulse) count as ``late`` (s)."""
    d = xp.where(xp.isnan(delays), late, delays)
    return (xp.log(xp.median(d) / target) / math.log(1.1)) ** 2


def ks_with_missing(name: str, a, b) -> float:
    """Two-sample KS distance of feature ``name`` with NaN (feature absent) placed per ``MISSING_AS``."""
    fill = MISSING_AS.get(name)
    a, b = np.asarray(a, float), np.asarray(b, float)
    if fill is not None:
        a, b = np.where(np.isnan(a), fill, a), np.where(np.isnan(b), fill, b)
    if not (np.any(~np.isnan(a)) and np.any(~np.isnan(b))):
        return 1.0
    return feat.ks_distance(np.where(np.isinf(a), np.sign(a) * 1e30, a), np.where(np.isinf(b), np.sign(b) * 1e30, b))


def ks_sum(measured: dict, simulated: dict) -> tuple[float, dict]:
    """Sum over the features of ``measured`` of their KS distances to ``simulated``, and each one."""
    ks = {name: ks_with_missing(name, x, simulated[name]) for name, x in measured.items()}
    return float(sum(ks.values())), ks


def median_with_missing(name: str, x) -> float:
    """The median of feature ``name`` with absent values placed per ``MISSING_AS`` (+-inf if the
    median falls among them); the plain NaN-dropping median for other features."""
    a = np.asarray(x, float)
    if name not in MISSING_AS:
        return float(np.nanmedian(a)) if np.isfinite(a).any() else math.nan
    if a.size == 0:
        return math.nan
    med = float(np.median(np.where(np.isnan(a), MISSING_AS[name], a)))
    return med if abs(med) < 1e29 else math.copysign(math.inf, med)


def pulse_score(measured_delays, simulated_delays, on_measured: float, on_simulated: float, late: float) -> float:
    """Grid-stage score of a pulse fit: KS of the delays, plus the gap in the ON fraction after
    switching (a switched device that flickers OFF again is not what was measured), plus, as a
    tie-break (KS on a handful of trials is coarse), 0.05 x the mean log-quantile mismatch
    (deciles 0.1..0.9, never-switched counted as ``late``)."""
    d = np.asarray(simulated_delays, float)
    if not np.isfinite(d).any():
        return 10.0
    q = np.linspace(0.1, 0.9, 9)
    d_all = np.where(np.isnan(d), late, d)
    dq = np.quantile(np.log(d_all), q) - np.nanquantile(np.log(measured_delays), q)
    return (ks_with_missing("delay_s", measured_delays, d) + abs(on_simulated - on_measured)
            + 0.05 * float(np.mean(np.abs(dq))))
