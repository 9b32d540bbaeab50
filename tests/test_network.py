"""Training, ablation switches, checkpoints, energy and the train/ablate commands (issue 6)."""

import json
from pathlib import Path
import time
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import ionspike as isp
from ionspike.cli import app
from ionspike.errors import CheckpointError, ParameterError
from ionspike.network import ablate as A
from ionspike.network import cells, energy, neuron, rsnn, tasks, variants
from ionspike.network import train as T
from ionspike.params import replace

P = isp.presets.params("paper")
COARSE = neuron.Bin(substeps_on=4)
TINY = dict(task="digits", hidden=16, epochs=2, batch=32, n_train=128, n_test=64)


@jax.jit
def _trace(p, amps):
    def body(s, a):
        s, spk = neuron.bin_step(s, a, p, COARSE)
        return s, (spk, s.F + s.R, s.R)

    return jax.lax.scan(body, neuron.rest((4,)), amps)[1]


def _drive(variant, amplitude=0.8, on_bins=40, off_bins=60, key=None):
    """Ionic state and spikes of one neuron of ``variant``: pulses for ``on_bins`` bins, then nothing
    (compiled once per input length: the variants' parameters are traced)."""
    v = variants.make(variant, P, COARSE)
    p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), v.params if key is not None else v.params.deterministic())
    amps = jnp.concatenate([jnp.full((on_bins, 4), amplitude), jnp.zeros((off_bins, 4))]).astype(jnp.float32)
    return tuple(np.asarray(a) for a in _trace(p, amps))


def test_a_variant_that_would_be_the_full_neuron_is_named_with_why():
    assert all(variants.unchanged(v, P) is None for v in variants.VARIANTS)     # the paper's neuron: every one changes it
    cases = {"no_leak": {"memristor.gamma1": 0.0, "memristor.gamma2": 0.0},
             "no_ip": {"memristor.beta": 0.0}, "short_ip": {"memristor.beta": 0.0},
             "no_refractory": {"circuit.r_c": 10e6}, "long_refractory": {"circuit.r_c": 1e9}}
    for name, knobs in cases.items():
        why = variants.unchanged(name, replace(P, **knobs))
        assert why is not None and "already" in why, name
        assert variants.unchanged("high_noise", replace(P, **knobs)) is None
    assert variants.unchanged("no_leak", replace(P, **{"memristor.gamma1": 0.0})) is None     # the residue still decays
    assert "already" in variants.unchanged("no_leak", replace(P, **{"memristor.gamma1": 0.0, "memristor.beta": 0.0}))
    assert "ten times 0 is 0" in variants.unchanged("short_ip", replace(P, **{"memristor.gamma2": 0.0}))
    quiet = replace(P, **{"noise.n_eff": np.inf, "noise.sigma_d2d_ln_mu": 0.3})
    assert "already" in variants.unchanged("high_noise", quiet)
    assert variants.unchanged("deterministic", quiet) is None       # its spread of mu is still random
    assert "deterministic" in variants.unchanged("deterministic", P.deterministic())
    assert variants.unchanged("no_refractory", replace(P, **{"circuit.r_c": np.array([10e6, 20e6])})) is None
    with pytest.raises(ParameterError, match="unknown variant 'no_gate'"):
        variants.unchanged("no_gate", P)


def test_ablation_switches_change_the_neuron():
    _, x_full, r_full = _drive("full")
    _, x_noleak, _ = _drive("no_leak", amplitude=0.8, on_bins=10)
    # full neuron: the ionic state decays after the drive; no leak: it stays where the drive left it
    assert x_full[-1, 0] < 0.5 * x_full[39, 0]
    assert x_noleak[-1, 0] > 0.0 and x_noleak[-1, 0] == pytest.approx(x_noleak[10, 0], rel=1e-6)
    # no intrinsic plasticity: no residue at all; the full neuron builds one
    _, _, r_noip = _drive("no_ip")
    assert r_full.max() > 0.05 and r_noip.max() == 0.0
    # short intrinsic plasticity: a residue that fades within tens of ms once the drive stops (120 ms
    # after it, the full neuron keeps more than half of its residue)
    _, _, r_short = _drive("short_ip")
    assert r_full[-1, 0] > 0.5 * r_full[39, 0] and 0.0 < r_short[-1, 0] < 0.05 * r_short[39, 0]
    # refractory period: R_c sets how often the neuron can fire under the same drive
    counts = {v: _drive(v, on_bins=100, off_bins=1)[0][:, 0].sum() for v in ("no_refractory", "full", "long_refractory")}
    assert counts["no_refractory"] > counts["full"] > counts["long_refractory"] > 0
    # threshold variants move the first spike
    first = {v: np.argmax(_drive(v, amplitude=0.9, on_bins=100, off_bins=1)[0][:, 0] > 0)
             for v in ("low_threshold", "full", "high_threshold")}
    assert first["low_threshold"] < first["full"] < first["high_threshold"]
    # re-fitted variants keep the full neuron's rate under the reference drive
    for name in variants.REFIT:
        count, _ = variants.reference_response(variants.make(name, P, COARSE).params, COARSE)
        ref, _ = variants.reference_response(P, COARSE)
        assert count[0] == ref[0]
    # a change that leaves no rate to keep is an error naming why, not a silent non-firing variant
    # (a drift onset of 0.85 V: the reference drive's 0.8 V pulses grow no filament, whatever mu)
    silent = replace(P, **{"memristor.v_h": 0.85})
    with pytest.raises(ParameterError, match="fires no spike under the reference drive"):
        variants.refit_mu(silent, float(ref[0]), 4.0, COARSE)
    with pytest.raises(ParameterError, match=r"variant 'no_ip' \(beta = 0, .*no rate for a re-fitted variant to keep"):
        variants.make("no_ip", silent, COARSE)


