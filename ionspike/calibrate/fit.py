r"""Fit the device model to measured DC sweeps or pulse trials: the public entry points.

Each fit alternates two stages (:mod:`ionspike.calibrate.stages`) for ``rounds`` rounds:

1. **Deterministic parameters by gradient descent** (optax Adam) through the JAX simulator of
   the measurement setup. The loss (:mod:`ionspike.calibrate.losses`) compares the *medians* of
   features of a batch of simulated trials with the measured medians, with the noise of the
   batch held fixed (common random numbers). Parameters are optimised in unconstrained
   coordinates (log for rates, a logistic map onto the allowed interval for ``v_h``), from
   several starts; the best wins.
2. **Stochastic parameters by distribution matching**: a grid over ``N_eff`` and the
   cycle-to-cycle spread of ``ln mu``; each point re-centres the deterministic parameters,
   simulates as many trials as were measured and scores the KS distances.

A polish re-centres the medians on as many trials as are reported; the reported comparison is
a fresh draw, judged by :mod:`ionspike.calibrate.verdict` (``Fit.verdict``, ``fit.json``).
Which parameters each fit frees, and why the others are held (not identifiable from that
experiment), is stated in :func:`fit_dc_sweeps` and :func:`fit_pulses`. Initial values come
from the data (closed forms), so no file-specific tuning is needed. A fixed ``seed`` makes the
whole fit repeatable, whatever the caller's JAX precision (the fits run in float64).
"""

from __future__ import annotations

from typing import Callable

from ionspike import checks
from ionspike.calibrate import dc, pulses
from ionspike.calibrate.data import DCSweeps, PulseTrials
# names that lived in this module before the split, importable from here as before
from ionspike.calibrate.dc import MIN_PER_POLARITY, dc_setup_from_data, fits_needed, sweep_signs  # noqa: F401
from ionspike.calibrate.losses import MISSING_AS, ks_with_missing  # noqa: F401
from ionspike.calibrate.options import N_EFF_GRID, SIGMA_C2C_GRID, SIGMA_C2C_GRID_PULSES, FitOptions  # noqa: F401
from ionspike.calibrate.pulses import on_fraction  # noqa: F401
from ionspike.calibrate.result import Fit
from ionspike.errors import ParameterError
from ionspike.params import NeuronParams
from ionspike.precision import x64
from ionspike.presets import load

KINDS = ("dc-sweeps", "pulses")


def _base_params(base) -> NeuronParams:
    if isinstance(base, NeuronParams):
        return base
    return load(base).params


def _check_common(data, expected: type, options, progress) -> None:
    if not isinstance(data, expected):
        raise ParameterError(f"expected {expected.__name__} (load one with calibrate.load_"
                             f"{'dc_sweeps' if expected is DCSweeps else 'pulse_trials'}), got {type(data).__name__}")
    if not isinstance(options, FitOptions):
        raise ParameterError(f"options = {options!r}: allowed a calibrate.FitOptions")
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress = {progress!r}: allowed a callable of no argument, or None")


@x64
def fit_dc_sweeps(sweeps: DCSweeps, *, base: str | NeuronParams = "paper", polarity: str = "symmetric",
                  per_polarity: bool = True, hold: float = 10e-3, compliance: float | None = None,
                  i_on: float = 1e-8, i_off: float = 1e-11, dt: float = 50e-6, options: FitOptions = FitOptions(),
                  progress: Callable | None = None) -> Fit:
    r"""Fit the memristor to quasi-static I-V sweeps.

    Freed: ``v_h`` and ``mu`` (gradient stage, on the medians of the threshold and hold voltages),
    ``N_eff`` and ``sigma_c2c_ln_mu`` (grid stage, on their distributions); ``r_off`` and ``r_on``
    from the data in closed form (median ``|V|/|I|`` of OFF points; a low percentile of
    ``|V|/|I|`` over ON points below compliance, at most the lowest ``|V|/I_cc`` at compliance;
    the base value if every ON point sits at compliance). Held at the base preset: ``alpha``,
    ``beta``, ``gamma1``, ``gamma2``, ``lam`` -- a sweep measures two voltages per cycle, which fix
    a drift onset and a drive-to-dissolution ratio, not the individual rates.

    A symmetric device swept in both polarities (at least ``MIN_PER_POLARITY`` sweeps each) is,
    with ``per_polarity``, fitted on each polarity's sweeps apart: the positive fit gives ``v_h``
    and ``mu``, the negative one ``v_h_reverse_shift`` and ``mu_reverse_factor``; the noise is the
    candidate (each polarity's own, and their middles) that scores the lowest pooled KS sum on the
    combined device, after each polarity's onset and rate are re-centred on its own medians under
    that noise. Otherwise all sweeps are pooled and simulated as forward sweeps. An asymmetric
    device is fitted on the sweeps of the polarity that switches (most sweeps).

    ``hold`` (s per point) is an assumption when the data does not record timing; ``compliance``
    (A) the instrument's (default: the file's stated value, else the clamp detected in the data);
    ``i_on``/``i_off`` (A) the threshold and hold levels; ``dt`` (s) the integration step.

    The data's units are audited sweep by sweep first (:mod:`ionspike.calibrate.audit`): refusals
    raise :class:`~ionspike.calibrate.data.DataError` naming the sweeps, warnings go to
    ``Fit.notes``. The result carries a verdict (``Fit.verdict``): KS and medians against stated
    thresholds (:mod:`ionspike.calibrate.verdict`).
    """
    _check_common(sweeps, DCSweeps, options, progress)
    checks.choice("polarity", polarity, ("symmetric", "asymmetric"))
    hold, dt = checks.positive("hold", hold, unit="s"), checks.positive("dt", dt, unit="s")
    i_on, i_off = checks.positive("i_on", i_on, unit="A"), checks.positive("i_off", i_off, unit="A")
    if compliance is not None:
        compliance = checks.positive("compliance", compliance, unit="A")
    per_polarity = checks.flag("per_polarity", per_polarity)
    return dc.fit_dc(sweeps, _base_params(base), polarity=polarity, per_polarity=per_polarity, hold=hold,
                     compliance=compliance, i_on=i_on, i_off=i_off, dt=dt, options=options, progress=progress)


