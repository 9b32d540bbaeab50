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


def crossing_times(t, g, *, rearm=None):
    """Times (s) at which a sampled trace ``g(t)`` crosses zero upward, linearly interpolated.

    The same event definition as :func:`upward_crossing`, for traces sampled on any time
    grid (for example a circuit simulator's adaptive steps). With ``rearm`` (a negative
    number), a new event counts only after ``g`` has fallen below ``rearm`` since the last
    one (the DM turn-on hysteresis).
    """
    import numpy as np

    t, g = np.asarray(t, float), np.asarray(g, float)
    out, armed = [], True
    for k in range(1, t.size):
        if rearm is not None and not armed and g[k] < rearm:
            armed = True
        if armed and g[k - 1] < 0.0 <= g[k]:
            frac = -g[k - 1] / (g[k] - g[k - 1])
            out.append(t[k - 1] + frac * (t[k] - t[k - 1]))
            if rearm is not None:
                armed = False
    return np.asarray(out)
