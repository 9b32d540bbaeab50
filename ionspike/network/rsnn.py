"""A recurrent spiking network of 1M1T1R neurons (issue 6, first training loop).

Per input step, each hidden neuron receives ``bins_per_step`` voltage pulses whose amplitude is
its crossbar column's weighted sum of the inputs and of the previous bin's hidden spikes, plus a
bias, mapped into the device's input range by a logistic, ``v_min + (v_max - v_min) sigmoid(.)``
(0-1.2 V by default, as in the paper). The neurons are :mod:`ionspike.network.neuron` (the
circuit's physics per bin). Readout: the spike count of each hidden neuron over the sequence,
through a linear layer to class logits; cross-entropy loss; BPTT through the surrogate spikes.
Task time to device time: one input step = ``bins_per_step`` bins of ``Bin.period`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import optax

from ionspike.errors import ParameterError
from ionspike.network.neuron import Bin, bin_step, rest
from ionspike.params import NeuronParams


@dataclass(frozen=True)
class RSNN:
    """Network shape and input mapping. ``v_min``/``v_max``: V, the pulse amplitude range."""

    n_in: int
    hidden: int = 128
    n_out: int = 10
    bins_per_step: int = 2
    v_min: float = 0.0
    v_max: float = 1.2
    bin: Bin = field(default_factory=Bin)

    def __post_init__(self):
        for name in ("n_in", "hidden", "n_out", "bins_per_step"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1")
        if not (0 <= self.v_min < self.v_max):
            raise ParameterError(f"v_min, v_max = {self.v_min}, {self.v_max} V: need 0 <= v_min < v_max")

    def init(self, key) -> dict:
        """Weights (float32): input and recurrent crossbars, bias, readout."""
        k1, k2, k3 = jax.random.split(key, 3)
        return {"w_in": jax.random.normal(k1, (self.n_in, self.hidden), jnp.float32) / jnp.sqrt(self.n_in),
                "w_rec": 0.5 * jax.random.normal(k2, (self.hidden, self.hidden), jnp.float32) / jnp.sqrt(self.hidden),
                "b": jnp.zeros(self.hidden, jnp.float32),
                "w_out": jax.random.normal(k3, (self.hidden, self.n_out), jnp.float32) / jnp.sqrt(self.hidden),
                "b_out": jnp.zeros(self.n_out, jnp.float32)}

    def forward(self, weights: dict, x, p: NeuronParams):
        """``x``: (batch, steps, n_in). Returns (logits (batch, n_out), spikes (steps * bins, batch, hidden))."""
        batch = x.shape[0]

        def step(carry, x_t):
            state, s_prev, count = carry
            drive_in = x_t @ weights["w_in"] + weights["b"][None, :]

            def one_bin(c, _):
                state, s_prev, count = c
                amp = self.v_min + (self.v_max - self.v_min) * jax.nn.sigmoid(drive_in + s_prev @ weights["w_rec"])
                state, spk = bin_step(state, amp, p, self.bin)
                return (state, spk, count + spk), spk

            carry, spikes = jax.lax.scan(one_bin, (state, s_prev, count), None, length=self.bins_per_step)
            return carry, spikes

        zeros = jnp.zeros((batch, self.hidden), jnp.float32)
        (_, _, count), spikes = jax.lax.scan(step, (rest((batch, self.hidden)), zeros, zeros),
                                             jnp.swapaxes(jnp.asarray(x, jnp.float32), 0, 1))
        logits = count @ weights["w_out"] + weights["b_out"][None, :]
        return logits, spikes.reshape(-1, batch, self.hidden)

    def loss(self, weights: dict, x, y, p: NeuronParams):
        logits, spikes = self.forward(weights, x, p)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return ce, (logits, spikes)


def float32_params(p: NeuronParams) -> NeuronParams:
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), p)


def make_train_step(net: RSNN, p: NeuronParams, optimizer):
    """A jitted ``(weights, opt_state, x, y) -> (weights, opt_state, loss, accuracy)``."""
    p32 = float32_params(p)

    @jax.jit
    def train_step(weights, opt_state, x, y):
        (loss, (logits, _)), grads = jax.value_and_grad(net.loss, has_aux=True)(weights, x, y, p32)
        updates, opt_state = optimizer.update(grads, opt_state, weights)
        return optax.apply_updates(weights, updates), opt_state, loss, jnp.mean(jnp.argmax(logits, -1) == y)

    return train_step


def make_eval(net: RSNN, p: NeuronParams):
    p32 = float32_params(p)

    @jax.jit
    def evaluate(weights, x, y):
        logits, spikes = net.forward(weights, x, p32)
        return jnp.mean(jnp.argmax(logits, -1) == y), jnp.mean(spikes)

    return evaluate
