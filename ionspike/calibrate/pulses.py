r"""Fit the memristor to switching delays under a voltage pulse through a series resistor.

``mu`` by gradient descent on the median delay (autodiff through the crossing of ``x`` mid-gap,
:data:`ionspike.calibrate.setups.X_LEVEL`), ``N_eff`` and ``sigma_c2c_ln_mu`` on a grid (the
delay distribution), then a secant polish of ``mu`` on the median delay; ``r_on``/``r_off`` in
closed form from the ON current and the current early in the pulse.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax.numpy as jnp
import numpy as np

from ionspike.calibrate import features as feat
from ionspike.calibrate import losses, setups, stages
from ionspike.calibrate.audit import audit_pulse_trials
from ionspike.calibrate.data import DataError, PulseTrials
from ionspike.calibrate.options import POLISH_STEPS, SIGMA_C2C_GRID_PULSES, FitOptions
from ionspike.calibrate.result import Fit
from ionspike.calibrate.verdict import judge_pulses
from ionspike.errors import ParameterError
from ionspike.params import NeuronParams, Noise

N_GRAD = 128  # trials in the gradient batch (FitOptions.n_grad None)
N_GRID_MAX = 200  # trials per grid point at most
START_FACTORS = (1.0, 0.5, 2.0, 0.25, 4.0, 0.125, 8.0)  # mu of the starts, x the closed-form guess
LATE = 10.0  # a trial that never switches counts as switching at LATE x the pulse width


def on_fraction(trials: PulseTrials, delays: np.ndarray, level: float, t_end: float) -> np.ndarray:
    """Per trial, the fraction of samples between its switch and the pulse end ``t_end`` (s) with
    ``|I| >= level`` (A): 1 for a device that stays ON, lower for one that flickers; NaN if it
    did not switch."""
    start, _ = feat.pulse_edges(trials)
    out = np.full(trials.n_trials, np.nan)
    for k in range(trials.n_trials):
        if np.isfinite(delays[k]):
            sel = (trials.time[k] > start[k] + delays[k]) & (trials.time[k] < t_end)
            if sel.any():
                out[k] = float(np.mean(np.abs(trials.current[k][sel]) >= level))
    return out


def _closed_form(trials: PulseTrials, setup: setups.PulseSetup, delays, r_series: float, base: NeuronParams):
    """``(r_on, r_off, notes)`` (Ω): ``R = |V|/I - R_s`` from the ON current and the current in the
    first tenth of the earliest switch."""
    i_on = float(np.nanmedian(feat.on_current(trials)))
    v = abs(setup.amplitude)
    start, _ = feat.pulse_edges(trials)
    early = (trials.time >= start[:, None]) & (trials.time < start[:, None] + 0.1 * np.nanmin(delays))
    i_pre = float(np.median(np.abs(trials.current[early]))) if early.any() else v / base.memristor.r_off
    r_on, r_off, notes = v / i_on - r_series, v / max(i_pre, 1e-15) - r_series, []
    if r_on <= 0:   # within the audit's tolerance of |V|/R_s (beyond it the data is refused)
        notes.append(f"ON current {i_on:g} A is at |V|/R_s: r_on set to 1 % of r_series")
        r_on = 0.01 * max(r_series, 1.0)
    return r_on, max(r_off, 2 * r_on), notes


def fit_pulses(trials: PulseTrials, base: NeuronParams, *, r_series: float, polarity: str | None,
               i_level: float | None, dt: float | None, options: FitOptions, progress: Callable | None) -> Fit:
    """The pulse fit of :func:`ionspike.calibrate.fit_pulses` (arguments checked there)."""
    if not (np.isfinite(r_series) and r_series >= 0):
        raise ParameterError(f"r_series = {r_series} ohm is out of range: allowed [0, inf)")
    audit_notes = audit_pulse_trials(trials, r_series)
    setup = setups.PulseSetup.from_trials(trials, r_series, dt)
    level = float(np.nanmedian(feat.switching_levels(trials))) if i_level is None else float(i_level)
    delays = feat.switching_delays(trials, level)
    if not np.isfinite(delays).any():
        raise DataError(f"no trial switches: |I| never rises through i_level = {level:g} A during the pulse")
    r_on, r_off, notes = _closed_form(trials, setup, delays, r_series, base)
    m0 = dataclasses.replace(base.memristor, polarity=polarity or base.memristor.polarity, r_on=r_on, r_off=r_off)
    med = float(np.nanmedian(delays))
    drive = abs(setup.amplitude) - m0.v_h
    if drive <= 0:
        raise DataError(f"pulse amplitude {abs(setup.amplitude):g} V is not above the base preset's v_h = "
                        f"{m0.v_h:g} V: the model cannot switch; pass a base preset with a lower v_h")
    mu0 = (1 + 2 * m0.alpha) / (2 * drive * med)
    t_end = setup.t_start + setup.width
    late = LATE * setup.width
    on_meas = float(np.nanmean(on_fraction(trials, delays, level, t_end)))
    n_sim = options.n_sim if options.n_sim is not None else max(trials.n_trials, 400)  # smooth CDFs from few trials
    n_grid = min(n_sim, N_GRID_MAX)
    # the fit needs the delays only: simulate up to the end of the pulse
    pulse_only = dataclasses.replace(setup, duration=min(setup.duration, t_end + 2 * setup.sample))
    n_grad = options.n_grad or N_GRAD

    def unpack(theta):
        return dataclasses.replace(m0, mu=jnp.exp(theta[0]))

    def make_loss(noise: Noise):
        det = setups.no_langevin(noise)
        scale, keys = setups.trial_draws(noise, n_grad, options.seed + 1)

        def loss(theta):
            _, c = setups.pulse_run(unpack(theta), noise.n_eff, scale, keys, pulse_only, level, det)
            d = c.t_x - setup.t_start   # x mid-gap: differentiable stand-in for the switch (see setups.X_LEVEL)
            # no crossing during the pulse: not switched, counted as late (no gradient from those trials)
            d = jnp.where(d > setup.width, jnp.nan, d)
            return losses.delay_median_loss(d, med, late, xp=jnp)
        return loss

    def delays_of(m, noise, n, seed):
        sim, _ = setups.simulate_pulses(m, noise, pulse_only, n_trials=n, seed=seed, i_level=level)
        return feat.switching_delays(sim, level), sim

    def score(m, noise):
        """Re-centre mu on the median delay (delay ~ 1/mu well above threshold), then score."""
        d, _ = delays_of(m, noise, n_grid, options.seed + 2)
        if np.isfinite(d).any():
            m = dataclasses.replace(m, mu=float(m.mu * np.clip(np.median(np.where(np.isnan(d), late, d)) / med,
                                                               0.25, 4.0)))
        d, sim = delays_of(m, noise, n_grid, options.seed + 2)
        on_sim = float(np.nanmean(on_fraction(sim, d, level, t_end))) if np.isfinite(d).any() else 0.0
        return losses.pulse_score(delays, d, on_meas, on_sim, late), m

    starts = [np.array([math.log(mu0 * f)]) for f in START_FACTORS[:options.restarts]]
    starts += [np.array([math.log(mu0)])] * (options.restarts - len(starts))
    points = stages.noise_grid(options, SIGMA_C2C_GRID_PULSES)
    noise = Noise(n_eff=100.0, sigma_c2c_ln_mu=0.1)
    m, history, loss, theta = m0, [], math.inf, starts[0]
    for r in range(options.rounds):
        theta, loss, traces = stages.adam_stage(make_loss(noise), starts if r == 0 else [theta], options, progress)
        m = dataclasses.replace(m0, mu=float(np.exp(theta[0])))
        history.append({"stage": "gradient", "round": r, "loss": loss, "mu": m.mu, "traces": traces})
        noise, m, best, rows = stages.grid_stage(score, m, points, progress)
        theta = np.array([math.log(m.mu)])
        history.append({"stage": "grid", "round": r, "best": best, "n_eff": noise.n_eff,
                        "sigma_c2c_ln_mu": noise.sigma_c2c_ln_mu, "mu": m.mu, "grid": rows})
    # polish mu on the median delay with more trials: secant steps in (ln mu, ln median delay)
    pts = []
    for _ in range(POLISH_STEPS):
        d, _ = delays_of(m, noise, n_sim, options.seed + 2)
        pts.append((math.log(m.mu), math.log(float(np.median(np.where(np.isnan(d), late, d))))))
        m = dataclasses.replace(m, mu=float(m.mu * math.exp(stages.secant_step(pts, math.log(med)))))
        stages.tick(progress)
    history.append({"stage": "polish", "points_log_mu_log_median": pts, "mu": m.mu})
    n_report = options.n_report or max(trials.n_trials, 400)
    sim, _ = setups.simulate_pulses(m, noise, setup, n_trials=n_report, seed=options.seed + 3, i_level=level)
    stages.tick(progress)
    d = feat.switching_delays(sim, level)
    measured = {"delay_s": delays, "relaxation_s": feat.relaxation_times(trials, level),
                "on_fraction": on_fraction(trials, delays, level, t_end)}
    simulated = {"delay_s": d, "relaxation_s": feat.relaxation_times(sim, level),
                 "on_fraction": on_fraction(sim, d, level, t_end)}
    _, ks = losses.ks_sum({"delay_s": delays}, simulated)
    verdict = judge_pulses(ks, losses.median_with_missing("delay_s", delays), losses.median_with_missing("delay_s", d))
    params = dataclasses.replace(base, memristor=m, noise=noise)
    fitted = {"mu": m.mu, "r_on": m.r_on, "r_off": m.r_off, "n_eff": noise.n_eff,
              "sigma_c2c_ln_mu": noise.sigma_c2c_ln_mu}
    setup_info = dict(dataclasses.asdict(setup), i_level=level, n_measured=trials.n_trials, n_simulated=n_report)
    return Fit("pulses", params, fitted, measured, simulated, ks, loss, history, setup_info, verdict,
               measured_data=trials, simulated_data=sim, notes=tuple(audit_notes + notes))


def progress_ticks(options: FitOptions) -> int:
    """The number of ``progress`` calls :func:`fit_pulses` makes."""
    return (options.steps * (options.restarts + options.rounds - 1)
            + options.rounds * len(stages.noise_grid(options, SIGMA_C2C_GRID_PULSES)) + POLISH_STEPS + 1)
