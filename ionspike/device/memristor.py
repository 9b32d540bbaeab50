"""Ag diffusive memristor laws (physics.md §7.2). Pure functions, SI units, any array shape.

State: filament ``F`` and residue ``R`` (dimensionless, 1 = bridged gap), ``x = F + R``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ionspike.params import Memristor


@jax.custom_jvp
def soft_onset_relu(excess, width):
    """``max(excess, 0)`` whose derivative is the logistic ``sigmoid(excess / width)`` (V):
    the drift onset passes gradient to drives just below it (network training only)."""
    return jnp.maximum(excess, 0.0)


@soft_onset_relu.defjvp
def _soft_onset_jvp(primals, tangents):
    excess, width = primals
    d_excess, _ = tangents
    return soft_onset_relu(excess, width), d_excess * jax.nn.sigmoid(excess / width)


def growth_rate(v_m, x, p: Memristor, mu_scale=1.0, onset_width=None):
    r"""Filament growth rate :math:`a = \mu\,[V_m - V_h]_+/(\alpha + |1-x|)`, in 1/s.

    Args:
        v_m: voltage across the device (top minus bottom electrode), V.
        x: ionic state ``F + R``.
        p: memristor parameters.
        mu_scale: multiplicative spread of ``mu`` (device-to-device x cycle-to-cycle).

    An asymmetric device grows only for positive ``v_m``; a symmetric one uses ``|v_m|``, with
    the onset ``v_h + v_h_reverse_shift`` and the rate ``mu * mu_reverse_factor`` for negative ``v_m``.
    """
    if p.polarity == "symmetric":
        reverse = v_m < 0
        excess = jnp.abs(v_m) - p.v_h - jnp.where(reverse, p.v_h_reverse_shift, 0.0)
        mu = p.mu * jnp.where(reverse, p.mu_reverse_factor, 1.0)
    else:
        excess, mu = v_m - p.v_h, p.mu
    rect = jnp.maximum(excess, 0.0) if onset_width is None else soft_onset_relu(excess, onset_width)
    return mu * mu_scale * rect / (p.alpha + jnp.abs(1.0 - x))


def ionic_rates(F, R, v_m, p: Memristor, mu_scale=1.0, x_gap=None, onset_width=None):
    r"""Drift and diffusion of the chemical-Langevin equations of F and R.

    .. math::
        dF = (a - b)\,dt + \sqrt{(a+b)/N}\,dW_1,\quad b = (\gamma_1+\beta)F \\
        dR = (\beta F - \gamma_2 R)\,dt + \sqrt{(\beta F + \gamma_2 R)/N}\,dW_2

    ``x_gap``: the ionic state seen by the gap factor ``1/(alpha + |1 - x|)`` (default ``F + R``);
    a network passes ``stop_gradient(F + R)`` to keep the forward pass exact while treating the
    filament's positive feedback as a constant in the backward pass; ``onset_width`` (V) gives
    the drift onset a logistic surrogate derivative (:func:`soft_onset_relu`), forward unchanged.

    Returns:
        ``(drift_F, drift_R, var_F, var_R)`` in 1/s; the variances are per unit ``N_eff``
        (divide by ``N_eff`` and multiply by ``dt`` for the increment variance).
    """
    a = growth_rate(v_m, F + R if x_gap is None else x_gap, p, mu_scale, onset_width)
    b = (p.gamma1 + p.beta) * F
    transfer = p.beta * F
    decay = p.gamma2 * R
    return a - b, transfer - decay, a + b, transfer + decay


def resistance(x, p: Memristor):
    r"""Device resistance in Ω (physics.md §7.2).

    .. math:: R_d = \max\big(R_{on}\bar x + R_{off}\,\frac{e^{(1-\bar x)/\lambda}-1}{e^{1/\lambda}-1},\ R_{on}\big),
              \quad \bar x = \mathrm{clip}(x, 0, 1)
    """
    xb = jnp.clip(x, 0.0, 1.0)
    # the same law written so that no exponential overflows for small lambda:
    # (e^{(1-x)/l} - 1)/(e^{1/l} - 1) = e^{-x/l} (e^{-(1-x)/l} - 1)/(e^{-1/l} - 1)
    shape = jnp.exp(-xb / p.lam) * jnp.expm1(-(1.0 - xb) / p.lam) / jnp.expm1(-1.0 / p.lam)
    return jnp.maximum(p.r_on * xb + p.r_off * shape, p.r_on)
