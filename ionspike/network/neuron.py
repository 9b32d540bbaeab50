r"""The 1M1T1R neuron as a network layer: the circuit's laws stepped one *bin* (one input pulse
period) at a time, batched, with a spike and a designed gradient (docs/model.md §7).

Per bin a neuron's input is a pulse of amplitude ``a`` (V) for ``width`` s, then 0 V for the rest
of ``period``. The laws are the circuit's (:mod:`ionspike.device.memristor`: drift drive, gap
factor, resistance, chemical-Langevin intensities; :func:`ionspike.circuit.gate_update`'s gate
equation); the *scheme* is built for bins:

* **Pulse (on) phase**, ``substeps_on`` explicit-midpoint sub-steps of the ionic state in the
  variable :math:`s = (\alpha + 1 - x)^2`, :math:`x = F + R`. The filament's approach to the bridge
  (:math:`\dot x = \mu d/(\alpha + 1 - x) - \gamma_1 F - \gamma_2 R`) is explosive in ``x`` but
  smooth in ``s`` (:math:`\dot s = -2\mu d + 2(\gamma_1 F + \gamma_2 R)\sqrt s`), so a few
  sub-steps resolve it and the bridge time is interpolated inside the sub-step. The gate takes
  the gate law with ``R_d`` frozen at the sub-step's midpoint state, its exponential written as
  the exact ``R_c`` decay times an L-stable rational factor for the ``R_d`` branch.
* **Bridging** (``x`` reaches 1) is an event, resolved once per bin: the gate charges through
  ``R_on`` (``R_on C_g`` ~ 10 µs, far below a sub-step) to ``v_on = a R_c/(R_c + R_on)``, growth
  continues until the drive falls below the onset (the overshoot :math:`\delta` of ``x`` above 1:
  :math:`\alpha\delta + \delta^2/2 = \mu\int d\,dt`), then ``F`` decays; the gate holds ``v_on``
  while the device stays ON (``R_d < R_c``) and decays through ``R_c`` afterwards.
* **Between pulses (off phase)** of an asymmetric device nothing grows: ``F`` and ``R`` follow
  a linear system, solved exactly; ``V_g`` decays through ``R_c`` and the device,
  :math:`V_g(T) = V_g(0)\exp(-T/R_cC_g - \int_0^T dt/(R_d C_g))`, the conductance integral in
  closed form for ``x`` decaying from its value at the pulse end (ON at ``R_on`` while ``x > 1``).
  A symmetric device (it grows in reverse from ``V_g``) takes the circuit's own midpoint steps
  (:func:`ionspike.circuit.midpoint_step`) there.
* **Noise** (chemical Langevin, ``N_eff``): on the pulse, one increment pair at the phase's
  midpoint with the midpoint-rule variance of the whole phase; between pulses the exact first
  two moments of the circuit's linear SDE (its Lyapunov equation, a closed-form covariance that
  is linear in ``F`` and ``R``). Standard normals come from the caller's key.

**Spike**: 1 in a bin where ``V_g`` crosses ``V_T`` upward (at a sub-step end, or at the bridge),
the circuit's own event (:func:`ionspike.events.upward_crossing`); at most one per bin.

**Gradient** (the network layer's own policy; the forward values never depend on it): the
forward pass above carries no derivative. The backward pass sees a straight-through surrogate
whose values are corrected to the forward ones: per sub-step
:math:`x \leftarrow x + h\,(\mu s\,\mathrm{soft}[a - V_g - V_h]/(\alpha + |1 - x|) - \gamma_1 F - \gamma_2 R)`,
:math:`R \leftarrow R + h(\beta F - \gamma_2 R)`, with the gate voltage and the gap factor held
(their feedback explodes when differentiated), the drift onset's derivative a logistic of width
``onset_width`` (V), the noise additive, and the off phase's exact linear map. The spike's
surrogate derivative is a fast sigmoid of ``V_T (max x - 1)`` (the distance of the ionic state
to the bridge, scaled to volts): it reaches drives that have not switched the device yet.

Every factor of that chain is a forward value, and each neuron's bin is its own map of
``(F, R, amplitude)`` to ``(F, R, spike)``; so :func:`_jacobian` carries the 3 x 3 derivative along
the sub-steps in forward mode, and the layer returns ``value + J (input - stop_gradient(input))``.
Reverse mode then costs nine multiply-adds per neuron and bin and keeps only ``J``, with the same
gradients as reverse mode through the chain (``tests/test_network_neuron.py``; 2.3x less CPU per
bin than that chain with its rematerialised forward; ``benchmarks/network.py``: 1.7x more training
samples/s without noise, none with it, where the random normals now dominate).

Measured against :func:`ionspike.simulate` (paper preset, deterministic, 300 ms of 0.8 V
pulses, ``substeps_on = 4``): see ``tests/test_network_neuron.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ionspike.circuit import linear_propagator, midpoint_step, residue_transfer
from ionspike.device.memristor import drift_drive, gap_factor, ionic_rates, resistance
from ionspike.errors import ParameterError
from ionspike.events import upward_crossing
from ionspike.params import NeuronParams

sg = jax.lax.stop_gradient
N_NORMALS = 5   # standard normals per neuron and bin: (F, R) at the pulse's midpoint, (F, R) after it, the bridge


class LayerState(NamedTuple):
    F: jnp.ndarray     # filament, (..., neurons)
    R: jnp.ndarray     # residue
    V_g: jnp.ndarray   # gate voltage, V


@dataclass(frozen=True)
class Bin:
    """One network time bin: a pulse of ``width`` s within ``period`` s; ``substeps_on`` midpoint
    sub-steps on the pulse (``substeps_off`` between pulses, symmetric devices only);
    ``surrogate_width`` (V): the fast-sigmoid scale of the spike's surrogate derivative;
    ``onset_width`` (V): the logistic width of the drift onset's surrogate derivative (None:
    the exact derivative, zero below the onset); ``feedback_gain``: the largest gain per sub-step
    that the filament feedback's derivative may have (0: held, inf: the full derivative, which
    explodes near the bridge); ``ready_width`` (V): when set, the spike's surrogate derivative is
    scaled by ``sigmoid((V_T - V_g)/ready_width)`` of the gate at the bin's start: a neuron whose
    gate is still above threshold (refractory, or held ON by a sustained drive) cannot cross it
    upward in this bin, so its surrogate passes nothing (None: not scaled)."""

    width: float = 1e-3
    period: float = 2e-3
    substeps_on: int = 4
    substeps_off: int = 4
    surrogate_width: float = 0.05
    onset_width: float | None = 0.05
    feedback_gain: float = 0.0
    ready_width: float | None = None

    def __post_init__(self):
        if not (isinstance(self.width, (int, float)) and isinstance(self.period, (int, float))
                and 0 < self.width <= self.period):
            raise ParameterError(f"width = {self.width!r} s is out of range: allowed (0, period = {self.period!r}] s")
        for name in ("substeps_on", "substeps_off"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers 1..64")
        if not (isinstance(self.surrogate_width, (int, float)) and self.surrogate_width > 0):
            raise ParameterError(f"surrogate_width = {self.surrogate_width!r} V is out of range: allowed (0, inf)")
        if self.onset_width is not None and not (isinstance(self.onset_width, (int, float)) and self.onset_width > 0):
            raise ParameterError(f"onset_width = {self.onset_width!r} V is out of range: allowed (0, inf) or None")
        if self.ready_width is not None and not (isinstance(self.ready_width, (int, float)) and self.ready_width > 0):
            raise ParameterError(f"ready_width = {self.ready_width!r} V is out of range: allowed (0, inf) or None")
        if not (isinstance(self.feedback_gain, (int, float)) and self.feedback_gain >= 0):
            raise ParameterError(f"feedback_gain = {self.feedback_gain!r} is out of range: allowed [0, inf)")


@jax.custom_jvp
def spike_fn(u, width):
    """Heaviside of ``u`` with the fast-sigmoid surrogate derivative ``1/(1 + |u|/width)^2 / width``."""
    return (u >= 0).astype(u.dtype)


def surrogate_slope(u, width):
    """The spike's surrogate derivative at ``u``: the fast sigmoid ``1/(width (1 + |u|/width)^2)``."""
    return 1.0 / (width * (1.0 + jnp.abs(u) / width) ** 2)