def test_noise_switches_change_spike_trains():
    net_noisy = cells.DeviceCell(P, COARSE)
    net_det = cells.DeviceCell(variants.make("deterministic", P).params, COARSE, stochastic=False)
    high = cells.DeviceCell(variants.make("high_noise", P).params, COARSE)
    assert net_noisy.stochastic and not net_det.stochastic
    drive = jnp.full((8, 32), 1.0, jnp.float32)   # amplitude ~0.88 V

    def spikes(cell, key):
        inst = cell.draws(jax.random.PRNGKey(0), 32)

        def body(s, i):
            return cell.step(s, drive, jax.random.fold_in(key, i), inst)

        return np.asarray(jax.lax.scan(body, cell.rest(8, 32), jnp.arange(60))[1])

    a, b = spikes(net_noisy, jax.random.PRNGKey(1)), spikes(net_noisy, jax.random.PRNGKey(2))
    assert not np.array_equal(a, b)                                           # Langevin noise differs per key
    d1, d2 = spikes(net_det, jax.random.PRNGKey(1)), spikes(net_det, jax.random.PRNGKey(2))
    assert np.array_equal(d1, d2) and np.all(d1 == d1[:, :1, :1])             # deterministic: all neurons alike
    spread = high.draws(jax.random.PRNGKey(0), 32)["mu_scale"]
    assert float(jnp.std(jnp.log(spread))) == pytest.approx(0.3, rel=0.35)    # device-to-device spread of ln mu
    assert np.all(np.asarray(net_noisy.draws(jax.random.PRNGKey(0), 32)["mu_scale"]) == 1.0)   # paper: none
    # a device without noise (N_eff = inf) keeps its spreads of mu: device to device in the instance,
    # cycle to cycle redrawn at each turn-on (once dropped with the noise)
    quiet = cells.DeviceCell(replace(P, **{"noise.n_eff": np.inf, "noise.sigma_d2d_ln_mu": 0.3,
                                           "noise.sigma_c2c_ln_mu": 0.2}), COARSE)
    assert quiet.stochastic and not quiet.noisy and quiet.cycle_spread and net_noisy.noisy
    assert float(jnp.std(jnp.log(quiet.draws(jax.random.PRNGKey(0), 32)["mu_scale"]))) == pytest.approx(0.3, rel=0.35)
    q1 = spikes(quiet, jax.random.PRNGKey(1))
    assert not np.array_equal(q1, spikes(quiet, jax.random.PRNGKey(2)))      # the cycle factors differ per key
    assert not np.all(q1 == q1[:, :1, :1])                                    # and the devices differ
    assert not cells.DeviceCell(replace(P, **{"noise.n_eff": np.inf}), COARSE).stochastic   # nothing random left


def test_alif_threshold_adapts_and_lif_leaks():
    lif, alif = cells.LIFCell(COARSE), cells.ALIFCell(COARSE)
    drive = jnp.full((1, 1), 0.4, jnp.float32)

    def count(cell):
        s, n = cell.rest(1, 1), 0.0
        for _ in range(100):
            s, spk = cell.step(s, drive, None, {})
            n += float(spk.sum())
        return n, s

    n_lif, _ = count(lif)
    n_alif, s_alif = count(alif)
    assert n_lif > n_alif > 0 and float(s_alif.a[0, 0]) > 0
    s, _ = lif.step(cells.LIFState(jnp.full((1, 1), 0.5), jnp.zeros((1, 1))), jnp.zeros((1, 1)), None, {})
    assert float(s.v[0, 0]) == pytest.approx(0.5 * np.exp(-2e-3 / 20e-3))    # leak of tau_mem over one 2 ms bin


def test_surrogate_gradient_is_a_descent_direction_through_128_bins():
    """The surrogate gradient of the whole network (noise on) is finite, reaches every weight, and a
    small step against it lowers the loss of the same batch and noise (measured: ~2-4 %)."""
    task = tasks.digits()
    net = rsnn.RSNN(n_in=8, cell=cells.DeviceCell(P, COARSE), hidden=16, bins_per_step=16)   # 8 rows x 16 = 128 bins
    w, inst = net.init(jax.random.PRNGKey(0)), net.draws(jax.random.PRNGKey(1))
    x, y, key = task.x_train[:32], task.y_train[:32], jax.random.PRNGKey(2)
    loss = jax.jit(lambda w: net.loss(w, inst, x, y, key)[0])
    grads = jax.grad(loss)(w)
    for name, g in grads.items():
        g = np.asarray(g)
        assert np.all(np.isfinite(g)) and np.any(g != 0), name
    norm = float(np.sqrt(sum(float(jnp.sum(g * g)) for g in grads.values())))
    stepped = jax.tree.map(lambda a, g: a - 0.05 * g / norm, w, grads)
    assert float(loss(stepped)) < float(loss(w))


