"""Neuron models a recurrent network can be built from, behind one interface.

A cell turns each hidden neuron's *drive* (its crossbar column's weighted sum plus bias, one
value per bin) into spikes, one bin at a time:

* ``draws(key, hidden)``: the network instance's fixed random realisation (device-to-device
  spread of mu); drawn once per network, kept through training and evaluation.
* ``rest(batch, hidden)``: the state at the start of a sequence.
* ``step(state, drive, key, draws) -> (state, spikes)``: one bin; ``key`` drives the
  per-bin noise (None: none).

:class:`DeviceCell` is the 1M1T1R neuron (:mod:`ionspike.network.neuron`, the circuit's own
physics per bin); :class:`LIFCell` and :class:`ALIFCell` are the baselines people train today
(leaky integrate-and-fire with reset by subtraction; the adaptive-threshold LIF of Bellec et
al. 2018), stepped on the same bins so that every model sees the same task-time mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ionspike.errors import ParameterError
from ionspike.network.neuron import SURROGATES, Bin, LayerState, bin_step, rest, spike_fn
from ionspike.params import NeuronParams


def float32_params(p: NeuronParams) -> NeuronParams:
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), p)


@dataclass(frozen=True)
class DeviceCell:
    """The 1M1T1R neuron. A drive ``d`` becomes a pulse of ``v_min + (v_max - v_min) sigmoid(d)``
    volts (0-1.2 V by default, the paper's input range) for ``bin.width`` seconds of each bin.

    ``stochastic``: chemical-Langevin noise of ``params.noise.n_eff`` and the device-to-device
    spread ``sigma_d2d_ln_mu`` are on (the default: the device is stochastic).
    ``surrogate``/``hold_gate``/``onset_width``: how the backward pass treats the spike, the gate
    feedback and the drift onset (see :func:`ionspike.network.neuron.bin_step`); forward values
    never depend on them. Defaults: what learned best on sklearn digits (64 hidden, 5 epochs,
    lr 0.03; test accuracy): ionic surrogate 53 % vs gate surrogate 40 %; held gate feedback
    53 % vs 50 %; onset surrogate 66 % vs 62 % (one seed each).
    """

    params: NeuronParams = field(compare=False)   # travels in the instance pytree, so variants share compiled code
    bin: Bin = field(default_factory=Bin)
    v_min: float = 0.0
    v_max: float = 1.2
    stochastic: bool = True
    surrogate: str = "ionic"
    hold_gate: bool = True
    onset_width: float | None = 0.05
    kind: str = "1m1t1r"

    def __post_init__(self):
        if not (0 <= self.v_min < self.v_max):
            raise ParameterError(f"v_min, v_max = {self.v_min}, {self.v_max} V: need 0 <= v_min < v_max")
        if self.surrogate not in SURROGATES:
            raise ParameterError(f"surrogate = {self.surrogate!r} is not one of {SURROGATES}")
        # noise on only where the device has some (a structural choice: part of the compiled code)
        object.__setattr__(self, "stochastic",
                           bool(self.stochastic and math.isfinite(float(np.max(self.params.noise.n_eff)))))

    def draws(self, key, hidden: int) -> dict:
        """The instance: float32 parameters and each neuron's device-to-device factor of mu."""
        sigma = float(np.max(self.params.noise.sigma_d2d_ln_mu)) if self.stochastic else 0.0
        return {"params": float32_params(self.params),
                "mu_scale": jnp.exp(sigma * jax.random.normal(key, (hidden,), jnp.float32))}

    def rest(self, batch: int, hidden: int) -> LayerState:
        return rest((batch, hidden), jnp.float32)

    def amplitude(self, drive):
        """Pulse amplitude (V) of a drive."""
        return self.v_min + (self.v_max - self.v_min) * jax.nn.sigmoid(drive)

    def step(self, state: LayerState, drive, key, draws):
        return bin_step(state, self.amplitude(drive), draws["params"], self.bin, mu_scale=draws["mu_scale"][None, :],
                        key=key if self.stochastic else None, surrogate=self.surrogate, hold_gate=self.hold_gate,
                        onset_width=self.onset_width)


class LIFState(NamedTuple):
    v: jnp.ndarray   # membrane, in units of the threshold
    a: jnp.ndarray   # threshold adaptation (ALIF; zero for LIF)


@dataclass(frozen=True)
class LIFCell:
    """Leaky integrate-and-fire on the same bins: ``v <- e^{-T/tau_mem} v + drive - s``, spike
    ``s = H(v - 1)`` with the same fast-sigmoid surrogate (reset by subtraction).

    ``tau_mem`` in seconds; ``T`` = ``bin.period``. With ``tau_adapt`` and ``beta_adapt`` > 0
    it is the ALIF of Bellec et al. (2018): threshold ``1 + beta_adapt a``,
    ``a <- rho a + (1 - rho) s``, ``rho = e^{-T/tau_adapt}`` (Bellec's normalisation).
    """

    bin: Bin = field(default_factory=Bin)
    tau_mem: float = 20e-3
    tau_adapt: float = 200e-3
    beta_adapt: float = 0.0
    surrogate_width: float = 0.5
    kind: str = "lif"

    def __post_init__(self):
        for name in ("tau_mem", "tau_adapt", "surrogate_width"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name} = {getattr(self, name)} is out of range: allowed (0, inf)")
        if not self.beta_adapt >= 0:
            raise ParameterError(f"beta_adapt = {self.beta_adapt} is out of range: allowed [0, inf)")

    def draws(self, key, hidden: int) -> dict:
        return {}

    def rest(self, batch: int, hidden: int) -> LIFState:
        z = jnp.zeros((batch, hidden), jnp.float32)
        return LIFState(z, z)

    def step(self, state: LIFState, drive, key, draws):
        decay = math.exp(-self.bin.period / self.tau_mem)
        rho = math.exp(-self.bin.period / self.tau_adapt)
        threshold = 1.0 + self.beta_adapt * state.a
        v = decay * state.v + drive
        s = spike_fn(v - threshold, jnp.asarray(self.surrogate_width, v.dtype))
        v = v - jax.lax.stop_gradient(threshold) * s
        return LIFState(v, rho * state.a + (1.0 - rho) * s if self.beta_adapt > 0 else state.a), s


def ALIFCell(bin: Bin = Bin(), tau_mem: float = 20e-3, tau_adapt: float = 200e-3, beta_adapt: float = 1.8,
             surrogate_width: float = 0.5) -> LIFCell:
    """The adaptive LIF baseline (Bellec et al. 2018, beta = 1.8, tau_adapt = 200 ms of bins)."""
    return LIFCell(bin, tau_mem, tau_adapt, beta_adapt, surrogate_width, kind="alif")
