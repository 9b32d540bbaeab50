"""Calibration data containers, loaders and features: synthetic data with known answers,
malformed files, and the measured data in ../shared/data when it is there."""

import json

import numpy as np
import pytest

from ionspike.calibrate import features as F
from ionspike.calibrate.data import (
    DataError, DCSweeps, PulseTrials, load_dc_sweeps, load_pulse_trials, write_csv,
)
from ionspike.errors import IonspikeError, ParameterError

from conftest import shared_data  # noqa: E402

# ------------------------------------------------------------------ synthetic DC sweeps

DV = 0.006          # V, grid step
N_HALF = 100        # points 0..N_HALF rise to V_MAX, then fall back to 0
V_MAX = DV * N_HALF
R_OFF, R_ON = 1e11, 1e5     # Ohm
COMPLIANCE = 1e-6   # A
FLOOR = 1e-15       # A


def make_sweep(k_th, k_hold, sign=1.0, release_tail=True, switch=True, release=True):
    """One triangular sweep 0 -> sign*V_MAX -> 0; ON from rising index ``k_th``; on the
    falling branch ON down to |V| above grid index ``k_hold`` (|V| = k_hold*DV), where the
    current drops below 1e-11 A. Returns (v, i, v_th, v_hold) with the exact expected values."""
    idx = np.concatenate([np.arange(N_HALF + 1), np.arange(N_HALF - 1, -1, -1)])
    v_abs = DV * idx
    i = np.maximum(v_abs / R_OFF, FLOOR)
    rising = np.arange(idx.size) <= N_HALF
    v_th = v_hold = np.nan
    if switch:
        on = (rising & (idx >= k_th)) | (~rising & (idx > k_hold))
        i[on] = np.minimum(COMPLIANCE, v_abs[on] / R_ON)
        v_th = v_abs[np.argmax(rising & (idx >= k_th))]
        if release_tail:  # a point between i_off and i_on just before the release
            i[~rising & (idx == k_hold + 1)] = 3e-10
        if release:
            v_hold = v_abs[np.argmax(~rising & (idx <= k_hold))]
        else:
            i[~rising & (idx <= k_hold)] = 5e-11  # stays above i_off to the end
    return sign * v_abs, sign * i, v_th, v_hold


def synthetic_sweeps():
    cases = [make_sweep(45, 9), make_sweep(50, 5, sign=-1.0), make_sweep(38, 0, release_tail=False),
             make_sweep(60, 12, sign=-1.0), make_sweep(0, 0, switch=False), make_sweep(40, 4, release=False)]
    v = np.array([c[0] for c in cases])
    i = np.array([c[1] for c in cases])
    return DCSweeps(voltage=v, current=i), np.array([c[2] for c in cases]), np.array([c[3] for c in cases])


def test_threshold_hold_exact_on_grid_both_polarities():
    sweeps, v_th, v_hold = synthetic_sweeps()
    got_th, got_hold = F.threshold_hold_voltages(sweeps)
    np.testing.assert_array_equal(got_th, v_th)        # NaN where expected too
    np.testing.assert_array_equal(got_hold, v_hold)
    assert np.isnan(got_th[4]) and np.isnan(got_hold[4])      # never switched
    assert np.isfinite(got_th[5]) and np.isnan(got_hold[5])   # never released
    assert got_th[1] == pytest.approx(50 * DV) and got_hold[1] == pytest.approx(5 * DV)


def test_abrupt_release_tells_a_drop_from_on_from_a_gradual_one():
    sweeps, _, _ = synthetic_sweeps()
    # the cases with a 3e-10 A point before the hold released gradually; the one without, from ON;
    # no hold (never switched, never released): NaN
    np.testing.assert_array_equal(F.abrupt_release(sweeps), [0.0, 0.0, 1.0, 0.0, np.nan, np.nan])
    # with the hold level above that 3e-10 A point, the same release is a drop from ON
    assert F.abrupt_release(sweeps, i_on=1e-8, i_off=1e-9)[0] == 1.0
    # the current just after the release: the 3e-10 A point where there is one, else the floor; none
    # for the sweep that never switched
    np.testing.assert_allclose(F.release_currents(sweeps), [3e-10, 3e-10, FLOOR, 3e-10, np.nan, 3e-10])


