"""A calibration result (:class:`Fit`): built complete, once, by a fit; never changed after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ionspike.calibrate import features as feat
from ionspike.calibrate.losses import MISSING_AS, median_with_missing
from ionspike.calibrate.verdict import Verdict
from ionspike.params import NeuronParams


@dataclass(frozen=True, eq=False)
class Fit:
    """A calibration result.

    ``params``: the fitted neuron parameters (memristor and noise fitted, transistor and circuit
    from the base preset); ``fitted``: name -> SI value of what was freed; ``measured`` /
    ``simulated``: feature name -> samples (the simulated ones from a fresh draw); ``ks``: fitted
    feature -> KS distance; ``loss``: final gradient-stage loss; ``history``: one dict per stage;
    ``setup``: the measurement setup and per-polarity medians; ``verdict``: whether the fit
    reproduces the data (:mod:`ionspike.calibrate.verdict`); ``notes``: warnings about the data
    and the fit (units, few sweeps, ...), also written to ``fit.json``.
    """

    kind: str
    params: NeuronParams
    fitted: dict
    measured: dict
    simulated: dict
    ks: dict
    loss: float
    history: list
    setup: dict
    verdict: Verdict
    measured_data: Any = None
    simulated_data: Any = None
    notes: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "notes", tuple(str(n) for n in self.notes))

    def summary(self) -> dict:
        """JSON-ready: parameters, loss, verdict, notes, measured and simulated samples, their
        statistics and KS distances."""
        out: dict[str, Any] = {"kind": self.kind, "fitted": self.fitted, "loss": self.loss,
                               "params": self.params.to_dict(), "setup": self.setup, "ks": self.ks,
                               "verdict": self.verdict.to_dict(), "history": self.history, "notes": list(self.notes)}
        for where, samples in (("measured", self.measured), ("simulated", self.simulated)):
            for name, x in samples.items():
                a = np.asarray(x, float)
                out[f"{where}.{name}"] = [None if not np.isfinite(v) else float(v) for v in a]
                stats = feat.describe(a)
                if name in MISSING_AS:  # the median with absent features placed where they belong
                    stats["median_with_missing"] = median_with_missing(name, a)
                out[f"{where}.{name}.stats"] = stats
        return out

    def verdict_lines(self) -> list[str]:
        """What the CLI prints after a fit: the verdict (pass/fail with reasons, each check) and
        the notes (warnings about the data)."""
        return self.verdict.lines() + [f"note: {n}" for n in self.notes]
