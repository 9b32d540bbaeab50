"""The simulate API: data layout, randomness, stochastic statistics and input checking."""

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import ionspike as isp
from ionspike import metrics, precision
from ionspike.errors import ParameterError, PresetError, SolverError, StimulusError, UnitError

PULSES = isp.PulseTrain(amplitude=0.8, width=1e-3, period=2e-3)


@pytest.fixture(scope="module")
def small():
    return isp.simulate("paper", PULSES, duration="120 ms", n=3, seed=7)


def test_dataset_layout_and_units(small):
    ds = small
    for name, unit in [("V_in", "V"), ("F", "1"), ("R", "1"), ("V_g", "V"), ("V_d", "V"), ("I_d", "A")]:
        assert ds[name].dims == ("time", "neuron") and ds[name].attrs["units"] == unit
    assert ds.sizes["neuron"] == 3 and ds.time.attrs["units"] == "s"
    assert ds.spike_time.dims == ("neuron", "spike") and ds.spike_time.attrs["units"] == "s"
    assert ds.energy_input.attrs["units"] == "J"
    assert ds.time.values[0] == 0 and ds.time.values[-1] == pytest.approx(0.12)
    assert ds.attrs["preset"] == "paper" and ds.attrs["seed"] == 7
    # recorded V_in is the input during the step that ends at each record time (t - dt/2)
    t_mid = ds.time.values[1:] - ds.attrs["dt_s"] / 2
    expected = np.where((t_mid % 2e-3) < 1e-3, 0.8, 0.0)
    np.testing.assert_array_equal(ds.V_in.values[1:, 0], expected)
    assert np.allclose(np.diff(ds.time.values), np.diff(ds.time.values)[0])   # the requested spacing


def test_netcdf_round_trip(small, tmp_path):
    from ionspike import io

    path = io.write_netcdf(tmp_path / "t.nc", small)
    back = io.read_netcdf(path)
    xr.testing.assert_identical(back[["V_g", "spike_time", "energy_supply"]], small[["V_g", "spike_time", "energy_supply"]])


def test_spike_times_are_interpolated_crossings_of_v_t():
    ds = isp.simulate("paper", PULSES, duration="100 ms", deterministic=True, dt=2e-6, record_every=1,
                      signals=("V_g",))
    t_spike = metrics.spike_times(ds, 0)[0]
    vg, t = ds.V_g.values[:, 0], ds.time.values
    k = np.searchsorted(t, t_spike)
    assert vg[k - 1] < 0.22 <= vg[k]                   # the step that crossed V_T
    assert t[k - 1] <= t_spike <= t[k]


def test_event_buffer_grows_instead_of_dropping_spikes():
    full = isp.simulate("paper", PULSES, duration="200 ms", deterministic=True, signals=())
    tiny = isp.simulate("paper", PULSES, duration="200 ms", deterministic=True, signals=(), max_events=1)
    n = int(full.spike_count[0])
    assert n > 5 and int(tiny.spike_count[0]) == n
    np.testing.assert_array_equal(metrics.spike_times(tiny, 0), metrics.spike_times(full, 0))


def test_per_neuron_stimulus_and_parameters_set_the_batch():
    stim = isp.PulseTrain(amplitude=[0.0, 0.8], width=1e-3, period=2e-3)
    ds = isp.simulate("paper", stim, duration="120 ms", deterministic=True, signals=())
    assert ds.sizes["neuron"] == 2
    assert int(ds.spike_count[0]) == 0 and int(ds.spike_count[1]) > 0
    with pytest.raises(ParameterError, match="disagree"):
        isp.simulate("paper", stim, duration="10 ms", n=3)


def test_same_seed_same_result_different_seed_different_spikes():
    a = isp.simulate("paper", PULSES, duration="150 ms", n=4, seed=11, signals=())
    b = isp.simulate("paper", PULSES, duration="150 ms", n=4, seed=11, signals=())
    c = isp.simulate("paper", PULSES, duration="150 ms", n=4, seed=12, signals=())
    np.testing.assert_array_equal(a.spike_time.values, b.spike_time.values)
    np.testing.assert_array_equal(a.energy_supply.values, b.energy_supply.values)
    assert not np.array_equal(metrics.spike_times(a, 0), metrics.spike_times(c, 0))


