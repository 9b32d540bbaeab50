"""The network's 1M1T1R layer (first piece of issue 6): same physics as simulate, coarse bins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ionspike as isp
from ionspike.errors import ParameterError
from ionspike.network import neuron as N

P = isp.presets.params("paper").deterministic()


def test_spikes_fall_in_the_bins_where_the_circuit_fires():
    ds = isp.simulate(P, isp.PulseTrain(0.8, 1e-3, 2e-3), duration="300 ms", dt=2e-6, signals=())
    t = ds.spike_time.values[0]
    t = t[np.isfinite(t)]                                               # 32 spikes, first at 90.89 ms
    for dtype in (jnp.float64, jnp.float32):
        p = jax.tree.map(lambda x: jnp.asarray(x, dtype), P)
        spikes, _ = N.run(jnp.full((150, 1), 0.8, dtype), p, N.Bin())
        bins = np.flatnonzero(np.asarray(spikes[:, 0]))
        np.testing.assert_array_equal(bins[:6], (t[:6] // 2e-3).astype(int))   # same bin, first six spikes
        assert abs(bins.size - t.size) <= 0.1 * t.size                    # count within 10 % (30 vs 32)
    # late in a 0.9 V train the gate stays above V_T between pulses and dips below it early in the
    # next one: those crossings count too (deterministic circuit 55 spikes in 300 ms, layer 53)
    stronger, _ = N.run(jnp.full((150, 1), 0.9), P, N.Bin())
    circuit = isp.simulate(P, isp.PulseTrain(0.9, 1e-3, 2e-3), duration="300 ms", dt=2e-6, signals=())
    n_circuit = int(np.isfinite(circuit.spike_time.values).sum())
    assert abs(float(stronger.sum()) - n_circuit) <= 0.1 * n_circuit
    weaker, _ = N.run(jnp.full((50, 1), 0.7), P, N.Bin())
    circuit = isp.simulate(P, isp.PulseTrain(0.7, 1e-3, 2e-3), duration="100 ms", dt=2e-6, signals=())
    assert np.isnan(circuit.spike_time.values[0, 0]) and not np.any(np.asarray(weaker))   # 0.7 V: neither fires


def test_surrogate_gradient_is_finite_and_nonzero_through_120_bins():
    p32 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), P)

    def count(scale):
        amps = scale * jnp.linspace(0.75, 0.95, 8, dtype=jnp.float32)[None, :] * jnp.ones((120, 1), jnp.float32)
        spikes, _ = N.run(amps, p32, N.Bin())
        return spikes.sum()

    g = jax.grad(count)(jnp.float32(1.0))
    assert np.isfinite(g) and g != 0.0


def test_bin_arguments_are_checked():
    with pytest.raises(ParameterError, match="width"):
        N.Bin(width=3e-3, period=2e-3)
    with pytest.raises(ParameterError, match="substeps_on"):
        N.Bin(substeps_on=0)


def test_rsnn_trains_by_bptt_through_the_device_physics():
    import optax

    from ionspike.network import cells, rsnn, tasks

    task = tasks.digits()
    x, y = task.x_train[:32], task.y_train[:32]
    net = rsnn.RSNN(n_in=8, cell=cells.DeviceCell(P, N.Bin(substeps_on=8, substeps_off=4)), hidden=24, bins_per_step=4)
    w = net.init(jax.random.PRNGKey(0))
    inst = net.draws(jax.random.PRNGKey(1))
    spec = (0.05, 1000)
    state = rsnn.optimizer(*spec).init(w)
    losses = []
    for i in range(25):
        w, state, loss, _ = rsnn.train_step(w, state, inst, x, y, jax.random.PRNGKey(i), net=net, opt_spec=spec)
        losses.append(float(loss))
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * losses[0]                     # learns the batch (BPTT through 32 bins)
    with pytest.raises(ParameterError, match="hidden"):
        rsnn.RSNN(n_in=8, cell=net.cell, hidden=0)


def test_noisy_layer_matches_the_noisy_circuit_statistics():
    """Chemical-Langevin noise in the layer: first-spike median and mean counts against the circuit
    (200 layer neurons, 50 circuit trials, 300 ms). Measured: at 0.8 V first spike bin 35-37 vs 35.5
    and counts 34.6 vs 40.9 (-15 %: near threshold the coarse layer fires less under noise);
    at 1.0 V counts 47.4 vs 46.3."""
    p = isp.presets.params("paper")
    p32 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), p)
    for amp, count_tol in ((0.8, 0.2), (1.0, 0.1)):
        ds = isp.simulate(p, isp.PulseTrain(amp, 1e-3, 2e-3), duration="300 ms", n=50, seed=0, dt=5e-6, signals=())
        t = ds.spike_time.values
        spikes, _ = N.run(jnp.full((150, 200), amp, jnp.float32), p32, N.Bin(), key=jax.random.PRNGKey(0))
        s = np.asarray(spikes)
        first_layer = np.median(np.argmax(s > 0, axis=0))
        first_circuit = np.median(t[:, 0] // 2e-3)
        assert abs(first_layer - first_circuit) <= 2
        assert abs(s.sum(0).mean() - np.isfinite(t).sum(1).mean()) <= count_tol * np.isfinite(t).sum(1).mean()
