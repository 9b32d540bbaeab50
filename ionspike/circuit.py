r"""The 1M1T1R neuron: state, one time step, and the energy of each element.

Topology (docs/model.md §2.1): ``V_in → DM → gate (C_g)``, ``R_c`` from gate to ground,
n-MOSFET with grounded source, drain through ``R_l`` to ``V_DD`` with optional ``C_l``.

Equations of one neuron (docs/model.md §3; scheme §6), ``x = F + R``, ``V_m = V_in - V_g``:

.. math::
    dF = (a - (\gamma_1+\beta)F)\,dt + \sqrt{(a + (\gamma_1+\beta)F)/N_{\rm eff}}\,dW_1 \\
    dR = (\beta F - \gamma_2 R)\,dt + \sqrt{(\beta F + \gamma_2 R)/N_{\rm eff}}\,dW_2 \\
    C_g \dot V_g = (V_{in} - V_g)/R_d(x) - V_g/R_c \\
    (V_{DD} - V_D)/R_l = I_D(V_g, V_D) + C_l \dot V_D

Scheme: explicit midpoint for the deterministic part (second order): the rates of F and R
and the resistance ``R_d`` are evaluated after a half step; ``V_g`` takes the exponential
update, exact for ``R_d`` (the midpoint value) and ``V_in`` frozen over the step, so the
stiffness from ``R_on C_g`` (10 µs) to ``R_off C_g`` (10 s) is unconditionally stable. The
noise is added Euler–Maruyama style (weak order 1), then ``F, R <- max(·, 0)``. ``V_D`` by
backward Euler, solved with a bracketed Newton iteration (quasi-static when ``C_l = 0``).

Energy (J, per step, per neuron) uses the same frozen-coefficient solution, so on the gate
side ``E_input = E_dm + E_rc + ΔE_Cg`` holds to rounding. On the drain side the backward-
Euler step moves charge onto ``C_l`` as a step; the ``½ C_l ΔV_D²`` it dissipates (exact
for ``R_l C_l ≪ dt``) is booked to the load, so ``E_supply = E_load + E_transistor + ΔE_Cl``.

Spread: ``mu`` is scaled per neuron by a device-to-device factor and, at every DM turn-on,
by a new cycle-to-cycle factor drawn from a table of per-cycle draws.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ionspike.device.memristor import growth_rate, ionic_rates, resistance
from ionspike.device.transistor import drain_current, solve_drain
from ionspike.events import upward_crossing
from ionspike.params import NeuronParams

ENERGY_TERMS = ("input", "supply", "dm", "rc", "transistor", "load")
EVENTS = ("spike", "dm_on")
SIGNALS = ("V_in", "F", "R", "V_g", "V_d", "I_d")
N_NOISE = 2  # Gaussians per neuron-step (dW_1, dW_2)
# A DM turn-on is x = F + R reaching 1 (bridged). It counts again only after the device has
# switched off, x < 1 - DM_OFF_MARGIN (R_d(0.95) ~ 2 GOhm at the paper preset, far above R_c),
# so Langevin noise jittering x around 1 is one switching event, not many.
DM_OFF_MARGIN = 0.05
# adaptive sub-steps of the ionic/gate update: at most this change of F per sub-step, and a cap
MAX_DF_PER_SUBSTEP = 0.01
MAX_SUBSTEPS = 32


class NeuronState(NamedTuple):
    F: jnp.ndarray         # filament, dimensionless
    R: jnp.ndarray         # residue, dimensionless
    V_g: jnp.ndarray       # gate (membrane) voltage, V
    V_d: jnp.ndarray       # drain voltage, V
    mu_scale: jnp.ndarray  # spread factor of mu in the current cycle
    cycle: jnp.ndarray     # DM turn-ons so far (int)
    dm_on: jnp.ndarray     # DM switched on (bool): set when x reaches 1, cleared below 1 - DM_OFF_MARGIN


class Draws(NamedTuple):
    """A neuron's random realisation, fixed for a run (independent of dt)."""

    mu_d2d: jnp.ndarray            # (n,) device-to-device factor of mu
    mu_c2c: jnp.ndarray | None     # (n, cycles) cycle-to-cycle factors, or None


