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
        assert abs(bins.size - t.size) <= 0.1 * t.size                    # count within 10 % (30-31 vs 32)
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