def test_a_neurons_noise_does_not_depend_on_batch_size_duration_or_recording():
    ref = isp.simulate("paper", PULSES, duration="120 ms", n=1, seed=5, signals=())
    others = [
        isp.simulate("paper", PULSES, duration="120 ms", n=6, seed=5, signals=()),
        isp.simulate("paper", PULSES, duration="150 ms", n=1, seed=5, signals=()),
        isp.simulate("paper", PULSES, duration="120 ms", n=2, seed=5, signals=("V_g",), record_every=7),
    ]
    spikes = metrics.spike_times(ref, 0)
    assert spikes.size >= 3
    for ds in others:
        np.testing.assert_allclose(metrics.spike_times(ds, 0)[:3], spikes[:3], rtol=1e-9)


def test_spread_draws_are_lognormal_with_the_preset_sigma():
    p = isp.replace(isp.presets.params("paper"), sigma_d2d=0.3)
    ds = isp.simulate(p, PULSES, duration="10 ms", n=4000, seed=1, signals=())
    ln = np.log(ds.mu_scale_d2d.values)
    assert abs(ln.mean()) < 4 * 0.3 / np.sqrt(4000)            # median-preserving: mean ln = 0 within 4 SE
    assert ln.std() == pytest.approx(0.3, rel=0.05)


def test_cycle_to_cycle_spread_redraws_mu_at_each_turn_on():
    import jax
    import jax.numpy as jnp

    from ionspike import circuit
    from ionspike.simulate import draw_spread

    with precision.float64():   # a low-level law, called as simulate calls it
        p = jax.tree.map(jnp.asarray, isp.replace(isp.presets.params("paper").deterministic(), sigma_c2c=0.3,
                                                   sigma_d2d=0.2))
        draws = draw_spread(p, 2, 8, jax.random.key(3))
        s = circuit.rest_state(p, draws)
        assert np.allclose(s.mu_scale, draws.mu_d2d * draws.mu_c2c[:, 0])
        s = s._replace(F=jnp.array([0.995, 0.2]))            # neuron 0 about to bridge, neuron 1 far from it
        for _ in range(20):
            s, out = circuit.step(s, jnp.array([0.8, 0.8]), p, 1e-6, None, draws)
        assert list(np.asarray(s.cycle)) == [1, 0]
        assert float(s.mu_scale[0]) == pytest.approx(float(draws.mu_d2d[0] * draws.mu_c2c[0, 1]))
        assert float(s.mu_scale[1]) == pytest.approx(float(draws.mu_d2d[1] * draws.mu_c2c[1, 0]))


def test_cycle_to_cycle_spread_alone_makes_trials_differ():
    base = isp.presets.params("paper").deterministic()
    det = isp.simulate(base, PULSES, duration="250 ms", n=50, seed=2, signals=())
    c2c = isp.simulate(isp.replace(base, sigma_c2c=0.3), PULSES, duration="250 ms", n=200, seed=2, signals=())
    assert np.ptp(det.spike_time.isel(spike=0).values) == 0
    first = c2c.spike_time.isel(spike=0).values
    first = first[np.isfinite(first)]
    assert first.std() / first.mean() > 0.2


@pytest.mark.slow
def test_noise_statistics_do_not_depend_on_dt():
    # chemical-Langevin noise: over >= 2000 trials, mean and std of the first-spike time agree within 5 %
    # between dt and dt/4 (issue). Both runs follow the same Brownian paths (the coarse run sums four
    # fine increments per step), so the comparison measures discretisation, not sampling luck.
    stats = {}
    for dt, substeps in ((8e-6, 4), (2e-6, 1)):
        ds = isp.simulate("paper", PULSES, duration="250 ms", n=2000, seed=3, dt=dt, signals=(),
                          noise_substeps=substeps)
        first = ds.spike_time.isel(spike=0).values
        assert np.isfinite(first).mean() > 0.995
        first = first[np.isfinite(first)]
        stats[dt] = (first.mean(), first.std())
    (m1, s1), (m2, s2) = stats[8e-6], stats[2e-6]
    assert m1 == pytest.approx(m2, rel=0.05) and s1 == pytest.approx(s2, rel=0.05), stats
    assert s2 > 0.1 * m2   # the noise matters: a deterministic run would give std = 0


