"""The six characteristics and energy (issue: characteristics). Each test fails if its
characteristic disappears; published comparisons carry their tolerance beside the assert."""

import json
import subprocess
import sys

import numpy as np
import pytest

import ionspike as isp
from ionspike import protocols

PAPER = isp.presets.params("paper")


def _values(d):
    return [v for _, v in sorted(d.items(), key=lambda kv: float(kv[0]))]


@pytest.fixture(scope="module")
def leaky():
    return protocols.leaky_integration("paper")


def test_leaky_integration_needs_more_pulses_for_longer_gaps(leaky):
    _, m = leaky
    counts = _values(m["pulses_to_fire"])
    assert None not in counts and all(b > a for a, b in zip(counts, counts[1:])), counts
    # the filament decays between pulses with 1/(gamma1 + beta) = 1.61 ms (tolerance 3 %)
    assert m["decay_time_s"] == pytest.approx(1 / (600 + 20), rel=0.03)


def test_without_leak_the_gap_no_longer_matters():
    _, m = protocols.leaky_integration(isp.replace(PAPER, gamma1=0.0, gamma2=0.0))
    counts = _values(m["pulses_to_fire"])
    assert None not in counts and max(counts) - min(counts) <= 1, counts


def test_threshold_and_all_or_none_spikes():
    _, m = protocols.threshold("paper")
    # docs/model.md §5.1: no firing at 0.55 V DC, fires at 0.60 V (resolution 0.01 V)
    assert 0.55 < m["threshold_dc_V"] <= 0.62
    assert 0.6 <= m["threshold_pulse_V"] <= 0.8
    # all-or-none: the output spike height does not follow the input amplitude (CV < 5 %)
    assert m["spike_amplitude_cv"] < 0.05
    # the drift onset v_h sets the threshold: without it the neuron fires at much lower DC input
    _, m0 = protocols.threshold(isp.replace(PAPER, Vh=0.0, mu=150.0), pulse_amplitudes=[0.8],
                                dc_levels=np.round(np.arange(0.20, 0.61, 0.02), 2))
    assert m0["threshold_dc_V"] < m["threshold_dc_V"] - 0.1


def test_cascade_chain_of_three_fires_in_order():
    _, m = protocols.cascade("paper", stages=3)
    counts = m["downstream_spike_count"]
    # docs/model.md §5.1: stage 1 ~99 spikes (first 90.9 ms), stage 2 ~82 (first 144 ms) in 0.6 s
    assert counts[0] > 50 and counts[1] > 30 and counts[2] > 10
    assert all(lat > 0 for lat in m["stage_latency_s"])
    assert m["first_spike_s"][1] == pytest.approx(0.144, rel=0.15)


def test_cascade_breaks_without_an_output_voltage():
    # a 1 kOhm load develops < 0.2 V: below the next stage's drift onset, so the chain stops
    _, m = protocols.cascade(isp.replace(PAPER, Rl="1 kOhm"), stages=2)
    assert m["downstream_spike_count"][0] > 50 and m["downstream_spike_count"][1] == 0


@pytest.fixture(scope="module")
def plasticity():
    return protocols.intrinsic_plasticity("paper")


def test_intrinsic_plasticity_advance_fades_with_the_gap(plasticity):
    _, m = plasticity
    adv = _values(m["advance_s"])
    assert all(a is not None for a in adv)
    assert all(b < a for a, b in zip(adv, adv[1:])), adv          # monotone recovery
    assert adv[-1] < 0.1 * adv[0]                                  # gone after 1 s
    # paper Fig. 4b: advance(200 ms)/advance(3 ms) = 2.4/5.7 = 0.42; tolerance +-0.15 (ours is a
    # re-fit device; docs/model.md §5.1, row P4)
    assert m["advance_ratio_200ms_3ms"] == pytest.approx(0.42, abs=0.15)
    # the recovery follows the residue decay, 1/gamma2 = 200 ms (tolerance 30 %)
    assert m["recovery_time_s"] == pytest.approx(0.2, rel=0.3)


