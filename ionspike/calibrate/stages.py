"""The stages every fit is made of, each usable (and tested) alone.

* :func:`adam_stage`: gradient descent (optax Adam, cosine-decayed rate) on a loss of the
  unconstrained parameters, from several starts; gradients by autodiff or central differences
  (:func:`central_difference`);
* :func:`noise_grid` / :func:`grid_stage`: distribution matching over ``(N_eff, sigma_c2c_ln_mu)``;
* :func:`recentre`: one re-centring step of a drift onset and growth rate on the threshold and
  hold medians (the DC fits; used per polarity too);
* :func:`secant_step`: one secant step of ``ln mu`` on the log median delay (the pulse polish).

``progress`` (a callable of no argument, or None) is called once per unit of work the stage
counts: one per Adam step and start, one per grid point; :func:`ionspike.calibrate.progress_total`
adds them up before a fit.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ionspike.calibrate.data import DataError
from ionspike.calibrate.options import FitOptions
from ionspike.calibrate.setups import require_float64
from ionspike.params import Noise


def tick(progress, n: int = 1) -> None:
    """Call ``progress`` (if any) ``n`` times: ``n`` units of work done."""
    if progress:
        for _ in range(n):
            progress()


def central_difference(loss: Callable, h: float) -> Callable:
    """``value_and_grad`` of ``loss`` by central differences of step ``h`` in each coordinate (the noise
    inside ``loss`` is fixed, so the differences see the parameters only)."""
    f = jax.jit(loss)

    def vg(theta):
        theta = jnp.asarray(theta)
        grad = []
        for i in range(theta.size):
            e = jnp.zeros_like(theta).at[i].set(h)
            grad.append((f(theta + e) - f(theta - e)) / (2 * h))
        return f(theta), jnp.stack(grad)
    return vg


def adam_stage(loss: Callable, starts: list, opts: FitOptions, progress=None,
               fd_step: float | None = None) -> tuple[np.ndarray, float, list]:
    """Minimise ``loss`` from each start with Adam (cosine-decayed rate, ``opts.steps`` steps); return
    the best point, its loss and the loss traces. Gradients by autodiff, or by central differences
    of step ``fd_step``. Ticks ``opts.steps`` per start (also when a non-finite gradient ends a
    start early). Runs in float64 only (inside a fit, or :func:`ionspike.precision.float64`)."""
    require_float64("adam_stage")
    vg = jax.jit(jax.value_and_grad(loss)) if fd_step is None else central_difference(loss, fd_step)
    best, best_loss, traces = None, math.inf, []
    for theta0 in starts:
        opt = optax.adam(optax.cosine_decay_schedule(opts.lr, opts.steps, alpha=0.1))
        theta = jnp.asarray(theta0, dtype=jnp.float64)
        state = opt.init(theta)
        trace = []
        for step in range(opts.steps):
            value, grad = vg(theta)
            value = float(value)
            trace.append(value)
            if value < best_loss:
                best, best_loss = np.asarray(theta), value
            if not np.all(np.isfinite(np.asarray(grad))):
                tick(progress, opts.steps - step)
                break
            updates, state = opt.update(grad, state, theta)
            theta = optax.apply_updates(theta, updates)
            tick(progress)
        value = float(vg(theta)[0])
        trace.append(value)
        if value < best_loss:
            best, best_loss = np.asarray(theta), value
        traces.append(trace)
    if best is None:
        raise DataError("the fit found no finite loss from any start: the simulated device never produces the "
                        "measured features (check the setup: compliance, series resistance, timing)")
    return best, best_loss, traces


def noise_grid(opts: FitOptions, default_sigmas: tuple) -> list[Noise]:
    """The grid points of the noise stage: every ``(N_eff, sigma_c2c_ln_mu)`` pair except the fully
    deterministic one (``N_eff = inf``, no spread: every trial identical, no distribution)."""
    return [Noise(n_eff=float(n_eff), sigma_d2d_ln_mu=0.0, sigma_c2c_ln_mu=float(sigma))
            for n_eff in opts.n_eff_grid for sigma in opts.sigmas(default_sigmas)
            if np.isfinite(n_eff) or sigma != 0.0]


def grid_stage(score: Callable, m, points: list[Noise], progress=None):
    """Best noise of ``points``. ``score(m, noise) -> (value, m')`` re-centres the deterministic
    parameters for that noise (noise shifts the medians) and scores the result; lower is better.
    Returns the best noise, its re-centred memristor, its score and the table. Ticks once a point."""
    rows, best, best_m, best_score = [], None, m, math.inf
    for noise in points:
        s, m_new = score(m, noise)
        rows.append({"n_eff": noise.n_eff if np.isfinite(noise.n_eff) else "inf",
                     "sigma_c2c_ln_mu": noise.sigma_c2c_ln_mu, "score": s, "v_h": m_new.v_h, "mu": m_new.mu})
        if s < best_score:
            best, best_m, best_score = noise, m_new, s
        tick(progress)
    if best is None:
        raise DataError("the noise grid is empty: give n_eff_grid/sigma_c2c_grid with at least one noisy point")
    return best, best_m, best_score, rows


def recentre(onset: float, mu: float, target: tuple[float, float],
             simulated: tuple[float, float]) -> tuple[float, float]:
    """One re-centring step of a drift onset ``onset`` (V) and growth rate ``mu`` (1/(s V)) on the
    ``(threshold, hold)`` medians (V): ``target`` measured, ``simulated`` at ``(onset, mu)``.

    The hold follows the onset about one to one (the device releases where the drive falls to
    it): shift the onset by the hold miss, kept in ``[0, 0.95 V_th]``. The threshold sits above
    the onset by ~1/mu (the saddle-node of the filament equation): scale ``mu`` by the ratio of
    the simulated to the wanted distance, within ``[1/4, 4]``. Unchanged if a median is NaN.
    """
    (th_t, ho_t), (th_s, ho_s) = target, simulated
    if not (np.isfinite(th_s) and np.isfinite(ho_s)):
        return onset, mu
    new = float(np.clip(onset + (ho_t - ho_s), 0.0, 0.95 * th_t))
    ratio = (th_s - onset) / max(th_t - new, 1e-3)
    return new, float(mu * np.clip(ratio, 0.25, 4.0))


def secant_step(points: list[tuple[float, float]], target: float) -> float:
    """The next ``ln mu`` step toward ``target`` (ln s) from ``points`` ``[(ln mu, ln median delay), ...]``:
    a secant through the last two (slope within [-5, -0.2]; -1 until there are two: delay ~ 1/mu),
    within ``+-ln 2``."""
    slope = -1.0
    if len(points) >= 2 and points[-1][1] != points[-2][1] and points[-1][0] != points[-2][0]:
        slope = float(np.clip((points[-1][1] - points[-2][1]) / (points[-1][0] - points[-2][0]), -5.0, -0.2))
    return float(np.clip((target - points[-1][1]) / slope, -math.log(2), math.log(2)))
