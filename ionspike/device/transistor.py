"""n-MOSFET drain-current laws and the drain solve (docs/model.md §3.7, §3.8, §6.7).

Source and bulk are grounded; ``v_g`` and ``v_d`` are gate and drain voltages in V,
currents in A. The gate draws no current (ideal insulating gate, no Miller coupling).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ionspike.params import EKV, SquareLaw

K_B_OVER_Q = 8.617333262e-5  # V/K, thermal voltage per kelvin


def _ekv(v_g, v_d, p: EKV):
    u_t = K_B_OVER_Q * p.temperature
    i_spec = 2.0 * p.n * p.beta * u_t**2
    v_p = (v_g - p.v_t0) / p.n
    uf = v_p / (2.0 * u_t)
    ur = (v_p - v_d) / (2.0 * u_t)
    ff = jax.nn.softplus(uf)
    fr = jax.nn.softplus(ur)
    clm = 1.0 + p.lambda_clm * v_d
    core = ff * ff - fr * fr
    i_d = i_spec * core * clm
    # d/dv_d: the reverse term depends on v_d through ur = (v_p - v_d)/(2 u_t)
    di_dvd = i_spec * (fr * jax.nn.sigmoid(ur) / u_t * clm + core * p.lambda_clm)
    return i_d, di_dvd


def _square(v_g, v_d, p: SquareLaw):
    v_ov = jnp.maximum(v_g - p.v_t, 0.0)
    sat = v_d >= v_ov
    clm = 1.0 + p.lambda_clm * v_d
    core = jnp.where(sat, v_ov**2, 2.0 * v_ov * v_d - v_d**2)
    dcore = jnp.where(sat, 0.0, 2.0 * (v_ov - v_d))
    i_d = p.k * core * clm
    return i_d, p.k * (dcore * clm + core * p.lambda_clm)


def drain_current(v_g, v_d, p: EKV | SquareLaw):
    """Drain current ``I_D(V_G, V_D)`` in A and its derivative ``dI_D/dV_D`` in A/V."""
    if isinstance(p, EKV):
        return _ekv(v_g, v_d, p)
    return _square(v_g, v_d, p)


def solve_drain(v_g, v_d_prev, p: EKV | SquareLaw, r_l, v_dd, c_l, dt, *, tol=1e-6, unrolled=1, max_iter=60):
    r"""Drain voltage after a step: the root of the drain-node balance (backward Euler for ``C_l``).

    .. math:: g(V_D) = \frac{V_{DD}-V_D}{R_l} - I_D(V_G, V_D) - \frac{C_l}{\Delta t}(V_D - V_D^{prev}) = 0

    ``g`` decreases monotonically on ``[0, V_DD]`` with ``g(0) ≥ 0 ≥ g(V_DD)``, so the root
    is bracketed. The first guess is the saturation solution (``I_D`` linear in ``V_D``, exact
    up to the reverse EKV term) where it is consistent, else ``v_d_prev``; Newton steps are
    replaced by bisection
    whenever they leave the bracket. ``unrolled`` iterations always run (they fuse into
    one kernel and, warm-started, converge in the common case); a loop then continues
    only while some element's last step exceeds ``tol·V_DD`` (at most ``max_iter`` more); an
    element that has converged stops there, so its result does not depend on the rest of the batch.
    Newton converges quadratically, so a last step below ``1e-6 V_DD`` leaves an error of
    order ``1e-12 V_DD`` (the bracket guarantees convergence where Newton would not).
    With ``c_l = 0`` this is the quasi-static drain.

    Returns:
        ``(v_d, i_d)``: drain voltage in V and drain current in A.
    """
    c_dt = c_l / dt
    lo = jnp.zeros_like(v_g)
    hi = jnp.broadcast_to(jnp.asarray(v_dd, v_g.dtype), v_g.shape)
    v0 = jnp.clip(jnp.broadcast_to(v_d_prev, v_g.shape), lo, hi)
    v_sat, v_edge = _saturation_guess(v_g, v_d_prev, p, r_l, v_dd, c_dt)
    v0 = jnp.where((v_sat > v_edge) & (v_sat < hi), v_sat, v0)
    scale = tol * hi

    def newton(carry):
        # an element stops at its own convergence (its last step <= tol V_DD): its value never
        # depends on how long the rest of the batch iterates
        v, lo0, hi0, last, it = carry
        active = jnp.abs(last) > scale
        i_d, di = drain_current(v_g, v, p)
        g = (v_dd - v) / r_l - i_d - c_dt * (v - v_d_prev)
        dg = -1.0 / r_l - di - c_dt
        lo = jnp.where(active & (g > 0), v, lo0)
        hi = jnp.where(active & (g <= 0), v, hi0)
        step = -g / dg
        trial = v + step
        inside = (trial >= lo) & (trial <= hi)
        v_new = jnp.where(active, jnp.where(inside, trial, 0.5 * (lo + hi)), v)
        return v_new, lo, hi, jnp.where(active, v_new - v, 0.0), it + 1

    carry = (v0, lo, hi, jnp.full_like(v0, jnp.inf), 0)
    for _ in range(unrolled):
        carry = newton(carry)
    carry = jax.lax.while_loop(
        lambda c: (c[4] < max_iter) & jnp.any(jnp.abs(c[3]) > scale), newton, carry)
    v = carry[0]
    i_d, _ = drain_current(v_g, v, p)
    return v, i_d


def _saturation_guess(v_g, v_d_prev, p: EKV | SquareLaw, r_l, v_dd, c_dt):
    """Drain voltage if the transistor is saturated (``I_D = A (1 + lambda V_D)``), and the
    smallest ``V_D`` at which that holds (a few thermal voltages above pinch-off)."""
    if isinstance(p, EKV):
        u_t = K_B_OVER_Q * p.temperature
        i_spec = 2.0 * p.n * p.beta * u_t**2
        v_p = (v_g - p.v_t0) / p.n
        ff = jax.nn.softplus(v_p / (2.0 * u_t))
        a = i_spec * ff * ff
        edge = jnp.maximum(v_p, 0.0) + 4.0 * u_t
    else:
        v_ov = jnp.maximum(v_g - p.v_t, 0.0)
        a = p.k * v_ov * v_ov
        edge = v_ov
    v = (v_dd / r_l - a + c_dt * v_d_prev) / (1.0 / r_l + a * p.lambda_clm + c_dt)
    return v, edge