def test_the_readout_time_constant_is_the_task_s_and_earlier_files_keep_theirs():
    """``tau_out`` resolves per task (digits 100 ms, the others 20 ms), reaches the network, is
    left out of the config dict at the legacy 20 ms (earlier runs still match), and a file
    written before the field existed reads back as 20 ms whatever its task's default is now."""
    assert T.TrainConfig(task="digits").tau_out == T.TASK_TIMING["digits"].tau_out == 0.1
    assert T.TrainConfig(task="mnist1d").tau_out == T.LEGACY_TAU_OUT == 20e-3
    assert "tau_out" not in T.TrainConfig(task="mnist1d").to_dict()
    digits = T.TrainConfig(task="digits", neuron="lif")
    assert digits.to_dict()["tau_out"] == 0.1 and T.TrainConfig.from_dict(digits.to_dict()) == digits
    legacy = {k: v for k, v in digits.to_dict().items() if k != "tau_out"}
    assert T.TrainConfig.from_dict(legacy).tau_out == 20e-3
    net, _ = T.build(T.TrainConfig(task="digits", neuron="lif", tau_out=0.05), tasks.digits())
    assert net.tau_out == 0.05


def test_train_command_takes_the_readout_time_constant_as_a_quantity(tmp_path):
    """``--tau-out`` takes a unit string (or SI seconds); other units and non-positive values are
    refused with the option's name, before anything is written."""
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "m"), "--task", "digits", "--neuron", "lif",
                                 "--hidden", "8", "--epochs", "1", "--n-train", "64", "--n-test", "32",
                                 "--tau-out", "50 ms"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m" / "result.json").read_text())["config"]["tau_out"] == pytest.approx(0.05)
    # the rate penalties, and the example preset of a device designed for MNIST-1D (a TOML extending paper)
    design = Path(__file__).resolve().parents[1] / "examples" / "no_residue_fast_gate.toml"
    # the example is the no_ip variant of the paper's device (its mu re-fit written out) with R_c = 10 MOhm
    want = replace(variants.make("no_ip", P).params, **{"circuit.r_c": 10e6})
    got = isp.presets.params(design)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    # ... and the 1 ms gate example is that device with R_c = 100 MOhm (it extends the file beside it)
    want = replace(want, **{"circuit.r_c": 100e6})
    got = isp.presets.params(design.with_name("no_residue_1ms_gate.toml"))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "f"), "--task", "digits", "--hidden", "8",
                                 "--epochs", "1", "--n-train", "64", "--n-test", "32", "--floor-weight", "3000",
                                 "--rate-weight", "300", "--preset", str(design)])
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "f" / "result.json").read_text())["config"]
    assert config["floor_weight"] == 3000 and config["rate_weight"] == 300 and config["preset"] == str(design)
    for option in ("--floor-weight", "--rate-weight"):
        r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "bad"), option, "-1"])
        name = option[2:].replace("-", "_")
        assert r.exit_code == 2 and f"{name} = -1.0 is out of range: allowed [0, 1e6)" in r.output, r.output
    for bad, why in (("5 V", "--tau-out"), ("-1 ms", "--tau-out = '-1 ms' is out of range"), ("0", "out of range")):
        r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "bad"), "--tau-out", bad])
        assert r.exit_code == 2 and why in r.output, r.output
    assert not (tmp_path / "bad").exists()


def test_readouts_validation_split_and_bad_readout():
    task = tasks.digits()
    cell = cells.LIFCell(COARSE)
    for readout in rsnn.READOUTS:
        net = rsnn.RSNN(n_in=8, cell=cell, hidden=8, bins_per_step=2, readout=readout)
        logits, spikes = net.forward(net.init(jax.random.PRNGKey(0)), {}, task.x_train[:4])
        assert logits.shape == (4, 10) and spikes.shape == (16, 4, 8) and np.all(np.isfinite(np.asarray(logits)))
    with pytest.raises(ParameterError, match="readout = 'softmax' is unknown: allowed li, li-mean, count"):
        rsnn.RSNN(n_in=8, cell=cell, readout="softmax")
    config = T.TrainConfig(**TINY)
    (x_tr, _), (x_va, _), (x_te, _) = T.split(config, task)
    assert len(x_va) == round(0.1 * len(task.x_train)) and len(x_tr) == 128 and len(x_te) == 64
    (x_all, _), (x_va2, _), _ = T.split(T.TrainConfig(**{**TINY, "n_train": None, "seed": 5}), task)
    assert len(x_all) + len(x_va2) == len(task.x_train) and np.array_equal(x_va, x_va2)   # fixed, seed-independent
    r = T.train(config)
    assert 1 <= r["best_epoch"] <= 2 and r["val_accuracy"] == max(row["val_accuracy"] for row in r["history"])
    assert 0.0 <= r["test_accuracy"] <= 1.0 and "test_accuracy" not in r["history"][0]


def test_resume_after_interruption_gives_the_same_weights(tmp_path):
    config = T.TrainConfig(**TINY)
    whole = T.train(config, tmp_path / "whole")
    first = T.train(config, tmp_path / "split", stop_after=1)
    assert first["epochs_done"] == 1
    resumed = T.train(config, tmp_path / "split")
    for k in whole["weights"]:
        np.testing.assert_array_equal(np.asarray(whole["weights"][k]), np.asarray(resumed["weights"][k]))
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]   # noqa: E731
    assert strip(resumed["history"]) == strip(whole["history"])                 # losses, accuracies, rates