class StepOutput(NamedTuple):
    signals: dict   # name -> (n,) values at the end of the step (V_in: during the step)
    energy: dict    # name -> (n,) J spent during the step
    events: dict    # name -> (crossed, fraction of the step)


def rest_state(p: NeuronParams, draws: Draws) -> NeuronState:
    """Neuron at rest: no Ag filament or residue, gate discharged, drain at V_DD."""
    n = draws.mu_d2d.shape[0]
    zeros = jnp.zeros(n)
    scale = draws.mu_d2d if draws.mu_c2c is None else draws.mu_d2d * draws.mu_c2c[:, 0]
    return NeuronState(F=zeros, R=zeros, V_g=zeros, V_d=jnp.broadcast_to(p.circuit.v_dd, (n,)) + zeros,
                       mu_scale=scale, cycle=jnp.zeros(n, dtype=jnp.int32), dm_on=jnp.zeros(n, dtype=bool))


def event_values(state: NeuronState, p: NeuronParams) -> dict:
    """Event functions (upward zero crossing = event): output spike (V_g through V_T) and
    DM turn-on (x through 1; only counted while the DM is off, see ``DM_OFF_MARGIN``)."""
    return {"spike": state.V_g - p.transistor.threshold, "dm_on": state.F + state.R - 1.0}


def gate_update(v_g, v_in, r_d, p: NeuronParams, dt):
    """The gate law over ``dt`` s, exact for frozen ``R_d`` (Ω) and ``V_in`` (V): new ``V_g`` (V) and
    the step's energies (J) drawn from the input and dissipated in the DM and in ``R_c``."""
    c = p.circuit
    g = 1.0 / r_d + 1.0 / c.r_c                   # S
    v_inf = (v_in / r_d) / g                      # V
    tau = c.c_g / g                               # s
    e1 = -jnp.expm1(-dt / tau)                    # 1 - exp(-dt/tau)
    d = v_g - v_inf
    v_new = v_inf + d * (1.0 - e1)
    # integrals over the step of V_g, (V_in - V_g), V_g² and (V_in - V_g)²
    int_d = d * tau * e1                          # ∫ d·e^{-t/tau}
    int_d2 = d * d * 0.5 * tau * e1 * (2.0 - e1)  # ∫ d²·e^{-2t/tau}
    u_inf = v_in - v_inf
    int_vg2 = v_inf * v_inf * dt + 2.0 * v_inf * int_d + int_d2
    int_u = u_inf * dt - int_d
    int_u2 = u_inf * u_inf * dt - 2.0 * u_inf * int_d + int_d2
    energy = {
        "input": v_in * int_u / r_d,
        "dm": int_u2 / r_d,
        "rc": int_vg2 / c.r_c,
    }
    return v_new, energy


def ionic_midpoint(F, R, v_m_start, v_m_mid, m, h, mu_scale=1.0, rates=ionic_rates):
    """One explicit-midpoint step (second order) of the ionic state ``(F, R)`` over ``h`` s.

    ``v_m_start``: the device voltage (V) at the start of the step; ``v_m_mid(F_h, R_h)``: the
    device voltage at the half step given the half-step state -- the circuit takes it from the
    gate's half step, a measurement setup from its source and series element. ``rates``: the
    device law (:func:`ionspike.device.memristor.ionic_rates` or a wrapper with the same
    signature and forward values). Returns ``(F, R, var_f, var_r, R_h_state)``: the new state,
    the per-quantum noise variances at the step's start (for :func:`langevin_kick`) and the
    half-step state ``(F_h, R_h)``.
    """
    df0, dr0, var_f, var_r = rates(F, R, v_m_start, m, mu_scale)
    F_h = jnp.maximum(F + df0 * 0.5 * h, 0.0)
    R_h = jnp.maximum(R + dr0 * 0.5 * h, 0.0)
    df, dr, _, _ = rates(F_h, R_h, v_m_mid(F_h, R_h), m, mu_scale)
    return jnp.maximum(F + df * h, 0.0), jnp.maximum(R + dr * h, 0.0), var_f, var_r, (F_h, R_h)


