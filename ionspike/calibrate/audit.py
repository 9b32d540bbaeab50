"""Unit audit of measured data, sweep by sweep and trial by trial.

:func:`ionspike.calibrate.data.check_units` refuses only magnitudes no device carries (above
0.1 A). Currents stored in mA for a 1 µA device pass that check, and so does one sweep in mA
among sweeps in A: the fit would run and be wrong. This module looks at the data as a whole:

* **scale outliers** (refused): each row's OFF floor (the 5th percentile of ``|I|``, the points
  near 0 V) and ON level (the largest ``|I|``) on a log scale. One instrument and one
  compliance give every row nearly the same pair (the shared sweeps: floors within 0.6 decade,
  ON levels identical). Rows whose floor *and* ON level both sit at least
  :data:`SCALE_GAP_DECADES` decades from the largest group, in the same direction, were stored
  in another unit (or measured with another compliance): refused, naming the rows and the
  factor. A row that never switched has a low ON level but the common floor: not an outlier.
* **stated compliance** (refused): a DC file (or the fit's ``compliance``) may state the
  compliance; rows above it, or a clamp in the data at another level, mean the currents are
  not in amperes (or the stated value is wrong).
* **implausible levels** (warned: legitimate devices exist): an ON level of 100 µA or more, or
  (DC sweeps: the points near 0 V) an OFF floor of 1 nA or more, is unusual for a volatile Ag
  diffusive memristor (switched at a low compliance to stay volatile) and is what a file in mA
  would show.
* **a single row** (warned): one sweep or trial gives one cycle, no distribution: the noise
  parameters and the KS distances mean little.
* pulses through a series resistor ``R_s`` (refused): no trial's ON current can exceed
  ``|V_pulse|/R_s``; one that does is not in amperes, or ``R_s`` is wrong.

Every function raises :class:`~ionspike.calibrate.data.DataError` for a refusal and returns
the warnings as a list of sentences (the fits put them in ``Fit.notes`` and ``fit.json``).
"""

from __future__ import annotations

import numpy as np

from ionspike.calibrate.data import DataError, DCSweeps, PulseTrials, check_compliance

#: decades between a row's (floor, ON level) and the largest group's that mark another unit
SCALE_GAP_DECADES = 2.0
#: rows whose floor and ON level are both within this many decades form one group
GROUP_DECADES = 1.0
#: the OFF floor is this percentile of a row's |I| (A)
FLOOR_PERCENTILE = 5
#: relative tolerance of a clamp against the stated compliance, and of |I| above it
COMPLIANCE_TOL = 0.05
#: an ON level at or above this (A) is unusual for a volatile diffusive memristor
HIGH_ON_LEVEL_A = 1e-4
#: an OFF floor at or above this (A) is unusual for a diffusive memristor near 0 V
HIGH_FLOOR_A = 1e-9
#: fewer rows than this give a thin distribution (warned)
FEW_ROWS = 10
#: a pulse trial's ON current may exceed |V|/R_s by this fraction (R_s is known to ~10 %)
SERIES_TOL = 0.10

_TINY = 1e-300


def _rows(indices) -> str:
    idx = [int(i) for i in indices]
    shown = ", ".join(str(i) for i in idx[:12])
    return shown + (f" and {len(idx) - 12} more" if len(idx) > 12 else "")


