"""Calibration against measured diffusive-memristor data.

* :mod:`~ionspike.calibrate.data`: loaders (NPZ, CSV) and the ``DCSweeps``/``PulseTrials`` records;
* :mod:`~ionspike.calibrate.features`: threshold/hold voltages, ON/OFF resistance, switching
  delays, relaxation, KS distance -- the same functions for measured and simulated data;
* :mod:`~ionspike.calibrate.setups`: the measurement setups (DC sweep with compliance, pulse
  through a series resistor) simulated with the device model, batched over trials;
* :mod:`~ionspike.calibrate.fit`: gradient descent (optax) on the deterministic parameters and
  distribution matching on the stochastic ones;
* :mod:`~ionspike.calibrate.output`: ``preset.toml``, ``fit.json``, ``curves.json``.

>>> from ionspike import calibrate
>>> sweeps = calibrate.load_dc_sweeps("../shared/data/dm_symmetric_dc_sweeps.npz")   # doctest: +SKIP
>>> fit = calibrate.fit_dc_sweeps(sweeps)                                            # doctest: +SKIP
>>> calibrate.write(fit, "calib/", source="dm_symmetric_dc_sweeps.npz", base="paper")  # doctest: +SKIP
"""

from ionspike.calibrate.data import DataError, DCSweeps, PulseTrials, load_dc_sweeps, load_pulse_trials, write_csv
from ionspike.calibrate.fit import Fit, FitOptions, fit_dc_sweeps, fit_pulses
from ionspike.calibrate.output import write
from ionspike.calibrate.setups import DCSweep, PulseSetup, simulate_dc_sweeps, simulate_pulses

__all__ = ["DataError", "DCSweeps", "PulseTrials", "load_dc_sweeps", "load_pulse_trials", "write_csv",
           "Fit", "FitOptions", "fit_dc_sweeps", "fit_pulses", "write",
           "DCSweep", "PulseSetup", "simulate_dc_sweeps", "simulate_pulses"]
