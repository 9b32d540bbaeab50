"""Did the calibration reproduce the data? A verdict with stated thresholds and reasons.

A fit always returns its best parameters; whether they reproduce the measurement is a
separate question, answered here from the measured and the freshly simulated features:

* **KS per fitted feature** against :data:`KS_LIMIT` (DC sweeps: 0.2, the DC acceptance of the
  calibration tests; pulse delays: 0.35, the pulse acceptance);
* **medians**: DC sweeps, each polarity's simulated median threshold and hold against the
  measured one, in steps of the voltage grid: a miss of :data:`MEDIAN_MISS_STEPS` (one step) or
  more fails. Both samples sit on the grid, so the median compared is the grid median
  (:func:`ionspike.calibrate.losses.grid_median`: each value spread over its grid cell), which
  moves by fractions of a step as the distribution shifts; the plain median jumps whole steps
  (a measured median at the edge of its cell reads one step off a simulated one a tenth of a
  step away). Pulse trials: the median delay (never-switched trials counted as late) within a
  factor :data:`MEDIAN_FACTOR`.

The verdict fails if any check fails, and says which and by how much. Diagnostics that explain
a miss without being judged (the shape of the release) are kept as ``notes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: largest KS distance that passes, per fit kind
KS_LIMIT = {"dc-sweeps": 0.2, "pulses": 0.35}
#: a DC median off by this many voltage-grid steps or more fails
MEDIAN_MISS_STEPS = 1.0
#: a median delay off by this factor or more fails
MEDIAN_FACTOR = 1.5
#: the features each kind is judged on (others are reported, not fitted)
JUDGED = {"dc-sweeps": ("vth_V", "vhold_V"), "pulses": ("delay_s",)}
_EPS = 1e-9   # medians on the same grid: a one-step miss computed as 0.9999999 is one step

LABEL = {"vth_V": "threshold", "vhold_V": "hold", "delay_s": "switching delay"}


@dataclass(frozen=True)
class Check:
    """One judged number: ``value`` against ``limit`` (``passed`` if ``value < limit``, or
    ``<= limit`` for a KS distance), with a sentence saying what was compared."""

    name: str
    value: float
    limit: float
    passed: bool
    text: str

    def to_dict(self) -> dict:
        return {"name": self.name, "value": _json(self.value), "limit": self.limit, "passed": self.passed,
                "text": self.text}


@dataclass(frozen=True)
class Verdict:
    """``passed``: every check passed; ``checks``: what was judged; ``notes``: diagnostics."""

    passed: bool
    checks: tuple = ()
    notes: tuple = field(default=())

    @property
    def reasons(self) -> list[str]:
        """The failed checks' sentences (empty when the verdict passes)."""
        return [c.text for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reasons": self.reasons, "checks": [c.to_dict() for c in self.checks],
                "notes": list(self.notes),
                "thresholds": {"ks_max": dict(KS_LIMIT), "dc_median_miss_steps_below": MEDIAN_MISS_STEPS,
                               "delay_median_factor_below": MEDIAN_FACTOR}}

    def lines(self) -> list[str]:
        """Human-readable lines: the verdict, then each check (failed ones first), then the notes."""
        head = "calibration PASSED" if self.passed else "calibration FAILED: " + "; ".join(self.reasons)
        out = [head]
        for c in sorted(self.checks, key=lambda c: c.passed):   # no square brackets: safe for Rich markup
            out.append(f"  {'ok  ' if c.passed else 'FAIL'}  {c.text}")
        out += [f"  note: {n}" for n in self.notes]
        return out


def _json(v):
    return None if v is None or not np.isfinite(v) else float(v)


def ks_checks(kind: str, ks: dict) -> list[Check]:
    """One check per judged feature: KS distance <= ``KS_LIMIT[kind]``."""
    limit = KS_LIMIT[kind]
    out = []
    for name in JUDGED[kind]:
        if name not in ks:
            continue
        value = float(ks[name])
        out.append(Check(f"ks.{name}", value, limit, bool(value <= limit),
                         f"KS {LABEL[name]} {value:.3f} (limit {limit})"))
    return out


def median_check(name: str, where: str, measured: float, simulated: float, step: float) -> Check:
    """A DC grid median (V) of feature ``name`` for ``where`` (a polarity, or "all sweeps"): passes if
    the simulated one is less than ``MEDIAN_MISS_STEPS`` grid steps (``step``, V) from the measured."""
    if not (np.isfinite(measured) and np.isfinite(simulated)):
        return Check(f"median.{name}.{where}", math.inf, MEDIAN_MISS_STEPS, False,
                     f"grid median {LABEL[name]} ({where}): measured {measured:.4g} V, simulated {simulated:.4g} V "
                     "(absent: the simulated device never shows it)")
    miss = (simulated - measured) / step
    ok = abs(miss) < MEDIAN_MISS_STEPS - _EPS
    return Check(f"median.{name}.{where}", float(abs(miss)), MEDIAN_MISS_STEPS, bool(ok),
                 f"grid median {LABEL[name]} ({where}): simulated {simulated:.4g} V vs measured {measured:.4g} V, "
                 f"{miss:+.2f} grid steps of {step * 1e3:.3g} mV (limit: under {MEDIAN_MISS_STEPS:g})")


def judge_dc(ks: dict, medians: dict, step: float, notes=()) -> Verdict:
    """Verdict of a DC-sweep fit. ``medians``: ``{where: {feature: (measured, simulated)}}``, one
    entry per polarity judged (or "all sweeps"); ``step``: the voltage grid step, V."""
    checks = ks_checks("dc-sweeps", ks)
    for where, features in medians.items():
        for name in JUDGED["dc-sweeps"]:
            if name in features:
                checks.append(median_check(name, where, *features[name], step))
    return Verdict(all(c.passed for c in checks), tuple(checks), tuple(notes))


def judge_pulses(ks: dict, measured_median: float, simulated_median: float, notes=()) -> Verdict:
    """Verdict of a pulse fit: KS of the delays, and the median delay (s; never-switched trials
    counted as late, so +inf when most never switch) within a factor ``MEDIAN_FACTOR``."""
    checks = ks_checks("pulses", ks)
    if np.isfinite(measured_median) and np.isfinite(simulated_median) and measured_median > 0 and simulated_median > 0:
        factor = max(simulated_median / measured_median, measured_median / simulated_median)
    else:
        factor = math.inf
    checks.append(Check("median.delay_s", float(factor), MEDIAN_FACTOR, bool(factor < MEDIAN_FACTOR),
                        f"median switching delay: simulated {simulated_median * 1e3:.4g} ms vs measured "
                        f"{measured_median * 1e3:.4g} ms, factor {factor:.3g} (limit: under {MEDIAN_FACTOR:g})"))
    return Verdict(all(c.passed for c in checks), tuple(checks), tuple(notes))


def from_dict(d: dict) -> Verdict:
    """The :class:`Verdict` saved in ``fit.json`` (``summary()["verdict"]``)."""
    checks = tuple(Check(c["name"], math.inf if c["value"] is None else c["value"], c["limit"], c["passed"], c["text"])
                   for c in d.get("checks", []))
    return Verdict(bool(d["passed"]), checks, tuple(d.get("notes", [])))