def midpoint_step(F, R, V_g, v_in, p: NeuronParams, h, mu_scale=1.0):
    """One explicit-midpoint step (second order) of ``(F, R, V_g)`` over ``h`` s at input ``v_in`` (V).

    Rates and ``R_d`` are taken after a half step; ``V_g`` takes the exact exponential update
    for the midpoint ``R_d``. Returns ``(F, R, V_g, energies of the step)``.
    """
    m = p.memristor
    v_g_h, _ = gate_update(V_g, v_in, resistance(F + R, m), p, 0.5 * h)
    F_new, R_new, _, _, (F_h, R_h) = ionic_midpoint(F, R, v_in - V_g, lambda F_h, R_h: v_in - v_g_h, m, h, mu_scale)
    v_new, e = gate_update(V_g, v_in, resistance(F_h + R_h, m), p, h)
    return F_new, R_new, v_new, e


# the smallest per-quantum noise variance (1/s): keeps the derivative of the noise amplitude's
# square root finite where every rate vanishes (no drive, no Ag); an amplitude of ~1e-18 at 1 us steps
VAR_FLOOR = 1e-30


def langevin_kick(F, R, var_f, var_r, h, n_eff, dW, hold_amplitude: bool = False):
    """Euler-Maruyama increment of the chemical-Langevin noise over ``h`` s, then ``F, R <- max(., 0)``.

    ``var_f``/``var_r``: the per-quantum variances of :func:`ionspike.device.memristor.ionic_rates`
    at the step's start (floored at :data:`VAR_FLOOR`); ``dW``: ``(2, ...)`` standard normals.
    With ``hold_amplitude`` the noise amplitude carries no derivative (the noise is additive in
    the backward pass).
    """
    amp_f = jnp.sqrt(jnp.maximum(var_f, VAR_FLOOR) * (h / n_eff))
    amp_r = jnp.sqrt(jnp.maximum(var_r, VAR_FLOOR) * (h / n_eff))
    if hold_amplitude:
        amp_f, amp_r = jax.lax.stop_gradient(amp_f), jax.lax.stop_gradient(amp_r)
    return jnp.maximum(F + amp_f * dW[0], 0.0), jnp.maximum(R + amp_r * dW[1], 0.0)


def step(state: NeuronState, v_in, p: NeuronParams, dt: float, dW, draws: Draws) -> tuple[NeuronState, StepOutput]:
    """Advance every neuron by ``dt`` seconds.

    Args:
        state: current :class:`NeuronState`, arrays of shape ``(n,)``.
        v_in: input voltage during the step, V, shape ``(n,)``.
        p: parameters (scalars or ``(n,)`` arrays).
        dt: step, s.
        dW: ``(2, n)`` standard normals for this step, or ``None`` (deterministic).
        draws: the run's device/cycle spread.

    Returns:
        ``(new_state, StepOutput)``.
    """
    m, c = p.memristor, p.circuit
    drift_f0, drift_r0, var_f, var_r = ionic_rates(state.F, state.R, v_in - state.V_g, m, state.mu_scale)
    # sub-steps where the ionic state moves fast (the bridging transition): each neuron takes
    # k = ceil(|dF| / MAX_DF_PER_SUBSTEP) midpoint sub-steps, the batch loops to the largest k
    k = jnp.clip(jnp.ceil(jnp.abs(drift_f0) * dt / MAX_DF_PER_SUBSTEP), 1, MAX_SUBSTEPS)
    h = dt / k

    def midpoint(F, R, V_g, h):
        return midpoint_step(F, R, V_g, v_in, p, h, state.mu_scale)

    F, R, v_g, energy = midpoint(state.F, state.R, state.V_g, h)

    def more(carry):
        j, F1, R1, V1, e1 = carry
        F2, R2, V2, e2 = midpoint(F1, R1, V1, h)
        go = j < k
        return (j + 1, jnp.where(go, F2, F1), jnp.where(go, R2, R1), jnp.where(go, V2, V1),
                {name: e1[name] + jnp.where(go, e2[name], 0.0) for name in e1})

    _, F, R, v_g, energy = jax.lax.while_loop(lambda c: jnp.any(c[0] < k), more, (1.0, F, R, v_g, energy))
    if dW is not None:  # Euler-Maruyama noise, intensity from the state at the start of the step
        F, R = langevin_kick(F, R, var_f, var_r, dt, p.noise.n_eff, dW)
    v_d, i_d = solve_drain(v_g, state.V_d, p.transistor, c.r_l, c.v_dd, c.c_l, dt)
    i_load = (c.v_dd - v_d) / c.r_l
    dv_d = v_d - state.V_d
    energy["supply"] = c.v_dd * i_load * dt
    energy["transistor"] = i_d * v_d * dt
    energy["load"] = i_load * i_load * c.r_l * dt + 0.5 * c.c_l * dv_d * dv_d

    return _finish(state, v_in, F, R, v_g, v_d, i_d, energy, p, draws)