def test_coarse_noise_with_substeps_follows_the_fine_brownian_path():
    # same path: with no growth (mu = 0) F stays 0, R stays 0 - use a driven neuron and compare early states
    a = isp.simulate("paper", PULSES, duration="30 ms", n=3, seed=9, dt=4e-6, noise_substeps=2,
                     signals=("F",), record_every=250)
    b = isp.simulate("paper", PULSES, duration="30 ms", n=3, seed=9, dt=2e-6, noise_substeps=1,
                     signals=("F",), record_every=500)
    c = isp.simulate("paper", PULSES, duration="30 ms", n=3, seed=10, dt=2e-6, signals=("F",), record_every=500)
    d_same = np.abs(a.F.values - b.F.values).max()
    d_other = np.abs(c.F.values - b.F.values).max()
    assert d_same < 0.2 * d_other   # the refined path stays close; an independent path does not


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(dt=0.0), ParameterError, "dt = 0.0 s is out of range"),
    (dict(dt=-1e-6), ParameterError, "dt = -1e-06 s is out of range"),
    (dict(dt="1 ms"), ParameterError, "too coarse for the stimulus"),
    (dict(duration=0.0), ParameterError, "duration"),
    (dict(n=0), ParameterError, "n = 0 is out of range"),
    (dict(dt="2 Mohms?"), UnitError, "not a quantity"),
    (dict(signals=("V_x",)), ParameterError, "V_x"),
    # the API's edge: no coercion (2.5 -> 2, True -> 1), no raw crash (issue 12)
    (dict(n=2.5), ParameterError, "n = 2.5 (float): expected an integer in [1, inf)"),
    (dict(n=True), ParameterError, "n = True (bool): expected an integer"),
    (dict(seed=2**70), ParameterError, "seed = 1180591620717411303424 is out of range: allowed integers in [0, "),
    (dict(seed=1.5), ParameterError, "seed = 1.5 (float): expected an integer"),
    (dict(seed=-1), ParameterError, "seed = -1 is out of range"),
    (dict(devices="tpu"), ParameterError, "devices = 'tpu': allowed 'auto'"),
    (dict(devices=[0]), ParameterError, "devices = [0]: allowed 'auto', None or a non-empty list of JAX devices"),
    (dict(max_events=0), ParameterError, "max_events = 0 is out of range"),
    (dict(max_events=64.0), ParameterError, "max_events = 64.0 (float)"),
    (dict(record_every=2.5), ParameterError, "record_every = 2.5 (float)"),
    (dict(noise_substeps=0), ParameterError, "noise_substeps = 0 is out of range"),
    (dict(stages=1.0), ParameterError, "stages = 1.0 (float)"),
    (dict(deterministic=1), ParameterError, "deterministic = 1 (int): expected True or False"),
    (dict(throw="no"), ParameterError, "throw = 'no' (str): expected True or False"),
    (dict(signals="V_g"), ParameterError, "signals = 'V_g': expected a tuple of names"),
    (dict(signals=("V_g", "V_g")), ParameterError, "names a signal twice"),
    (dict(progress=1), ParameterError, "progress = 1: expected a function"),
    (dict(duration="1 s*10**10**10"), UnitError, "numbers are allowed only before the unit"),
    (dict(duration=float("nan")), UnitError, "duration = nan is not a number"),
    (dict(dt=float("inf")), ParameterError, "dt = inf is out of range: allowed finite values in (0, inf) s"),
])
def test_bad_arguments_are_named(kwargs, error, fragment):
    args = dict(duration="10 ms")
    args.update(kwargs)
    with pytest.raises(error) as info:
        isp.simulate("paper", PULSES, **args)
    assert fragment in str(info.value)


def test_dt_too_coarse_for_the_physics_is_refused():
    with pytest.raises(ParameterError, match="too coarse for the physics.*allows dt in"):
        isp.simulate("paper", isp.DC(0.8), duration="10 ms", dt="100 us")


def test_unknown_preset_and_missing_stimulus():
    with pytest.raises(PresetError, match="unknown preset"):
        isp.simulate("no-such-preset", PULSES, duration="1 ms")
    with pytest.raises(StimulusError, match="stimulus is required"):
        isp.simulate("paper", None, duration="1 ms")


