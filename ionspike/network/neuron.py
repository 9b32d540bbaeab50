r"""The 1M1T1R neuron as a network layer (issue 6, first piece): the circuit's own F/R/V_g
physics stepped one *bin* (one input-pulse period) at a time, batched, with a surrogate spike.

Per bin, a neuron's input is a pulse of amplitude ``a`` (V) for ``width`` seconds, then 0 V for
the rest of ``period``. Inside the bin the state takes ``substeps_on`` explicit-midpoint steps of
(F, R, V_g) during the pulse and ``substeps_off`` after it -- the circuit's own step,
:func:`ionspike.circuit.midpoint_step` -- so the same laws as :func:`ionspike.simulate`, only coarser
and without the drain (the spike is read at the gate: V_g through the transistor threshold).

Spike: 1 in a bin where V_g crosses V_T upward (at a sub-step end; at most one spike per bin),
with a fast-sigmoid surrogate derivative of ``max V_g - V_T`` or of the ionic state's distance
to the bridge. (A crossing counts even when the bin starts above V_T: late in a train the gate
stays above V_T between pulses, dips below it early in the next pulse, then fires.) Backward pass: the filament's positive
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

from ionspike.circuit import langevin_kick, midpoint_step
from ionspike.device.memristor import ionic_rates
from ionspike.events import upward_crossing
from ionspike.errors import ParameterError
from ionspike.params import NeuronParams


SURROGATES = ("gate", "ionic")


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


def _phase(state: LayerState, v_in, p: NeuronParams, h, n: int, mu_scale=1.0, normals=None,
           hold_gate: bool = False, onset_width=None):
    """``n`` midpoint steps of ``h`` s at input ``v_in`` (V), with chemical-Langevin noise when
    ``normals`` (``(n, 2, *shape)`` standard normals) is given. Returns the state, the largest
    V_g, the largest ionic state ``x = F + R`` and whether V_g crossed V_T upward (at a sub-step end)."""
    v_t = p.transistor.threshold

    def one(carry, dW):
        F, R, V, vmax, xmax, crossed = carry
        F_new, R_new, V_new, _ = midpoint_step(F, R, V, v_in, p, h, mu_scale, hold_feedback=True, hold_gate=hold_gate,
                                               onset_width=onset_width)
        # a coarse step must not carry growth past the bridge: once x = 1 the gate charges through
        # R_on in R_on C_g (~10 us), the drive V_in - V_g falls below v_h and growth stops
        F_new = jnp.minimum(F_new, jnp.maximum(F, 1.0 - R_new))
        if dW is not None:  # Euler-Maruyama noise from the sub-step's start; its amplitude carries no gradient
            _, _, var_f, var_r = ionic_rates(F, R, v_in - V, p.memristor, mu_scale)
            F_new, R_new = langevin_kick(F_new, R_new, var_f, var_r, h, p.noise.n_eff, dW, hold_amplitude=True)
        crossed = crossed | jax.lax.stop_gradient(upward_crossing(V - v_t, V_new - v_t)[0])   # the circuit's spike event
        return (F_new, R_new, V_new, jnp.maximum(vmax, V_new), jnp.maximum(xmax, F_new + R_new), crossed), None

    x0 = state.F + state.R
    init = (state.F, state.R, state.V_g, state.V_g, x0, jnp.zeros(state.V_g.shape, bool))
    (F, R, V, vmax, xmax, crossed), _ = jax.lax.scan(one, init, normals, length=n)
    return LayerState(F, R, V), vmax, xmax, crossed


def bin_step(state: LayerState, amplitude, p: NeuronParams, spec: Bin = Bin(), *, mu_scale=1.0, key=None,
             surrogate: str = "gate", hold_gate: bool = False, onset_width=None):
    """Advance every neuron one bin with input pulses of ``amplitude`` (V, same shape as the state).

    ``mu_scale``: per-neuron device-to-device factor of mu. ``key``: a PRNG key for the
    chemical-Langevin noise of ``p.noise.n_eff`` (None: deterministic). ``surrogate``: what the
    spike's surrogate derivative is taken of -- ``"gate"``, ``max V_g - V_T`` (V), or ``"ionic"``,
    ``max x - 1`` (x = F + R, scaled by ``v_t``: the device bridges when x reaches 1, so the
    gradient reaches drives that have not switched the device yet). Forward values never depend
    on it. ``hold_gate``: the gate's feedback on the device voltage is a constant in the backward pass.
    ``onset_width`` (V): the drift onset's logistic surrogate derivative (None: exact, zero below v_h).

    Returns ``(new_state, spikes)``; ``spikes`` is 0/1 with a surrogate gradient.
    """
    if surrogate not in SURROGATES:
        raise ParameterError(f"surrogate = {surrogate!r} is not one of {SURROGATES}")
    v_t = p.transistor.threshold
    phases = [(amplitude, spec.width, spec.substeps_on)]
    if spec.period > spec.width:
        phases.append((jnp.zeros_like(amplitude), spec.period - spec.width, spec.substeps_off))
    vmax = xmax = crossed = None
    s = state
    for i, (v_in, duration, n) in enumerate(phases):
        normals = None
        if key is not None:
            normals = jax.random.normal(jax.random.fold_in(key, i), (n, 2, *amplitude.shape), amplitude.dtype)
        s, vm, xm, cr = _phase(s, v_in, p, duration / n, n, mu_scale, normals, hold_gate, onset_width)
        vmax = vm if vmax is None else jnp.maximum(vmax, vm)
        xmax = xm if xmax is None else jnp.maximum(xmax, xm)
        crossed = cr if crossed is None else crossed | cr
    # forward: 1 where V_g crossed V_T upward in the bin (at most one spike per bin); backward: the
    # surrogate derivative of the gate's (or the ionic state's) distance to its threshold
    width = jnp.asarray(spec.surrogate_width, vmax.dtype)
    u = vmax - v_t if surrogate == "gate" else v_t * (xmax - 1.0)
    g = spike_fn(u, width)
    return s, jax.lax.stop_gradient(crossed.astype(vmax.dtype) - g) + g


def run(amplitudes, p: NeuronParams, spec: Bin = Bin(), state: LayerState | None = None, **options):
    """Drive neurons with ``amplitudes`` (bins, ...) V; returns ``(spikes (bins, ...), final state)``.
    ``options`` go to :func:`bin_step` (a ``key`` is split per bin)."""
    amplitudes = jnp.asarray(amplitudes)
    state = rest(amplitudes.shape[1:], amplitudes.dtype) if state is None else state
    key = options.pop("key", None)
    keys = None if key is None else jax.random.split(key, amplitudes.shape[0])

    def body(s, inputs):
        a, k = inputs
        s, spk = bin_step(s, a, p, spec, key=k, **options)
        return s, spk

    final, spikes = jax.lax.scan(body, state, (amplitudes, keys))
    return spikes, final
