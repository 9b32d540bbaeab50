"""Error-controlled adaptive stepping for a batch of neurons, each on its own clock: knows no physics.

``solve_adaptive`` integrates a model's step function as :func:`ionspike.solve.solve` does,
but every neuron carries its own time ``t`` and step ``h``:

* what to solve: ``step(state, v_in, h, dW, args) -> (state, StepOutput, error, slopes)`` from
  the model, with ``h`` and ``v_in`` per neuron, ``error = {name: (estimate, scale)}`` the
  model's local error estimate of the components it wants controlled (and their magnitude) and
  ``slopes = {signal: (d/dt at the start, at the end)}`` for the signals it can differentiate;
* how to step it: :class:`Controller` -- a PI step-size controller on the RMS norm of
  ``estimate / (atol + rtol * scale)`` (the rule of Hairer, Nørsett & Wanner and of diffrax's
  ``PIDController``), rejection and retry, and **jump times**: no step straddles a
  discontinuity of the stimulus (``stimulus.next_jump``), a record segment's end or (for
  stochastic runs) a noise window's end;
* the noise: a :class:`BrownianTree` per neuron, ``W(t)`` a pure function of (seed, neuron, t)
  at a fixed resolution, so a run's noise does not depend on the steps the controller picks;
* what to keep: signals on the record grid by dense output (cubic Hermite interpolation inside
  the accepted step where the model gives slopes, linear otherwise; ``V_in`` as during the step), events at the time the step reports, energies summed over
  accepted steps, and per neuron the accepted and rejected step counts.

All neurons advance together in one vectorised loop: an iteration attempts one step for every
neuron that has not reached the segment's end; finished neurons idle until the slowest one
arrives (the cost of lockstep is the spread of step counts across the batch).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ionspike import checks, map_limit
from ionspike.errors import ParameterError, SolverError
from ionspike.precision import real
from ionspike.solve import Solution, _finite, _placement, accumulate, energy_zeros
from ionspike.stimulus import JUMP_TOL


@dataclass(frozen=True)
class Controller:
    """How the step size is chosen (all times in s).

    ``rtol``/``atol``: tolerances of the error norm ``rms(error / (atol + rtol |y|))``, accepted
    when ``<= 1``. ``order``: the order of the model's error estimate (the exponent of the
    controller is ``1/(order + 1)``). PI coefficients ``(beta1, beta2)`` as in Hairer & Wanner
    (``0.7``, ``0.4`` over ``order + 1``). ``safety``, ``factor_min``/``factor_max``: the limits
    of one change. ``first_step``, ``min_step``, ``max_step``: step bounds; ``max_steps``: accepted
    plus rejected steps a neuron may take before the run is declared stalled.
    """

    rtol: float = 1e-6
    atol: float = 1e-9
    order: int = 2
    beta1: float = 0.7
    beta2: float = 0.4
    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0
    first_step: float = 1e-7
    min_step: float = 1e-12
    max_step: float = math.inf
    max_steps: int = 10_000_000

    def __post_init__(self):
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed (0, 1)")
        checks.positive("first_step", self.first_step, unit="s")
        checks.positive("min_step", self.min_step, unit="s")
        if not (isinstance(self.max_step, (int, float)) and self.max_step > 0):
            raise ParameterError(f"max_step = {self.max_step!r} s is out of range: allowed (0, inf] s")
        if self.max_step < self.min_step:
            raise ParameterError(f"max_step = {self.max_step:g} s is below min_step = {self.min_step:g} s: "
                                 "allowed max_step >= min_step")
        if not (0 < self.safety <= 1 and 0 < self.factor_min < 1 < self.factor_max):
            raise ParameterError(f"safety = {self.safety!r}, factor_min = {self.factor_min!r}, factor_max = "
                                 f"{self.factor_max!r}: allowed 0 < safety <= 1, 0 < factor_min < 1 < factor_max")
        checks.integer("max_steps", self.max_steps, 1)
        checks.integer("order", self.order, 1)


@dataclass(frozen=True)
class BrownianTree:
    """A Brownian path that can be queried at any time: a virtual Brownian tree (Gaines & Lyons
    1997; diffrax's ``VirtualBrownianTree``) on consecutive windows of ``resolution * 2**depth``
    s. In window ``j`` the path is ``W(t) = B_j(t - j T)`` with ``B_j(0) = 0``; ``B_j`` at the
    window's end is ``sqrt(T) z``, and at each dyadic midpoint the Brownian bridge between its
    neighbours plus ``sqrt(length/4) z``, every ``z`` a standard normal keyed by (neuron, window,
    node). Between the finest nodes (``resolution`` s apart) ``W`` is the bridge's mean (linear).
    A step must not straddle a window's end (the solver makes the ends jump times)."""

    resolution: float = 1e-8
    depth: int = 20

    @property
    def window(self) -> float:
        return self.resolution * 2 ** self.depth

    def value(self, keys, window_index, offset, n_noise: int):
        """``B_j(offset)`` for every neuron: ``keys`` ``(n,)`` (one per neuron), ``window_index``
        and ``offset`` (s) ``(n,)``. Returns ``(n_noise, n)``."""
        T = self.window

        seeds = jax.random.key_data(keys).reshape(keys.shape[0], -1)[:, :2].astype(jnp.uint32)   # (n, 2)

        def one(seed, j, s):
            base = _mix(seed[0] ^ _mix(j.astype(jnp.uint32) ^ _mix(seed[1])))
            lo, hi = 0.0, T
            w_lo = jnp.zeros(n_noise)
            w_hi = jnp.sqrt(T) * _normals(base, jnp.uint32(1), n_noise)
            node = jnp.uint32(1)
            for _ in range(self.depth):
                mid = 0.5 * (lo + hi)
                w_mid = 0.5 * (w_lo + w_hi) + jnp.sqrt(0.25 * (hi - lo)) * _normals(base, 2 * node, n_noise)
                right = s >= mid
                node = 2 * node + right.astype(jnp.uint32)
                lo, hi = jnp.where(right, mid, lo), jnp.where(right, hi, mid)
                w_lo, w_hi = jnp.where(right, w_mid, w_lo), jnp.where(right, w_hi, w_mid)
            return w_lo + (w_hi - w_lo) * jnp.clip((s - lo) / (hi - lo), 0.0, 1.0)

        return jnp.transpose(jax.vmap(one)(seeds, window_index, offset))


def _mix(x):
    """A 32-bit integer hash with full avalanche (Wellons' ``lowbias32``)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _normals(base, node, count: int):
    """``count`` standard normals that are a pure function of (``base``, ``node``): counter-based
    uniforms from :func:`_mix`, then Box-Muller. A tree query needs ``depth`` of these per neuron
    and step, where a Threefry draw each would cost several times the step itself."""
    out = []
    for pair in range((count + 1) // 2):
        h = _mix(base ^ _mix(node * jnp.uint32(2 * pair + 1) + jnp.uint32(0x9E3779B9)))
        u1 = (_mix(h ^ jnp.uint32(0x85EBCA6B)).astype(real()) + 0.5) / 4294967296.0
        u2 = (_mix(h ^ jnp.uint32(0xC2B2AE35)).astype(real()) + 0.5) / 4294967296.0
        r = jnp.sqrt(-2.0 * jnp.log(u1))
        out += [r * jnp.cos(2.0 * jnp.pi * u2), r * jnp.sin(2.0 * jnp.pi * u2)]
    return jnp.stack(out[:count])


class AdaptiveStats(NamedTuple):
    accepted: np.ndarray   # (n,) accepted steps per neuron
    rejected: np.ndarray   # (n,) rejected steps per neuron
    iterations: int        # loop iterations (lockstep: every neuron pays for the slowest)


class _Carry(NamedTuple):
    state: Any
    t: jnp.ndarray          # (n,) s
    h: jnp.ndarray          # (n,) proposed next step, s
    err_prev: jnp.ndarray   # (n,) the last accepted step's error norm (PI memory)
    w_now: jnp.ndarray      # (n_noise, n) the Brownian path at t, relative to its window
    energy: dict            # name -> (sum, compensation), see ionspike.solve.accumulate
    ev_times: dict
    ev_counts: dict
    last: dict              # signals at t
    accepted: jnp.ndarray
    rejected: jnp.ndarray
    t_fail: jnp.ndarray     # non-finite at the smallest step: time
    t_stall: jnp.ndarray    # error not met at min_step, or max_steps used: time
    iterations: jnp.ndarray


def solve_adaptive(
    step: Callable,
    state0: Any,
    stimulus: Any,
    args: Any,
    *,
    n: int,
    duration: float,
    record_dt: float,
    signals: tuple[str, ...],
    max_events: int,
    controller: Controller,
    key: jax.Array | None,
    n_noise: int,
    initial_signals: dict[str, jnp.ndarray],
    brownian: BrownianTree = BrownianTree(),
    throw: bool = True,
    progress: Callable[[float], None] | None = None,
    segments: int = 20,
    devices: Any = "auto",
    neuron_ids: Any = None,
) -> tuple[Solution, AdaptiveStats]:
    """Integrate ``step`` from 0 to ``duration`` s with per-neuron adaptive steps.

    ``record_dt``: the record grid (s; signals at ``k record_dt`` and at ``duration``).
    The other arguments are those of :func:`ionspike.solve.solve`. Returns the
    :class:`~ionspike.solve.Solution` (``n_steps``: the most steps any neuron took) and
    :class:`AdaptiveStats`.

    Raises :class:`SolverError` (with ``throw``) naming the neuron and time where a neuron became
    non-finite at the smallest step, could not meet the tolerance at ``min_step``, or used
    ``max_steps``.
    """
    n_records = max(1, math.ceil(duration / record_dt - 1e-9))
    segments = max(1, min(segments, n_records))
    per_seg = math.ceil(n_records / segments)
    n_segments = math.ceil(n_records / per_seg)
    signal_names = tuple(signals)
    # the buffers' length is static (only when signals are recorded); the times are not, so runs of
    # other durations reuse the compiled code
    run_segment = _compiled(step, n, per_seg if signal_names else 1, signal_names, n_noise, controller, brownian,
                            int(max_events))
    timing = (jnp.asarray(duration, real()), jnp.asarray(record_dt, real()), jnp.int32(n_records),
              jnp.int32(per_seg))
    ids = jnp.arange(n) if neuron_ids is None else jnp.asarray(neuron_ids, jnp.uint32)
    neuron_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(ids) if n_noise else None

    probe = jax.eval_shape(
        lambda s, st, a: step(s, jnp.broadcast_to(st.value(jnp.asarray(0.0, real())), (n,)), jnp.full(n, 1e-6),
                              jnp.zeros((n_noise, n)) if n_noise else None, a)[:2],
        state0, stimulus, args)[1]
    zeros = jnp.zeros(n)
    carry = _Carry(
        state=state0, t=zeros, h=jnp.full(n, min(controller.first_step, controller.max_step)),
        err_prev=jnp.ones(n), w_now=jnp.zeros((max(n_noise, 1), n)),
        energy=energy_zeros(probe.energy, n),
        ev_times={k: jnp.full((n, max_events), jnp.nan) for k in probe.events},
        ev_counts={k: jnp.zeros(n, jnp.int32) for k in probe.events},
        last={k: jnp.asarray(initial_signals[k]) for k in probe.signals},
        accepted=jnp.zeros(n, jnp.int32), rejected=jnp.zeros(n, jnp.int32),
        t_fail=jnp.full(n, jnp.nan), t_stall=jnp.full(n, jnp.nan), iterations=jnp.int32(0))
    place = _placement(devices, n)
    carry, stimulus, args, neuron_keys = place((carry, stimulus, args, neuron_keys))

    recorded = {k: [np.asarray(initial_signals[k])[None]] for k in signal_names}
    for seg in range(n_segments):
        carry, recs = run_segment(carry, jnp.int32(seg), timing, stimulus, args, neuron_keys)
        for k in signal_names:
            recorded[k].append(np.asarray(recs[k]))
        if progress is not None:
            progress(min(1.0, (seg + 1) / n_segments))

    times = np.minimum(np.arange(n_records + 1) * record_dt, duration)
    sig = {k: np.concatenate(v)[: n_records + 1] for k, v in recorded.items()}
    t_fail, t_stall = np.asarray(carry.t_fail), np.asarray(carry.t_stall)
    accepted, rejected = np.asarray(carry.accepted), np.asarray(carry.rejected)
    if throw and (np.isfinite(t_fail).any() or np.isfinite(t_stall).any()):
        bad = np.where(np.isfinite(t_fail), t_fail, t_stall)
        i = int(np.nanargmin(np.where(np.isfinite(bad), bad, np.inf)))
        what = "became non-finite" if np.isfinite(t_fail[i]) else (
            f"used the allowed {controller.max_steps} steps" if accepted[i] + rejected[i] >= controller.max_steps
            else f"could not meet rtol = {controller.rtol:g}, atol = {controller.atol:g} at min_step = "
                 f"{controller.min_step:g} s")
        raise SolverError(f"neuron {i} {what} at t = {bad[i]:.6g} s (adaptive stepping, {accepted[i]} accepted and "
                          f"{rejected[i]} rejected steps); loosen rtol/atol, lower min_step, raise max_steps, "
                          f"or check the parameters", neuron=i, time_s=float(bad[i]))
    failed = np.where(np.isfinite(t_fail), t_fail, t_stall)
    sol = Solution(
        times=times, signals=sig,
        energy={k: np.asarray(total) for k, (total, _) in carry.energy.items()},
        event_times={k: np.asarray(v) for k, v in carry.ev_times.items()},
        event_counts={k: np.asarray(v) for k, v in carry.ev_counts.items()},
        final_state=jax.tree.map(np.asarray, carry.state), t_fail=failed,
        n_steps=int(np.max(accepted + rejected)), max_events_per_chunk=0)
    return sol, AdaptiveStats(accepted=accepted, rejected=rejected, iterations=int(carry.iterations))


def _error_norm(error: dict, rtol: float, atol: float):
    terms = [jnp.square(e / (atol + rtol * s)) for e, s in error.values()]
    return jnp.sqrt(sum(terms) / len(terms))


@functools.lru_cache(maxsize=32)
def _compiled(step, n, buf_len, signal_names, n_noise, ctl: Controller, brownian: BrownianTree, max_events):
    """The jitted segment runner for one static configuration (cached across calls)."""
    # a new program is about to be compiled: a process at the kernel's mapping limit dies in XLA
    # (checked here, on a cache miss, not on every call: reading /proc/self/maps costs milliseconds)
    map_limit.release_if_near_limit()
    k_exp = 1.0 / (ctl.order + 1)
    window = brownian.window
    rows = np.arange(n, dtype=np.int32)   # a NumPy constant: the cached runner serves both precisions

    def attempt(c: _Carry, t_end, rec_first, bufs, timing, stimulus, args, neuron_keys):
        duration, record_dt, n_records, _ = timing
        active = (c.t < t_end - JUMP_TOL) & jnp.isnan(c.t_fail) & jnp.isnan(c.t_stall)
        t_jump = jnp.minimum(stimulus.next_jump(c.t), t_end)
        if n_noise:
            j = jnp.floor((c.t + JUMP_TOL) / window)
            t_jump = jnp.minimum(t_jump, (j + 1.0) * window)
        room = jnp.maximum(t_jump - c.t, ctl.min_step)
        h = jnp.minimum(jnp.minimum(c.h, ctl.max_step), room)
        truncated = h >= room
        h = jnp.where(active, h, ctl.min_step)
        v_in = jnp.broadcast_to(stimulus.value(c.t + 0.5 * h), (n,))
        if n_noise:
            # the window of the step's start; a step ends at the latest at the window's end
            j = jnp.floor((c.t + JUMP_TOL) / window)
            w_end = brownian.value(neuron_keys, j, jnp.minimum(c.t + h - j * window, window), n_noise)
            dW = (w_end - c.w_now) / jnp.sqrt(h)[None, :]
        else:
            dW, w_end = None, c.w_now
        new, out, error, slopes = step(c.state, v_in, h, dW, args)
        norm = _error_norm(error, ctl.rtol, ctl.atol)
        finite = _finite(new) & jnp.isfinite(norm)
        norm = jnp.where(finite, norm, jnp.inf)
        at_floor = h <= ctl.min_step * (1.0 + 1e-9)
        accept = active & (norm <= 1.0)
        # the controller (PI on accepted steps; plain I-control after a rejection)
        safe_norm = jnp.maximum(norm, 1e-10)
        fac_acc = ctl.safety * safe_norm ** (-ctl.beta1 * k_exp) * jnp.maximum(c.err_prev, 1e-10) ** (ctl.beta2 * k_exp)
        fac_rej = ctl.safety * safe_norm ** (-k_exp)
        fac = jnp.where(accept, jnp.clip(fac_acc, ctl.factor_min, ctl.factor_max),
                        jnp.clip(jnp.where(finite, fac_rej, ctl.factor_min), ctl.factor_min, 1.0))
        h_next = h * fac
        h_next = jnp.where(accept & truncated, jnp.maximum(h_next, c.h), h_next)
        h_next = jnp.clip(h_next, ctl.min_step, ctl.max_step)
        fail_now = active & at_floor & ~finite
        stall_now = active & at_floor & finite & (norm > 1.0)
        stall_now = stall_now | (active & (c.accepted + c.rejected + 1 >= ctl.max_steps) & ~accept)
        t_new = jnp.where(truncated, t_jump, c.t + h)

        state = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, c.state)   # leaves: (..., n)
        energy = accumulate(c.energy, out.energy, accept)
        ev_times, ev_counts = {}, {}
        for k, (crossed, frac) in out.events.items():
            hit = accept & crossed
            count = c.ev_counts[k]
            pos = jnp.minimum(count, max_events - 1)
            old = c.ev_times[k][rows, pos]
            ev_times[k] = c.ev_times[k].at[rows, pos].set(jnp.where(hit & (count < max_events), c.t + frac * h, old))
            ev_counts[k] = count + hit.astype(count.dtype)
        # dense output: every record time in (t, t_new] of an accepted step
        bufs = _write_records(bufs, c.t, t_new, h, c.last, out.signals, slopes, accept, rec_first, record_dt,
                              n_records, duration)
        if n_noise:
            at_window_end = t_new >= (jnp.floor((c.t + JUMP_TOL) / window) + 1.0) * window - JUMP_TOL
            w_now = jnp.where(accept[None, :], jnp.where(at_window_end[None, :], 0.0, w_end), c.w_now)
        else:
            w_now = c.w_now
        c = c._replace(
            state=state, t=jnp.where(accept, t_new, c.t), h=jnp.where(active, h_next, c.h),
            err_prev=jnp.where(accept, jnp.maximum(norm, 1e-4), c.err_prev), w_now=w_now,
            energy=energy, ev_times=ev_times, ev_counts=ev_counts,
            last={k: jnp.where(accept, out.signals[k], c.last[k]) for k in c.last},
            accepted=c.accepted + accept.astype(jnp.int32),
            rejected=c.rejected + (active & ~accept).astype(jnp.int32),
            t_fail=jnp.where(fail_now, c.t, c.t_fail), t_stall=jnp.where(stall_now, c.t, c.t_stall),
            iterations=c.iterations + 1)
        return c, bufs

    def run_segment(carry: _Carry, seg, timing, stimulus, args, neuron_keys):
        duration, record_dt, n_records, per_seg = timing
        rec_first = seg * per_seg + 1                       # the segment's first record index
        t_end = jnp.minimum((seg + 1) * per_seg * record_dt, duration)
        t_end = jnp.where((seg + 1) * per_seg >= n_records, duration, t_end)
        bufs = {k: jnp.full((buf_len, n), jnp.nan) for k in signal_names}

        def cond(cb):
            c, _ = cb
            return jnp.any((c.t < t_end - JUMP_TOL) & jnp.isnan(c.t_fail) & jnp.isnan(c.t_stall))

        def body(cb):
            return attempt(cb[0], t_end, rec_first, cb[1], timing, stimulus, args, neuron_keys)

        carry, bufs = jax.lax.while_loop(cond, body, (carry, bufs))
        return carry, bufs

    return jax.jit(run_segment)


def _write_records(bufs, t0, t1, h, s0, s1, slopes, accept, rec_first, record_dt, n_records, duration):
    """Write the record points in ``(t0, t1]`` of each accepted step: cubic Hermite between the
    step's end values and slopes where the model gives them, else linear (``V_in``: its value during the step, as the fixed-step solver records it);
    the last point is at ``duration``."""
    if not bufs:
        return bufs
    per_seg = next(iter(bufs.values())).shape[0]
    n = t0.shape[0]
    rows = jnp.arange(n)
    # the first record index after t0 (global), as a local index of this segment
    first = jnp.floor(t0 / record_dt + 1e-9).astype(jnp.int32) + 1
    last = jnp.minimum(jnp.floor(t1 / record_dt + 1e-9).astype(jnp.int32), n_records)
    # the final record is at `duration` (not a multiple of record_dt when the run ends between points)
    last = jnp.where(t1 >= duration - JUMP_TOL, n_records, last)

    def cond(state):
        r, _ = state
        return jnp.any(accept & (r <= last))

    def body(state):
        r, bufs = state
        write = accept & (r <= last)
        t_r = jnp.minimum(r * record_dt, t1)
        theta = jnp.clip((t_r - t0) / h, 0.0, 1.0)
        local = jnp.clip(r - rec_first, 0, per_seg - 1)
        out = {}
        for k, buf in bufs.items():
            if k == "V_in":
                v = s1[k]
            elif k in slopes:
                d0, d1 = slopes[k]
                th2, th3 = theta * theta, theta * theta * theta
                v = ((2 * th3 - 3 * th2 + 1) * s0[k] + (th3 - 2 * th2 + theta) * h * d0
                     + (-2 * th3 + 3 * th2) * s1[k] + (th3 - th2) * h * d1)
            else:
                v = s0[k] + theta * (s1[k] - s0[k])
            v = jnp.broadcast_to(v, (n,))
            out[k] = buf.at[local, rows].set(jnp.where(write, v, buf[local, rows]))
        return r + 1, out

    _, bufs = jax.lax.while_loop(cond, body, (first, bufs))
    return bufs