def test_absurd_input_is_refused_before_running():
    stim = isp.Sampled([0.0, 1e-3, 2e-3], [0.0, 1e305, 0.0])
    with pytest.raises(ParameterError, match="too coarse for the physics"):
        isp.simulate("paper", stim, duration="2 ms", dt=1e-6)


def _toy_step(state, v_in, dt, dW, args):
    """A toy model for the solver's contract: x grows by `rate` per step (overflows for a huge rate)."""
    from ionspike.circuit import StepOutput

    x = state * args
    zero = jnp.zeros_like(x)
    return x, StepOutput(signals={"x": x}, energy={"e": zero}, events={"up": (x > 1e300, zero)})


def test_solver_blow_up_raises_with_time_and_neuron_index():
    from ionspike.solve import Record, Scheme, solve

    with precision.float64():   # the solver runs in float64 under simulate: 1e10**31 overflows it
        rate = jnp.array([1.0, 1.0, 1e10, 1.0])          # neuron 2 overflows to inf at step 31 (1e310)
        kw = dict(n=4, n_steps=100, scheme=Scheme(dt=1e-6), record=Record(every=10, signals=("x",)), key=None,
                  n_noise=0, initial_signals={"x": jnp.ones(4)})
        with pytest.raises(SolverError) as info:
            solve(_toy_step, jnp.ones(4), isp.DC(0.0).batched(4), rate, **kw)
        sol = solve(_toy_step, jnp.ones(4), isp.DC(0.0).batched(4), rate, throw=False, **kw)
    assert info.value.neuron == 2
    assert info.value.time_s == pytest.approx(31e-6)
    assert "neuron 2 became non-finite at t = 3.1e-05 s" in str(info.value)
    assert np.isnan(sol.t_fail[[0, 1, 3]]).all() and sol.t_fail[2] == pytest.approx(31e-6)


def test_infinite_or_overflowing_parameters_are_refused_up_front():
    with pytest.raises(ParameterError, match="memristor.r_off = inf"):
        isp.presets.params("paper", Roff=float("inf"))
    # the resistance law is written so that a steep lambda does not overflow
    p = isp.replace(isp.presets.params("paper"), lam=1e-3)
    ds = isp.simulate(p, PULSES, duration="5 ms", deterministic=True, signals=())
    assert np.isnan(ds.status_t_fail.values).all()


def test_params_of_the_wrong_kind_and_jax_stimuli_are_validated():
    with pytest.raises(PresetError, match="params = 5 \\(int\\): expected NeuronParams, a Preset"):
        isp.simulate(5, PULSES, duration="1 ms")
    with pytest.raises(StimulusError, match="PulseTrain.amplitude contains NaN"):
        isp.simulate("paper", isp.PulseTrain(jnp.array([0.8, jnp.nan]), 1e-3, 2e-3), duration="4 ms")
    with pytest.raises(StimulusError, match="Sampled.values contains inf"):
        isp.Sampled(jnp.array([0.0, 1e-3]), jnp.array([0.0, jnp.inf]))


def test_a_run_that_cannot_fit_in_memory_is_refused_before_allocating(monkeypatch):
    import time

    start = time.perf_counter()
    with pytest.raises(ParameterError) as info:
        isp.simulate("paper", PULSES, duration="300 ms", n=10**12)
    msg = str(info.value)
    assert "n = 1000000000000 neurons need an estimated" in msg and "PB" in msg and "available" in msg
    assert time.perf_counter() - start < 5.0        # refused up front, nothing of size n allocated
    # the recorded signals count: 20000 neurons x 6 signals x every step of 50 ms is ~ 100 GB
    with pytest.raises(ParameterError, match="6 recorded signal\\(s\\) x 25002 points"):
        isp.simulate("paper", PULSES, duration="50 ms", n=20000, record_every=1, signals=isp.circuit.SIGNALS)
    monkeypatch.setenv("IONSPIKE_MEMORY_LIMIT", "1e6")                 # the override, in bytes
    with pytest.raises(ParameterError, match="more than the 1 MB available \\(\\$IONSPIKE_MEMORY_LIMIT"):
        isp.simulate("paper", PULSES, duration="4 ms", n=1000)
    monkeypatch.setenv("IONSPIKE_MEMORY_LIMIT", "lots")
    with pytest.raises(ParameterError, match="IONSPIKE_MEMORY_LIMIT = 'lots': expected a number of bytes"):
        isp.simulate("paper", PULSES, duration="4 ms")