def test_corrupt_or_foreign_checkpoint_is_refused(tmp_path):
    config = T.TrainConfig(**TINY)
    T.train(config, tmp_path, stop_after=1)
    ckpt = tmp_path / T.CHECKPOINT
    with pytest.raises(CheckpointError, match="hidden = 16"):
        T.train(T.TrainConfig(**{**TINY, "hidden": 17}), tmp_path)
    original = ckpt.read_bytes()
    # one flipped byte anywhere in a member's stored bytes (array data, array header, metadata)
    with zipfile.ZipFile(ckpt) as zf:
        members = {i.filename: i for i in zf.infolist()}
    for name in ("leaf_0000.npy", "meta.npy"):
        info = members[name]
        header = original[info.header_offset:info.header_offset + 30]
        start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
        for offset in (10, info.compress_size // 2, info.compress_size - 1):
            data = bytearray(original)
            data[start + offset] ^= 0xFF
            ckpt.write_bytes(bytes(data))
            with pytest.raises(CheckpointError, match="corrupt"):
                T.train(config, tmp_path)
    ckpt.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        T.train(config, tmp_path)


def test_bad_training_input_is_refused_with_the_allowed_values():
    with pytest.raises(ParameterError, match="task = 'mnist2d' is unknown: allowed mnist1d"):
        T.TrainConfig(task="mnist2d")
    with pytest.raises(ParameterError, match="unknown variant 'no_memory'"):
        T.TrainConfig(variant="no_memory")
    with pytest.raises(ParameterError, match="hidden = 0 is out of range"):
        T.TrainConfig(hidden=0)
    with pytest.raises(ParameterError, match="neuron = 'izhikevich' is unknown"):
        T.TrainConfig(neuron="izhikevich")
    with pytest.raises(ParameterError, match="unknown variant 'nope'"):
        A.resolve_variants(["full", "nope"])
    with pytest.raises(ParameterError, match="bins_per_step = 0 is out of range: a task step lasts a whole number"):
        T.TrainConfig(bins_per_step=0)
    with pytest.raises(ParameterError, match="train_sigma_d2d = -0.1 is out of range"):
        T.TrainConfig(train_sigma_d2d=-0.1)
    with pytest.raises(ParameterError, match="readout = 'rate' is unknown"):
        T.TrainConfig(readout="rate")
    with pytest.raises(ParameterError, match="input_map = 'tanh' is unknown: allowed linear, sigmoid"):
        T.TrainConfig(input_map="tanh")
    with pytest.raises(ParameterError, match="v_rest = 1.5 V is out of range"):
        cells.DeviceCell(P, v_rest=1.5)
    with pytest.raises(ParameterError, match=r"ready_width = -0.02 V is out of range: allowed \[0, 10\] V \(0: off\) or None"):
        T.TrainConfig(ready_width=-0.02)
    with pytest.raises(ParameterError, match="ready_width = 0 V is out of range"):
        neuron.Bin(ready_width=0)
    assert T.TrainConfig(neuron="lif", ready_width=0).ready_width == 0
    with pytest.raises(ParameterError, match="ready_width applies to the 1m1t1r neuron only"):
        T.TrainConfig(neuron="lif", ready_width=0.02)
    with pytest.raises(ParameterError, match=r"tau_out = -0.1 s is out of range: allowed \[1e-12, 1e3\] s"):
        T.TrainConfig(tau_out=-0.1)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--out", "/tmp/x", "--hidden", "-3"])
    assert r.exit_code == 2 and "hidden = -3 is out of range" in r.output
    r = runner.invoke(app, ["ablate", "--out", "/tmp/x", "--variants", "full,bogus"])
    assert r.exit_code == 2 and "unknown variant 'bogus'" in r.output


def test_a_step_with_a_non_finite_gradient_is_skipped_and_counted():
    """A gradient that overflowed (inf/NaN) leaves the weights and Adam's moments as they were and
    is counted; a finite one is applied as Adam with clipping would."""
    w = {"a": jnp.ones(3, jnp.float32)}
    opt = rsnn.optimizer(1e-2, 10)
    state = opt.init(w)
    upd, state = opt.update({"a": jnp.array([1.0, jnp.inf, 0.0], jnp.float32)}, state, w)
    assert np.all(np.asarray(upd["a"]) == 0) and int(state.total_notfinite) == 1
    upd, state = opt.update({"a": jnp.array([1.0, -1.0, 0.0], jnp.float32)}, state, w)
    np.testing.assert_allclose(np.asarray(upd["a"]), [-1e-2, 1e-2, 0.0], atol=1e-6)   # Adam's first step: -lr sign(g)
    assert int(state.total_notfinite) == 1


def test_ready_width_silences_the_surrogate_of_a_gate_above_threshold():
    """The spike's surrogate derivative with ``ready_width``: unchanged (x 1/(1 + e^{-11})) for a
    gate at rest, ~0 for one held above V_T at the bin's start (it cannot cross upward), and the
    forward values never change. ``TrainConfig`` carries it; without it the config dict is as
    before the field existed (earlier runs and models still match)."""
    p = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), P.deterministic())

    def d_spike(spec, v_g):
        state = neuron.LayerState(jnp.array([0.5]), jnp.array([0.3]), jnp.array([v_g]))
        f = lambda a: neuron.bin_step(state, a, p, spec)[1][0]   # noqa: E731
        return float(f(jnp.array([1.2]))), float(jax.grad(f)(jnp.array([1.2]))[0])

    plain, ready = neuron.Bin(), neuron.Bin(ready_width=0.02)
    for v_g in (0.0, 0.5):
        (s0, g0), (s1, g1) = d_spike(plain, v_g), d_spike(ready, v_g)
        assert s0 == s1 and g0 > 0
        if v_g == 0.0:
            assert g1 == pytest.approx(g0, rel=1e-4)
        else:
            assert g1 < 1e-5 * g0
    cfg = T.TrainConfig()                       # on by default for the device neuron
    assert cfg.ready_width == 0.02 and cfg.to_dict()["ready_width"] == 0.02 and T.device_bin(cfg).ready_width == 0.02
    assert T.TrainConfig.from_dict(cfg.to_dict()) == cfg
    off = T.TrainConfig(ready_width=0)          # off: the config dict is as before the field existed
    assert "ready_width" not in off.to_dict() and T.device_bin(off).ready_width is None
    assert T.TrainConfig.from_dict(off.to_dict()) == off                    # an earlier file reads back as off
    assert "ready_width" not in T.TrainConfig(neuron="lif").to_dict()      # LIF: never on, configs as before