def test_switching_fraction_and_require_switching():
    sweeps, _, _ = synthetic_sweeps()
    assert F.switching_fraction(sweeps) == pytest.approx(5 / 6)
    F.require_switching(sweeps)
    off = DCSweeps(voltage=sweeps.voltage[4:5], current=sweeps.current[4:5] * 0.5)
    assert F.switching_fraction(off) == 0.0
    with pytest.raises(DataError, match=r"no sweep switches: \|I\| never exceeds i_on=1e-08 A "
                                        r"\(largest \|I\| is 3e-12 A\)"):
        F.require_switching(off)


def test_on_off_resistance_and_compliance():
    sweeps, _, _ = synthetic_sweeps()
    r = F.on_off_resistance(sweeps)
    assert r["compliance_A"] == pytest.approx(COMPLIANCE)
    np.testing.assert_allclose(r["r_off_ohm"], R_OFF, rtol=1e-12)
    switched = np.isfinite(r["r_on_ohm"])
    assert switched.tolist() == [True, True, True, True, False, True]
    np.testing.assert_allclose(r["r_on_ohm"][switched], R_ON, rtol=1e-12)
    # a given compliance wins over detection; without any clamp none is detected
    assert F.on_off_resistance(sweeps, compliance=2e-6)["compliance_A"] == 2e-6
    assert F.detect_compliance(np.linspace(1e-9, 1e-6, 100)) is None
    assert F.detect_compliance(np.r_[np.full(10, -1e-6), np.linspace(0, 5e-7, 90)]) == 1e-6


def test_bad_feature_arguments():
    sweeps, _, _ = synthetic_sweeps()
    with pytest.raises(ParameterError, match="i_off"):
        F.threshold_hold_voltages(sweeps, i_on=1e-11, i_off=1e-8)
    with pytest.raises(ParameterError, match="DCSweeps"):
        F.threshold_hold_voltages(np.zeros((2, 3)))


# ------------------------------------------------------------------ synthetic pulse trials

DT = 5e-6
N_SAMPLES = 4000
K_ON, K_OFF = 200, 2200        # pulse samples [K_ON, K_OFF)
V_PULSE, V_READ = 1.0, 0.1
I_ON, I_OFF = 1e-5, 1e-9


def make_trial(rng, k_switch, k_relax, sign=1.0, spike=True):
    """Pulse trial whose |I| jumps to I_ON at sample ``k_switch`` (None: never) and relaxes
    below the read-level criterion at sample ``k_relax`` after the pulse."""
    t = DT * np.arange(N_SAMPLES)
    v = np.full(N_SAMPLES, V_READ)
    v[K_ON:K_OFF] = V_PULSE
    i = I_OFF * (1.0 + 0.1 * rng.standard_normal(N_SAMPLES))
    if spike:  # displacement current at the rising edge, ~300x the OFF current
        i[K_ON:K_ON + 3] = [1.5e-7, 3.3e-7, 2.2e-7]
    if k_switch is not None:
        i[k_switch:K_OFF] = I_ON
        i[K_OFF:k_relax] = I_ON * V_READ / V_PULSE
    return t, sign * v, -i  # the instrument reports the current negative


def synthetic_trials():
    rng = np.random.default_rng(7)
    specs = [(K_ON + 700, K_OFF + 40, 1.0), (K_ON + 25, K_OFF + 300, 1.0), (K_ON + 1500, K_OFF + 5, -1.0),
             (None, None, 1.0), (K_ON + 3, K_OFF + 1000, 1.0)]
    rows = [make_trial(rng, ks, kr, sign) for ks, kr, sign in specs]
    trials = PulseTrials(time=np.array([r[0] for r in rows]), voltage=np.array([r[1] for r in rows]),
                         current=np.array([r[2] for r in rows]))
    t_start = DT * (K_ON - 0.5)   # threshold halfway between read and pulse level
    t_end = DT * (K_OFF - 0.5)
    delay = np.array([np.nan if ks is None else DT * ks - t_start for ks, _, _ in specs])
    relax = np.array([np.nan if kr is None else DT * kr - t_end for _, kr, _ in specs])
    return trials, t_start, t_end, delay, relax


def test_pulse_edges_interpolated():
    trials, t_start, t_end, _, _ = synthetic_trials()
    t0, t1 = F.pulse_edges(trials)
    np.testing.assert_allclose(t0, t_start, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t1, t_end, rtol=0, atol=1e-12)