def test_an_explicit_max_events_of_64_is_taken_as_given():
    # the automatic buffer (max_events=None) has room for one event per R_c C_g: no rerun. An explicit
    # 64 (the old sentinel value, once taken as "automatic") is a 64-event buffer: > 64 spikes overflow
    # it and the run is repeated with a larger one, which the progress callback shows (two passes)
    p = isp.replace(isp.presets.params("paper").deterministic(), Rc="50 MOhm")
    fast = isp.PulseTrain(amplitude=1.2, width=1e-3, period=2e-3)   # fires from ~5 ms on, every ~2 ms

    def passes(**kw):
        calls = []
        ds = isp.simulate(p, fast, duration="150 ms", dt=5e-6, signals=(), progress=calls.append, **kw)
        return ds, sum(1 for f in calls if f == 1.0)

    auto, n_auto = passes()
    given, n_given = passes(max_events=64)
    assert int(auto.spike_count[0]) > 64
    assert (n_auto, n_given) == (1, 2)
    np.testing.assert_array_equal(auto.spike_time.values, given.spike_time.values)


def _nan_neuron_run(throw):
    # a real blow-up: neuron 1 has a vanishing number of Ag quanta (N_eff = 1e-300, inside the allowed
    # (0, inf]), so its chemical-Langevin kicks are ~1e150 and its state is non-finite within a few steps
    p = isp.replace(isp.presets.params("paper").deterministic(), N_eff=np.array([30.0, 1e-300]))
    return isp.simulate(p, isp.PulseTrain(amplitude=1.0, width=1e-3, period=2e-3), duration="40 ms", seed=1,
                        signals=(), throw=throw)


def test_a_non_finite_neuron_is_marked_in_the_dataset_and_the_metrics():
    with pytest.raises(SolverError) as info:
        _nan_neuron_run(throw=True)
    assert info.value.neuron == 1
    ds = _nan_neuron_run(throw=False)
    assert list(ds.status.values) == [0, 1] and ds.status.attrs["flag_meanings"] == "ok non_finite"
    assert np.isnan(ds.status_t_fail.values[0]) and 0 < ds.status_t_fail.values[1] < 1e-3
    assert np.isnan(ds.energy_supply.values[1]) and np.isnan(ds.energy_input.values[1])   # not a finite number
    assert np.isfinite(ds.energy_supply.values[0]) and int(ds.spike_count[0]) > 0
    m = metrics.summarize(ds)
    assert m["status"] == ["ok", "non_finite"] and m["n_ok"] == 1
    for key in ("spike_count", "first_spike_s", "isi_mean_s", "dm_on_count"):
        assert m[key][1] is None and m[key][0] is not None, key
    # totals are over the ok neuron only
    drawn = float(ds.energy_input[0] + ds.energy_supply[0])
    assert m["energy_total_J"] == pytest.approx(drawn, rel=1e-12, abs=0)
    assert m["energy_per_spike_J"] == pytest.approx(drawn / int(ds.spike_count[0]), rel=1e-12, abs=0)


def test_importing_ionspike_leaves_jax_in_32_bit_and_simulate_returns_float64():
    import subprocess
    import sys

    import jax

    out = subprocess.run([sys.executable, "-c", "import jax; import ionspike; print(jax.config.jax_enable_x64)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
    assert not jax.config.jax_enable_x64
    ds = isp.simulate("paper", PULSES, duration="120 ms", deterministic=True, signals=("V_g", "F"))
    assert not jax.config.jax_enable_x64          # simulate restored the caller's setting
    for name in ("V_g", "F", "spike_time", "energy_input", "energy_supply", "status_t_fail"):
        assert ds[name].dtype == np.float64, name
    # the energy balance closes to float64 rounding: 1e-9 of the energy drawn is far below float32's
    # resolution (eps = 1.2e-7), so a float32 run could not pass this
    drawn = float(ds.energy_input[0] + ds.energy_supply[0])
    assert abs(float(metrics.energy_balance(ds)[0])) <= 1e-9 * drawn
    assert np.finfo(np.float32).eps > 100 * 1e-9
