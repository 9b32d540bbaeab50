"""Inverse design (ionspike.design, `ionspike design`): the README's designer example meets its targets
when checked by a fresh simulation with another seed and by the real ngspice on the exported deck; a
target no candidate can meet is reported as infeasible with the closest value reached; bad targets
files are refused with the key, the value and what is allowed, before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import ionspike as isp
from ionspike.design import output, search
from ionspike.design import spec as design_spec
from ionspike.errors import IonspikeError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "design_100hz.toml"


def _example(**search_settings):
    data = tomllib.loads(EXAMPLE.read_text())
    data["search"] = search_settings
    return data


@pytest.mark.skipif(shutil.which("ngspice") is None and not os.environ.get("CI"),
                    reason="ngspice not installed (CI installs it and runs this)")
def test_designer_example_meets_its_targets_in_a_fresh_simulation_and_in_ngspice(tmp_path):
    spec = design_spec.from_dict(_example(population=5, generations=3))
    design = search.run(spec, spice=True)
    assert design["passed"] == design["total"] == 3, design["targets"]
    output.write(spec, design, tmp_path)
    saved = json.loads((tmp_path / "design.json").read_text())
    assert {p.name for p in tmp_path.iterdir()} >= {"design.json", "preset.toml", "sensitivity.csv", "design.png"}
    assert saved["targets"] == json.loads(json.dumps(design["targets"]))
    # the written preset, simulated afresh with another seed, meets the targets itself
    ds = isp.simulate(str(tmp_path / "preset.toml"), isp.PulseTrain(0.9, 1e-3, 2e-3), duration="200 ms",
                      seed=11, deterministic=True, signals=())
    st = ds.spike_time.values[0]
    st = st[np.isfinite(st)]
    isi = np.diff(st)
    assert 90.0 <= 1.0 / isi.mean() <= 110.0 and isi.min() >= 3e-3
    assert float(ds.energy_input[0]) / len(st) <= 3e-12
    # ngspice on the exported deck agrees within 2 % on every target
    for t in design["targets"]:
        assert t["ngspice"] is not None and abs(t["ngspice_vs_ionspike"]) <= 0.02, t
    # the chosen values are in their bounds and in the preset file
    text = (tmp_path / "preset.toml").read_text()
    for v in design["variables"]:
        assert v["low"] <= v["value"] <= v["high"]
    assert f"r_c = {design['variables'][0]['value']!r}" in text
    # sensitivity: the rate falls as R_c C_g grows (ISI ~ R_c C_g); the energy grows with C_g (~ C_g V_in^2)
    sens = design["sensitivity"]
    rate = next(v for k, v in sens.items() if k.startswith("rate"))
    energy = next(v for k, v in sens.items() if k.startswith("energy"))
    assert rate["Rc"] < -0.3 and rate["Cg"] < -0.3 and 0.7 < energy["Cg"] < 1.3


def test_an_unreachable_target_is_reported_infeasible_with_the_closest_value():
    """With C_g fixed at 10 pF the input energy per spike cannot fall far below C_g V_in^2 = 8.1 pJ at
    0.9 V: 0.5 pJ is out of reach for any R_c."""
    spec = design_spec.from_dict({
        "preset": "paper", "variables": {"Rc": {"low": "100 MOhm", "high": "2 GOhm", "scale": "log"}},
        "search": {"population": 2, "generations": 1},
        "targets": [{"quantity": "energy_per_spike", "pulse": "0.9V,1ms,2ms", "duration": "100 ms", "high": "0.5 pJ"}]})
    t = search.run(spec)["targets"][0]
    assert t["pass"] is False and t["feasible"] is False and "infeasible" in t["note"]
    assert 3e-12 < t["closest_achievable"] <= t["achieved"] * (1 + 1e-9)


BAD = [
    ({"variables": {"Rcc": {"low": 1e8, "high": 1e9}}}, "unknown parameter 'Rcc'"),
    ({"variables": {"Rc": {"low": "1 GOhm", "high": "100 MOhm"}}}, "must be below high"),
    ({"variables": {"Rc": {"low": "1 V", "high": "2 V"}}}, "variables.Rc.low"),
    ({"variables": {"Rc": {"low": "100 MOhm", "high": "1 GOhm", "scale": "cubic"}}}, "scale = 'cubic'"),
    ({"variables": {"Cg": {"low": "-1 pF", "high": "1 pF"}}}, "leave the parameter's allowed range"),
    ({"targets": [{"quantity": "speed", "pulse": "0.9V,1ms,2ms", "duration": "1 ms", "high": 1}]}, "quantity = 'speed'"),
    ({"targets": [{"quantity": "rate", "pulse": "0.9V,1ms,2ms", "duration": "1 ms", "value": "100 ms"}]},
     "targets[0].value"),
    ({"targets": [{"quantity": "p_fire", "pulse": "0.9V,1ms,2ms", "duration": "15 ms", "low": 1.5}]},
     "cannot be measured"),
    ({"targets": [{"quantity": "rate", "pulse": "0.9V,1ms,2ms", "duration": "1 ms", "low": "200 Hz",
                   "high": "100 Hz"}]}, "is above high"),
    ({"targets": [{"quantity": "rate", "duration": "1 ms", "low": "1 Hz"}]}, "exactly one stimulus"),
    ({"targets": []}, "at least one"),
    ({"colour": "blue"}, "unknown key(s) ['colour']"),
    ({"targets": [{"quantity": "ip_ratio", "pulse": "0.9V,1ms,2ms", "value": 0.4}]}, "its own paired pulses"),
    ({"targets": [{"quantity": "ip_ratio", "amplitude": "-1 V", "value": 0.4}]}, "targets[0].amplitude"),
    ({"targets": [{"quantity": "ip_ratio", "width": "2 s", "value": 0.4}]}, "targets[0].width"),
    ({"targets": [{"quantity": "rate", "pulse": "0.9V,1ms,2ms", "duration": "1 ms", "low": "1 Hz",
                   "width": "20 ms"}]}, "applies to quantity = 'ip_ratio' only"),
    ({"targets": [{"quantity": "ip_ratio", "value": 0.4, "spread": 0.2}]}, "not ip_ratio"),
    ({"targets": [{"quantity": "ip_ratio", "value": 0.4, "trials": 5}]}, "trials applies to quantity = 'p_fire' only"),
    ({"search": {"method": "newton"}}, "search.method = 'newton' is unknown"),
    ({"search": {"method": "gradient"}}, "no target has a derivative"),
    ({"search": {"starts": 0}}, "search.starts = 0"),
    ({"search": {"iterations": 1.5}}, "search.iterations = 1.5"),
]


@pytest.mark.parametrize("change,fragment", BAD)
def test_bad_targets_are_refused_naming_the_key(change, fragment):
    data = {"preset": "paper", "variables": {"Rc": {"low": "100 MOhm", "high": "1 GOhm"}},
            "targets": [{"quantity": "rate", "pulse": "0.9V,1ms,2ms", "duration": "100 ms", "low": "10 Hz"}]}
    data.update(change)
    with pytest.raises(IonspikeError) as info:
        design_spec.from_dict(data)
    assert fragment in str(info.value)


def test_cli_refuses_a_bad_targets_file_before_making_the_folder(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text('preset = "paper"\n[variables]\nRc = { low = "1 GOhm", high = "1 MOhm" }\n'
                   '[[targets]]\nquantity = "rate"\npulse = "0.9V,1ms,2ms"\nduration = "100 ms"\nlow = "1 Hz"\n')
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "design", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "variables.Rc" in proc.stderr and not (tmp_path / "o").exists()


def test_footprint_counts_the_passives_the_technology_needs():
    """paper at 65 nm: W/L = beta/k' = 3.25, a 0.15 um^2 transistor; C_g = 10 pF needs 5000 um^2 of MIM
    (2 fF/um^2) beyond the 0.2 fF gate; R_c = 250 MOhm 250 000 squares of 1 kOhm poly at 0.4 um = 4e4 um^2.
    At 3 nm C_g (4.1 aF) fits in the gate capacitance: no capacitor."""
    from ionspike.design.area import footprint

    a = footprint(isp.presets.params("paper"), "65nm")
    assert a["w_over_l"] == pytest.approx(0.000975 / 300e-6)
    assert a["capacitor_m2"] == pytest.approx((10e-12 - a["gate_capacitance_F"]) / 2e-3)
    assert a["resistor_m2"] == pytest.approx(250e6 / 1e3 * (0.4e-6) ** 2)
    assert a["total_m2"] == pytest.approx(a["transistor_m2"] + a["capacitor_m2"] + a["resistor_m2"])
    assert a["dominant"] == "R_c"
    b = footprint(isp.presets.params("3nm"), "3nm")
    assert b["capacitor_m2"] == 0 and b["gate_capacitance_F"] > 4.14e-18
    with pytest.raises(IonspikeError, match="node = '7nm'"):
        footprint(isp.presets.params("paper"), "7nm")


def test_a_robustness_target_is_the_fraction_of_devices_that_meet_it():
    """rate 100 +- 20 Hz at 0.9 V pulses, R_c = 500 MOhm (nominal ~103 Hz): all of 16 devices meet it at a
    small spread of mu, fewer at a large one, none at R_c = 250 MOhm (~177 Hz nominal)."""
    from ionspike.design import measure

    def spec(spread):
        return design_spec.from_dict({
            "preset": "paper", "variables": {"Rc": {"low": "100 MOhm", "high": "2 GOhm"}},
            "targets": [{"quantity": "rate", "pulse": "0.9V,1ms,2ms", "duration": "200 ms", "value": "100 Hz",
                         "tolerance": "20 Hz", "spread": spread, "devices": 16, "fraction": 0.9}]})

    small = measure.measure(spec(0.02), np.array([[5e8], [2.5e8]]))[:, 0]
    large = measure.measure(spec(0.5), np.array([[5e8]]))[0, 0]
    assert small[0] == 1.0 and small[1] == 0.0 and large < 1.0
    s = spec(0.5)
    assert search.loss(s, np.array([[large]]))[0] == pytest.approx((0.9 - large) ** 2 if large < 0.9 else 0.0)


def test_the_ip_ratio_target_is_the_plasticity_protocols_number_per_candidate():
    """ip_ratio measures what the intrinsic-plasticity protocol reports (advance after 200 ms over that
    after 3 ms, auto amplitude), for many candidates at once; a residue that decays faster (gamma2 up)
    forgets more in 200 ms, so the ratio falls."""
    from ionspike.design import measure
    from ionspike.protocols.plasticity import intrinsic_plasticity

    spec = design_spec.from_dict({
        "preset": "paper", "variables": {"gamma2": {"low": "1", "high": "20", "scale": "log"}},
        "targets": [{"quantity": "ip_ratio", "value": 0.42, "tolerance": 0.15},
                    {"quantity": "ip_ratio", "amplitude": "0.78 V", "value": 0.42, "tolerance": 0.15}]})
    q = measure.measure(spec, np.array([[5.0], [2.5], [10.0]]))
    protocol = intrinsic_plasticity("paper")[1]
    assert q[0, 0] == pytest.approx(protocol["advance_ratio_200ms_3ms"], rel=1e-9)
    assert protocol["amplitude_V"] == 0.78 and q[0, 1] == pytest.approx(q[0, 0], rel=1e-9)
    assert q[1, 0] > q[0, 0] > q[2, 0] > 0


def test_candidates_measured_on_a_dask_runner_equal_the_in_process_batch():
    """The search's measurements split into chunks, each a task of a real local Dask cluster (two
    worker processes): deterministic quantities are the numbers of one in-process batch."""
    from ionspike.design import measure
    from ionspike.runner import Runner

    spec = design_spec.from_dict({
        "preset": "paper", "variables": {"Rc": {"low": "100 MOhm", "high": "2 GOhm", "scale": "log"}},
        "targets": [{"quantity": "rate", "pulse": "0.9V,1ms,2ms", "duration": "150 ms", "low": "10 Hz"},
                    {"quantity": "first_spike", "pulse": "0.9V,1ms,2ms", "duration": "150 ms", "high": "50 ms"}]})
    x = np.array([[2e8], [3e8], [5e8], [8e8], [1.2e9]])
    with Runner(workers=2) as runner:
        distributed = search.measure_on(runner, spec, x, chunk=2)
    # the same simulation in other batch shapes: equal up to float64 rounding (6e-14 seen; SIMD lanes)
    np.testing.assert_allclose(distributed, measure.measure(spec, x), rtol=1e-9, atol=0)
    assert np.isfinite(distributed).all()