def _finish(state: NeuronState, v_in, F, R, v_g, v_d, i_d, energy, p: NeuronParams, draws: Draws,
            spike_fraction=None) -> tuple[NeuronState, StepOutput]:
    """The bookkeeping every scheme shares: events (``spike_fraction`` replaces the linear
    interpolation of the spike's crossing when the scheme knows better), DM turn-on hysteresis,
    the cycle count and the next cycle's factor of mu, and the recorded signals."""
    new = NeuronState(F=F, R=R, V_g=v_g, V_d=v_d, mu_scale=state.mu_scale, cycle=state.cycle, dm_on=state.dm_on)
    before, after = event_values(state, p), event_values(new, p)
    events = {k: upward_crossing(before[k], after[k]) for k in EVENTS}
    if spike_fraction is not None:
        crossed = events["spike"][0]
        events["spike"] = (crossed, jnp.where(crossed, spike_fraction, 0.0))
    crossed, frac = events["dm_on"]
    turned_on = crossed & ~state.dm_on
    events["dm_on"] = (turned_on, frac)
    dm_on = (state.dm_on | turned_on) & (after["dm_on"] >= -DM_OFF_MARGIN)
    cycle = state.cycle + turned_on.astype(state.cycle.dtype)
    mu_scale = state.mu_scale
    if draws.mu_c2c is not None:
        last = draws.mu_c2c.shape[1] - 1
        nxt = jnp.take_along_axis(draws.mu_c2c, jnp.minimum(cycle, last)[:, None], axis=1)[:, 0]
        mu_scale = jnp.where(turned_on, draws.mu_d2d * nxt, mu_scale)
    new = new._replace(cycle=cycle, mu_scale=mu_scale, dm_on=dm_on)
    signals = {"V_in": v_in, "F": F, "R": R, "V_g": v_g, "V_d": v_d, "I_d": i_d}
    return new, StepOutput(signals=signals, energy=energy, events=events)


# ------------------------------------------------------------------------ the adaptive scheme
def _phi(k, h):
    """``(1 - e^{-k h})/k`` (s), with its limit ``h`` as ``k -> 0``."""
    small = jnp.abs(k * h) < 1e-8
    return jnp.where(small, h * (1.0 - 0.5 * k * h), -jnp.expm1(-k * h) / jnp.where(small, 1.0, k))


