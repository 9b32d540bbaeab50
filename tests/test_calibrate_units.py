"""Units of measured data, sweep by sweep (mixed mA/A refused, mA files warned or refused against a
stated compliance), unreadable files, and the warnings reaching fit.json."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

import ionspike as isp
from ionspike import calibrate
from ionspike.calibrate import DataError, DCSweeps, PulseTrials, audit, load_dc_sweeps, load_pulse_trials, write_csv
from ionspike.calibrate import setups as S
from ionspike.params import Noise

DV, N_HALF, COMPLIANCE = 0.006, 50, 1e-6


def sweeps_in_amperes(n=12, seed=0):
    """``n`` triangular sweeps 0 -> 0.3 V -> 0 (alternating polarity): OFF at 3e10 Ohm above a 1e-15 A
    floor with pA noise, ON at the 1 uA compliance between a threshold and a hold that vary per sweep."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate([np.arange(1, N_HALF + 1), np.arange(N_HALF, -1, -1)])
    rising = np.arange(idx.size) < N_HALF
    v, i = [], []
    for k in range(n):
        v_abs = DV * idx
        cur = np.maximum(v_abs / 3e10 + 1e-12 * rng.random(idx.size), 1e-15)
        k_th, k_hold = rng.integers(35, 45), rng.integers(1, 10)
        on = (rising & (idx >= k_th)) | (~rising & (idx > k_hold))
        cur[on] = COMPLIANCE
        sign = 1.0 if k % 2 == 0 else -1.0
        v.append(sign * v_abs)
        i.append(sign * cur)
    return np.array(v), np.array(i)


# ------------------------------------------------------------------ DC sweeps


def test_one_sweep_in_milliamperes_is_refused_with_its_number():
    v, i = sweeps_in_amperes()
    assert audit.audit_dc_sweeps(DCSweeps(voltage=v, current=i)) == []
    i[[3, 7]] *= 1e3
    with pytest.raises(DataError, match=r"sweeps 3, 7 sit ~1e\+03 x the other sweeps' currents .*mA stored as A"):
        audit.audit_dc_sweeps(DCSweeps(voltage=v, current=i))
    v, i = sweeps_in_amperes()
    i[:8] *= 1e3   # the majority in mA: the sweeps in A are the odd ones out, still refused
    with pytest.raises(DataError, match=r"sweeps 8, 9, 10, 11 sit ~1e-03 x"):
        audit.audit_dc_sweeps(DCSweeps(voltage=v, current=i))


def test_a_sweep_that_never_switches_is_not_a_unit_outlier():
    v, i = sweeps_in_amperes()
    i[5] = np.sign(v[5]) * np.maximum(np.abs(v[5]) / 3e10, 1e-15)   # OFF all along: low ON level, same floor
    assert audit.audit_dc_sweeps(DCSweeps(voltage=v, current=i)) == []


def test_a_file_in_milliamperes_warns_and_is_refused_against_the_stated_compliance(tmp_path):
    v, i = sweeps_in_amperes()
    ma = DCSweeps(voltage=v, current=i * 1e3)
    notes = audit.audit_dc_sweeps(ma)
    assert len(notes) == 2 and "ON level is 0.001 A" in notes[0] and "OFF floor" in notes[1]
    with pytest.raises(DataError, match=r"exceed the stated compliance 1e-06 A \(by x1e\+03"):
        audit.audit_dc_sweeps(ma, compliance=1e-6)
    # stated by the file: the loader refuses it, naming the file
    np.savez(tmp_path / "ma.npz", voltage_V=v, current_A=i * 1e3, compliance_A=np.array(1e-6))
    with pytest.raises(DataError, match=r"ma\.npz'.*exceed the stated compliance"):
        load_dc_sweeps(tmp_path / "ma.npz")
    # a clamp at another level than the stated one (the data in A, the statement in mA-thinking)
    with pytest.raises(DataError, match=r"clamp of 1e-06 A, not at the stated compliance 0\.001 A"):
        audit.audit_dc_sweeps(DCSweeps(voltage=v, current=i), compliance=1e-3)