def test_the_lower_rate_penalty_pushes_only_neurons_below_the_floor():
    """The lower-rate penalty adds ``floor_weight * mean relu(rate_floor - r)^2`` to the loss and its
    gradient raises the bias of a neuron that fires below the floor (here: never), leaving one that
    fires at every bin untouched. ``TrainConfig`` carries it (off by default: the config dict of a
    run without it is as before the field existed), and a file without it reads back as none."""
    cell = cells.LIFCell(neuron.Bin(), tau_mem=1.0)
    x = jnp.zeros((4, 5, 1), jnp.float32)
    y = jnp.zeros(4, jnp.int32)
    plain = rsnn.RSNN(n_in=1, cell=cell, hidden=2, n_out=2, bins_per_step=1)
    floored = rsnn.RSNN(n_in=1, cell=cell, hidden=2, n_out=2, bins_per_step=1, rate_floor=0.5, floor_weight=10.0)
    w = plain.init(jax.random.key(0))
    w["w_rec"] = jnp.zeros_like(w["w_rec"])
    w["b"] = jnp.array([-0.5, 2.0], jnp.float32)       # neuron 0 never reaches the threshold, neuron 1 fires every bin
    (l0, (_, spikes)), g0 = jax.value_and_grad(plain.loss, has_aux=True)(w, {}, x, y)
    (l1, _), g1 = jax.value_and_grad(floored.loss, has_aux=True)(w, {}, x, y)
    np.testing.assert_array_equal(np.asarray(spikes.mean(axis=(0, 1))), [0.0, 1.0])
    assert float(l1 - l0) == pytest.approx(10.0 * 0.5 ** 2 / 2, rel=1e-6)
    extra = np.asarray(g1["b"] - g0["b"])
    assert extra[0] < 0 and extra[1] == 0             # descent raises the silent neuron's bias only
    assert T.TrainConfig().floor_weight == T.DEFAULT_FLOOR_WEIGHT["1m1t1r"] == 0
    assert "floor_weight" not in T.TrainConfig().to_dict() and "floor_weight" not in T.TrainConfig(neuron="lif").to_dict()
    on = T.TrainConfig(floor_weight=3000)
    assert on.to_dict()["floor_weight"] == 3000 and T.TrainConfig.from_dict(on.to_dict()) == on
    net, _ = T.build(on, tasks.mnist1d())
    assert (net.rate_floor, net.floor_weight) == (T.RATE_FLOOR, 3000)
    legacy = {k: v for k, v in on.to_dict().items() if k != "floor_weight"}
    assert T.TrainConfig.from_dict(legacy).floor_weight == 0
    with pytest.raises(ParameterError, match=r"floor_weight = -1 is out of range: allowed \[0, 1e6\)"):
        T.TrainConfig(floor_weight=-1)
    with pytest.raises(ParameterError, match=r"rate_floor = 2 spikes per bin is out of range: allowed \[0, 1\]"):
        rsnn.RSNN(n_in=1, cell=cell, rate_floor=2)


def test_input_maps_reach_the_paper_range_and_saturate_without_gradient():
    """The linear map: 0.6 V at zero drive, 0.3 V per unit, clipped to 0-1.2 V with no gradient beyond
    (a harder pulse does nothing more); the sigmoid map (the default) keeps a gradient everywhere."""
    lin = cells.DeviceCell(P, input_map="linear")
    sig = cells.DeviceCell(P)
    d = jnp.array([-5.0, -1.0, 0.0, 1.0, 1.9, 5.0])
    np.testing.assert_allclose(lin.amplitude(d), [0.0, 0.3, 0.6, 0.9, 1.17, 1.2], atol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(lin.amplitude))(d), [0.0, 0.3, 0.3, 0.3, 0.3, 0.0], atol=1e-7)
    assert float(sig.amplitude(0.0)) == pytest.approx(0.6) and float(jax.grad(sig.amplitude)(5.0)) > 0
    assert lin.describe()["input_map"] == "linear" and "input_map" not in sig.describe()


