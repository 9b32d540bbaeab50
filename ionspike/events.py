"""Event definition shared by the physics and the solver: upward zero crossings.

A model declares an event as a scalar function ``g(state)`` whose upward crossing
through zero is the event; :func:`upward_crossing` turns the values before and after a
step into a flag and the fraction of the step at which it happened (linear interpolation).
"""

from __future__ import annotations

import jax.numpy as jnp


def upward_crossing(g_before, g_after):
    """``(crossed, fraction)``: ``g`` went from < 0 to >= 0; ``fraction`` in [0, 1] of the step."""
    crossed = (g_before < 0.0) & (g_after >= 0.0)
    denom = jnp.where(crossed, g_after - g_before, 1.0)
    frac = jnp.clip(-g_before / denom, 0.0, 1.0)
    return crossed, jnp.where(crossed, frac, 0.0)
