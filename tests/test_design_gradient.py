"""The design's gradient path (ionspike.design.gradient): the first-spike time under a DC input and
its forward-mode derivative through the simulation, checked against fine-step central differences of
fresh `simulate` runs, and the gradient step of the search meeting narrow latency targets."""

from __future__ import annotations

import json

import numpy as np

import ionspike as isp
from ionspike.design import gradient, measure, output, search
from ionspike.design import spec as design_spec
from ionspike.study import metrics_of


def _latency_spec(**search_settings):
    return design_spec.from_dict({
        "preset": "paper", "seed": 0, "search": search_settings,
        "variables": {"mu": {"low": 300, "high": 800}, "Vh": {"low": "0.4 V", "high": "0.6 V"}},
        "targets": [{"quantity": "first_spike", "dc": "0.9 V", "duration": "30 ms", "value": "10 ms",
                     "tolerance": "0.05 ms"},
                    {"quantity": "first_spike", "dc": "0.8 V", "duration": "60 ms", "value": "25 ms",
                     "tolerance": "0.1 ms"}]})


def test_only_the_dc_first_spike_is_differentiable():
    spec = design_spec.from_dict({
        "preset": "paper", "variables": {"mu": {"low": 300, "high": 800}},
        "targets": [{"quantity": "first_spike", "dc": "0.9 V", "duration": "30 ms", "high": "20 ms"},
                    {"quantity": "first_spike", "pulse": "0.9V,1ms,2ms", "duration": "30 ms", "high": "20 ms"},
                    {"quantity": "isi", "dc": "0.9 V", "duration": "30 ms", "high": "20 ms"},
                    {"quantity": "energy_per_spike", "dc": "0.9 V", "duration": "30 ms", "high": "20 pJ"}]})
    assert [gradient.differentiable(t) for t in spec.targets] == [True, False, False, False]


def test_first_spike_value_and_derivative_against_fine_step_differences():
    """The traced first spike equals `measure`'s (the same fixed step); its derivative with respect to
    mu and V_h (the search's unit-cube coordinates) agrees within 2 % with central differences of
    simulations at a step 20 times finer (0.1 us), where the staircase of the 2 us step is gone."""
    spec = _latency_spec()
    u = np.array([[0.5, 0.5]])
    values, jac = gradient.trace(spec, [0, 1], u)
    np.testing.assert_allclose(values, measure.measure(spec, search.to_si(spec, u)), rtol=1e-9)
    eps = 1e-2
    rows = [u[0] + sign * eps * np.eye(2)[k] for k in range(2) for sign in (1, -1)]
    p = measure.candidate_params(spec, search.to_si(spec, np.array(rows)))
    for col, (amplitude, duration) in enumerate(((0.9, 0.03), (0.8, 0.06))):
        ds = isp.simulate(p, isp.DC(amplitude), duration=duration, deterministic=True, dt=1e-7, signals=())
        t = metrics_of(ds, ["first_spike_s"])["first_spike_s"]
        fd = np.array([(t[2 * k] - t[2 * k + 1]) / (2 * eps) for k in range(2)])
        assert fd[0] < 0 < fd[1]            # a faster device fires earlier; a higher onset, later
        np.testing.assert_allclose(jac[0, col], fd, rtol=0.02)


def test_the_gradient_step_meets_narrow_latency_targets(tmp_path):
    """Two latency targets of +-0.5 % and +-0.4 % over mu and V_h: three generations of evolution
    leave them unmet (loss > 0.01), the gradient step meets both, and a fresh simulation with another
    seed confirms it."""
    spec = _latency_spec(population=4, generations=3, starts=2)
    design = search.run(spec)
    step = design["gradient_step"]
    assert step is not None and len(step["starts"]) == 2
    assert step["starts"][0]["loss_before"] > 0.01 and step["starts"][0]["loss_after"] < 1e-6
    assert design["passed"] == design["total"] == 2, design["targets"]
    assert "L-BFGS-B" in design["optimizer"]
    x = [v["value"] for v in design["variables"]]
    ds = isp.simulate(measure.chosen_params(spec, x), isp.DC(0.9), duration=0.03, deterministic=True, seed=5,
                      signals=())
    assert abs(float(np.nanmin(ds.spike_time.values)) - 10e-3) <= 0.05e-3
    # the sensitivity of a differentiable target is its derivative: latency falls with mu, rises with V_h
    for label, row in design["sensitivity"].items():
        assert design["sensitivity_method"][label] == "forward-mode derivative"
        assert row["mu"] < -1.0 and row["Vh"] > 1.0


def test_a_gradient_design_with_a_target_without_derivative_is_written_whole(tmp_path):
    """method = "gradient" with a pulse target beside the DC latency: the pulse target is measured
    (no derivative) inside the step, the Sobol sample is a power of two, and design.json and
    sensitivity.csv carry the derivative row and the finite-difference row side by side."""
    spec = design_spec.from_dict({
        "preset": "paper", "search": {"population": 3, "generations": 1, "method": "gradient", "starts": 1,
                                      "iterations": 5},
        "variables": {"mu": {"low": 300, "high": 800}},
        "targets": [{"quantity": "first_spike", "dc": "0.9 V", "duration": "30 ms", "value": "10 ms",
                     "tolerance": "0.1 ms"},
                    {"quantity": "spike_count", "pulse": "0.9V,1ms,2ms", "duration": "30 ms", "low": 1}]})
    design = search.run(spec)
    assert design["history"][0]["candidates"] == 4          # 3 per variable, rounded up to 2^2
    step = design["gradient_step"]["starts"][0]
    assert step["loss_after"] <= step["loss_before"] and step["evaluations"] >= 2
    latency, count = (t["target"] for t in design["targets"])
    assert design["sensitivity_method"][latency] == "forward-mode derivative"
    assert design["sensitivity_method"][count].startswith("central differences")
    assert design["sensitivity"][latency]["mu"] < -1.0
    output.write(spec, design, tmp_path)
    saved = json.loads((tmp_path / "design.json").read_text())
    assert saved["gradient_step"]["targets"] == [latency]
    rows = (tmp_path / "sensitivity.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith(f'"{latency}"')
