"""A recurrent spiking network whose hidden neurons are any :class:`ionspike.network.cells.Cell`.

Per input step each hidden neuron receives ``bins_per_step`` bins of drive: its crossbar column's
weighted sum of the inputs and of the previous bin's hidden spikes, plus a bias (the 1M1T1R cell
maps that drive into a 0-1.2 V pulse). Readouts (``readout``):

* ``"li"``: non-spiking leaky-integrator output neurons, ``u <- e^{-T/tau_out} u + W_out s``, per
  bin of period ``T``; the logits are ``max_t u_t + b_out`` (Cramer et al. 2020, Zenke & Vogels
  2021: the standard readout of recurrent SNNs on temporal tasks, and the one that suits a
  sparse, slow neuron: a class is read when its evidence peaks);
* ``"li-mean"``: the same with ``mean_t u_t``;
* ``"count"``: the spike count of each hidden neuron over the sequence through a linear layer.

Cross-entropy loss; BPTT through the cells' surrogate gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import optax

from ionspike.errors import ParameterError
from ionspike.network.cells import Cell

READOUTS = ("li", "li-mean", "count")


@dataclass(frozen=True)
class RSNN:
    """Network shape, its neuron model (a :class:`Cell`) and its readout; ``tau_out`` (s) is the
    leaky-integrator readout's time constant; ``rate_limit``/``rate_weight`` and
    ``rate_floor``/``floor_weight`` the upper and lower rate penalties (spikes per neuron and bin,
    see :meth:`loss`)."""

    n_in: int
    cell: Cell
    hidden: int = 128
    n_out: int = 10
    bins_per_step: int = 2
    readout: str = "li"
    tau_out: float = 20e-3
    rate_limit: float = 0.1
    rate_weight: float = 0.0
    rate_floor: float = 0.0
    floor_weight: float = 0.0

    def __post_init__(self):
        for name in ("n_in", "hidden", "n_out", "bins_per_step"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1")
        if not isinstance(self.cell, Cell):
            raise ParameterError(f"cell = {self.cell!r}: expected an ionspike.network.cells.Cell")
        if self.readout not in READOUTS:
            raise ParameterError(f"readout = {self.readout!r} is unknown: allowed {', '.join(READOUTS)}")
        if not (isinstance(self.tau_out, (int, float)) and self.tau_out > 0):
            raise ParameterError(f"tau_out = {self.tau_out!r} s is out of range: allowed (0, inf) s")
        for name in ("rate_limit", "rate_floor"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1):
                raise ParameterError(f"{name} = {v!r} spikes per bin is out of range: allowed [0, 1]")
        for name in ("rate_weight", "floor_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e6):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed [0, 1e6)")

    def init(self, key) -> dict:
        """Trainable weights (float32): input and recurrent crossbars, bias, readout."""
        k1, k2, k3 = jax.random.split(key, 3)
        return {"w_in": jax.random.normal(k1, (self.n_in, self.hidden), jnp.float32) / jnp.sqrt(self.n_in),
                "w_rec": 0.5 * jax.random.normal(k2, (self.hidden, self.hidden), jnp.float32) / jnp.sqrt(self.hidden),
                "b": jnp.zeros(self.hidden, jnp.float32),
                "w_out": jax.random.normal(k3, (self.hidden, self.n_out), jnp.float32) / jnp.sqrt(self.hidden),
                "b_out": jnp.zeros(self.n_out, jnp.float32)}

    def draws(self, key, sigma_d2d: float | None = None):
        """The network instance's device realisation (not trained); ``sigma_d2d`` overrides the
        spread of ln mu (variability-aware training and robustness tests)."""
        return self.cell.draws(key, self.hidden, sigma_d2d)

    def forward(self, weights: dict, draws, x, key=None):
        """``x``: (batch, steps, n_in); ``key``: noise of this pass (None: noise-free).
        Returns (logits (batch, n_out), spikes (steps * bins, batch, hidden))."""
        batch = x.shape[0]
        steps = x.shape[1]
        keys = None if key is None else jax.random.split(key, steps)
        kappa = math.exp(-self.cell.bin.period / self.tau_out)

        def step(carry, inputs):
            x_t, k = inputs
            drive_in = x_t @ weights["w_in"] + weights["b"][None, :]

            def one_bin(c, i):
                state, s_prev, u, best, total = c
                kb = None if k is None else jax.random.fold_in(k, i)
                state, spk = self.cell.step(state, drive_in + s_prev @ weights["w_rec"], kb, draws)
                if self.readout == "count":
                    return (state, spk, u, best, total + spk), spk
                u = kappa * u + spk @ weights["w_out"]
                return (state, spk, u, jnp.maximum(best, u), total + u), spk

            return jax.lax.scan(one_bin, carry, jnp.arange(self.bins_per_step))

        zeros_h = jnp.zeros((batch, self.hidden), jnp.float32)
        zeros_o = jnp.zeros((batch, self.n_out), jnp.float32)
        init = (self.cell.rest(batch, self.hidden), zeros_h, zeros_o, jnp.full_like(zeros_o, -jnp.inf),
                zeros_h if self.readout == "count" else zeros_o)
        (_, _, _, best, total), spikes = jax.lax.scan(step, init, (jnp.swapaxes(jnp.asarray(x, jnp.float32), 0, 1),
                                                                   keys))
        if self.readout == "count":
            logits = total @ weights["w_out"]
        elif self.readout == "li":
            logits = best
        else:
            logits = total / (steps * self.bins_per_step)
        return logits + weights["b_out"][None, :], spikes.reshape(-1, batch, self.hidden)

    def loss(self, weights: dict, draws, x, y, key=None):
        """Cross-entropy plus the two homeostatic rate penalties of Zenke & Vogels (2021), on
        ``r_n``, a hidden neuron's spikes per bin over the batch:

        * upper, with ``rate_weight`` > 0: ``rate_weight * mean_n relu(r_n - rate_limit)^2`` (keeps
          the network out of the runaway, saturated regime);
        * lower, with ``floor_weight`` > 0: ``floor_weight * mean_n relu(rate_floor - r_n)^2`` (keeps
          neurons from falling silent, where they pass no gradient and carry nothing)."""
        logits, spikes = self.forward(weights, draws, x, key)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        rate = jnp.mean(spikes, axis=(0, 1))
        if self.rate_weight > 0:
            ce = ce + self.rate_weight * jnp.mean(jax.nn.relu(rate - self.rate_limit) ** 2)
        if self.floor_weight > 0:
            ce = ce + self.floor_weight * jnp.mean(jax.nn.relu(self.rate_floor - rate) ** 2)
        return ce, (logits, spikes)


MAX_SKIPPED_IN_A_ROW = 10


def optimizer(lr: float, total_steps: int):
    """Adam with a cosine decay to 5 % of ``lr`` over ``total_steps``, gradients clipped at norm 1.

    A step whose gradient is not finite is skipped (weights and moments unchanged; up to
    :data:`MAX_SKIPPED_IN_A_ROW` in a row, after which it is applied and training stops on the
    non-finite weights): through hundreds of bins the BPTT product of a device's derivatives (its
    growth rate rises ~1/alpha = 100x as the gap closes) can overflow float32 in a batch whose loss
    is finite. The count is in the state (``total_notfinite``); ``train`` reports it per epoch."""
    schedule = optax.cosine_decay_schedule(lr, max(int(total_steps), 1), alpha=0.05)
    return optax.apply_if_finite(optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule)),
                                 MAX_SKIPPED_IN_A_ROW)


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
