"""Calibration: the simulated measurement setups (physics), the fits (round trip on synthetic data
with known parameters), the CLI on the shared measured data (acceptance numbers), bad input."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

import ionspike as isp
from conftest import shared_data
from ionspike import calibrate
from ionspike.calibrate import setups as S
from ionspike.params import Noise

BASE = isp.presets.params("paper")


def _device(**kw):
    return dataclasses.replace(BASE.memristor, **{"polarity": "symmetric", "r_off": 3e10, "r_on": 1.6e5, **kw})


# ------------------------------------------------------------------ the setups' physics


def test_slow_sweep_threshold_approaches_the_saddle_node():
    # Without residue (beta = 0) the filament equation mu (V - v_h)/(alpha + 1 - x) = gamma1 x loses its
    # low fixed point at V* = v_h + gamma1 (1 + alpha)^2 / (4 mu): a slow enough sweep switches there.
    m = _device(beta=0.0, v_h=0.15, mu=800.0)
    v_star = m.v_h + m.gamma1 * (1 + m.alpha) ** 2 / (4 * m.mu)
    errs = []
    for hold in (5e-3, 40e-3):
        setup = S.DCSweep(v_peak=0.5, v_step=2e-3, hold=hold, dt=50e-6)
        _, c = S.simulate_dc_sweeps(m, Noise(), setup)
        errs.append(float(setup.ramp_voltage(c.t_on)[0]) - v_star)
    assert all(e > 0 for e in errs)                     # a finite sweep rate always passes V* first
    assert errs[1] < 0.6 * errs[0]                      # slower sweep, closer to V*
    assert abs(errs[1]) / v_star < 0.01                 # within 1 % at 40 ms per 2 mV (measured ~0.5 %)


def test_sweep_converges_as_dt_shrinks_and_respects_compliance():
    m = _device(v_h=0.15, mu=800.0)
    out = {}
    for dt in (100e-6, 50e-6, 12.5e-6):
        sweeps, c = S.simulate_dc_sweeps(m, Noise(), S.DCSweep(v_peak=0.6, dt=dt))
        setup = S.DCSweep(v_peak=0.6)
        out[dt] = (float(setup.ramp_voltage(c.t_on)[0]), float(setup.ramp_voltage(c.t_off)[0]))
        assert np.all(sweeps.current <= 1e-6 * (1 + 1e-9))         # the source never exceeds compliance
        assert sweeps.current.max() == pytest.approx(1e-6, rel=1e-6)
    fine = out[12.5e-6]
    for dt in (100e-6, 50e-6):
        assert abs(out[dt][0] - fine[0]) < 1e-3 and abs(out[dt][1] - fine[1]) < 1e-3   # V, far below the 6 mV grid


def test_pulse_current_limited_by_series_resistor_and_volatile():
    m = dataclasses.replace(_device(mu=2000.0), r_on=6e4)
    trials, c = S.simulate_pulses(m, Noise(), S.PulseSetup(r_series=22e3))
    i = trials.current[0]
    assert np.all(i <= 1.0 / 22e3)                                 # I = V/(R_s + R_d) <= V/R_s
    assert i.max() == pytest.approx(1.0 / (22e3 + 6e4), rel=0.02)   # ON: R_d = r_on
    assert np.isfinite(c.t_on[0])
    assert i[-1] < 0.1 / (22e3 + 6e4) * 1e-2                       # relaxed back to OFF after the pulse


def test_trials_do_not_depend_on_batch_size_and_seed_repeats():
    m, noise = _device(v_h=0.15, mu=800.0), Noise(n_eff=20.0, sigma_c2c_ln_mu=0.2)
    setup = S.DCSweep(v_peak=0.6, v_step=12e-3)
    a, _ = S.simulate_dc_sweeps(m, noise, setup, n_trials=3, seed=5)
    b, _ = S.simulate_dc_sweeps(m, noise, setup, n_trials=8, seed=5)
    c, _ = S.simulate_dc_sweeps(m, noise, setup, n_trials=3, seed=6)
    np.testing.assert_array_equal(a.current, b.current[:3])
    assert not np.array_equal(a.current, c.current)


def test_threshold_moves_with_mu_as_the_saddle_node_law():
    # What the DC fit's gradient stage differentiates (central differences: the switch is an event
    # inside a step, autodiff of its crossing time is not its derivative): without residue the slow
    # sweep's threshold is V* = v_h + gamma1 (1 + alpha)^2 / (4 mu), so dV*/d ln mu = -(V* - v_h).
    m = _device(beta=0.0, v_h=0.15, mu=800.0)
    setup = S.DCSweep(v_peak=0.5, v_step=2e-3, hold=40e-3, dt=100e-6)

    def v_th(log_mu):
        _, c = S.simulate_dc_sweeps(dataclasses.replace(m, mu=float(np.exp(log_mu))), Noise(), setup)
        return float(setup.ramp_voltage(c.t_on)[0])

    h = 0.05
    slope = (v_th(np.log(800.0) + h) - v_th(np.log(800.0) - h)) / (2 * h)
    law = -m.gamma1 * (1 + m.alpha) ** 2 / (4 * m.mu)
    assert slope == pytest.approx(law, rel=0.03)          # measured -0.1932 vs -0.1913 V per e-fold


def test_pulse_delay_gradient_equals_finite_differences():
    # The pulse fit's gradient: autodiff through the interpolated mid-gap crossing of x (setups.X_LEVEL),
    # pathwise with the noise fixed. Locally (no trial changing its switching step) it is the
    # derivative: compared with central differences of two sizes.
    import jax
    import jax.numpy as jnp

    from ionspike import precision

    setup = S.PulseSetup(r_series=22e3, duration=25e-3, width=20e-3)
    noise = Noise(n_eff=20.0, sigma_c2c_ln_mu=0.5)
    with precision.float64():
        scale, keys = S.trial_draws(noise, 8, 0, False)

        def mean_delay(log_mu):
            m = dataclasses.replace(_device(v_h=0.5, mu=jnp.exp(log_mu)), r_on=6e4, r_off=1e8)
            _, c = S.pulse_run(m, noise.n_eff, scale, keys, setup, 1e-6, False)
            return jnp.mean(c.t_x - setup.t_start)

        f = jax.jit(mean_delay)
        x = np.log(1500.0)
        g = float(jax.grad(f)(x))
        for h in (1e-3, 1e-4):
            fd = (float(f(x + h)) - float(f(x - h))) / (2 * h)
            assert g == pytest.approx(fd, rel=1e-3)        # measured: agree to 5 digits
    assert g < 0                                           # faster growth, earlier switch


# ------------------------------------------------------------------ round trips


def test_dc_round_trip_recovers_v_h_and_mu():
    # v_h is identifiable while the hold sits clear of 0 V (here ~0.036 V; at v_h = 0.15 V the residue
    # keeps the device ON to ~0.01 V and the hold no longer moves with v_h). r_on is not: under
    # compliance the filament stops at R_d = v_h / I_cc > r_on, so it is not asserted.
    truth = _device(v_h=0.2, mu=800.0)
    setup = S.DCSweep(v_peak=0.6, v_step=12e-3, hold=10e-3, dt=100e-6)
    data, _ = S.simulate_dc_sweeps(truth, Noise(n_eff=20.0, sigma_c2c_ln_mu=0.1), setup, n_trials=200, seed=11)
    opts = calibrate.FitOptions(steps=15, restarts=2, rounds=1, n_eff_grid=(10.0, 20.0, 40.0),
                                sigma_c2c_grid=(0.0, 0.1, 0.2), seed=3)
    fit = calibrate.fit_dc_sweeps(data, base=dataclasses.replace(BASE, memristor=_device()), hold=10e-3,
                                  dt=100e-6, options=opts)
    assert fit.fitted["v_h"] == pytest.approx(0.2, rel=0.10)
    # mu is weakly identified by sweeps: threshold and hold medians respond to (v_h, ln mu) along
    # nearly parallel directions (finite-difference Jacobian [[0.84, -0.06], [0.43, -0.02]] V per V
    # and per e-fold), so the pair is pinned only along one combination. Over data seeds 11/12/13
    # mu came back +3/+25/-4 %; the pulse fit (delays) is what pins mu (see the pulse round trip).
    assert fit.fitted["mu"] == pytest.approx(800.0, rel=0.5)
    assert fit.fitted["r_off"] == pytest.approx(3e10, rel=0.10)
    # noise parameters are weakly identified by 100 sweeps; KS of two 100-samples exceeds 0.23 1 % of the time
    assert fit.ks["vth_V"] <= 0.3 and fit.ks["vhold_V"] <= 0.3


def test_pulse_round_trip_recovers_mu_and_resistances():
    truth = dataclasses.replace(_device(mu=1500.0, v_h=0.5), r_on=6e4, r_off=1e8)
    setup = S.PulseSetup(r_series=22e3, duration=30e-3, width=20e-3)
    data, _ = S.simulate_pulses(truth, Noise(n_eff=20.0, sigma_c2c_ln_mu=0.5), setup, n_trials=60, seed=2)
    opts = calibrate.FitOptions(steps=15, restarts=1, rounds=1, n_eff_grid=(10.0, 20.0, 40.0),
                                sigma_c2c_grid=(0.3, 0.5, 0.75), n_grad=64, n_sim=200, seed=1)
    fit = calibrate.fit_pulses(data, r_series=22e3, base=dataclasses.replace(BASE, memristor=truth), options=opts)
    assert fit.fitted["mu"] == pytest.approx(1500.0, rel=0.10)
    assert fit.fitted["r_on"] == pytest.approx(6e4, rel=0.10)
    assert fit.fitted["r_off"] == pytest.approx(1e8, rel=0.10)
    assert fit.ks["delay_s"] <= 0.2


def test_asymmetric_8mv_recovery_with_abrupt_releases():
    # The other device: asymmetric, 8 mV steps, sweeps of both signs, only the positive ones
    # switch. Its releases are abrupt (ON to the floor within one point), the model's are not: its
    # residue conducts after the release, so at the default 10 pA the simulated hold marks the residue's
    # decay and comes out low on every sweep (measured: -14 steps, KS 0.95). At a hold level above the
    # simulated remnant current (the verdict's suggestion, 1 nA) both holds mark the release.
    truth = dataclasses.replace(BASE.memristor, r_off=3e10, r_on=1.6e5, v_h=0.25, mu=600.0)
    setup = S.DCSweep(v_peak=0.6, v_step=8e-3, hold=10e-3, dt=100e-6)
    noise = Noise(n_eff=20.0, sigma_c2c_ln_mu=0.1)
    pos, _ = S.simulate_dc_sweeps(truth, noise, setup, n_trials=60, seed=21)
    neg, _ = S.simulate_dc_sweeps(truth, noise, dataclasses.replace(setup, v_peak=-0.6), n_trials=20, seed=22)
    cur, v = pos.current.copy(), np.abs(pos.voltage)
    for k in range(pos.n_sweeps):   # a real device's release: OFF from the first point below i_on
        on = np.flatnonzero(cur[k, 75:] >= 1e-8)     # the falling branch starts at point 75 (0.6 V)
        if on.size:
            cur[k, 75 + on[-1] + 1:] = np.maximum(v[k, 75 + on[-1] + 1:] / 3e10, 1e-15)
    data = calibrate.DCSweeps(voltage=np.concatenate([pos.voltage, neg.voltage]),
                              current=np.concatenate([cur, neg.current]))
    opts = calibrate.FitOptions(steps=8, restarts=1, rounds=1, n_eff_grid=(10.0, 20.0, 40.0),
                                sigma_c2c_grid=(0.0, 0.1, 0.2), n_sim=60, n_report=120, seed=2)
    base = dataclasses.replace(BASE, memristor=dataclasses.replace(truth, v_h=0.5, mu=550.0))
    fit = calibrate.fit_dc_sweeps(data, base=base, polarity="asymmetric", i_off=1e-9, dt=100e-6, options=opts)
    assert set(fit.setup["by_polarity"]) == {"positive"} and fit.setup["n_measured"] == 60
    assert fit.fitted["v_h"] == pytest.approx(0.25, rel=0.10)                  # measured 0.259
    medians = {c.name: c for c in fit.verdict.checks if c.name.startswith("median.")}
    assert len(medians) == 2 and all(c.passed for c in medians.values())       # hold -0.07, threshold +0.94 steps
    # KS of 60 sweeps after a quick fit: 0.27/0.34 (the full fit of the same device: 0.16/0.20, verdict
    # passed); at 10 pA the holds did not overlap at all (0.95)
    assert fit.ks["vhold_V"] < 0.5


# ------------------------------------------------------------------ bad input


def test_data_without_switching_is_refused():
    v = np.tile(np.concatenate([np.linspace(0.01, 0.5, 50), np.linspace(0.5, 0, 51)]), (3, 1))
    off = calibrate.DCSweeps(voltage=v, current=v / 1e11)
    with pytest.raises(calibrate.DataError, match="no sweep switches"):
        calibrate.fit_dc_sweeps(off)


def test_fit_option_and_setup_errors_name_the_parameter():
    with pytest.raises(isp.ParameterError, match="steps"):
        calibrate.FitOptions(steps=0)
    with pytest.raises(isp.ParameterError, match="dt"):
        S.DCSweep(dt=5e-3)
    with pytest.raises(isp.ParameterError, match="r_series"):
        S.PulseSetup(r_series=-1.0)


def test_cli_reports_bad_input_cleanly(tmp_path):
    bad = tmp_path / "sweeps.txt"
    bad.write_text("nothing")
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "calibrate", "dc-sweeps", str(bad), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and ".npz" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "calibrate", "pulses", str(bad),
                           "--series-resistance", "22 kOhms?", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "series-resistance" in proc.stderr


# ------------------------------------------------------------------ the shared measured data (acceptance)


# A hang guard, not a time target: the <= 10 min target is measured by benchmarks/calibrate.py.
HANG_GUARD_S = 3600


def _run_cli(args, timeout=HANG_GUARD_S):
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "calibrate", *args], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc


def _check_outputs(out, figure):
    fit = json.loads((out / "fit.json").read_text())
    assert (out / figure).stat().st_size > 10_000 and (out / "distributions.png").stat().st_size > 10_000
    p = isp.presets.load(str(out / "preset.toml"))             # loadable by every command
    ds = isp.simulate(p, isp.PulseTrain(0.8, 1e-3, 2e-3), duration="20 ms", dt=2e-6, signals=())
    assert ds.sizes["neuron"] == 1
    return fit


def test_measured_dc_sweeps_load_audit_and_show_two_hold_populations():
    # The shared DC sweeps read through the loader and its unit audit, and the features the fit is
    # judged on: 199 thresholds, holds in two populations by polarity (positive ~0.012 V, negative
    # ~0.084 V, why the symmetric device is fitted per polarity). The full fit on these sweeps and
    # its acceptance numbers (median threshold within 10 %, KS <= 0.2, per-polarity grid medians
    # within one 6 mV step, verdict passed) are checked by `python benchmarks/calibrate.py --only
    # dc-sweeps` (exit 1 when one misses): ~4 min on 2 idle cores, ~14 min under the test run's load.
    from ionspike.calibrate import data as cdata, features

    sweeps = cdata.load_dc_sweeps(shared_data("dm_symmetric_dc_sweeps.npz"))
    v_th, v_hold = features.threshold_hold_voltages(sweeps)
    assert v_th.shape == (199,) and np.isfinite(v_th).mean() > 0.95
    positive = np.nanmax(sweeps.voltage, axis=1) > np.abs(np.nanmin(sweeps.voltage, axis=1))
    assert 0.2 < np.nanmedian(v_th) < 0.35
    assert np.nanmedian(v_hold[~positive]) > np.nanmedian(v_hold[positive]) + 0.05


def test_cli_calibrates_the_measured_pulse_trials(tmp_path):
    # the whole command on the shared pulse trials, with --quick (one round, one start, 10 Adam steps:
    # ~100 s on 2 idle cores instead of ~3 min); the same acceptance numbers as the default fit, which
    # `python benchmarks/calibrate.py --only pulses` checks
    path = shared_data("dm_pulse_1V_20ms.npz")
    out = tmp_path / "pulses"
    _run_cli(["pulses", str(path), "--series-resistance", "22kOhm", "--quick", "--out", str(out)])
    fit = _check_outputs(out, "pulse_overlay.png")
    measured = fit["measured.delay_s.stats"]["median"]
    simulated = fit["simulated.delay_s.stats"]["median_with_missing"]     # trials that never switch count as late
    assert 1 / 1.5 <= simulated / measured <= 1.5                       # issue: median within a factor 1.5
    assert fit["ks"]["delay_s"] <= 0.35                                   # issue: KS <= 0.35
    assert fit["verdict"]["passed"], fit["verdict"]["reasons"]           # the same two checks, in fit.json