def residue_transfer(m, F, e1, e2, h, *, expm1_below: float = 1e-2):
    r"""``beta F (e2 - e1)/(gamma1 + beta - gamma2)``: the residue that filament ``F`` feeds over
    ``h`` s of pure decay (``e1 = e^{-(gamma1 + beta) h}``, ``e2 = e^{-gamma2 h}``). Where the two
    rates are close (``|x| < 10^{-2}``, ``x = (gamma1 + beta - gamma2) h``) the difference ``e2 - e1``
    cancels (a relative error of ~1 % at ``x = 10^{-6}`` in float32), and it is taken as
    ``e1 expm1(x)`` instead, with its series ``e1 h (1 + x/2)`` at ``|x| < 10^{-4}`` (0/0 at equal
    rates, e.g. a device without leak and residue). ``expm1_below``: where the ``expm1`` form takes
    over (the series below ``min(expm1_below, 10^{-4})``). The one copy of this law: the network
    layer's bridge uses it, and :func:`linear_propagator` with ``expm1_below = 10^{-6}`` (the adaptive
    solver's float32 spike times were checked against float64 with the difference form)."""
    diff = m.gamma1 + m.beta - m.gamma2
    x = diff * h
    tiny, near = _close_rates(x, min(expm1_below, 1e-4)), _close_rates(x, expm1_below)
    d = jnp.where(tiny, 1.0, diff)
    close = m.beta * F * e1 * jnp.where(tiny, h * (1.0 + 0.5 * x), jnp.expm1(jnp.where(near, x, 0.0)) / d)
    return jnp.where(near, close, m.beta * F * (e2 - e1) / jnp.where(near, 1.0, diff))


def _close_rates(x, tolerance):
    """Whether the decay exponents differ by less than ``tolerance`` over the step (``|x|``, x as in
    :func:`residue_transfer`): where the propagator's closed forms switch to their limits."""
    return jnp.abs(x) < tolerance


def linear_propagator(m, h):
    r"""The exact solution over ``h`` s of the ionic state's linear part (decay and transfer),
    ``F' = e_1 F + \psi_F a``, ``R' = e_2 R + c_{12} F + \psi_R a`` for a growth rate ``a`` (1/s)
    held over the step. Returns ``(e1, e2, c12, psi_F, psi_R)`` (``psi`` in s), finite in the
    limits of no leak (``gamma = 0``) and equal rates (``gamma1 + beta = gamma2``)."""
    k1, k2 = m.gamma1 + m.beta, m.gamma2
    e1, e2 = jnp.exp(-k1 * h), jnp.exp(-k2 * h)
    diff = k1 - k2
    close = _close_rates(diff * h, 1e-6)
    safe = jnp.where(close, 1.0, diff)
    # psi_R = beta (phi(k2) - phi(k1))/(k1 - k2) -> beta (1 - e^{-k h}(1 + k h))/k^2 -> beta h^2/2
    # c12: the difference form down to |x| = 1e-6 (the expm1 form from 1e-2 moved the adaptive solver's float32
    # first spike 1.2e-5 from float64's, past test_precision's 1e-5)
    c12 = residue_transfer(m, 1.0, e1, e2, h, expm1_below=1e-6)
    kh = k1 * h
    limit_r = jnp.where(jnp.abs(kh) < 1e-4, h * h * (0.5 - kh / 3.0),
                        (-jnp.expm1(-kh) - kh * jnp.exp(-kh)) / jnp.where(jnp.abs(kh) < 1e-4, 1.0, k1 * k1))
    psi_r = m.beta * jnp.where(close, limit_r, (_phi(k2, h) - _phi(k1, h)) / safe)
    return e1, e2, c12, _phi(k1, h), psi_r


# Bogacki-Shampine 3(2) (nodes 0, 1/2, 3/4): third-order and embedded second-order weights
_BS_B = (2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0)
_BS_B2 = (7.0 / 24.0, 1.0 / 4.0, 1.0 / 3.0, 1.0 / 8.0)