@spike_fn.defjvp
def _spike_jvp(primals, tangents):
    u, width = primals
    du, _ = tangents
    return spike_fn(u, width), du * surrogate_slope(u, width)


@jax.custom_jvp
def soft_onset(excess, width):
    """``max(excess, 0)`` whose derivative is the logistic ``sigmoid(excess / width)``: the drift
    onset passes gradient to drives just below it (``width`` in V)."""
    return jnp.maximum(excess, 0.0)


@soft_onset.defjvp
def _soft_onset_jvp(primals, tangents):
    excess, width = primals
    d_excess, _ = tangents
    return soft_onset(excess, width), d_excess * jax.nn.sigmoid(excess / width)


def rest(shape, dtype=jnp.float32) -> LayerState:
    z = jnp.zeros(shape, dtype)
    return LayerState(z, z, z)


# ------------------------------------------------------------------------------------ forward
def _gate(V, v_in, inv_r, p: NeuronParams, h):
    """The gate law over ``h`` s for frozen ``1/R_d`` (S): ``V_inf + (V - V_inf) e^{-h g/C_g}``,
    ``g = 1/R_d + 1/R_c``, with ``e^{-h/(R_d C_g)}`` as ``1/(1 + y + y²/2)`` (second order, L-stable)."""
    c = p.circuit
    g = inv_r + 1.0 / c.r_c
    v_inf = v_in * inv_r / g
    y = h * inv_r / c.c_g
    return v_inf + (V - v_inf) * (jnp.exp(-h / (c.r_c * c.c_g)) / (1.0 + y * (1.0 + 0.5 * y)))