def test_without_residue_transfer_there_is_no_lasting_advance(plasticity):
    _, full = plasticity
    _, m = protocols.intrinsic_plasticity(isp.replace(PAPER, beta=0.0), gaps=(3e-3, 200e-3))
    assert abs(m["advance_s"]["0.2"]) < 0.1 * full["advance_s"]["0.2"]


def test_refractory_period_grows_with_rc_and_vanishes_for_small_rc():
    _, m = protocols.refractory("paper", rc=(10e6, 250e6, 1e9), trials=40)
    isi = _values(m["isi_s"])
    assert isi[0] == pytest.approx(2e-3, rel=0.02)            # R_c = 10 MOhm: one spike per input period
    assert isi[1] > 1.5 * isi[0] and isi[2] > 2 * isi[1]      # refractory ~ R_c C_g
    assert m["isi_vs_rc_cg_slope"] > 1.0
    assert m["refractory_s"] is not None and m["refractory_s"] > 2e-3


def test_stochastic_preset_fires_like_fig_3cd():
    _, m = protocols.stochasticity("stochastic", trials=500, train_trials=30, train_duration=0.3)
    p = m["p_fire"]
    # paper: 5 / 76 / 95 % at 0.8 / 0.9 / 1.0 V; tolerance +-15 points each (issue)
    assert p["0.8"] == pytest.approx(0.05, abs=0.15)
    assert p["0.9"] == pytest.approx(0.76, abs=0.15)
    assert p["1"] == pytest.approx(0.95, abs=0.15)
    assert p["0.7"] <= p["0.8"] <= p["0.9"] <= p["1"] <= p["1.1"]
    lo, hi = m["p_fire_ci"]["0.9"]
    assert lo < p["0.9"] < hi and hi - lo < 0.1
    assert m["delay_cv"]["0.9"] > 0.05 and m["isi_cv"] > 0.05
    assert m["delay_median_s"]["0.9"] > m["delay_median_s"]["1.1"]   # stronger input, shorter delay


def test_without_noise_or_spread_firing_is_a_step():
    det = isp.presets.params("stochastic").deterministic()
    _, m = protocols.stochasticity(det, trials=20, amplitudes=(0.8, 0.9, 1.0, 1.1), train_trials=2,
                                   train_duration=0.05)
    assert set(m["p_fire"].values()) <= {0.0, 1.0}
    assert all(cv in (None, 0.0) or cv < 1e-9 for cv in m["delay_cv"].values())


def test_stochasticity_figure_draws_a_wilson_bound_a_rounding_error_past_p(tmp_path):
    """Found by `reproduce`: at p = 0 or 1 the Wilson bound can lie 1e-17 inside p; the figure
    must still draw (matplotlib refuses negative error bars)."""
    from ionspike.report import characteristics as figs

    det = isp.presets.params("stochastic").deterministic()
    ds, _ = protocols.stochasticity(det, trials=4, amplitudes=(0.8, 1.1), train_trials=2, train_duration=0.02)
    ci = ds.p_fire_ci.values.copy()
    ci[:, 0] = np.minimum(ds.p_fire.values + 1e-17, 1.0)       # lower bound a hair above p
    ci[:, 1] = np.maximum(ds.p_fire.values - 1e-17, 0.0)       # upper bound a hair below p
    ds["p_fire_ci"] = (ds.p_fire_ci.dims, ci)
    paths = figs.plot("stochasticity", ds, tmp_path / "stoch")
    assert all(p.exists() for p in paths)