def test_switching_delays_and_relaxation_within_one_sample():
    trials, _, _, delay, relax = synthetic_trials()
    got = F.switching_delays(trials)
    assert np.array_equal(np.isnan(got), np.isnan(delay))
    ok = np.isfinite(delay)
    assert np.all(np.abs(got[ok] - delay[ok]) <= DT)
    got_r = F.relaxation_times(trials)
    assert np.array_equal(np.isnan(got_r), np.isnan(relax))
    assert np.all(np.abs(got_r[ok] - relax[ok]) <= DT)
    np.testing.assert_allclose(F.on_current(trials)[ok], I_ON)
    # an explicit level below the edge spike catches the spike instead: the level matters
    assert np.all(F.switching_delays(trials, i_level=1e-7)[:4] < 3 * DT)
    assert np.all(np.isnan(F.switching_delays(trials, i_level=1e-3)))
    assert np.all(np.isnan(F.relaxation_times(trials, i_level=1e-12)))


# ------------------------------------------------------------------ distributions


def test_ks_distance_identity_disjoint_and_scipy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=57)
    assert F.ks_distance(a, a) == 0.0
    assert F.ks_distance([1.0, 2.0, 3.0], [10.0, 11.0]) == 1.0
    assert F.ks_distance([np.nan, 1.0, 2.0], [1.0, 2.0, np.inf]) == 0.0
    with pytest.raises(ParameterError, match="no finite value"):
        F.ks_distance([np.nan], [1.0])
    stats = pytest.importorskip("scipy.stats")
    for b in (rng.normal(0.3, 1.2, size=80), np.round(rng.normal(size=40), 1), a[:10] + 0.01):
        assert F.ks_distance(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    a_ties = np.round(a, 0)
    assert F.ks_distance(a_ties, b) == pytest.approx(stats.ks_2samp(a_ties, b).statistic, abs=1e-12)


def test_describe_json_ready():
    d = F.describe([1.0, 2.0, 3.0, 4.0, np.nan])
    assert d["n"] == 4 and d["n_nan"] == 1
    assert d["median"] == 2.5 and d["min"] == 1.0 and d["max"] == 4.0 and d["mean"] == 2.5
    assert all(type(v) in (int, float) for v in d.values())
    json.dumps(d)
    empty = F.describe([np.nan, np.nan])
    assert empty["n"] == 0 and empty["n_nan"] == 2 and empty["median"] is None
    assert set(empty) == {"n", "n_nan", "mean", "std", "median", "q05", "q25", "q75", "q95", "min", "max"}


# ------------------------------------------------------------------ containers and files


def test_csv_round_trip(tmp_path):
    sweeps, _, _ = synthetic_sweeps()
    back = load_dc_sweeps(write_csv(sweeps, tmp_path / "dc.csv"))
    assert np.array_equal(back.voltage, sweeps.voltage) and np.array_equal(back.current, sweeps.current)
    assert back.time is None and back.source.endswith("dc.csv")
    timed = DCSweeps(voltage=sweeps.voltage, current=sweeps.current,
                     time=np.tile(0.01 * np.arange(sweeps.n_points), (sweeps.n_sweeps, 1)))
    back = load_dc_sweeps(write_csv(timed, tmp_path / "dc_t.csv"))
    assert np.array_equal(back.time, timed.time)
    trials = synthetic_trials()[0]
    back = load_pulse_trials(write_csv(trials, tmp_path / "p.csv"))
    for name in ("time", "voltage", "current"):
        assert np.array_equal(getattr(back, name), getattr(trials, name))
    assert back.n_trials == trials.n_trials and back.n_samples == N_SAMPLES


def test_npz_loading_and_missing_key(tmp_path):
    sweeps, _, _ = synthetic_sweeps()
    np.savez(tmp_path / "ok.npz", voltage_V=sweeps.voltage, current_A=sweeps.current)
    assert load_dc_sweeps(tmp_path / "ok.npz").n_sweeps == sweeps.n_sweeps
    np.savez(tmp_path / "bad.npz", volts=sweeps.voltage, current_A=sweeps.current)
    with pytest.raises(DataError, match=r"missing array\(s\) voltage_V.*holds volts, current_A"):
        load_dc_sweeps(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="time_s"):
        load_pulse_trials(tmp_path / "ok.npz")


def _write(path, text):
    path.write_text(text)
    return path


def test_malformed_files(tmp_path):
    with pytest.raises(DataError, match=r"sweep 0: 3, sweep 1: 2"):
        load_dc_sweeps(_write(tmp_path / "len.csv", "sweep,voltage_V,current_A\n"
                              "0,0.1,1e-12\n0,0.2,2e-12\n0,0.1,1e-12\n1,-0.1,1e-12\n1,-0.2,2e-12\n"))
    with pytest.raises(DataError, match=r"current_A has 1 non-finite .* line 4"):
        load_dc_sweeps(_write(tmp_path / "nan.csv", "# comment\nsweep,voltage_V,current_A\n"
                              "0,0.1,1e-12\n0,0.2,nan\n"))
    with pytest.raises(DataError, match=r"missing column\(s\) current_A; header has sweep, voltage_V, I"):
        load_dc_sweeps(_write(tmp_path / "col.csv", "sweep,voltage_V,I\n0,0.1,1e-12\n0,0.2,2e-12\n"))
    with pytest.raises(DataError, match=r"current_A: largest magnitude is 12\.5.*expected amperes \(SI\)"):
        load_pulse_trials(_write(tmp_path / "ma.csv", "trial,time_s,voltage_V,current_A\n"
                                 "0,0.0,0.1,0.001\n0,1e-5,1.0,12.5\n"))
    with pytest.raises(DataError, match=r"voltage_V: largest magnitude is 600.*looks like mV"):
        load_dc_sweeps(_write(tmp_path / "mv.csv", "sweep,voltage_V,current_A\n0,300,1e-12\n0,600,2e-12\n"))
    with pytest.raises(DataError, match=r"unknown file type '\.txt': supported \.npz, \.csv"):
        load_dc_sweeps(_write(tmp_path / "x.txt", "whatever"))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_pulse_trials(tmp_path / "absent.npz")
    with pytest.raises(DataError, match="strictly increasing"):
        load_pulse_trials(_write(tmp_path / "t.csv", "trial,time_s,voltage_V,current_A\n"
                                 "0,0.0,0.1,1e-9\n0,0.0,1.0,1e-9\n"))
    assert issubclass(DataError, IonspikeError)


def test_container_validation():
    v = np.linspace(0, 0.6, 5)[None, :]
    with pytest.raises(DataError, match=r"current: 2 non-finite .* first at index \(0, 1\)"):
        DCSweeps(voltage=v, current=np.array([[1e-12, np.nan, 1e-12, np.inf, 1e-12]]))
    with pytest.raises(DataError, match="must be 2-D"):
        DCSweeps(voltage=v[0], current=v[0] * 1e-12)
    with pytest.raises(DataError, match="differs"):
        DCSweeps(voltage=v, current=np.zeros((1, 4)))
    with pytest.raises(DataError, match="at least 2 points"):
        DCSweeps(voltage=v[:, :1], current=v[:, :1])
    with pytest.raises(DataError, match=r"current: largest magnitude is 0\.5"):
        DCSweeps(voltage=v, current=np.full((1, 5), -0.5))
    s = DCSweeps(voltage=v, current=v * 1e-12)
    assert s.voltage.dtype == np.float64 and not s.voltage.flags.writeable and s.source == "simulated"


# ------------------------------------------------------------------ measured data


_shared = shared_data


def test_measured_dc_sweeps():
    sweeps = load_dc_sweeps(_shared("dm_symmetric_dc_sweeps.npz"))
    assert sweeps.n_sweeps == 199
    v_th, v_hold = F.threshold_hold_voltages(sweeps)
    assert 0.2 <= np.nanmedian(v_th) <= 0.35
    assert 0.0 <= np.nanmedian(v_hold) <= 0.12
    r = F.on_off_resistance(sweeps)
    assert r["compliance_A"] == pytest.approx(1e-6, rel=0.01)
    assert F.switching_fraction(sweeps) > 0.9


def test_measured_pulse_delays():
    trials = load_pulse_trials(_shared("dm_pulse_1V_20ms.npz"))
    delays = F.switching_delays(trials)
    assert delays.shape == (7,) and np.all(np.isfinite(delays))
    assert np.all((delays >= 5e-5) & (delays <= 2e-2))
    assert np.all(np.isfinite(F.relaxation_times(trials)))