def _pulse(F, R, V, a, p: NeuronParams, spec: Bin, mu_scale, normals):
    """The pulse phase, forward only. Returns the state at the pulse end, whether ``V_g`` crossed
    ``V_T`` upward, whether the device bridged, the largest ``x``, per sub-step boundary ``(x, R, V_g)``,
    and the variances of (F, R) the pulse's noise still owes (added by the off phase)."""
    m, c = p.memristor, p.circuit
    n, h = spec.substeps_on, spec.width / spec.substeps_on
    al2 = m.alpha * m.alpha
    v_t = p.transistor.threshold
    zeros = jnp.zeros_like(V)
    crossed = bridged = zeros.astype(bool)
    v_on = a * c.r_c / (c.r_c + m.r_on)          # the gate's level while the device is ON, V
    t_b, R_b, V_b = zeros + spec.width, R, V
    xs, Rs, Vs = [F + R], [R], [V]
    kick = n // 2
    late_f = late_r = zeros
    for k in range(n):
        if normals is not None and k == kick:
            # chemical-Langevin increments: the pulse's variance by the midpoint rule (intensities at
            # the phase's middle), the part accumulated so far added here, the rest carried to the
            # off phase's covariance (so the fluctuation acts on the growth no sooner than in the circuit)
            _, _, var_f, var_r = ionic_rates(F, R, a - V, m, mu_scale)
            early = kick * h / p.noise.n_eff
            F = jnp.where(bridged, F, jnp.maximum(F + jnp.sqrt(var_f * early) * normals[0], 0.0))
            R = jnp.where(bridged, R, jnp.maximum(R + jnp.sqrt(var_r * early) * normals[1], 0.0))
            late_f, late_r = var_f * (spec.width - kick * h) / p.noise.n_eff, var_r * (spec.width - kick * h) / p.noise.n_eff
        x0 = F + R
        on_now = ~bridged & (x0 >= 1.0)            # a noise kick may close the gap at a sub-step boundary
        t_b = jnp.where(on_now, k * h, t_b)
        R_b = jnp.where(on_now, R, R_b)
        V_b = jnp.where(on_now, V, V_b)
        bridged = bridged | on_now
        w0 = m.alpha + jnp.maximum(1.0 - x0, 0.0)
        s0 = w0 * w0
        drive0 = drift_drive(a - V, m, mu_scale)
        decay0 = m.gamma1 * F + m.gamma2 * R
        s_h = jnp.maximum(s0 + h * (decay0 * w0 - drive0), al2)
        R_h = R + 0.5 * h * (m.beta * F - m.gamma2 * R)
        w_h = jnp.sqrt(s_h)
        F_h = jnp.maximum(1.0 + m.alpha - w_h - R_h, 0.0)
        inv_r = 1.0 / resistance(F_h + R_h, m)
        V_h = _gate(V, a, 1.0 / resistance(x0, m), p, 0.5 * h)   # the half step sees the start's R_d, as the circuit's
        s1 = s0 + 2.0 * h * ((m.gamma1 * F_h + m.gamma2 * R_h) * w_h - drift_drive(a - V_h, m, mu_scale))
        # the residue is an amount (>= 0): where F rounds to 0 in float32 next to a tiny R, the explicit
        # step would take R below 0 and the noise's variance (beta F + gamma2 R) with it
        R1 = jnp.maximum(R + h * (m.beta * F_h - m.gamma2 * R_h), 0.0)
        V1 = _gate(V, a, inv_r, p, h)
        F1 = jnp.maximum(1.0 + m.alpha - jnp.sqrt(jnp.maximum(s1, al2)) - R1, 0.0)
        hit = ~bridged & (s1 <= al2)
        # when s reaches alpha^2 inside the sub-step: s(t) = s0 + r0 t + q t^2 through s0, its start rate
        # r0 and s1 (s falls faster as the gap closes, so a chord would put the bridge late)
        r0 = 2.0 * (decay0 * w0 - drive0) * h                 # per unit fraction of the sub-step
        q = s1 - s0 - r0
        disc = jnp.maximum(r0 * r0 - 4.0 * q * (s0 - al2), 0.0)
        root = 2.0 * (al2 - s0) / jnp.where(hit, r0 - jnp.sqrt(disc), -1.0)   # the smaller root, stable form
        theta = jnp.clip(jnp.where(hit & (r0 < 0.0), root, (s0 - al2) / jnp.where(hit, s0 - s1, 1.0)), 0.0, 1.0)
        t_b = jnp.where(hit, (k + theta) * h, t_b)
        R_b = jnp.where(hit, R + theta * (R1 - R), R_b)
        V_b = jnp.where(hit, V + 2.0 * theta * (V_h - V), V_b)   # the gate before the bridge (start's R_d), not V1
        crossed = crossed | (~bridged & upward_crossing(V - v_t, V1 - v_t)[0])
        bridged = bridged | hit
        F, R, V = jnp.where(bridged, F, F1), jnp.where(bridged, R, R1), jnp.where(bridged, V, V1)
        xs.append(jnp.where(bridged, 1.0, F + R))
        Rs.append(R)
        Vs.append(jnp.where(bridged, v_on, V))   # once bridged the gate holds ~v_on (what the surrogate's drive sees)
    # the bridge, once per bin: the gate charges through R_on, x overshoots, then decays
    r_c, c_g = c.r_c, c.c_g
    tau_on = c_g * m.r_on * r_c / (m.r_on + r_c)
    remain = spec.width - t_b
    margin = m.v_h - (a - v_on)                # how far v_on lies above the drive's onset, V
    rho = jnp.clip(margin / jnp.maximum(v_on - V_b, 1e-6), 1e-6, 1.0)
    charge = (v_on - V_b) * tau_on * (1.0 - rho) + margin * tau_on * jnp.log(rho)   # ∫ (a - V_g - v_h)_+ dt, V s
    mu = m.mu * mu_scale
    delta = jnp.sqrt(al2 + 2.0 * mu * jnp.maximum(charge, 0.0)) - m.alpha
    F_b = 1.0 + delta - R_b
    # -dx/dt once growth stops, 1/s; without leak (gamma1 = gamma2 = 0) x never falls back and the
    # device stays ON: the floor keeps that limit finite (an ON time of ~1e30 s)
    r_dec = jnp.maximum(m.gamma1 * F_b + m.gamma2 * R_b, 1e-30)
    on_time = delta / r_dec                                 # x > 1 (R_d = R_on) for this long, s
    if normals is not None:                                 # ... and, with noise, its excursions above 1 (see _between)
        on_time = on_time + 1.0 / (2.0 * p.noise.n_eff * r_dec)
    e1, e2 = jnp.exp(-(m.gamma1 + m.beta) * remain), jnp.exp(-m.gamma2 * remain)
    crossed = crossed | (bridged & upward_crossing(V_b - v_t, v_on - v_t)[0])
    F_post = F_b * e1
    if normals is not None:
        # the bridge is where the chemical-Langevin noise is strongest (growth ~ mu d / alpha): the
        # path of x after it is a random walk around the overshoot and decay, whose displacement at
        # the pulse end has the variance of the quanta that moved since the bridge (delta + decay)
        moved = delta + r_dec * remain
        F_post = jnp.maximum(F_post + jnp.sqrt(moved / p.noise.n_eff) * normals[4], 0.0)
    F = jnp.where(bridged, F_post, F)
    R = jnp.where(bridged, R_b * e2 + residue_transfer(m, F_b, e1, e2, remain), R)
    # the gate charges towards v_on while the device is ON, then decays through R_c (R_d rises past R_c
    # within a few µs once x < 1)
    # (a device that turns off before the gate reaches the drive's onset, a - v_h, bridges again at once:
    # the gate ends at least there)
    charged = jnp.maximum(v_on + (V_b - v_on) * jnp.exp(-jnp.minimum(remain, on_time) / tau_on),
                          jnp.minimum(a - m.v_h, v_on))
    V = jnp.where(bridged, charged * jnp.exp(-jnp.maximum(remain - on_time, 0.0) / (r_c * c_g)), V)
    xmax = jnp.maximum(jnp.max(jnp.stack(xs), axis=0), jnp.where(bridged, 1.0 + delta, 0.0))
    late = (jnp.where(bridged, 0.0, late_f), jnp.where(bridged, 0.0, late_r))
    return F, R, V, crossed, bridged, xmax, (xs, Rs, Vs), late


