"""Calibration against measured diffusive-memristor data.

* :mod:`~ionspike.calibrate.data`: loaders (NPZ, CSV) and the ``DCSweeps``/``PulseTrials`` records;
* :mod:`~ionspike.calibrate.audit`: units checked sweep by sweep (mixed mA/A refused, warnings);
* :mod:`~ionspike.calibrate.features`: threshold/hold voltages, ON/OFF resistance, switching
  delays, relaxation, KS distance -- the same functions for measured and simulated data;
* :mod:`~ionspike.calibrate.setups`: the measurement setups (DC sweep with compliance, pulse
  through a series resistor) simulated with the device model, batched over trials;
* :mod:`~ionspike.calibrate.losses`, :mod:`~ionspike.calibrate.stages`: what a fit minimises, and
  its stages (gradient descent with optax, noise grid, re-centring on the medians);
* :mod:`~ionspike.calibrate.dc`, :mod:`~ionspike.calibrate.pulses`: the two fits, composed of the
  stages; :mod:`~ionspike.calibrate.fit`: their public entry points and :func:`progress_total`;
* :mod:`~ionspike.calibrate.result`, :mod:`~ionspike.calibrate.verdict`: the ``Fit`` record and its
  verdict (KS and medians against stated thresholds, pass/fail with reasons);
* :mod:`~ionspike.calibrate.output`: ``preset.toml``, ``fit.json``, ``curves.json``.

>>> from ionspike import calibrate
>>> sweeps = calibrate.load_dc_sweeps("../shared/data/dm_symmetric_dc_sweeps.npz")   # doctest: +SKIP
>>> fit = calibrate.fit_dc_sweeps(sweeps)                                            # doctest: +SKIP
>>> print("\n".join(fit.verdict_lines()))                                             # doctest: +SKIP
>>> calibrate.write(fit, "calib/", source="dm_symmetric_dc_sweeps.npz", base="paper")  # doctest: +SKIP
"""

from ionspike.calibrate.data import DataError, DCSweeps, PulseTrials, load_dc_sweeps, load_pulse_trials, write_csv
from ionspike.calibrate.fit import fit_dc_sweeps, fit_pulses, progress_total
from ionspike.calibrate.options import FitOptions
from ionspike.calibrate.output import write
from ionspike.calibrate.result import Fit
from ionspike.calibrate.setups import DCSweep, PulseSetup, simulate_dc_sweeps, simulate_pulses
from ionspike.calibrate.verdict import Verdict

__all__ = ["DataError", "DCSweeps", "PulseTrials", "load_dc_sweeps", "load_pulse_trials", "write_csv",
           "Fit", "FitOptions", "Verdict", "fit_dc_sweeps", "fit_pulses", "progress_total", "write",
           "DCSweep", "PulseSetup", "simulate_dc_sweeps", "simulate_pulses"]