def adaptive_step(state: NeuronState, v_in, p: NeuronParams, h, dW, draws: Draws):
    r"""One step of ``h`` s (per neuron) for an error-controlled solver: the state, the step's
    outputs (as :func:`step`), an error estimate ``{name: (error, scale)}`` of ``F``, ``R``, ``V_g``
    and their time derivatives at the step's start and end ``{name: (start, end)}`` (per s; the
    deterministic vector field, for dense output).

    Scheme (docs/model.md §6.3): Lawson (integrating-factor) Bogacki-Shampine 3(2). The linear
    part -- the ionic decay and transfer (:func:`linear_propagator`) and the gate's discharge
    through ``R_c`` and the device at its resistance at the step's start -- is solved exactly; the
    rest (the filament's growth, the change of the device's conductance within the step) takes
    the Bogacki-Shampine stages in the transformed variables. Third order; the embedded second-order
    solution gives the error estimate (order 2). Where nothing grows and ``R_d`` holds (between
    pulses, during the refractory hold) a step is exact whatever its length. Noise: the
    chemical-Langevin increment with the intensity at the step's start (``dW``: standard normals,
    the Brownian increment over ``sqrt(h)``), added after the deterministic update.

    Energies integrate the power by Simpson's rule on the step's start, its middle stage and its
    end (exact for cubics in time): the input's and ``R_c``'s, the transistor's and the supply's (the
    drain current at the three points, quasi-static in the middle, plus ``C_l``'s charge ``C_l \Delta V_D`` through the
    supply). The device's share and the load's are what the node balances leave:
    ``E_dm = E_input - E_rc - \Delta E_{C_g}`` and ``E_load = E_supply - E_transistor - \Delta E_{C_l}``
    (Kirchhoff's laws make both exact). ``V_D`` at the step's end: backward Euler as in :func:`step`.
    """
    m, c, tr = p.memristor, p.circuit, p.transistor
    F0, R0, V0, Vd0 = state.F, state.R, state.V_g, state.V_d
    mu = state.mu_scale
    _, _, var_f, var_r = ionic_rates(F0, R0, v_in - V0, m, mu)
    g0 = 1.0 / resistance(F0 + R0, m)                  # the conductance the linear part holds, S
    lam = -(g0 + 1.0 / c.r_c) / c.c_g                  # 1/s

    def propagate(tau, y):
        """The linear part's exact flow over ``tau`` s of a vector ``(F, R, V)``."""
        e1, e2, c12, _, _ = linear_propagator(m, tau)
        F, R, V = y
        return e1 * F, e2 * R + c12 * F, jnp.exp(lam * tau) * V

    def nonlinear(y):
        """The rest of the vector field, ``(a, 0, (v_in g - V (g - g0))/C_g)``, and ``g = 1/R_d``."""
        F, R, V = y
        F, R = jnp.maximum(F, 0.0), jnp.maximum(R, 0.0)
        g = 1.0 / resistance(F + R, m)
        return (growth_rate(v_in - V, F + R, m, mu), jnp.zeros_like(F), (v_in * g - V * (g - g0)) / c.c_g), g

    def combine(base, terms):
        """``base + sum_j w_j * vector_j`` over ``terms`` = [(w_j, vector_j)]."""
        out = list(base)
        for w, vec in terms:
            out = [o + w * v for o, v in zip(out, vec)]
        return tuple(out)

    y0 = (F0, R0, V0)
    N1, g1 = nonlinear(y0)
    Y2 = combine(propagate(0.5 * h, y0), [(0.5 * h, propagate(0.5 * h, N1))])
    N2, g2 = nonlinear(Y2)
    Y3 = combine(propagate(0.75 * h, y0), [(0.75 * h, propagate(0.25 * h, N2))])
    N3, _ = nonlinear(Y3)
    E1, E2, E3 = propagate(h, N1), propagate(0.5 * h, N2), propagate(0.25 * h, N3)
    base = propagate(h, y0)
    F, R, v_g = combine(base, [(_BS_B[0] * h, E1), (_BS_B[1] * h, E2), (_BS_B[2] * h, E3)])
    N4, g4 = nonlinear((F, R, v_g))
    d1, d2, d3, d4 = (b - a for a, b in zip(_BS_B + (0.0,), _BS_B2))
    err = combine((0.0, 0.0, 0.0), [(d1 * h, E1), (d2 * h, E2), (d3 * h, E3), (d4 * h, N4)])
    k1 = m.gamma1 + m.beta
    slopes = {"F": (N1[0] - k1 * F0, N4[0] - k1 * F), "R": (m.beta * F0 - m.gamma2 * R0, m.beta * F - m.gamma2 * R),
              "V_g": (lam * V0 + N1[2], lam * v_g + N4[2])}
    F, R = jnp.maximum(F, 0.0), jnp.maximum(R, 0.0)
    error = {"F": (err[0], jnp.maximum(jnp.abs(F0), F)), "R": (err[1], jnp.maximum(jnp.abs(R0), R)),
             "V_g": (err[2], jnp.maximum(jnp.abs(V0), jnp.abs(v_g)))}
    if dW is not None:
        F, R = langevin_kick(F, R, var_f, var_r, h, p.noise.n_eff, dW)
    # energies by Simpson's rule on the step's start, middle stage and end (exact for cubics in time),
    # the drain quasi-static in the middle
    v_d, i_d = solve_drain(v_g, Vd0, tr, c.r_l, c.v_dd, c.c_l, h)
    vd_mid, id_mid = solve_drain(Y2[2], Vd0, tr, c.r_l, c.v_dd, 0.0, h)
    i_start, _ = drain_current(V0, Vd0, tr)
    e_in = e_rc = q_d = e_tr = 0.0
    for w, V, g, vd, i in ((1.0 / 6.0, V0, g1, Vd0, i_start), (4.0 / 6.0, Y2[2], g2, vd_mid, id_mid),
                           (1.0 / 6.0, v_g, g4, v_d, i_d)):
        e_in = e_in + w * h * v_in * (v_in - V) * g
        e_rc = e_rc + w * h * V * V / c.r_c
        q_d = q_d + w * h * i
        e_tr = e_tr + w * h * i * vd
    energy = {"input": e_in, "rc": e_rc, "dm": e_in - e_rc - 0.5 * c.c_g * (v_g * v_g - V0 * V0),
              "supply": c.v_dd * (q_d + c.c_l * (v_d - Vd0)), "transistor": e_tr}
    energy["load"] = energy["supply"] - e_tr - 0.5 * c.c_l * (v_d * v_d - Vd0 * Vd0)
    new, out = _finish(state, v_in, F, R, v_g, v_d, i_d, energy, p, draws)
    return new, out, error, slopes