def _decay_map(p: NeuronParams, T):
    """The off phase's exact linear map of (F, R) over ``T`` s: ``F' = e1 F``, ``R' = e2 R + c12 F``."""
    e1, e2, c12, _, _ = linear_propagator(p.memristor, T)   # the circuit's own exact linear map
    return e1, e2, c12


def _decay_covariance(p: NeuronParams, T, nodes: int = 16):
    """Covariance of (F, R) after ``T`` s of the circuit's chemical-Langevin SDE without growth,
    per unit ``F(0)`` and ``R(0)``: ``P = F0 M_F + R0 M_R`` (the Lyapunov integral, exact in closed
    form up to a Gauss-Legendre quadrature of smooth exponentials; scalars only)."""
    import numpy as np

    m = p.memristor
    k1 = m.gamma1 + m.beta
    t, w = np.polynomial.legendre.leggauss(nodes)
    s = 0.5 * T * (t + 1.0)
    wts = 0.5 * T * w

    out = []
    for f0, r0 in ((1.0, 0.0), (0.0, 1.0)):
        ff = rr = fr = 0.0
        for sk, wk in zip(s, wts):
            e1, e2, c12 = _decay_map(p, sk)
            f_mean, r_mean = f0 * e1, r0 * e2 + c12 * f0
            q_f = k1 * f_mean                          # per-quantum variance rates (growth is zero here)
            q_r = m.beta * f_mean + m.gamma2 * r_mean
            a1, a2, a12 = _decay_map(p, T - sk)        # propagate the increment to the phase end
            ff = ff + wk * a1 * a1 * q_f
            fr = fr + wk * a1 * a12 * q_f
            rr = rr + wk * (a12 * a12 * q_f + a2 * a2 * q_r)
        out.append((ff, fr, rr))
    return out


