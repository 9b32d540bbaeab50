"""A recurrent spiking network whose hidden neurons are any :mod:`ionspike.network.cells` cell.

Per input step, each hidden neuron receives ``bins_per_step`` bins of drive: its crossbar
column's weighted sum of the inputs and of the previous bin's hidden spikes, plus a bias
(the 1M1T1R cell maps that drive into a 0-1.2 V pulse). Readout: the spike count of each
hidden neuron over the sequence, through a linear layer to class logits; cross-entropy loss;
BPTT through the surrogate spikes.

Task time to device time: one input step = ``bins_per_step`` bins of ``cell.bin.period``
seconds (default 2 bins of 1 ms on / 1 ms off: a 40-step MNIST-1D sequence is 160 ms of device
time, about two first-spike latencies of the paper device at 0.8 V).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import optax

from ionspike.errors import ParameterError


@dataclass(frozen=True)
class RSNN:
    """Network shape and its neuron model (a cell)."""

    n_in: int
    cell: object
    hidden: int = 128
    n_out: int = 10
    bins_per_step: int = 2

    def __post_init__(self):
        for name in ("n_in", "hidden", "n_out", "bins_per_step"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1")

    def init(self, key) -> dict:
        """Trainable weights (float32): input and recurrent crossbars, bias, readout."""
        k1, k2, k3 = jax.random.split(key, 3)
        return {"w_in": jax.random.normal(k1, (self.n_in, self.hidden), jnp.float32) / jnp.sqrt(self.n_in),
                "w_rec": 0.5 * jax.random.normal(k2, (self.hidden, self.hidden), jnp.float32) / jnp.sqrt(self.hidden),
                "b": jnp.zeros(self.hidden, jnp.float32),
                "w_out": jax.random.normal(k3, (self.hidden, self.n_out), jnp.float32) / jnp.sqrt(self.hidden),
                "b_out": jnp.zeros(self.n_out, jnp.float32)}

    def draws(self, key):
        """The network instance's fixed device realisation (not trained)."""
        return self.cell.draws(key, self.hidden)

    def forward(self, weights: dict, draws, x, key=None):
        """``x``: (batch, steps, n_in); ``key``: noise of this pass (None: noise-free).
        Returns (logits (batch, n_out), spikes (steps * bins, batch, hidden))."""
        batch, steps = x.shape[0], x.shape[1]
        keys = None if key is None else jax.random.split(key, steps)

        def step(carry, inputs):
            x_t, k = inputs
            drive_in = x_t @ weights["w_in"] + weights["b"][None, :]

            def one_bin(c, i):
                state, s_prev, count = c
                kb = None if k is None else jax.random.fold_in(k, i)
                state, spk = self.cell.step(state, drive_in + s_prev @ weights["w_rec"], kb, draws)
                return (state, spk, count + spk), spk

            return jax.lax.scan(one_bin, carry, jnp.arange(self.bins_per_step))

        zeros = jnp.zeros((batch, self.hidden), jnp.float32)
        (_, _, count), spikes = jax.lax.scan(step, (self.cell.rest(batch, self.hidden), zeros, zeros),
                                             (jnp.swapaxes(jnp.asarray(x, jnp.float32), 0, 1), keys))
        logits = count @ weights["w_out"] + weights["b_out"][None, :]
        return logits, spikes.reshape(-1, batch, self.hidden)

    def loss(self, weights: dict, draws, x, y, key=None):
        logits, spikes = self.forward(weights, draws, x, key)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return ce, (logits, spikes)


def optimizer(lr: float, total_steps: int):
    """Adam with a cosine decay to 5 % of ``lr`` over ``total_steps``, gradients clipped at norm 1."""
    schedule = optax.cosine_decay_schedule(lr, max(int(total_steps), 1), alpha=0.05)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


@partial(jax.jit, static_argnames=("net", "opt_spec"))
def train_step(weights, opt_state, instance, x, y, key, *, net: RSNN, opt_spec: tuple):
    """One BPTT step: ``-> (weights, opt_state, loss, accuracy)``. ``opt_spec = (lr, total_steps)``
    (see :func:`optimizer`); networks equal in shape and cell share the compiled code."""
    (loss, (logits, _)), grads = jax.value_and_grad(net.loss, has_aux=True)(weights, instance, x, y, key)
    updates, opt_state = optimizer(*opt_spec).update(grads, opt_state, weights)
    return optax.apply_updates(weights, updates), opt_state, loss, jnp.mean(jnp.argmax(logits, -1) == y)


@partial(jax.jit, static_argnames=("net",))
def evaluate_batch(weights, instance, x, y, key, *, net: RSNN):
    """``-> (correct count, hidden spikes per sample)``."""
    logits, spikes = net.forward(weights, instance, x, key)
    return jnp.sum(jnp.argmax(logits, -1) == y), jnp.sum(spikes, axis=(0, 2))