def element_powers(v_in, v_g, v_d, i_d, x, p: NeuronParams) -> dict:
    """Instantaneous power (W) of each element for sampled node voltages (any array shape).

    The same bookkeeping as ``step``'s per-step energies, for traces produced elsewhere (an
    ngspice run): ``input`` from the input source, ``dm`` and ``rc`` dissipated, ``supply`` from
    V_DD, ``load`` in R_l, ``transistor`` = I_D V_D. ``i_d`` is the transistor current, ``x = F + R``.
    """
    c = p.circuit
    i_dm = (v_in - v_g) / resistance(x, p.memristor)
    i_load = (c.v_dd - v_d) / c.r_l
    return {"input": v_in * i_dm, "dm": (v_in - v_g) * i_dm, "rc": v_g * v_g / c.r_c,
            "supply": c.v_dd * i_load, "load": i_load * i_load * c.r_l, "transistor": i_d * v_d}


def stored_energy(state: NeuronState, p: NeuronParams) -> dict:
    """Energy stored on ``C_g`` and ``C_l``, J."""
    return {"cg": 0.5 * p.circuit.c_g * state.V_g**2, "cl": 0.5 * p.circuit.c_l * state.V_d**2}


def cascade_input(v_in, state: NeuronState, p: NeuronParams, stages: int):
    """Inputs of a chain of ``stages`` neurons (docs/model.md §3.12).

    Neurons are laid out stage-major (``index = stage * n + i``). Stage 0 takes the external
    input; stage ``k`` takes the voltage developed on stage ``k-1``'s load, ``V_DD - V_D``
    (``= I_D R_l`` when ``C_l`` is negligible), from the previous step (a one-step lag, far
    below every circuit time constant). The next stage's DM current is neglected as a load on
    ``R_l`` (it is < R_l/R_on ~ 5 % of the drain current at the paper preset).
    """
    n = state.V_d.shape[0] // stages
    drive = (p.circuit.v_dd - state.V_d).reshape(stages, n)
    v_in = jnp.broadcast_to(v_in, state.V_d.shape)
    upstream = jnp.concatenate([v_in.reshape(stages, n)[:1], drive[:-1]], axis=0)
    return upstream.reshape(-1)