def _between(F, R, V, p: NeuronParams, spec: Bin, mu_scale, normals, late=(0.0, 0.0)):
    """The off phase, forward only: ``(F, R, V_g)`` at the bin's end. ``late``: variances of (F, R)
    owed by the pulse's noise, propagated through the phase's linear map."""
    T = spec.period - spec.width
    m, c = p.memristor, p.circuit
    if m.polarity == "symmetric":   # the gate drives reverse growth: the circuit's own steps
        if normals is not None:
            F = jnp.maximum(F + jnp.sqrt(late[0]) * normals[2], 0.0)
            R = jnp.maximum(R + jnp.sqrt(late[1]) * normals[3], 0.0)
        h = T / spec.substeps_off
        for _ in range(spec.substeps_off):
            F, R, V, _ = midpoint_step(F, R, V, jnp.zeros_like(V), p, h, mu_scale)
        return F, R, V
    e1, e2, c12 = _decay_map(p, T)
    F1, R1 = F * e1, R * e2 + c12 * F
    if normals is not None:
        (ff_f, fr_f, rr_f), (_, _, rr_r) = _decay_covariance(p, T)
        var_f = jnp.maximum(F * ff_f / p.noise.n_eff + e1 * e1 * late[0], 1e-30)
        cov = F * fr_f / p.noise.n_eff + e1 * c12 * late[0]
        var_r = (F * rr_f + R * rr_r) / p.noise.n_eff + c12 * c12 * late[0] + e2 * e2 * late[1]
        sd_f = jnp.sqrt(var_f)
        F1 = jnp.maximum(F1 + sd_f * normals[2], 0.0)
        R1 = jnp.maximum(R1 + cov / sd_f * normals[2] + jnp.sqrt(jnp.maximum(var_r - cov * cov / var_f, 0.0))
                         * normals[3], 0.0)
    # gate: R_c and the device; x(t) ~ x0 - slope t, R_on while x > 1, then R_d = r_on + B (e^{(1-x)/lam} - 1)
    x0 = F + R
    slope = jnp.maximum(m.gamma1 * F + m.gamma2 * R, 1e-6)     # -dx/dt at the phase start, 1/s
    # time spent bridged (R_d = R_on): x drifts down at `slope`; with chemical-Langevin noise (variance
    # rate ~ slope/N_eff) the expected occupation time of x > 1 of a drifted Brownian motion started
    # at a = x0 - 1 is a/slope + 1/(2 N slope) above the bridge and e^{2 N a}/(2 N slope) below it
    a_gap = x0 - 1.0
    t_on = jnp.maximum(a_gap, 0.0) / slope
    if normals is not None:
        n_eff = p.noise.n_eff
        t_on = t_on + jnp.exp(2.0 * n_eff * jnp.minimum(a_gap, 0.0)) / (2.0 * n_eff * slope)
    t_on = jnp.minimum(t_on, T)
    B = m.r_off / jnp.expm1(1.0 / m.lam)
    cc = m.r_on - B
    u0 = jnp.exp((1.0 - jnp.minimum(x0, 1.0)) / m.lam)
    uT = u0 * jnp.exp(jnp.minimum(slope * (T - t_on), 1.0) / m.lam)
    conductance = t_on / m.r_on + m.lam / (slope * cc) * jnp.log((uT * (cc + B * u0)) / (u0 * (cc + B * uT)))
    V1 = V * jnp.exp(-T / (c.r_c * c.c_g) - conductance / c.c_g)
    return F1, R1, V1


