"""The network's 1M1T1R layer (first piece of issue 6): same physics as simulate, coarse bins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ionspike as isp
from ionspike.errors import ParameterError
from ionspike.network import neuron as N

P = isp.presets.params("paper").deterministic()


def test_first_spike_falls_in_the_bin_where_the_circuit_fires():
    ds = isp.simulate(P, isp.PulseTrain(0.8, 1e-3, 2e-3), duration="100 ms", dt=2e-6, signals=())
    t_first = float(ds.spike_time.values[0, 0])                      # 90.89 ms
    spikes, _ = N.run(jnp.full((50, 1), 0.8), P, N.Bin(substeps_on=32, substeps_off=16))
    assert int(np.flatnonzero(np.asarray(spikes[:, 0]))[0]) == int(t_first // 2e-3)
    weaker, _ = N.run(jnp.full((50, 1), 0.7), P, N.Bin(substeps_on=32, substeps_off=16))
    assert not np.any(np.asarray(weaker))                           # 0.7 V: the circuit does not fire in 100 ms


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