def row_scales(current) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``current`` (rows, samples): ``(floor, on_level)`` in A, the
    :data:`FLOOR_PERCENTILE` th percentile and the largest value of ``|I|``."""
    a = np.abs(np.asarray(current, dtype=np.float64))
    return np.percentile(a, FLOOR_PERCENTILE, axis=1), a.max(axis=1)


def scale_outliers(floor, on_level) -> tuple[np.ndarray, float]:
    """Rows whose floor and ON level both sit :data:`SCALE_GAP_DECADES` or more decades from the
    largest group's, in the same direction. Returns ``(row indices, factor)``: the factor (a
    power of ten, rounded) by which the outliers' currents exceed the group's (NaN if none)."""
    lf = np.log10(np.maximum(np.asarray(floor, float), _TINY))
    lt = np.log10(np.maximum(np.asarray(on_level, float), _TINY))
    if lf.size < 2:
        return np.zeros(0, dtype=int), float("nan")
    close = (np.abs(lf[:, None] - lf[None, :]) <= GROUP_DECADES) & (np.abs(lt[:, None] - lt[None, :]) <= GROUP_DECADES)
    group = close[int(np.argmax(close.sum(axis=1)))]
    df, dt = lf - np.median(lf[group]), lt - np.median(lt[group])
    out = (np.abs(df) >= SCALE_GAP_DECADES) & (np.abs(dt) >= SCALE_GAP_DECADES) & (np.sign(df) == np.sign(dt))
    idx = np.flatnonzero(out)
    factor = float(10.0 ** np.round(np.median(0.5 * (df[idx] + dt[idx])))) if idx.size else float("nan")
    return idx, factor


def _unit_hint(factor: float) -> str:
    hints = {1e3: "mA stored as A?", 1e6: "µA stored as A?", 1e-3: "A among mA?", 1e-6: "A among µA?"}
    return hints.get(factor, "another unit?")


def _check_scales(current, word: str) -> None:
    floor, top = row_scales(current)
    idx, factor = scale_outliers(floor, top)
    if idx.size:
        raise DataError(
            f"{word}s {_rows(idx)} sit ~{factor:.0e} x the other {word}s' currents (OFF floor and ON level alike; "
            f"{_unit_hint(factor)}): one file must hold one unit (A) and one instrument setting; convert or "
            f"remove those {word}s")


def _level_warnings(current, word: str, floor_too: bool = True) -> list[str]:
    floor, top = row_scales(current)
    notes = []
    if np.median(top) >= HIGH_ON_LEVEL_A:
        notes.append(f"the ON level is {np.median(top):.3g} A (median over {word}s), high for a volatile diffusive "
                     f"memristor (switched at <= {HIGH_ON_LEVEL_A:g} A to stay volatile): if the file stores mA, every "
                     "current and fitted resistance is off by 1e3")
    if floor_too and np.median(floor) >= HIGH_FLOOR_A:
        notes.append(f"the OFF floor is {np.median(floor):.3g} A (median over {word}s of the "
                     f"{FLOOR_PERCENTILE}th-percentile |I|), high for a diffusive memristor near 0 V: if the file "
                     "stores mA or µA, convert it to A")
    return notes


def _count_warnings(n: int, word: str) -> list[str]:
    if n == 1:
        return [f"fit from a single {word}: one cycle has no distribution, so the noise parameters (n_eff, "
                f"sigma_c2c_ln_mu) are not identified and the KS distances mean little; measure more {word}s"]
    if n < FEW_ROWS:
        return [f"fit from only {n} {word}s: the distributions (noise parameters, KS distances) rest on few cycles"]
    return []


def audit_dc_sweeps(sweeps: DCSweeps, compliance: float | None = None) -> list[str]:
    """Audit the units of ``sweeps``; return warnings, raise :class:`DataError` for a refusal.

    ``compliance`` (A): the compliance the caller states (a fit's argument); it must agree
    with the one the file states, if any. Refused: sweeps whose scale sits orders of magnitude
    from the rest (see the module docstring), sweeps above the stated compliance, a clamp at
    another level than the stated compliance.
    """
    from ionspike.calibrate.features import detect_compliance

    a = np.abs(sweeps.current)
    _check_scales(a, "sweep")
    stated = sweeps.compliance
    if compliance is not None:
        compliance = check_compliance(compliance)
        if stated is not None and abs(compliance / stated - 1.0) > COMPLIANCE_TOL:
            raise DataError(f"compliance = {compliance:g} A disagrees with the {stated:g} A the file states "
                            f"(ratio {compliance / stated:.3g}): give the file's value or none")
        stated = compliance
    if stated is not None:
        over = np.flatnonzero(a.max(axis=1) > stated * (1.0 + COMPLIANCE_TOL))
        if over.size:
            ratio = float(np.median(a.max(axis=1)[over])) / stated
            raise DataError(f"sweeps {_rows(over)} exceed the stated compliance {stated:g} A (by x{ratio:.3g} at the "
                            "median): a source at compliance cannot; the currents are not in A, or the compliance "
                            "is not the one stated")
        clamp = detect_compliance(a[a >= 1e-3 * stated])
        if clamp is not None and abs(clamp / stated - 1.0) > COMPLIANCE_TOL:
            raise DataError(f"the currents sit at a clamp of {clamp:.4g} A, not at the stated compliance {stated:g} A "
                            f"(ratio {clamp / stated:.3g}): the currents are not in A, or the compliance is not the "
                            "one stated")
    return _level_warnings(a, "sweep") + _count_warnings(sweeps.n_sweeps, "sweep")


def audit_pulse_trials(trials: PulseTrials, r_series: float | None = None) -> list[str]:
    """Audit the units of ``trials``; return warnings, raise :class:`DataError` for a refusal.

    With ``r_series`` (Ω), a trial whose ON current (:func:`ionspike.calibrate.features.on_current`)
    exceeds ``|V_pulse|/r_series`` by more than :data:`SERIES_TOL` is refused (the series
    resistor alone carries no more); up to that, a warning.
    """
    from ionspike.calibrate.features import on_current, pulse_edges

    a = np.abs(trials.current)
    _check_scales(a, "trial")
    # a trial's lowest currents are the device's OFF state under the read or the pulse (a leaky
    # device legitimately passes nA there): only the ON level is judged
    notes = _level_warnings(a, "trial", floor_too=False) + _count_warnings(trials.n_trials, "trial")
    if r_series is not None and r_series > 0:
        i_on = on_current(trials)
        start, end = pulse_edges(trials)
        v_pulse = np.full(trials.n_trials, np.nan)
        for k in range(trials.n_trials):
            inside = (trials.time[k] >= start[k]) & (trials.time[k] <= end[k])
            if inside.any():
                v_pulse[k] = float(np.median(np.abs(trials.voltage[k][inside])))
        limit = v_pulse / r_series
        with np.errstate(invalid="ignore"):
            ratio = i_on / limit
        bad = np.flatnonzero(ratio > 1.0 + SERIES_TOL)
        if bad.size:
            raise DataError(f"trials {_rows(bad)}: ON current {np.nanmedian(i_on[bad]):.3g} A exceeds |V|/R_s = "
                            f"{np.nanmedian(limit[bad]):.3g} A (x{np.nanmedian(ratio[bad]):.3g}), which the "
                            f"{r_series:g} ohm series resistor alone cannot carry: the currents are not in A, or the "
                            "series resistance is wrong")
        close = np.flatnonzero(ratio > 1.0)
        if close.size:
            notes.append(f"trials {_rows(close)}: ON current up to {np.nanmax(ratio[close]):.3f} x |V|/R_s: the "
                         "device's ON resistance is below what R_s resolves (r_on set near 0)")
    return notes