# ----------------------------------------------------------------------------------- one bin
class _Forward(NamedTuple):
    """The forward scheme's values of one bin (:func:`_pulse` then :func:`_between`)."""

    F: jnp.ndarray          # (F, R, V_g) at the bin's end
    R: jnp.ndarray
    V_g: jnp.ndarray
    crossed: jnp.ndarray    # V_g crossed V_T upward (the spike), bool
    bridged: jnp.ndarray    # the device turned on, bool
    F_pulse: jnp.ndarray    # (F, R) at the pulse's end
    R_pulse: jnp.ndarray
    xmax: jnp.ndarray       # the largest x = F + R of the bin
    path: tuple             # per sub-step boundary (x, R, V_g)


def _forward(F, R, V, amplitude, p: NeuronParams, spec: Bin, mu_scale, normals) -> _Forward:
    F_p, R_p, V_p, crossed, bridged, xmax, path, late = _pulse(F, R, V, amplitude, p, spec, mu_scale, normals)
    F_e, R_e, V_e = _between(F_p, R_p, V_p, p, spec, mu_scale, normals, late)
    return _Forward(F_e, R_e, V_e, crossed, bridged, F_p, R_p, xmax, path)


def _jacobian(amplitude, fwd: _Forward, p: NeuronParams, spec: Bin, mu_scale):
    """The gradient policy (module docstring) as numbers: each neuron's derivatives of ``(F, R)``
    at the bin's end and of its spike with respect to ``(F, R, amplitude)`` at the bin's start,
    ``jac[output][input]`` (outputs F, R, spike; inputs F, R, amplitude), carried in forward mode
    along the forward scheme's path: every factor is a forward value, so a network's backward
    pass costs nine multiply-adds per neuron and bin.

    Per sub-step ``k`` (``h`` long), with the drive ``d_k = mu [a - V_g,k - v_h]`` (its onset's
    derivative a logistic of ``onset_width``) and the gap ``g_k = alpha + |1 - x_k|`` at the path's
    values, the tangents of ``x = F + R`` and ``R`` follow
    ``x <- x + h (e_k x + (d_k'/g_k) a - gamma1 F - gamma2 R)``, ``R <- R + h (beta F - gamma2 R)``,
    where the filament feedback ``e_k = kappa_k d_k sign(1 - x_k)/g_k^2`` keeps the part of its gain
    per sub-step ``h d_k/g_k^2`` that ``feedback_gain`` allows (0, the default: none, and the
    tangents of ``F`` and ``R`` are the same numbers for every neuron). The spike's derivative is
    the fast sigmoid's slope at ``u = V_T (max x - 1)`` times ``V_T`` times the tangent of the
    path's largest ``x`` (ties share it); the off phase is its exact linear map."""
    m = p.memristor
    h = spec.width / spec.substeps_on
    xs, _, Vs = fwd.path
    rectify = None if spec.onset_width is None else (lambda e: soft_onset(e, jnp.asarray(spec.onset_width, e.dtype)))
    one = jnp.ones_like(amplitude)
    t_f, t_r, t_x = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]   # d(F, R, x)/d(F0, R0, a)
    path = [t_x]
    for k in range(spec.substeps_on):
        drive, d_drive = jax.jvp(lambda a: drift_drive(a - Vs[k], m, mu_scale, rectify), (amplitude,), (one,))
        gap = gap_factor(xs[k], m)
        feedback = 0.0
        if spec.feedback_gain > 0:
            kappa = jnp.minimum(1.0, spec.feedback_gain / jnp.maximum(h * drive / gap ** 2, 1e-12))
            feedback = kappa * drive * jnp.sign(1.0 - xs[k]) / gap ** 2
        push = (0.0, 0.0, d_drive / gap)
        t_x = [t_x[j] + h * (feedback * t_x[j] + push[j] - m.gamma1 * t_f[j] - m.gamma2 * t_r[j]) for j in range(3)]
        t_r = [t_r[j] + h * (m.beta * t_f[j] - m.gamma2 * t_r[j]) for j in range(3)]
        t_f = [t_x[j] - t_r[j] for j in range(3)]
        path.append(t_x)
    x_max = jnp.max(jnp.stack(xs), axis=0)
    at_max = [(x == x_max).astype(amplitude.dtype) for x in xs]
    ties = sum(at_max)
    e1, e2, c12 = _decay_map(p, spec.period - spec.width)
    u = p.transistor.threshold * (fwd.xmax - 1.0)
    slope = p.transistor.threshold * surrogate_slope(u, jnp.asarray(spec.surrogate_width, u.dtype)) / ties
    if spec.ready_width is not None:   # a gate still above V_T at the bin's start cannot cross it upward
        slope = slope * jax.nn.sigmoid((p.transistor.threshold - fwd.path[2][0]) / spec.ready_width)
    return ([e1 * t_f[j] for j in range(3)],
            [e2 * t_r[j] + c12 * t_f[j] for j in range(3)],
            [slope * sum(at_max[k] * path[k][j] for k in range(len(path))) for j in range(3)])


