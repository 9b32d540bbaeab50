"""Derivatives of design quantities with respect to the design variables, where they exist, and the
gradient step of the search that uses them.

**Which quantities have a derivative.** Under a DC input the first spike comes after a smooth
approach of the ionic state to the bridge, so its time is a differentiable function of every
parameter. That is the one quantity with a usable derivative (:data:`DIFFERENTIABLE`,
:func:`differentiable`):

* Under pulses the spikes lock to pulse edges: counts, ISIs and latencies move in steps and their
  derivative is zero almost everywhere. P(fire) averages 0/1 outcomes; the IP ratio is a protocol of
  amplitude sweeps; robust targets are fractions of devices.
* Past the first bridge the derivative of the state is lost to the bridging itself: the growth
  feedback ``mu d/(alpha + |1 - x|)`` with ``alpha = 0.01`` amplifies a tangent by ~e^40 over the
  tens of µs of a switch. Measured (paper device, DC 0.9 V, 60 ms): the forward-mode derivative of
  the mean ISI with respect to R_c came out at 2.4e3 s per unit of the search coordinate against
  1.7e-2 by central differences, that of the energy per spike 4e6 times too large; holding the state's
  derivative through the bridge (a reset) gave the wrong sign. ISI, rate and energies therefore stay
  with the derivative-free search.

**How.** :func:`trace` runs the circuit's own fixed step (:func:`ionspike.circuit.step`, the step
:func:`ionspike.simulate` takes by default, at the same ``dt`` and with the stimulus sampled at the
middle of each step) in one ``lax.scan``, traceable end to end; its first-spike time equals
:func:`ionspike.design.measure.measure`'s (fixed step) to rounding. Derivatives are forward mode
(one tangent per variable, no tape over the ~1e5 steps; the step's adaptive sub-step loop is a
``while_loop``, which forward mode differentiates). The spike time carries the implicit-function
derivative of the ionic state's crossing of a level just before the bridge (:func:`_first_spike`).
``tests/test_design_gradient.py`` checks it against central differences of fine-step ``simulate`` runs.

**The gradient step** (:func:`polish`): L-BFGS-B (``scipy.optimize.minimize``) on the search's unit
cube from the best candidates of the derivative-free search (or of a Sobol sample), minimising the
same loss (:func:`ionspike.design.search.loss`). The loss's derivative comes from the
differentiable targets; the other targets enter its value (measured by
:func:`ionspike.design.measure.measure`) but pass no derivative, so the step refines what has a
derivative while the line search refuses moves that break the rest.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ionspike import circuit
from ionspike.design.spec import DesignSpec, Target
from ionspike.events import upward_crossing
from ionspike.params import NeuronParams, replace
from ionspike.precision import float64
from ionspike.stimulus import DC

DIFFERENTIABLE = ("first_spike",)


def differentiable(t: Target) -> bool:
    """Whether ``t``'s quantity has a derivative with respect to the parameters: the quantities of
    :data:`DIFFERENTIABLE` under a DC input, measured on the nominal device, counting every spike."""
    return t.quantity in DIFFERENTIABLE and isinstance(t.stimulus, DC) and not t.robust and not t.after


def _set(p: NeuronParams, path: str, value) -> NeuronParams:
    section, name = path.split(".")
    return dataclasses.replace(p, **{section: dataclasses.replace(getattr(p, section), **{name: value})})


def to_si(spec: DesignSpec, u):
    """Unit-cube coordinates (..., variables) -> SI values, traceable (``search.to_si``'s map)."""
    cols = []
    for j, v in enumerate(spec.variables):
        if v.log:
            cols.append(jnp.exp(math.log(v.low) + u[..., j] * (math.log(v.high) - math.log(v.low))))
        else:
            cols.append(v.low + u[..., j] * (v.high - v.low))
    return jnp.stack(cols, axis=-1)


def _dt(spec: DesignSpec) -> float:
    """The step :func:`ionspike.design.measure.measure` simulates with (``simulate``'s default: the
    design's base is a parameter set, which carries no preset step)."""
    from ionspike.simulate import DEFAULT_DT_S

    return float(DEFAULT_DT_S)


# the ionic state's level whose crossing carries the first spike's derivative (see _first_spike): at 0.9 the
# derivative with respect to mu agrees with central differences of 0.1 µs simulations to 0.2 %; at 0.95
# and above x moves too fast for the 2 µs step to resolve its crossing (0.95: -5 %, 0.99: -69 %),
# at 0.5 the part left out is too large (-33 %)
X_LEVEL = 0.9


@partial(jax.jit, static_argnames=("n_steps", "dt"))
def _first_spike(p: NeuronParams, stimulus, n_steps: int, dt: float):
    """The first spike time (s, NaN if none) of one neuron per entry of ``p``'s per-neuron arrays.

    Its value is the gate's crossing of ``V_T`` (as the solver records it); its derivative is that of
    the last crossing of ``x = F + R`` through :data:`X_LEVEL` before it. The gate jumps through ``V_T``
    within about a step once the device bridges, and the step's adaptive sub-step count changes in
    jumps with the parameters, so the interpolated gate crossing is a staircase at the 2 µs scale
    (flat, then a jump), while ``x`` passes the level slowly and its interpolated crossing has the
    implicit-function derivative ``-(dx/dθ)/(dx/dt)``. Left out: the derivative of the ~50 µs from
    there to the spike (paper device, 0.9 V), well under 1 % of a latency of milliseconds."""
    n = jnp.shape(p.circuit.r_c)[0]
    draws = circuit.Draws(mu_d2d=jnp.ones(n), mu_c2c=None)
    sg = jax.lax.stop_gradient

    def body(carry, k):
        state, first, x_last = carry
        t0 = k * dt
        v_in = jnp.broadcast_to(stimulus.value(t0 + 0.5 * dt), (n,))
        new, out = circuit.step(state, v_in, p, dt, None, draws)
        crossed, frac = out.events["spike"]
        x_crossed, x_frac = upward_crossing(state.F + state.R - X_LEVEL, new.F + new.R - X_LEVEL)
        x_last = jnp.where(x_crossed, t0 + x_frac * dt, x_last)
        t = sg(t0 + frac * dt) + (x_last - sg(x_last))      # the spike's value, the level crossing's derivative
        return (new, jnp.where(crossed & jnp.isnan(first), t, first), x_last), None

    nan = jnp.full(n, jnp.nan)
    (_, first, _), _ = jax.lax.scan(body, (circuit.rest_state(p, draws), nan, nan),
                                    jnp.arange(n_steps, dtype=jnp.float64))
    return first


def _base(spec: DesignSpec, t: Target, n: int) -> NeuronParams:
    p = spec.base.deterministic()
    if t.conditions:
        p = replace(p, **dict(t.conditions))
    return jax.tree.map(lambda a: jnp.broadcast_to(jnp.asarray(a, jnp.float64), (n,)), p)


def trace(spec: DesignSpec, targets: list[int], u: np.ndarray, *, derivative: bool = True):
    """Values (candidates, len(targets)) of the differentiable ``targets`` (indices into
    ``spec.targets``) at unit-cube points ``u`` (candidates, variables), and with ``derivative``
    their Jacobians (candidates, len(targets), variables) with respect to ``u``."""
    u = np.atleast_2d(np.asarray(u, np.float64))
    n, d = u.shape
    dt = _dt(spec)
    vals = np.full((n, len(targets)), np.nan)
    jacs = np.full((n, len(targets), d), np.nan)
    with float64():
        groups: dict = {}
        for col, i in enumerate(targets):
            t = spec.targets[i]
            if not differentiable(t):
                raise ValueError(f"target {t.label!r} has no derivative")
            groups.setdefault((t.stimulus_text, t.duration, t.conditions), []).append(col)
        for (_, duration, _), cols in groups.items():
            t0 = spec.targets[targets[cols[0]]]
            p0 = _base(spec, t0, n)
            stim = t0.stimulus.batched(n)
            n_steps = max(1, int(math.ceil(duration / dt - 1e-9)))
            qs = tuple(spec.targets[targets[c]].quantity for c in cols)

            def f(uu, p0=p0, stim=stim, n_steps=n_steps, qs=qs):
                x = to_si(spec, uu)
                p = p0
                for j, v in enumerate(spec.variables):
                    p = _set(p, v.path, x[..., j])
                first = _first_spike(p, stim, n_steps, dt)
                return jnp.stack([first for _ in qs], axis=-1)     # (n, k): every target here is a first spike

            uj = jnp.asarray(u)
            if derivative:
                # candidates are independent: the Jacobian of the batch is block-diagonal; one forward
                # pass per variable with the tangent set for every candidate at once
                out, tangents = jax.vmap(lambda e: jax.jvp(f, (uj,), (jnp.broadcast_to(e, uj.shape),)),
                                         out_axes=(None, 0))(jnp.eye(d))
                jacs[:, cols, :] = np.moveaxis(np.asarray(tangents), 0, -1)
            else:
                out = f(uj)
            vals[:, cols] = np.asarray(out)
    return vals, jacs


def violation_derivative(t: Target, value: np.ndarray) -> np.ndarray:
    """d(violation)/d(value) of :func:`ionspike.design.search.violation` for the differentiable
    quantities (all positive, log units): ``-1/v`` below the interval, ``1/v`` above, 0 inside."""
    v = np.asarray(value, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = (v < t.low) & (t.low > 0)
        above = v > t.high
        return np.where(below, -1.0 / v, np.where(above, 1.0 / v, 0.0))


def polish(spec: DesignSpec, starts: np.ndarray, *, measure_rest, max_iterations: int = 20,
           progress=None) -> list[dict]:
    """L-BFGS-B from each unit-cube point of ``starts`` (starts, variables). ``measure_rest(x)``:
    the quantities of the targets without a derivative, in their order, at SI points ``x`` (the
    derivative-free measurement). Returns one record per start: its start and
    end point (unit cube), loss before and after, iterations, and every evaluated point with its
    quantities (for the verdict)."""
    from scipy.optimize import minimize

    from ionspike.design.search import loss, to_si as si_of, violation

    diff = [i for i, t in enumerate(spec.targets) if differentiable(t)]
    rest = [i for i in range(len(spec.targets)) if i not in diff]
    out = []
    for s, u0 in enumerate(np.atleast_2d(starts)):
        evaluated, quantities = [], []

        def objective(u):
            u = np.clip(np.asarray(u, np.float64), 0.0, 1.0)
            x = si_of(spec, u[None, :])
            q = np.full((1, len(spec.targets)), np.nan)
            if rest:
                q[:, rest] = measure_rest(x)
            vals, jac = trace(spec, diff, u[None, :])
            q[:, diff] = vals
            evaluated.append(x[0])
            quantities.append(q[0])
            f = float(loss(spec, q)[0])
            g = np.zeros(len(u))
            for col, i in enumerate(diff):
                t = spec.targets[i]
                viol = violation(t, vals[:, col])[0]
                if np.isfinite(viol) and viol > 0 and np.all(np.isfinite(jac[0, col])):
                    g += t.weight * 2.0 * viol * float(violation_derivative(t, vals[:, col])[0]) * jac[0, col]
            if progress is not None:
                progress(s, len(evaluated), f)
            return f, g

        f0, _ = objective(u0)
        res = minimize(objective, np.asarray(u0, np.float64), jac=True, method="L-BFGS-B",
                       bounds=[(0.0, 1.0)] * len(u0), options={"maxiter": max_iterations})
        u1 = np.clip(res.x, 0.0, 1.0)
        out.append({"start": np.asarray(u0, np.float64), "end": u1, "loss_before": f0, "loss_after": float(res.fun),
                    "iterations": int(res.nit), "evaluations": len(evaluated), "message": str(res.message),
                    "evaluated": np.array(evaluated), "quantities": np.array(quantities)})
    return out