def test_stated_compliance_round_trips_and_must_agree(tmp_path):
    v, i = sweeps_in_amperes()
    sweeps = DCSweeps(voltage=v, current=i, compliance=1e-6)
    back = load_dc_sweeps(write_csv(sweeps, tmp_path / "dc.csv"))
    assert back.compliance == 1e-6 and np.array_equal(back.current, sweeps.current)
    np.savez(tmp_path / "dc.npz", voltage_V=v, current_A=i, compliance_A=np.array([1e-6]))
    assert load_dc_sweeps(tmp_path / "dc.npz").compliance == 1e-6
    with pytest.raises(DataError, match=r"compliance = 2e-06 A disagrees with the 1e-06 A the file states"):
        audit.audit_dc_sweeps(back, compliance=2e-6)
    with pytest.raises(DataError, match=r"compliance = -1.*allowed one number in \(0, 0\.1\] A"):
        DCSweeps(voltage=v, current=i, compliance=-1.0)


# ------------------------------------------------------------------ pulse trials


def _trials(n=4):
    t = np.tile(5e-6 * np.arange(2000), (n, 1))
    v = np.where((t > 1e-3) & (t < 8e-3), 1.0, 0.1)
    i = np.where(t > 3e-3, 1.0 / (22e3 + 6e4), 1e-9) * (v > 0.5) + 1e-10 * (v <= 0.5)
    return PulseTrials(time=t, voltage=v, current=-i)


def test_pulse_currents_above_what_the_series_resistor_carries_are_refused():
    tr = _trials()
    assert audit.audit_pulse_trials(tr, 22e3) == ["fit from only 4 trials: the distributions (noise parameters, "
                                                  "KS distances) rest on few cycles"]
    ma = PulseTrials(time=tr.time, voltage=tr.voltage, current=tr.current * 1e3)
    with pytest.raises(DataError, match=r"trials 0, 1, 2, 3: ON current 0\.0122 A exceeds \|V\|/R_s = 4\.55e-05 A"):
        audit.audit_pulse_trials(ma, 22e3)
    mixed = tr.current.copy()
    mixed[2] *= 1e3
    with pytest.raises(DataError, match=r"trials 2 sit ~1e\+03 x the other trials' currents"):
        audit.audit_pulse_trials(PulseTrials(time=tr.time, voltage=tr.voltage, current=mixed))


# ------------------------------------------------------------------ unreadable files


def test_empty_truncated_and_foreign_npz_files_name_the_file(tmp_path):
    v, i = sweeps_in_amperes(3)
    np.savez(tmp_path / "ok.npz", voltage_V=v, current_A=i)
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.save(tmp_path / "single.npy", v)
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    for name, why in (("empty", "empty file"), ("cut", "not a readable .npz"), ("junk", "not a readable .npz"),
                      ("single", "single NumPy array")):
        for loader in (load_dc_sweeps, load_pulse_trials):
            with pytest.raises(DataError, match=rf"{name}\.npz'.*{why}"):
                loader(tmp_path / f"{name}.npz")


def test_cli_says_which_file_is_empty(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "calibrate", "dc-sweeps", str(tmp_path / "empty.npz"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "empty.npz" in proc.stderr and "empty file" in proc.stderr
    assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr


# ------------------------------------------------------------------ warnings reach fit.json


def test_a_fit_from_a_single_sweep_warns_in_fit_json(tmp_path):
    base = isp.presets.params("paper")
    m = dataclasses.replace(base.memristor, polarity="symmetric", r_off=3e10, r_on=1.6e5, v_h=0.2, mu=800.0)
    setup = S.DCSweep(v_peak=0.6, v_step=12e-3, hold=10e-3, dt=100e-6)
    one, _ = S.simulate_dc_sweeps(m, Noise(n_eff=20.0), setup, n_trials=1, seed=3)
    opts = calibrate.FitOptions(steps=1, restarts=1, rounds=1, n_eff_grid=(20.0,), sigma_c2c_grid=(0.0,),
                                n_grad=2, n_sim=4, n_report=4)
    fit = calibrate.fit_dc_sweeps(one, base=dataclasses.replace(base, memristor=m), dt=100e-6, options=opts)
    assert any("single sweep" in n for n in fit.notes)
    assert any("single sweep" in line for line in fit.verdict_lines())
    out = calibrate.write(fit, tmp_path / "calib", source="one sweep", base="paper")
    saved = json.loads((out / "fit.json").read_text())
    assert any("single sweep" in n for n in saved["notes"]) and "verdict" in saved