def test_energy_per_spike_from_pj_to_aj():
    _, m = protocols.energy()
    e = m["energy_per_spike_J"]
    # SI Table 7 (65 nm configuration, ~0.45 V inputs): 1.39 pJ; within a factor of 2 (issue)
    assert 1.39e-12 / 2 <= e["65nm"] <= 1.39e-12 * 2
    # 3 nm projection: below 10 aJ (paper ~1 aJ)
    assert e["3nm"] < 10e-18
    # physics: the input charges C_g to ~V_in once per spike, E ~ C_g V_in^2 (10 %)
    assert e["paper"] == pytest.approx(10e-12 * 0.8**2, rel=0.1, abs=0)
    # the breakdown closes: what the input delivers is dissipated in the DM and R_c (plus storage)
    b = m["breakdown_J"]["paper"]
    assert b["input"] == pytest.approx(b["dm"] + b["rc"] + b["stored_cg"], rel=1e-6, abs=0)
    # more input voltage, more energy per spike (C_g V^2)
    amp = _values(m["energy_vs_amplitude_J"])
    finite = [a for a in amp if a is not None]
    assert all(b2 > a2 for a2, b2 in zip(finite, finite[1:]))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ionspike.cli", *args], capture_output=True, text=True, timeout=900)


def test_characterize_cli_writes_data_figures_and_metrics(tmp_path):
    out = tmp_path / "char"
    proc = _cli("characterize", "--preset", "paper", "--only", "leaky,cascade", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for name in ("leaky_integration", "cascade"):
        for suffix in (".nc", ".png", ".svg"):
            assert (out / f"{name}{suffix}").stat().st_size > 0
    assert (out / "summary.png").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"leaky_integration", "cascade", "run"}
    assert "pulses_to_fire" in m["leaky_integration"] and "stage_latency_s" in m["cascade"]


@pytest.mark.parametrize("args, fragment", [
    (["--only", "leaky,telepathy"], "unknown characteristic 'telepathy'"),
    (["--trials", "0"], "--trials = 0 is out of range"),
    (["--preset", "nope"], "unknown preset"),
])
def test_characterize_bad_input_exits_2_and_writes_nothing(tmp_path, args, fragment):
    out = tmp_path / "x"
    proc = _cli("characterize", "--out", str(out), *args)
    assert proc.returncode == 2 and fragment in " ".join(proc.stderr.split())
    assert not (out / "metrics.json").exists()


def test_characterize_refuses_a_file_as_out(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    proc = _cli("characterize", "--only", "leaky", "--out", str(f))
    assert proc.returncode == 2 and "existing file" in proc.stderr


def test_run_by_alias_passes_the_trials():
    # protocols.run resolved the alias "stochastic" for the lookup but tested the raw name against the
    # protocols that take trials, so `trials` was dropped (500 trials ran instead of 3). A deterministic
    # device with a coarser step keeps this a quick run; only the bookkeeping is under test.
    fast = isp.presets.Preset(name="stochastic-deterministic", description="",
                              params=isp.presets.params("stochastic").deterministic(), dt=1e-5)
    ds, m = protocols.run("stochastic", fast, trials=3)
    from ionspike.protocols.stochasticity import AMPLITUDES_V

    assert m["trials"] == 3 and ds.attrs["trials"] == 3
    assert ds.sizes["neuron"] == 3 * len(AMPLITUDES_V)
    assert m["preset"] == "stochastic-deterministic"


@pytest.mark.parametrize("call, fragment", [
    (lambda: protocols.leaky_integration("paper", gaps=["x"]), "gaps[0] = 'x' (str): expected a number in (0, inf) s"),
    (lambda: protocols.leaky_integration("paper", gaps=[]), "gaps = []: expected at least one value"),
    (lambda: protocols.refractory("paper", rc=[-1.0]), "rc[0] = -1.0 ohm is out of range"),
    (lambda: protocols.threshold("paper", dc_levels=[float("nan")]), "dc_levels[0] = nan is not a number"),
    (lambda: protocols.stochasticity("paper", trials=2.5), "trials = 2.5 (float): expected an integer"),
    (lambda: protocols.stochasticity("paper", train_trials=0), "train_trials = 0 is out of range"),
    (lambda: protocols.run(5), "characteristic 5 (int): expected a name"),
    (lambda: protocols.run("stochastic", 7), "params = 7 (int): expected NeuronParams, a Preset"),
])
def test_protocol_arguments_are_checked_before_running(call, fragment):
    with pytest.raises(isp.IonspikeError) as info:
        call()
    assert fragment in str(info.value)
