"""Find the variables that meet the targets: a batched derivative-free search (SciPy's differential
evolution, Sobol start, every generation one batched simulation of all its candidates), then, where a
target has a derivative (:mod:`ionspike.design.gradient`: the first spike under a DC input), a
gradient step (L-BFGS-B from the best candidates, derivatives through the simulation); then the
verdict per target, the sensitivity at the optimum and a check by a fresh simulation.
``[search] method`` picks "auto" (both, the default), "evolution" (no gradient step) or "gradient"
(a Sobol sample in place of the evolution).

The loss of a candidate is the weighted sum over targets of the squared distance of the measured
value to its accepted interval, in log units for positive quantities (a factor of e outside costs
1) and in absolute units for P(fire) (0.1 outside costs 0.01) and spike counts (relative to the
bound); an undefined value (no spike) costs ``UNDEFINED_COST``. A target is met when the value lies
in its interval; one that no evaluated candidate met is reported as infeasible within the bounds,
with the closest value any candidate reached.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
from scipy.optimize import differential_evolution
from scipy.stats import qmc

from ionspike.design.gradient import differentiable
from ionspike.design.measure import measure
from ionspike.design.spec import DesignSpec, Target

UNDEFINED_COST = 25.0
CHUNK = 16                # candidates per runner task (ionspike design --workers/--scheduler)
SENSITIVITY_STEP = 0.1    # relative change of each variable for the sensitivity (spike times sit on pulse
                          # edges, so counts and ISIs move in steps: a few % often changes nothing)


def violation(t: Target, value: np.ndarray) -> np.ndarray:
    """Distance of ``value`` to the target's interval (0 inside), in the target's loss units; NaN stays NaN."""
    v = np.asarray(value, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if t.robust:                        # the measured value is the fraction of devices that meet it
            return np.maximum(t.fraction - v, 0.0)
        if t.quantity == "p_fire":
            return np.maximum(t.low - v, 0.0) + np.maximum(v - t.high, 0.0)
        if t.quantity == "spike_count":
            below = np.where(np.isfinite(t.low), (t.low - v) / max(abs(t.low), 1.0), 0.0)
            above = np.where(np.isfinite(t.high), (v - t.high) / max(abs(t.high), 1.0), 0.0)
            return np.maximum(below, 0.0) + np.maximum(above, 0.0)
        vv = np.maximum(v, 1e-300)
        below = np.log(t.low / vv) if t.low > 0 else np.zeros_like(vv)
        above = np.log(vv / t.high) if math.isfinite(t.high) else np.zeros_like(vv)
        out = np.maximum(below, 0.0) + np.maximum(above, 0.0)
        return np.where(v <= 0, np.where(t.low > 0, np.inf, out), out)


def loss(spec: DesignSpec, q: np.ndarray) -> np.ndarray:
    """Loss of each candidate from its quantities (candidates, targets)."""
    total = np.zeros(q.shape[0])
    for i, t in enumerate(spec.targets):
        d = violation(t, q[:, i])
        total += t.weight * np.where(np.isfinite(d), d * d, UNDEFINED_COST)
    return total


def to_si(spec: DesignSpec, u: np.ndarray) -> np.ndarray:
    """Unit-cube coordinates (candidates, variables) -> SI values."""
    u = np.atleast_2d(u)
    return np.array([[v.to_unit(float(x)) for v, x in zip(spec.variables, row)] for row in u])


def _from_si(spec: DesignSpec, x: np.ndarray) -> np.ndarray:
    out = []
    for v, val in zip(spec.variables, x):
        out.append((math.log(val) - math.log(v.low)) / (math.log(v.high) - math.log(v.low)) if v.log
                   else (val - v.low) / (v.high - v.low))
    return np.array(out)


def _measure_chunk(spec: DesignSpec, task: tuple) -> np.ndarray:
    """One runner task: the quantities of a chunk of candidates ``(offset, values)``."""
    return measure(spec, task[1])


def measure_on(runner, spec: DesignSpec, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """:func:`measure` of the candidates ``x`` split into chunks of ``chunk`` candidates, each a task
    of ``runner`` (:class:`ionspike.runner.Runner`); None: in this process, one batch. Deterministic
    quantities are the same either way; P(fire) draws its noise per chunk (the same seed in every
    chunk: common random numbers across chunks), so its values depend on the chunk size."""
    if runner is None:
        return measure(spec, x)
    out = np.full((x.shape[0], len(spec.targets)), np.nan)
    failed: list = []

    def done(task, q):
        out[task[0]:task[0] + len(task[1])] = q

    runner.run(_measure_chunk, [(i, x[i:i + chunk]) for i in range(0, x.shape[0], chunk)], on_result=done,
               on_error=lambda task, exc: failed.append((task[0], exc)), args=(spec,))
    if failed:      # as in one in-process batch: the first failure, with its own type and message
        raise failed[0][1]
    return out


def run(spec: DesignSpec, *, progress: Callable[[int, int, float], None] | None = None, spice: bool = False,
        runner=None) -> dict:
    """Search, then judge and check the best candidate (``spice``: also on its exported ngspice deck,
    run by the real ngspice). ``runner``: measure each generation's candidates as tasks of this
    :class:`ionspike.runner.Runner` (chunks of ``CHUNK``), for populations that outgrow one machine;
    None: in this process. Returns the design as JSON-ready data."""
    history, evaluated, quantities = [], [], []
    t0 = time.perf_counter()
    generation = [0]

    def objective(u):                       # u: (variables, candidates), SciPy's vectorised layout
        x = to_si(spec, np.clip(u.T, 0.0, 1.0))
        q = measure_on(runner, spec, x)
        f = loss(spec, q)
        evaluated.append(x)
        quantities.append(q)
        best = int(np.argmin(f))
        history.append({"generation": generation[0], "candidates": int(len(f)), "best_loss": float(f[best]),
                        "best": {v.name: float(x[best, j]) for j, v in enumerate(spec.variables)},
                        "seconds": time.perf_counter() - t0})
        if progress is not None:
            progress(generation[0], spec.generations, float(np.min([h["best_loss"] for h in history])))
        generation[0] += 1
        return f

    d = len(spec.variables)
    if spec.method == "gradient":           # one batched Sobol sample, then the gradient step from its best
        # the next power of two at or above population x variables (Sobol's balance needs one)
        objective(qmc.Sobol(d, seed=spec.seed).random_base2(max(1, math.ceil(math.log2(spec.population * d)))).T)
    else:
        differential_evolution(objective, [(0.0, 1.0)] * d, popsize=spec.population, maxiter=spec.generations,
                               init="sobol", seed=spec.seed, vectorized=True, updating="deferred", polish=False,
                               tol=0.0, atol=0.0)   # every evaluated candidate is kept in `evaluated`
    X, Q = np.concatenate(evaluated), np.concatenate(quantities)
    gradient_step = None
    diff = [i for i, t in enumerate(spec.targets) if differentiable(t)]
    if spec.method != "evolution" and diff:
        gradient_step, X_g, Q_g = _gradient_step(spec, X, Q, diff, runner, progress, generation[0])
        X, Q = np.concatenate([X, X_g]), np.concatenate([Q, Q_g])
    F = loss(spec, Q)
    best_i = int(np.argmin(F))
    x_best = X[best_i]
    # the check: a fresh simulation of the chosen values with another seed
    q_check = measure(spec, x_best[None, :], seed=spec.seed + 1)[0]
    targets = []
    for i, t in enumerate(spec.targets):
        dist = violation(t, Q[:, i])
        dist = np.where(np.isfinite(dist), dist, np.inf)
        met_anywhere = bool(np.any(dist == 0))
        closest = int(np.argmin(dist))
        achieved = float(q_check[i])
        ok = bool(np.isfinite(achieved) and violation(t, np.array([achieved]))[0] == 0)
        targets.append({
            "target": t.label, "quantity": t.quantity, "unit": t.unit, "wanted": t.wanted(), "weight": t.weight,
            "achieved": None if not np.isfinite(achieved) else achieved, "pass": ok,
            "feasible": met_anywhere,
            "closest_achievable": None if met_anywhere or not np.isfinite(Q[closest, i]) else float(Q[closest, i]),
            "note": "" if ok else ("infeasible within the bounds: no evaluated candidate met it; the closest value "
                                  "any candidate reached is closest_achievable" if not met_anywhere else
                                  "met by some candidates, but not together with the other targets"),
        })
    if spice:
        from ionspike.design.measure import measure_spice

        for t, value in zip(targets, measure_spice(spec, x_best)):
            t["ngspice"] = value
            t["ngspice_vs_ionspike"] = (None if value is None or t["achieved"] in (None, 0)
                                        else value / t["achieved"] - 1.0)
    sens = sensitivity(spec, x_best, q_check, runner)
    from ionspike.design.area import footprint
    from ionspike.design.measure import chosen_params

    return {
        "footprint": footprint(chosen_params(spec, x_best), spec.node),
        "variables": [{"name": v.name, "parameter": v.path, "unit": v.unit, "low": v.low, "high": v.high,
                       "scale": "log" if v.log else "linear", "value": float(x_best[j])}
                      for j, v in enumerate(spec.variables)],
        "targets": targets,
        "passed": sum(t["pass"] for t in targets), "total": len(targets),
        "loss": float(F[best_i]), "evaluations": int(len(F)), "generations": len(history),
        "optimizer": _describe_optimizer(spec, gradient_step),
        "gradient_step": gradient_step,
        "runner": None if runner is None else {"chunk": CHUNK, "workers": _workers(runner)},
        "sensitivity": sens,
        "sensitivity_method": {t.label: ("forward-mode derivative" if differentiable(t) else
                                         f"central differences of +-{SENSITIVITY_STEP:.0%}") for t in spec.targets},
        "history": history, "seconds": time.perf_counter() - t0,
        "checked_with_seed": spec.seed + 1,
    }


def _describe_optimizer(spec: DesignSpec, gradient_step: dict | None) -> str:
    first = (f"a Sobol sample of {spec.population} candidates per variable, rounded up to a power of two (one "
             "batched simulation)"
             if spec.method == "gradient" else
             f"scipy.optimize.differential_evolution (Sobol start, population {spec.population} per variable, "
             "vectorised: one batched simulation per generation)")
    if gradient_step is None:
        why = ("method 'evolution'" if spec.method == "evolution" else
               "no target has a derivative (first_spike under a dc input is the one that does)")
        return f"{first}; no gradient step ({why})"
    return (f"{first}, then L-BFGS-B (scipy.optimize.minimize) from the best {len(gradient_step['starts'])} distinct "
            f"candidates, with forward-mode derivatives of {len(gradient_step['targets'])} target(s) through the "
            "simulation (ionspike.design.gradient)")


def _gradient_step(spec: DesignSpec, X: np.ndarray, Q: np.ndarray, diff: list, runner, progress, generation: int):
    """L-BFGS-B from the best ``spec.starts`` distinct candidates of ``X``: ``(report, X, Q)`` with every
    point it evaluated and its quantities."""
    from ionspike.design.gradient import polish

    F = loss(spec, Q)
    starts, seen = [], set()
    for i in np.argsort(F, kind="stable"):
        key = tuple(np.round(_from_si(spec, X[i]), 9))
        if key not in seen and np.isfinite(F[i]):
            seen.add(key)
            starts.append(_from_si(spec, X[i]))
        if len(starts) == spec.starts:
            break
    rest = [i for i in range(len(spec.targets)) if i not in diff]
    rest_spec = dataclasses.replace(spec, targets=tuple(spec.targets[i] for i in rest))
    best = [float(np.min(F))]

    def on_eval(start, evaluations, f):
        best[0] = min(best[0], f)
        if progress is not None:
            progress(generation, spec.generations, best[0])

    runs = polish(spec, np.array(starts), measure_rest=lambda x: measure_on(runner, rest_spec, x),
                  max_iterations=spec.iterations, progress=on_eval)
    report = {"method": "L-BFGS-B (scipy.optimize.minimize) on the unit cube of the variables",
              "targets": [spec.targets[i].label for i in diff],
              "starts": [{"start": {v.name: float(v.to_unit(r["start"][j])) for j, v in enumerate(spec.variables)},
                          "end": {v.name: float(v.to_unit(r["end"][j])) for j, v in enumerate(spec.variables)},
                          "loss_before": r["loss_before"], "loss_after": r["loss_after"],
                          "iterations": r["iterations"], "evaluations": r["evaluations"], "message": r["message"]}
                         for r in runs]}
    return report, np.concatenate([r["evaluated"] for r in runs]), np.concatenate([r["quantities"] for r in runs])


def _workers(runner) -> int | None:
    try:
        return len(runner.client.scheduler_info()["workers"])
    except Exception:  # noqa: BLE001 -- informational only
        return None


def sensitivity(spec: DesignSpec, x: np.ndarray, q0: np.ndarray, runner=None) -> dict:
    """Normalised sensitivity at ``x``: d ln(quantity) / d ln(variable); for targets with a derivative
    (:func:`ionspike.design.gradient.differentiable`) the forward-mode derivative at ``x``, for the
    others central differences of ``SENSITIVITY_STEP`` (one batched simulation); None where a quantity
    is undefined or zero."""
    d = len(spec.variables)
    rows = []
    for j in range(d):
        for sign in (+1.0, -1.0):
            xx = x.copy()
            xx[j] = x[j] * (1.0 + sign * SENSITIVITY_STEP)
            rows.append(xx)
    q = measure_on(runner, spec, np.array(rows))
    out = {}
    diff = [i for i, t in enumerate(spec.targets) if differentiable(t)]
    exact = {}
    if diff:        # targets with a derivative: d ln q / d ln x from the forward-mode derivative at x itself
        from ionspike.design.gradient import trace

        vals, jac = trace(spec, diff, _from_si(spec, x)[None, :])
        for col, i in enumerate(diff):
            row = {}
            for j, v in enumerate(spec.variables):
                du_dlnx = 1.0 / (math.log(v.high) - math.log(v.low)) if v.log else x[j] / (v.high - v.low)
                value = vals[0, col]
                row[v.name] = float(jac[0, col, j] * du_dlnx / value) if np.isfinite(value) and value > 0 else None
            exact[spec.targets[i].label] = row
    for i, t in enumerate(spec.targets):
        if t.label in exact:
            out[t.label] = exact[t.label]
            continue
        out[t.label] = {}
        for j, v in enumerate(spec.variables):
            up, down = q[2 * j, i], q[2 * j + 1, i]
            ok = np.isfinite(up) and np.isfinite(down) and up > 0 and down > 0
            out[t.label][v.name] = (float((math.log(up) - math.log(down)) / (math.log(1 + SENSITIVITY_STEP)
                                                                            - math.log(1 - SENSITIVITY_STEP)))
                                    if ok else None)
    return out
