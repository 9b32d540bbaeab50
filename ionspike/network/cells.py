"""Neuron models a recurrent network can be built from, behind one interface (:class:`Cell`).

A cell turns each hidden neuron's *drive* (its crossbar column's weighted sum plus bias, one
value per bin) into spikes, one bin at a time:

* ``draws(key, hidden)``: the network instance's random realisation (device-to-device spread of
  mu); drawn once per network and kept, or redrawn per batch for variability-aware training.
* ``rest(batch, hidden)``: the state at the start of a sequence.
* ``step(state, drive, key, draws) -> (state, spikes)``: one bin; ``key`` drives the per-bin
  noise (None: none).
* ``describe()``: what the cell is, as JSON-ready data (its name, parameters).

:class:`DeviceCell` is the 1M1T1R neuron (:mod:`ionspike.network.neuron`, the circuit's laws per
bin); :class:`LIFCell` and :class:`ALIFCell` are the baselines people train today (leaky
integrate-and-fire with reset by subtraction; the adaptive-threshold LIF of Bellec et al. 2018),
stepped on the same bins so that every model sees the same task-time mapping. Classes are
abstract (:class:`Cell`) or final.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ionspike.errors import ParameterError
from ionspike.network.neuron import N_NORMALS, Bin, LayerState, bin_step, rest, spike_fn
from ionspike.params import NeuronParams


def float32_params(p: NeuronParams) -> NeuronParams:
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), p)


class Cell(abc.ABC):
    """The interface every neuron model of a network implements (see the module docstring)."""

    name: str = ""
    bin: Bin

    @abc.abstractmethod
    def draws(self, key, hidden: int, sigma_d2d: float | None = None) -> dict: ...

    @abc.abstractmethod
    def rest(self, batch: int, hidden: int) -> Any: ...

    @abc.abstractmethod
    def step(self, state, drive, key, draws) -> tuple[Any, jnp.ndarray]: ...

    @abc.abstractmethod
    def describe(self) -> dict: ...


INPUT_MAPS = ("linear", "sigmoid")


class DeviceState(NamedTuple):
    layer: LayerState      # F, R, V_g
    mu_cycle: jnp.ndarray  # the current cycle's factor of mu (cycle-to-cycle spread; 1 without)


@dataclass(frozen=True)
class DeviceCell(Cell):
    """The 1M1T1R neuron. A drive ``d`` becomes a pulse of ``amplitude(d)`` volts for ``bin.width``
    seconds of each bin, within the paper's input range ``[v_min, v_max]`` = 0-1.2 V:

    * ``input_map = "sigmoid"`` (the default): ``v_min + (v_max - v_min) sigmoid(d)``.
    * ``input_map = "linear"``: ``clip(v_rest + gain d, v_min, v_max)``, 0.6 V at zero drive and 0.3 V
      per unit of drive (the sigmoid's slope at zero), so the whole range is reached within |d| <= 2;
      where the input saturates it passes no gradient.

    Measured on MNIST-1D (deterministic cell, 128 hidden, validation accuracy; docs/model.md §7.4):
    after 6 epochs linear 56.5 % against sigmoid 48.3 %, but over 40 epochs linear is unstable at
    lr 1e-2 and 3e-3 (the rate creeps up and accuracy falls to 19-37 %); with lr 5e-3 and a rate
    penalty of 30 it reaches 61.8 % (test 59.4 %) against 60.5 % (test 56.4 %) for the sigmoid
    recipe, and on seed 1 51.3 % test against 55.7 % for the sigmoid at the same lr and penalty:
    no win, so the sigmoid stays the default.

    ``stochastic``: the chemical-Langevin noise of ``params.noise.n_eff`` and the spreads of mu
    (``sigma_d2d_ln_mu`` per device, ``sigma_c2c_ln_mu`` redrawn at every turn-on) are on (the
    default: the device is stochastic); each is on where the device has it (a device with
    N_eff = inf and a spread keeps the spread). The gradient policy is the layer's
    (:func:`ionspike.network.neuron.bin_step`): gate and gap feedback held, a logistic drift-onset
    derivative of ``bin.onset_width``, a fast-sigmoid spike derivative of the ionic state.
    """

    params: NeuronParams = field(compare=False)   # travels in the instance pytree, so variants share compiled code
    bin: Bin = field(default_factory=Bin)
    v_min: float = 0.0
    v_max: float = 1.2
    stochastic: bool = True
    name: str = "1m1t1r"
    input_map: str = "sigmoid"
    v_rest: float = 0.6      # V at zero drive (linear map)
    gain: float = 0.3        # V per unit of drive (linear map)

    def __post_init__(self):
        if not (isinstance(self.v_min, (int, float)) and isinstance(self.v_max, (int, float))
                and 0 <= self.v_min < self.v_max <= 100):
            raise ParameterError(f"v_min, v_max = {self.v_min!r}, {self.v_max!r} V: need 0 <= v_min < v_max <= 100 V")
        if self.input_map not in INPUT_MAPS:
            raise ParameterError(f"input_map = {self.input_map!r} is unknown: allowed {', '.join(INPUT_MAPS)}")
        if not (isinstance(self.v_rest, (int, float)) and self.v_min <= self.v_rest <= self.v_max):
            raise ParameterError(f"v_rest = {self.v_rest!r} V is out of range: allowed [v_min, v_max] = "
                                 f"[{self.v_min!r}, {self.v_max!r}] V")
        if not (isinstance(self.gain, (int, float)) and 0 < self.gain <= 100):
            raise ParameterError(f"gain = {self.gain!r} V per unit drive is out of range: allowed (0, 100]")
        # randomness on only where the device has some (a structural choice: part of the compiled code);
        # a device without noise (N_eff = inf) keeps its spreads of mu
        noise = self.params.noise
        object.__setattr__(self, "stochastic", bool(self.stochastic and (
            math.isfinite(float(np.max(noise.n_eff))) or float(np.max(noise.sigma_d2d_ln_mu)) > 0
            or float(np.max(noise.sigma_c2c_ln_mu)) > 0)))

    @property
    def noisy(self) -> bool:
        """The chemical-Langevin noise is on (stochastic, with a finite N_eff)."""
        return self.stochastic and math.isfinite(float(np.max(self.params.noise.n_eff)))

    @property
    def cycle_spread(self) -> bool:
        return self.stochastic and float(np.max(self.params.noise.sigma_c2c_ln_mu)) > 0

    def draws(self, key, hidden: int, sigma_d2d: float | None = None) -> dict:
        """The instance: float32 parameters and each neuron's device-to-device factor of mu
        (``sigma_d2d``: the spread of ln mu, default the preset's when stochastic, else 0)."""
        sigma = (float(np.max(self.params.noise.sigma_d2d_ln_mu)) if self.stochastic else 0.0) \
            if sigma_d2d is None else float(sigma_d2d)
        return {"params": float32_params(self.params),
                "mu_scale": jnp.exp(sigma * jax.random.normal(key, (hidden,), jnp.float32))}

    def rest(self, batch: int, hidden: int) -> DeviceState:
        return DeviceState(rest((batch, hidden), jnp.float32), jnp.ones((batch, hidden), jnp.float32))

    def amplitude(self, drive):
        """Pulse amplitude (V) of a drive (see ``input_map``)."""
        if self.input_map == "linear":
            return jnp.clip(self.v_rest + self.gain * drive, self.v_min, self.v_max)
        return self.v_min + (self.v_max - self.v_min) * jax.nn.sigmoid(drive)

    def step(self, state: DeviceState, drive, key, draws):
        p = draws["params"]
        normals = cycle = None
        n_draws = (N_NORMALS if self.noisy else 0) + int(self.cycle_spread)
        if n_draws and key is not None:
            z = jax.random.normal(key, (n_draws, *drive.shape), jnp.float32)
            normals = z[:N_NORMALS] if self.noisy else None
            cycle = z[-1] if self.cycle_spread else None
        mu_scale = draws["mu_scale"][None, :] * state.mu_cycle
        # no rematerialisation: the backward pass keeps only each bin's Jacobian (neuron.bin_step)
        layer, spikes, bridged = _device_bin(state.layer, self.amplitude(drive), p, mu_scale, normals, self.bin)
        mu_cycle = state.mu_cycle
        if cycle is not None:   # a new cycle's factor at every turn-on
            fresh = jnp.exp(p.noise.sigma_c2c_ln_mu * cycle)
            mu_cycle = jnp.where(jax.lax.stop_gradient(bridged), fresh, mu_cycle)
        return DeviceState(layer, mu_cycle), spikes

    def describe(self) -> dict:
        return {"name": self.name, "bin": {"width_s": self.bin.width, "period_s": self.bin.period,
                                           "substeps_on": self.bin.substeps_on},
                "input_V": [self.v_min, self.v_max],
                **({"input_map": "linear", "v_rest_V": self.v_rest, "gain_V": self.gain}
                   if self.input_map == "linear" else {}),   # sigmoid: described as before the map was a choice
                "stochastic": self.stochastic,
                "params": self.params.to_dict()}


def _device_bin(layer, amplitude, p, mu_scale, normals, spec):
    return bin_step(layer, amplitude, p, spec, mu_scale=mu_scale, normals=normals, with_bridge=True)


class LIFState(NamedTuple):
    v: jnp.ndarray   # membrane, in units of the threshold
    a: jnp.ndarray   # threshold adaptation (ALIF; zero for LIF)


@dataclass(frozen=True)
class _LeakyIntegrateAndFire(Cell):
    """Leaky integrate-and-fire on the same bins: ``v <- e^{-T/tau_mem} v + drive - s``, spike
    ``s = H(v - 1)`` with the same fast-sigmoid surrogate (reset by subtraction), ``T`` =
    ``bin.period``. With ``beta_adapt`` > 0 the threshold adapts (Bellec et al. 2018):
    ``1 + beta_adapt a``, ``a <- rho a + (1 - rho) s``, ``rho = e^{-T/tau_adapt}``."""

    bin: Bin = field(default_factory=Bin)
    tau_mem: float = 20e-3
    tau_adapt: float = 200e-3
    beta_adapt: float = 0.0
    surrogate_width: float = 0.5

    def __post_init__(self):
        for name in ("tau_mem", "tau_adapt", "surrogate_width"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed (0, inf)")
        if not (isinstance(self.beta_adapt, (int, float)) and self.beta_adapt >= 0):
            raise ParameterError(f"beta_adapt = {self.beta_adapt!r} is out of range: allowed [0, inf)")

    def draws(self, key, hidden: int, sigma_d2d: float | None = None) -> dict:
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

    def describe(self) -> dict:
        return {"name": self.name, "tau_mem_s": self.tau_mem, "tau_adapt_s": self.tau_adapt,
                "beta_adapt": self.beta_adapt, "bin_period_s": self.bin.period}


@dataclass(frozen=True)
class LIFCell(_LeakyIntegrateAndFire):
    """The LIF baseline (no threshold adaptation)."""

    name: str = "lif"

    def __post_init__(self):
        super().__post_init__()
        if self.beta_adapt != 0:
            raise ParameterError(f"beta_adapt = {self.beta_adapt!r}: a LIF cell has none (use ALIFCell)")


@dataclass(frozen=True)
class ALIFCell(_LeakyIntegrateAndFire):
    """The adaptive LIF baseline (Bellec et al. 2018: beta = 1.8, tau_adapt = 200 ms)."""

    beta_adapt: float = 1.8
    name: str = "alif"


@dataclass(frozen=True)
class NIRLIFCell(Cell):
    """A leaky integrate-and-fire population as NIR defines it, stepped on ionspike's bins:
    ``tau dv/dt = (v_leak - v) + r I`` with the input held over each bin of ``bin.period`` s (the
    exact update ``v <- d v + (1 - d)(v_leak + r I)``, ``d = e^{-T/tau}``), a spike when ``v`` reaches
    ``v_threshold`` (at most one per bin), then ``v <- v_reset`` (``reset="to"``, NIR's rule) or
    ``v <- v - v_threshold`` (``reset="subtract"``, ionspike's LIF). Per-neuron values are tuples
    (the cell is hashable, so networks of equal cells share compiled code). Used for NIR graphs
    that ionspike reads back (:mod:`ionspike.network.nir_io`) and for the LIF that approximates
    the 1M1T1R neuron in an NIR export."""

    bin: Bin
    tau: tuple
    r: tuple
    v_leak: tuple
    v_threshold: tuple
    v_reset: tuple
    reset: str = "to"
    surrogate_width: float = 0.5
    name: str = "nir-lif"

    def __post_init__(self):
        sizes = {len(getattr(self, k)) for k in ("tau", "r", "v_leak", "v_threshold", "v_reset")}
        if len(sizes) != 1:
            raise ParameterError(f"NIR LIF parameters have different lengths {sorted(sizes)}: allowed one per neuron")
        if not all(math.isfinite(t) and t > 0 for t in self.tau):
            raise ParameterError(f"tau = {min(self.tau)!r} s is out of range: allowed (0, inf) s")
        if self.reset not in ("to", "subtract"):
            raise ParameterError(f"reset = {self.reset!r} is unknown: allowed 'to' (NIR) or 'subtract'")

    def _arrays(self):
        f = lambda v: jnp.asarray(np.asarray(v, np.float64), jnp.float32)[None, :]  # noqa: E731  (1, neurons)
        decay = np.exp(-self.bin.period / np.asarray(self.tau, np.float64))
        return f(decay), f((1.0 - decay) * np.asarray(self.r)), f(self.v_leak), f(self.v_threshold), f(self.v_reset)

    def draws(self, key, hidden: int, sigma_d2d: float | None = None) -> dict:
        if hidden != len(self.tau):
            raise ParameterError(f"hidden = {hidden}: this NIR LIF population has {len(self.tau)} neurons")
        return {}

    def rest(self, batch: int, hidden: int) -> jnp.ndarray:
        return jnp.zeros((batch, hidden), jnp.float32)

    def step(self, v, drive, key, draws):
        decay, gain, v_leak, v_th, v_reset = self._arrays()
        v = decay * v + (1.0 - decay) * v_leak + gain * drive
        s = spike_fn(v - v_th, jnp.asarray(self.surrogate_width, v.dtype))
        if self.reset == "subtract":
            v = v - jax.lax.stop_gradient(v_th) * s
        else:
            v = v + jax.lax.stop_gradient(v_reset - v) * s
        return v, s

    def describe(self) -> dict:
        return {"name": self.name, "reset": self.reset, "bin_period_s": self.bin.period,
                "tau_s": [min(self.tau), max(self.tau)], "v_threshold": [min(self.v_threshold), max(self.v_threshold)]}
