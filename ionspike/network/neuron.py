r"""The 1M1T1R neuron as a network layer (issue 6, first piece): the circuit's own F/R/V_g
physics stepped one *bin* (one input-pulse period) at a time, batched, with a surrogate spike.

Per bin, a neuron's input is a pulse of amplitude ``a`` (V) for ``width`` seconds, then 0 V for
the rest of ``period``. Inside the bin the state takes ``substeps_on`` explicit-midpoint steps of
(F, R, V_g) during the pulse and ``substeps_off`` after it -- the circuit's own step,
:func:`ionspike.circuit.midpoint_step` -- so the same laws as :func:`ionspike.simulate`, only coarser
and without the drain (the spike is read at the gate: V_g through the transistor threshold).

Spike: 1 in a bin where V_g starts below V_T and reaches it, through a Heaviside with a
fast-sigmoid surrogate derivative of ``max V_g - V_T``. Backward pass: the filament's positive
feedback ``1/(alpha + |1 - x|)`` is held constant (``x_gap = stop_gradient(F + R)``): the
issue's finding is that differentiating through it explodes, while the forward pass stays exact.
Deterministic (no Langevin noise yet); float32 or float64 follow the inputs.

Status, measured against :func:`ionspike.simulate` (paper preset, 0.8 V, 1 ms / 2 ms, 300 ms):
with 16/8 sub-steps the first six spikes fall in the circuit's bins (90, 104, 114, 124, 132,
140 ms against 90.89 ... 140.86 ms), 30-31 spikes against 32, float32 identical to float64.
The one coarse-step approximation: growth within a sub-step stops at the bridge (x = 1), as
the circuit's gate then charges through R_on within ~10 us and removes the drive; without it,
x overshot to ~1.1, the gate discharged through the DM after the pulse and a spurious second
spike followed in the next bin (38-49 spikes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ionspike.circuit import midpoint_step
from ionspike.errors import ParameterError
from ionspike.params import NeuronParams


class LayerState(NamedTuple):
    F: jnp.ndarray     # filament, (..., neurons)
    R: jnp.ndarray     # residue
    V_g: jnp.ndarray   # gate voltage, V


@dataclass(frozen=True)
class Bin:
    """One network time bin: pulse ``width`` s within ``period`` s; sub-steps per phase;
    ``surrogate_width`` V: the fast-sigmoid scale of the spike's surrogate derivative."""

    width: float = 1e-3
    period: float = 2e-3
    substeps_on: int = 16
    substeps_off: int = 8
    surrogate_width: float = 0.05

    def __post_init__(self):
        if not (0 < self.width <= self.period):
            raise ParameterError(f"width = {self.width} s is out of range: allowed (0, period = {self.period}] s")
        for name in ("substeps_on", "substeps_off"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ParameterError(f"{name} = {getattr(self, name)!r} is out of range: allowed integers >= 1")
        if not self.surrogate_width > 0:
            raise ParameterError(f"surrogate_width = {self.surrogate_width} V is out of range: allowed (0, inf)")


@jax.custom_jvp
def spike_fn(u, width):
    """Heaviside of ``u`` (V) with the fast-sigmoid surrogate derivative ``1/(1 + |u|/width)^2 / width``."""
    return (u >= 0).astype(u.dtype)


@spike_fn.defjvp
def _spike_jvp(primals, tangents):
    u, width = primals
    du, _ = tangents
    return spike_fn(u, width), du / (width * (1.0 + jnp.abs(u) / width) ** 2)


def rest(shape, dtype=jnp.float32) -> LayerState:
    z = jnp.zeros(shape, dtype)
    return LayerState(z, z, z)


def _phase(state: LayerState, v_in, p: NeuronParams, h, n: int):
    """``n`` midpoint steps of ``h`` s at input ``v_in`` (V); returns the state and the largest V_g."""
    def one(carry, _):
        F, R, V, vmax = carry
        F_new, R_new, V_new, _ = midpoint_step(F, R, V, v_in, p, h, hold_feedback=True)
        # a coarse step must not carry growth past the bridge: once x = 1 the gate charges through
        # R_on in R_on C_g (~10 us), the drive V_in - V_g falls below v_h and growth stops
        F_new = jnp.minimum(F_new, jnp.maximum(F, 1.0 - R_new))
        return (F_new, R_new, V_new, jnp.maximum(vmax, V_new)), None

    (F, R, V, vmax), _ = jax.lax.scan(one, (state.F, state.R, state.V_g, state.V_g), None, length=n)
    return LayerState(F, R, V), vmax


def bin_step(state: LayerState, amplitude, p: NeuronParams, spec: Bin = Bin()):
    """Advance every neuron one bin with input pulses of ``amplitude`` (V, same shape as the state).

    Returns ``(new_state, spikes)``; ``spikes`` is 0/1 with a surrogate gradient.
    """
    v_t = p.transistor.threshold
    start_below = jax.lax.stop_gradient(state.V_g < v_t)
    s, vmax_on = _phase(state, amplitude, p, spec.width / spec.substeps_on, spec.substeps_on)
    vmax = vmax_on
    if spec.period > spec.width:
        s, vmax_off = _phase(s, jnp.zeros_like(amplitude), p, (spec.period - spec.width) / spec.substeps_off,
                             spec.substeps_off)
        vmax = jnp.maximum(vmax, vmax_off)
    spikes = spike_fn(vmax - v_t, jnp.asarray(spec.surrogate_width, vmax.dtype)) * start_below.astype(vmax.dtype)
    return s, spikes


def run(amplitudes, p: NeuronParams, spec: Bin = Bin(), state: LayerState | None = None):
    """Drive neurons with ``amplitudes`` (bins, ...) V; returns ``(spikes (bins, ...), final state)``."""
    amplitudes = jnp.asarray(amplitudes)
    state = rest(amplitudes.shape[1:], amplitudes.dtype) if state is None else state

    def body(s, a):
        s, spk = bin_step(s, a, p, spec)
        return s, spk

    final, spikes = jax.lax.scan(body, state, amplitudes)
    return spikes, final