@x64
def fit_pulses(trials: PulseTrials, *, r_series: float, base: str | NeuronParams = "paper",
               polarity: str | None = None, i_level: float | None = None, dt: float | None = None,
               options: FitOptions = FitOptions(), progress: Callable | None = None) -> Fit:
    r"""Fit the memristor to switching-delay trials under a voltage pulse through ``r_series`` (Ω).

    Freed: ``mu`` (gradient stage, on the median delay), ``N_eff`` and ``sigma_c2c_ln_mu`` (grid
    stage, on the delay distribution); ``r_on`` and ``r_off`` in closed form from the ON current
    and the current early in the pulse, :math:`R = V/I - R_s`. Held at the base preset: ``v_h``
    (one pulse amplitude cannot separate the drift onset from ``mu``: give trials at several
    amplitudes, or fix ``v_h`` from DC sweeps with ``base``), ``alpha``, ``beta``, the
    dissolution rates and ``lam``. The relaxation after the pulse is reported, not fitted.

    Initialisation: ``mu`` from the deterministic bridging time without dissolution,
    :math:`t_d \approx (1+2\alpha)/(2\mu (V - V_h))`, at the measured median delay.

    Trials whose ON current exceeds ``|V|/r_series`` (not in amperes, or a wrong resistor) are
    refused (:func:`ionspike.calibrate.audit.audit_pulse_trials`); the result carries a verdict.
    """
    _check_common(trials, PulseTrials, options, progress)
    if polarity is not None:
        checks.choice("polarity", polarity, ("symmetric", "asymmetric"))
    r_series = checks.real("r_series", r_series, 0.0, unit="ohm")
    if i_level is not None:
        i_level = checks.positive("i_level", i_level, unit="A")
    if dt is not None:
        dt = checks.positive("dt", dt, unit="s")
    return pulses.fit_pulses(trials, _base_params(base), r_series=r_series, polarity=polarity, i_level=i_level,
                             dt=dt, options=options, progress=progress)


def progress_total(kind: str, data: DCSweeps | PulseTrials, options: FitOptions = FitOptions(), **fit_kwargs) -> int:
    """The number of times the fit of ``kind`` (``"dc-sweeps"`` or ``"pulses"``) on ``data`` with
    ``options`` will call its ``progress`` callable; ``fit_kwargs``: the other arguments of the
    fit (``polarity``, ``per_polarity`` change the DC count; others are ignored)."""
    if kind == "dc-sweeps":
        if not isinstance(data, DCSweeps):
            raise ParameterError(f"progress_total('dc-sweeps', ...): expected DCSweeps, got {type(data).__name__}")
        return dc.progress_ticks(data, options, fit_kwargs.get("polarity", "symmetric"),
                                 bool(fit_kwargs.get("per_polarity", True)))
    if kind == "pulses":
        if not isinstance(data, PulseTrials):
            raise ParameterError(f"progress_total('pulses', ...): expected PulseTrials, got {type(data).__name__}")
        return pulses.progress_ticks(options)
    raise ParameterError(f"kind = {kind!r}: allowed {', '.join(repr(k) for k in KINDS)}")
