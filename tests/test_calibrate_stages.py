"""The pieces of a fit, alone: losses (grid median, KS with missing), stages (central differences,
Adam, noise grid, re-centring, secant), the verdict, the frozen Fit record, the progress count,
and the precision contract (a fit's numbers do not depend on the caller's JAX x64 setting)."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ionspike as isp
from ionspike import calibrate, precision
from ionspike.calibrate import features as F
from ionspike.calibrate import losses, stages, verdict
from ionspike.calibrate import setups as S
from ionspike.params import Noise

STEP = 0.006


# ------------------------------------------------------------------ losses


def test_grid_median_is_the_median_on_the_grid_and_moves_continuously():
    x = STEP * np.array([2, 3, 3, 3, 4], float)
    assert losses.grid_median(x, STEP) == pytest.approx(3 * STEP)          # the middle cell, centred
    assert losses.grid_median(STEP * np.array([0, 1.0]), STEP) == pytest.approx(0.5 * STEP)
    # one sweep moving up a step: the plain median stays at 3 steps, the grid median follows by a
    # fraction of a step (3 - 1/2 + (5/2 - 1)/2 = 3.25 steps)
    moved = STEP * np.array([2, 3, 3, 4, 4], float)
    assert np.median(moved) == pytest.approx(3 * STEP)
    assert losses.grid_median(moved, STEP) == pytest.approx(3.25 * STEP)
    assert losses.grid_median(np.r_[x, np.nan], STEP) == losses.grid_median(x, STEP)   # NaN dropped
    assert np.isnan(losses.grid_median(np.array([np.nan]), STEP)) and np.isnan(losses.grid_median(np.zeros(0), STEP))
    rng = np.random.default_rng(0)
    y = STEP * rng.integers(0, 20, 101)
    with precision.float64():
        assert float(losses.grid_median(jnp.asarray(y), STEP, xp=jnp)) == pytest.approx(losses.grid_median(y, STEP),
                                                                                       abs=1e-15)
    assert abs(losses.grid_median(y, STEP) - np.median(y)) < STEP      # within the median's own cell


def test_dc_median_loss_counts_grid_steps():
    th, ho = np.full(8, 0.30), np.full(8, 0.06)
    assert losses.dc_median_loss(th, ho, 0.30, 0.06, STEP, 0.6) == pytest.approx(0.0)
    assert losses.dc_median_loss(th + STEP, ho - 2 * STEP, 0.30, 0.06, STEP, 0.6) == pytest.approx(1.0 + 4.0)
    never = np.full(8, np.nan)   # never switches: scored at 2 v_max for the threshold
    assert losses.dc_median_loss(never, ho, 0.30, 0.06, STEP, 0.6) == pytest.approx(((1.2 - 0.30) / STEP) ** 2)


def test_ks_with_missing_places_absent_features():
    a = np.array([0.01, 0.02, np.nan, np.nan])        # two sweeps never release: below every hold
    b = np.array([0.01, 0.02, 0.03, 0.04])
    assert losses.ks_with_missing("vhold_V", a, b) == pytest.approx(0.5)
    assert losses.ks_with_missing("vhold_V", a, np.r_[b[:2], np.nan, np.nan]) == 0.0
    assert losses.ks_with_missing("vhold_V", a, np.r_[b[:2], -1.0, -1.0]) == pytest.approx(0.5)   # not dropped
    assert losses.median_with_missing("delay_s", np.array([1.0, np.nan, np.nan])) == math.inf


# ------------------------------------------------------------------ stages


def test_central_difference_matches_the_derivative():
    with precision.float64():
        vg = stages.central_difference(lambda t: jnp.sin(t[0]) + t[1] ** 3, 1e-4)
        value, grad = vg(jnp.array([0.3, 2.0]))
    assert float(value) == pytest.approx(math.sin(0.3) + 8.0)
    np.testing.assert_allclose(np.asarray(grad), [math.cos(0.3), 12.0], rtol=1e-7)


def test_adam_stage_minimises_and_ticks_every_step():
    opts = calibrate.FitOptions(steps=60, lr=0.2)
    ticks = []
    with precision.float64():
        best, loss, traces = stages.adam_stage(lambda t: jnp.sum((t - jnp.array([1.0, -2.0])) ** 2),
                                               [np.zeros(2), np.full(2, 3.0)], opts, lambda: ticks.append(1))
        np.testing.assert_allclose(best, [1.0, -2.0], atol=0.05)
        assert len(traces) == 2 and len(ticks) == 2 * 60
        ticks.clear()   # a non-finite gradient ends the start early; the ticks still add up
        stages.adam_stage(lambda t: jnp.sqrt(t[0]), [np.zeros(1)], opts, lambda: ticks.append(1))
        assert len(ticks) == 60


def test_noise_grid_skips_only_the_deterministic_point():
    opts = calibrate.FitOptions(n_eff_grid=(10.0, math.inf), sigma_c2c_grid=(0.0, 0.2))
    pts = [(p.n_eff, p.sigma_c2c_ln_mu) for p in stages.noise_grid(opts, (9.9,))]
    assert pts == [(10.0, 0.0), (10.0, 0.2), (math.inf, 0.2)]


def test_recentre_converges_on_a_device_whose_hold_follows_the_onset():
    # a toy device: hold = onset - 0.01 V, threshold = onset + 40/mu; the target from onset 0.2, mu 800
    def medians(onset, mu):
        return onset + 40.0 / mu, onset - 0.01
    target = medians(0.2, 800.0)
    onset, mu = 0.1, 300.0
    for _ in range(6):
        onset, mu = stages.recentre(onset, mu, target, medians(onset, mu))
    assert onset == pytest.approx(0.2, abs=1e-9) and mu == pytest.approx(800.0, rel=1e-3)
    assert stages.recentre(0.1, 300.0, target, (np.nan, 0.1)) == (0.1, 300.0)    # a NaN median: unchanged
    assert stages.recentre(0.1, 300.0, (0.2, 0.5), (0.3, 0.0))[0] == pytest.approx(0.95 * 0.2)   # onset < V_th


def test_secant_step_finds_the_rate_of_an_inverse_law():
    target = math.log(2e-3)        # delay = 0.5 / mu: the median delay 2 ms at mu = 250
    log_mu, pts = math.log(200.0), []
    for _ in range(3):
        pts.append((log_mu, math.log(0.5) - log_mu))
        log_mu += stages.secant_step(pts, target)
    assert math.exp(log_mu) == pytest.approx(250.0, rel=1e-9)
    assert stages.secant_step([(0.0, 10.0)], 0.0) == pytest.approx(math.log(2))   # at most a factor 2


# ------------------------------------------------------------------ features: one rule for data and loss


def test_traced_sweep_features_equal_the_data_rule():
    m = dataclasses.replace(isp.presets.params("paper").memristor, polarity="symmetric", r_off=3e10, r_on=1.6e5,
                            v_h=0.15, mu=800.0)
    sweeps, _ = S.simulate_dc_sweeps(m, Noise(n_eff=10.0, sigma_c2c_ln_mu=0.2), S.DCSweep(v_step=12e-3),
                                     n_trials=24, seed=4)
    th, ho = F.threshold_hold_voltages(sweeps)
    with precision.float64():
        th_j, ho_j = F.threshold_hold_from_readings(np.abs(sweeps.voltage[0]), jnp.asarray(np.abs(sweeps.current)),
                                                    1e-8, 1e-11, xp=jnp)
    np.testing.assert_array_equal(np.asarray(th_j), th)
    np.testing.assert_array_equal(np.asarray(ho_j), ho)
    assert np.isfinite(ho).sum() >= 20


def test_hold_level_above_the_remnant_marks_the_release():
    # the model's residue keeps conducting after the release (x = F + R sets the resistance): the
    # simulated current passes 10 pA a few points after it; a device that drops to the floor does not
    from ionspike.calibrate import dc

    m = dataclasses.replace(isp.presets.params("paper").memristor, polarity="symmetric", r_off=3e10, r_on=1.6e5,
                            v_h=0.15, mu=800.0)
    sim, _ = S.simulate_dc_sweeps(m, Noise(n_eff=20.0), S.DCSweep(v_step=12e-3), n_trials=12, seed=1)
    assert np.nanmean(F.abrupt_release(sim)) == 0.0
    level = dc.hold_level_above_remnant(sim, sim, 1e-8, 1e-11)
    assert 1e-11 < level["i_off_A"] <= 1e-8 and math.log10(level["i_off_A"]) == round(math.log10(level["i_off_A"]))
    assert np.nanmean(F.abrupt_release(sim, 1e-8, level["i_off_A"])) >= 0.9     # at that level: the release
    assert level["measured_holds_changed"] > 0.9 and level["median_change_V"] > 0   # here the "data" has the tail


# ------------------------------------------------------------------ verdict and the Fit record


def test_verdict_fails_a_one_step_miss_and_names_it():
    ks = {"vth_V": 0.12, "vhold_V": 0.15}
    ok = verdict.judge_dc(ks, {"negative": {"vth_V": (0.294, 0.294), "vhold_V": (0.084, 0.081)}}, STEP)
    assert ok.passed and ok.reasons == []
    miss = verdict.judge_dc(ks, {"negative": {"vth_V": (0.294, 0.294), "vhold_V": (0.084, 0.078)}}, STEP)
    assert not miss.passed and len(miss.reasons) == 1
    assert "median hold (negative)" in miss.reasons[0] and "-1.00 grid steps of 6 mV" in miss.reasons[0]
    bad_ks = verdict.judge_dc({"vth_V": 0.12, "vhold_V": 0.86}, {}, STEP)
    assert bad_ks.reasons == ["KS hold 0.860 (limit 0.2)"]
    absent = verdict.judge_dc(ks, {"all sweeps": {"vth_V": (0.3, math.nan), "vhold_V": (0.06, 0.06)}}, STEP)
    assert not absent.passed and "never shows it" in absent.reasons[0]
    assert verdict.from_dict(json.loads(json.dumps(miss.to_dict()))) == miss
    assert miss.lines()[0].startswith("calibration FAILED: grid median hold (negative)")


def test_pulse_verdict_judges_the_median_delay_within_a_factor():
    assert verdict.judge_pulses({"delay_s": 0.2}, 1e-3, 1.4e-3).passed
    v = verdict.judge_pulses({"delay_s": 0.2}, 1e-3, 0.6e-3)
    assert not v.passed and "factor 1.67" in v.reasons[0]
    assert not verdict.judge_pulses({"delay_s": 0.2}, 1e-3, math.inf).passed    # most never switch


# ------------------------------------------------------------------ whole (tiny) fits


def _tiny_dc_data():
    base = isp.presets.params("paper")
    m = dataclasses.replace(base.memristor, polarity="symmetric", r_off=3e10, r_on=1.6e5, v_h=0.2, mu=800.0,
                            v_h_reverse_shift=0.05)
    setup = S.DCSweep(v_peak=0.6, v_step=12e-3, hold=10e-3, dt=100e-6)
    noise = Noise(n_eff=20.0, sigma_c2c_ln_mu=0.1)
    fwd, _ = S.simulate_dc_sweeps(m, noise, setup, n_trials=20, seed=11)
    rev, _ = S.simulate_dc_sweeps(m, noise, dataclasses.replace(setup, v_peak=-0.6), n_trials=20, seed=12)
    data = calibrate.DCSweeps(voltage=np.concatenate([fwd.voltage, rev.voltage]),
                              current=np.concatenate([fwd.current, rev.current]))
    return data, dataclasses.replace(base, memristor=m)


TINY = calibrate.FitOptions(steps=2, restarts=1, rounds=1, n_eff_grid=(20.0,), sigma_c2c_grid=(0.1,), n_sim=20,
                            n_report=40, n_grad=8)


def test_fit_is_frozen_counts_its_progress_and_ignores_the_callers_precision():
    data, base = _tiny_dc_data()
    assert not jax.config.jax_enable_x64          # the caller's default: float32
    ticks = []
    plain = calibrate.fit_dc_sweeps(data, base=base, dt=100e-6, options=TINY, progress=lambda: ticks.append(1))
    assert len(ticks) == calibrate.progress_total("dc-sweeps", data, TINY) == 2 * (2 + 1) + 9 + 4 + 1
    with precision.float64():
        in_x64 = calibrate.fit_dc_sweeps(data, base=base, dt=100e-6, options=TINY)
    a = json.dumps(plain.summary(), sort_keys=True, default=str)
    assert a == json.dumps(in_x64.summary(), sort_keys=True, default=str)   # identical, to the last digit
    assert plain.setup["per_polarity"] and set(plain.setup["by_polarity"]) == {"positive", "negative"}
    assert "verdict" in plain.summary() and plain.verdict_lines()[0].startswith("calibration ")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.notes = ()
    assert calibrate.progress_total("dc-sweeps", data, TINY, per_polarity=False) == 2 + 1 + 4 + 1


def test_pulse_fit_counts_its_progress():
    base = isp.presets.params("paper")
    truth = dataclasses.replace(base.memristor, polarity="symmetric", mu=1500.0, v_h=0.5, r_on=6e4, r_off=1e8)
    data, _ = S.simulate_pulses(truth, Noise(n_eff=20.0, sigma_c2c_ln_mu=0.5),
                                S.PulseSetup(r_series=22e3, duration=30e-3, width=20e-3), n_trials=12, seed=2)
    opts = dataclasses.replace(TINY, sigma_c2c_grid=(0.5,), n_grad=16)
    ticks = []
    fit = calibrate.fit_pulses(data, r_series=22e3, base=dataclasses.replace(base, memristor=truth), options=opts,
                               progress=lambda: ticks.append(1))
    assert len(ticks) == calibrate.progress_total("pulses", data, opts) == 2 + 1 + 4 + 1
    assert set(fit.measured) == set(fit.simulated) == {"delay_s", "relaxation_s", "on_fraction"}
    assert [c.name for c in fit.verdict.checks] == ["ks.delay_s", "median.delay_s"]


def test_progress_total_refuses_unknown_kinds_and_data():
    data, _ = _tiny_dc_data()
    with pytest.raises(isp.ParameterError, match="kind = 'iv'"):
        calibrate.progress_total("iv", data, TINY)
    with pytest.raises(isp.ParameterError, match="expected PulseTrials"):
        calibrate.progress_total("pulses", data, TINY)