def bin_step(state: LayerState, amplitude, p: NeuronParams, spec: Bin = Bin(), *, mu_scale=1.0, normals=None,
             with_bridge: bool = False):
    """Advance every neuron one bin with input pulses of ``amplitude`` (V, same shape as the state).

    ``mu_scale``: per-neuron spread factor of mu. ``normals``: ``(N_NORMALS, *shape)`` standard
    normals for the chemical-Langevin noise of ``p.noise.n_eff`` (None: deterministic).

    Returns ``(new_state, spikes)``; ``spikes`` is 0/1 with the surrogate derivative described in
    the module docstring. ``with_bridge``: also return whether each device turned on (bridged) in the bin.
    """
    F, R, V = state
    amplitude = jnp.broadcast_to(jnp.asarray(amplitude, F.dtype), F.shape)
    inputs = (F, R, amplitude)
    fwd = _forward(*(sg(v) for v in (F, R, V, amplitude)), p, spec, mu_scale, normals)
    jac = jax.tree.map(sg, _jacobian(sg(amplitude), fwd, p, spec, mu_scale))
    # straight-through: the forward values, with the policy's derivative (nothing flows through V_g)
    delta = [v - sg(v) for v in inputs]
    F_e, R_e, spikes = (value + sum(row[j] * delta[j] for j in range(3))
                        for row, value in zip(jac, (fwd.F, fwd.R, fwd.crossed.astype(F.dtype))))
    if with_bridge:
        return LayerState(F_e, R_e, fwd.V_g), spikes, fwd.bridged
    return LayerState(F_e, R_e, fwd.V_g), spikes


@partial(jax.jit, static_argnames=("spec",))
def run(amplitudes, p: NeuronParams, spec: Bin = Bin(), state: LayerState | None = None, *, key=None, mu_scale=1.0):
    """Drive neurons with ``amplitudes`` (bins, ...) V; returns ``(spikes (bins, ...), final state)``.
    ``key``: noise of ``p.noise.n_eff`` (None: deterministic), split per bin. Compiled once per
    shape, dtype and bin (parameters are traced: every variant of a preset shares the code)."""
    amplitudes = jnp.asarray(amplitudes)
    state = rest(amplitudes.shape[1:], amplitudes.dtype) if state is None else state
    keys = None if key is None else jax.random.split(key, amplitudes.shape[0])

    def body(s, inputs):
        a, k = inputs
        normals = None if k is None else jax.random.normal(k, (N_NORMALS, *a.shape), a.dtype)
        return bin_step(s, a, p, spec, mu_scale=mu_scale, normals=normals)

    final, spikes = jax.lax.scan(body, state, (amplitudes, keys))
    return spikes, final