def test_energy_per_inference_adds_neurons_output_stages_and_crossbar_reads():
    e = energy.per_inference(10.0, n_in=8, hidden=16, n_out=10, bins=64,
                             spike_energy_J={"paper": {"neuron": 6e-12, "output_stage": 1e-8}}, read_energy_J=1e-15)
    reads = 10 * (16 + 10) + 64 * 8 * 16
    row = e["per_preset"]["paper"]
    assert e["synapse_reads"] == reads
    assert row["neurons_J"] == pytest.approx(6e-11, abs=0) and row["output_stages_J"] == pytest.approx(1e-7, abs=0)
    assert row["total_J"] == pytest.approx(6e-11 + 1e-7 + reads * 1e-15, abs=0)
    with pytest.raises(ParameterError, match="read_energy"):
        energy.read_energy("-1 fJ")


@pytest.mark.slow
def test_ablate_command_writes_results_table_and_figures(tmp_path, monkeypatch):
    # the circuit's energy per spike is measured by the energy protocol (tested in the characteristics
    # suite); here a fixed table keeps this test to the study's own bookkeeping
    monkeypatch.setattr(energy, "spike_energies", lambda presets=energy.PRESETS: {
        p: {"neuron": 1e-12, "output_stage": 1e-9} for p in presets})
    out = tmp_path / "ab"
    r = CliRunner().invoke(app, ["ablate", "--out", str(out), "--task", "digits", "--variants", "full,no_ip,lif",
                                 "--seeds", "2", "--epochs", "1", "--hidden", "12", "--n-train", "96", "--patience", "3"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["patience"] == 3 and res["settings"]["epochs"] == 1
    v = res["tasks"]["digits"]["variants"]
    assert set(v) == {"full", "no_ip", "lif"}
    assert v["full"]["seeds"] == 2 and len(v["no_ip"]["accuracy"]) == 2
    assert res["tasks"]["digits"]["bin_period_s"] == 2e-3                  # paper preset: 1 ms on / 1 ms off
    p, p_holm = v["no_ip"]["p_value_vs_full"], v["no_ip"]["p_holm_vs_full"]
    assert (p is None and p_holm is None) or p_holm >= p                   # Holm never lowers a p-value
    ci = v["full"]["accuracy_ci95"]
    assert ci[0] <= v["full"]["accuracy_mean"] <= ci[1]
    assert "beta = 0" in v["no_ip"]["note"]
    for preset in energy.PRESETS:
        assert v["full"]["energy"]["per_preset"][preset]["total_J"] > 0
    ops = v["full"]["energy"]["synops"]                                      # NeuroBench's form, next to energy
    assert ops["effective_acs"] == pytest.approx(v["full"]["spikes_per_sample"] * (12 + 10))
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("task,variant") and len(rows) == 4
    for name in ("accuracy_by_variant.png", "learning_curves.png", "raster.png"):
        assert (out / name).stat().st_size > 10_000
    # a rerun finds every run finished and trains nothing (same table)
    before = (out / "results.json").read_text()
    r = CliRunner().invoke(app, ["ablate", "--out", str(out), "--task", "digits", "--variants", "full,no_ip,lif",
                                 "--seeds", "2", "--epochs", "1", "--hidden", "12", "--n-train", "96", "--patience", "3"])
    timing = ("wall_time_s", "invocations", "wall_time_all_invocations_s")
    strip = lambda d: {k: v for k, v in d.items() if k not in timing}   # noqa: E731
    after = json.loads((out / "results.json").read_text())
    assert r.exit_code == 0 and strip(after) == strip(json.loads(before))
    # the study's wall time adds up every invocation (the ledger), not only the last one
    ledger = json.loads((out / "invocations.json").read_text())
    assert [i["finished"] for i in ledger] == [True, True] and after["invocations"] == 2
    assert after["wall_time_all_invocations_s"] == pytest.approx(sum(i["wall_time_s"] for i in ledger))
    assert after["wall_time_all_invocations_s"] > json.loads(before)["wall_time_s"] > after["wall_time_s"] > 0


def test_ablate_a_device_of_ones_own(tmp_path):
    """``ablate --preset FILE --rate-weight W``: the study of a device other than the paper's; the
    penalty's weight is the 1M1T1R runs' only (the baselines keep their own), both are in the runs'
    configs and results.json. Variants that would be the full neuron of that preset (no_ip and
    short_ip without a residue, no_refractory at its own R_c) are left out, with why, not trained
    as copies of it. A preset whose variants cannot re-fit mu is refused before training."""
    design = str(Path(__file__).resolve().parents[1] / "examples" / "no_residue_fast_gate.toml")
    out = tmp_path / "ab"
    r = CliRunner().invoke(app, ["ablate", "--out", str(out), "--task", "digits", "--variants",
                                 "lif,no_ip,short_ip,no_refractory", "--seeds", "1",
                                 "--epochs", "1", "--hidden", "8", "--n-train", "64", "--preset", design,
                                 "--rate-weight", "300", "--lr", "3e-3"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["preset"] == design and res["device_settings"] == {"rate_weight": 300.0, "lr": 3e-3}
    assert res["variants"] == ["full", "lif"] and set(res["tasks"]["digits"]["variants"]) == {"full", "lif"}
    assert sorted(res["left_out_variants"]) == ["no_ip", "no_refractory", "short_ip"]
    assert "beta = 0 already" in res["left_out_variants"]["no_ip"] and "10 MOhm" in res["left_out_variants"]["no_refractory"]
    assert "no_ip: left out" in r.output and sorted(p.name for p in (out / "runs" / "digits").iterdir()) == ["full", "lif"]
    full = json.loads((out / "runs" / "digits" / "full" / "seed0" / "result.json").read_text())["config"]
    lif = json.loads((out / "runs" / "digits" / "lif" / "seed0" / "result.json").read_text())["config"]
    assert (full["preset"], full["rate_weight"], full["lr"]) == (design, 300.0, 3e-3)
    assert (lif["rate_weight"], lif["lr"]) == (T.DEFAULT_RATE_WEIGHT["lif"], T.DEFAULT_LR["lif"])
    silent = tmp_path / "silent.toml"          # the drift's onset above the 0.8 V reference drive: never fires
    silent.write_text('name = "silent"\nextends = "paper"\n[memristor]\nv_h = "0.85 V"\n')
    r = CliRunner().invoke(app, ["ablate", "--out", str(tmp_path / "bad"), "--task", "digits", "--variants", "no_ip",
                                 "--seeds", "1", "--epochs", "1", "--hidden", "8", "--preset", str(silent)])
    assert r.exit_code == 2 and "--preset" in r.output and "fires no spike" in r.output, r.output
    r = CliRunner().invoke(app, ["ablate", "--out", str(tmp_path / "bad"), "--task", "digits", "--variants",
                                 "no_ip,short_ip", "--preset", design])
    assert r.exit_code == 2 and "leaves nothing to compare" in r.output and "beta = 0 already" in r.output, r.output
    assert "variants no_ip, short_ip" in r.output and "no_residue_fast_gate.toml" in r.output, r.output  # the option, the preset
    r = CliRunner().invoke(app, ["ablate", "--out", str(tmp_path / "bad"), "--rate-weight", "-1"])
    assert r.exit_code == 2 and "rate_weight = -1.0 is out of range" in r.output, r.output
    r = CliRunner().invoke(app, ["ablate", "--out", str(tmp_path / "bad"), "--lr", "0"])
    assert r.exit_code == 2 and "lr = 0.0 is out of range: allowed (0, 10)" in r.output, r.output
    assert not (tmp_path / "bad").exists()


def test_an_interrupted_invocation_is_in_the_ledger(tmp_path, monkeypatch):
    """Ctrl-C during a study still records the invocation's wall time in ``invocations.json`` (not
    finished), and writes no results.json; the next invocation's total counts it."""
    def interrupted(config, folder, task=None, progress=None):
        time.sleep(0.2)
        raise KeyboardInterrupt

    monkeypatch.setattr(A, "train_run", interrupted)
    settings = {"epochs": 1, "hidden": 12, "n_train": 96}
    with pytest.raises(KeyboardInterrupt):
        A.ablate(("digits",), ("full",), 1, out=tmp_path, overrides=settings)
    ledger = json.loads((tmp_path / "invocations.json").read_text())
    assert len(ledger) == 1 and ledger[0]["finished"] is False and ledger[0]["wall_time_s"] >= 0.2
    assert not (tmp_path / "results.json").exists()
    # a ledger that is not one stops the next invocation before it trains anything, and is left as it was
    (tmp_path / "invocations.json").write_text('{"not": "a list"}')
    with pytest.raises(CheckpointError, match="is not the study's invocation ledger"):
        A.ablate(("digits",), ("full",), 1, out=tmp_path, overrides=settings)
    assert (tmp_path / "invocations.json").read_text() == '{"not": "a list"}'


def test_a_diverged_run_is_reported_and_left_out_not_fatal(tmp_path, monkeypatch):
    """A run whose training diverges (train raises FloatingPointError: non-finite loss or weights)
    is listed in results.json's ``diverged_runs`` and the variant's note, its variant summarised over
    the seeds that finished; a variant with none left is left out of the table. (The divergence is
    injected: a real one takes hundreds of device bins, as on working memory.)"""
    monkeypatch.setattr(energy, "spike_energies", lambda presets=energy.PRESETS: {
        p: {"neuron": 1e-12, "output_stage": 1e-9} for p in presets})
    real = A.train_run

    def train_run(config, folder, task=None, progress=None):
        if (config.variant, config.seed) in (("no_ip", 1), ("no_leak", 0), ("no_leak", 1)):
            raise FloatingPointError("training diverged in epoch 1: non-finite loss or weights")
        return real(config, folder, task, progress)

    monkeypatch.setattr(A, "train_run", train_run)
    out = tmp_path / "ab"
    r = CliRunner().invoke(app, ["ablate", "--out", str(out), "--task", "digits", "--variants", "full,no_ip,no_leak",
                                 "--seeds", "2", "--epochs", "1", "--hidden", "12", "--n-train", "96"])
    assert r.exit_code == 0, r.output
    assert "diverged, left out: digits no_ip seed 1" in r.output
    res = json.loads((out / "results.json").read_text())
    v = res["tasks"]["digits"]["variants"]
    assert set(v) == {"full", "no_ip"} and v["no_ip"]["seeds"] == 1 and v["no_ip"]["diverged_seeds"] == [1]
    assert "training diverged for seed(s) [1]" in v["no_ip"]["note"]
    assert [(d["variant"], d["seed"]) for d in res["diverged_runs"]] == [("no_ip", 1), ("no_leak", 0), ("no_leak", 1)]
    assert not (out / "runs" / "digits" / "no_ip" / "seed1" / "result.json").exists()
    # with no finished run of the full neuron there is nothing to compare against: a one-line error, exit 1
    monkeypatch.setattr(A, "train_run", lambda config, folder, task=None, progress=None: (_ for _ in ()).throw(
        FloatingPointError("training diverged in epoch 1: non-finite loss in 3 of 3 batches")))
    r = CliRunner().invoke(app, ["ablate", "--out", str(tmp_path / "ab2"), "--task", "digits", "--variants", "full",
                                 "--seeds", "1", "--epochs", "1", "--hidden", "12", "--n-train", "96"])
    assert r.exit_code == 1 and "every run of the full neuron diverged" in r.output and "unexpected" not in r.output


def test_holm_and_the_t_interval_against_their_definitions():
    from scipy import stats

    adjusted = A.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1, made monotone: 0.03, 0.06, 0.06
    assert adjusted == {"a": pytest.approx(0.03), "c": pytest.approx(0.06), "b": pytest.approx(0.06), "d": None}
    values = [0.5, 0.6, 0.7]
    low, high = A.interval95(values)
    mean, sem = np.mean(values), stats.sem(values)
    assert (low, high) == pytest.approx(stats.t.interval(0.95, 2, loc=mean, scale=sem))
    assert A.interval95([0.5]) == (None, None)


def test_variability_aware_training_and_robustness(tmp_path):
    """A model trained with a fresh device spread per batch is saved with its selection; the
    robustness command evaluates it at several test-time spreads over fresh chips."""
    config = T.TrainConfig(**{**TINY, "train_sigma_d2d": 0.2, "epochs": 1})
    r = T.train(config, tmp_path / "m")
    assert (tmp_path / "m" / T.MODEL).is_file() and r["config"]["train_sigma_d2d"] == 0.2
    out = tmp_path / "rob"
    res = CliRunner().invoke(app, ["robustness", "--model", str(tmp_path / "m"), "--out", str(out), "--sigmas", "0,0.5",
                                   "--chips", "2", "--n-test", "32"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "robustness.json").read_text())
    rows = data["models"][0]["rows"]
    assert [row["sigma_d2d_ln_mu"] for row in rows] == [0.0, 0.5] and all(len(row["accuracy"]) == 2 for row in rows)
    assert (out / "robustness.png").stat().st_size > 10_000 and (out / "robustness.csv").read_text().count("\n") == 3
    for args, fragment in ((["--sigmas", "0,-0.1"], "sigma = -0.1 is out of range"),
                           (["--model", str(tmp_path)], "is not a trained model")):
        base = ["robustness", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "x")]
        bad = CliRunner().invoke(app, [a for a in base if a not in ("--model", str(tmp_path / "m"))] + args
                                 if args[0] == "--model" else base + args)
        assert bad.exit_code == 2 and fragment in " ".join(bad.output.split()), bad.output
    lif = T.train(T.TrainConfig(**{**TINY, "neuron": "lif", "epochs": 1}), tmp_path / "lif")
    assert lif["best_epoch"] == 1
    with pytest.raises(ParameterError, match="device variability applies to 1m1t1r networks only"):
        from ionspike.network import robustness as Rb
        Rb.evaluate_model(tmp_path / "lif")


@pytest.mark.slow
def test_ablate_on_dask_workers_gives_the_in_process_table_and_counts_each_epoch_once(tmp_path, monkeypatch):
    """The same study trained on a real local Dask cluster (2 worker processes) and in this
    process: the same accuracies and spike counts, and the progress reaches its total exactly once
    (it used to count the workers' epochs and then again while collecting the finished runs)."""
    from ionspike.runner import Runner

    monkeypatch.setattr(energy, "spike_energies", lambda presets=energy.PRESETS: {
        p: {"neuron": 1e-12, "output_stage": 1e-9} for p in presets})
    kw = dict(seeds=2, mode="quick", overrides={"hidden": 8, "epochs": 2, "n_train": 64})
    seen, resumed = [], []
    here = A.ablate(["digits"], ["full", "lif"], out=tmp_path / "here", **kw)
    with Runner(workers=2) as runner:
        on_workers = A.ablate(["digits"], ["full", "lif"], out=tmp_path / "dask", runner=runner,
                              progress=lambda d, n, label: seen.append((d, n)), **kw)
        # the finished study again on the workers: nothing is trained, and the finished runs' epochs are
        # reported at once, as a whole, before any worker reports (a resumed study's progress starts
        # where it stands)
        again = A.ablate(["digits"], ["full", "lif"], out=tmp_path / "here", runner=runner,
                         progress=lambda d, n, label: resumed.append((d, n)), **kw)
    total = 2 * 2 * 2
    assert seen and all(d <= n == total for d, n in seen) and seen[-1] == (total, total)
    assert resumed == [(total, total), (total, total)]
    assert seen[0] == (0, total)             # a fresh study starts at 0 before the workers report
    counts = [d for d, _ in seen]            # the workers report each epoch as it ends; the count never goes back
    assert counts == sorted(counts) and set(counts) == set(range(total + 1))
    assert again["tasks"] == here["tasks"]
    for v in ("full", "lif"):
        a, b = on_workers["tasks"]["digits"]["variants"][v], here["tasks"]["digits"]["variants"][v]
        assert a["accuracy"] == b["accuracy"] and a["spikes_per_sample"] == pytest.approx(b["spikes_per_sample"], rel=1e-6)
