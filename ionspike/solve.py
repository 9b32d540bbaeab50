"""A batched fixed-step integrator for any step function: knows no physics.

``solve`` scans a step function over time for a batch of ``n`` neurons (the batch is the
last axis of every state leaf), feeding it the stimulus value at the middle of each step
and, for stochastic models, fresh standard normals. It keeps separate:

* what to solve: ``step(state, v_in, dt, dW) -> (state, StepOutput)`` from the model;
* how to step it: :class:`Scheme` (``dt``, noise chunking);
* what to keep: :class:`Record` (signals every ``every`` steps) plus, always, the
  accumulated energy terms and the event times (upward zero crossings the step reports,
  interpolated inside the step), stored in fixed-size per-neuron buffers whose counts keep
  running past the buffer so that an overflow is detected, never silently lost.

Noise is drawn in chunks of steps per neuron from keys derived from the neuron index, so
a neuron's noise does not depend on the batch size. A run is split into segments, each
one call of the same compiled function, for progress reporting; a non-finite state is
located per neuron (time and index) and raised as :class:`SolverError` when ``throw``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ionspike import map_limit
from ionspike.errors import SolverError
from ionspike.precision import real

MAX_CHUNK = 256  # steps per chunk (events flushed to the per-neuron buffers once per chunk)


@dataclass(frozen=True)
class Scheme:
    """How to step.

    ``dt``: fixed step, s. ``noise_substeps``: each step's Brownian increment is the
    normalised sum of this many finer increments, so a run at ``dt`` with
    ``noise_substeps=r`` uses exactly the Brownian path of a run at ``dt/r`` (same seed):
    the two differ only by discretisation, the sample path is refined, not redrawn.
    """

    dt: float
    noise_substeps: int = 1


@dataclass(frozen=True)
class Record:
    """What to keep: ``signals`` every ``every`` steps (plus t = 0); ``max_events`` per neuron and
    event; ``event_slots`` events per neuron and noise chunk held before being appended."""

    every: int
    signals: tuple[str, ...] = ()
    max_events: int = 64
    event_slots: int = 4


class Solution(NamedTuple):
    times: np.ndarray              # (r,) s, record times
    signals: dict[str, np.ndarray]  # name -> (r, n)
    energy: dict[str, np.ndarray]   # name -> (n,) J accumulated over the run
    event_times: dict[str, np.ndarray]   # name -> (n, max_events) s, NaN-padded
    event_counts: dict[str, np.ndarray]  # name -> (n,) true counts (may exceed max_events)
    final_state: Any
    t_fail: np.ndarray             # (n,) first non-finite time per neuron, NaN if none
    n_steps: int
    max_events_per_chunk: int      # most events one neuron had in one chunk (> event_slots: times lost)


def accumulate(energy: dict, increments: dict, accept=True) -> dict:
    """Compensated (Kahan) running sums of the step energies: ``energy`` maps a name to
    ``(sum, compensation)`` (J). A run adds ~1e5 increments, each ~1e-5 of the total: a plain
    float32 sum may lose up to n·eps/2 (~0.3 % here; 3e-5 of the input energy on the Fig. 2e
    train, measured); compensated, the sum is exact to a few roundings in either precision. ``accept``: where False, the increment is not added."""
    out = {}
    for name, e in increments.items():
        total, comp = energy[name]
        y = jnp.where(accept, e, 0.0) - comp
        new = total + y
        out[name] = (new, (new - total) - y)
    return out


def energy_zeros(names, n: int) -> dict:
    """Zeroed ``(sum, compensation)`` accumulators for :func:`accumulate`."""
    return {name: (jnp.zeros(n), jnp.zeros(n)) for name in names}


class _Carry(NamedTuple):
    state: Any
    energy: dict        # name -> (sum, compensation), see accumulate
    ev_times: dict      # name -> (n, max_events) event times, s
    ev_counts: dict     # name -> (n,) events so far (may exceed max_events: overflow is detected)
    pending: dict       # name -> (n, slots) events of the current chunk, flushed at its end
    pending_n: dict     # name -> (n,) events in the current chunk (may exceed slots: detected)
    t_fail: jnp.ndarray
    last: dict


def _finite(state) -> jnp.ndarray:
    ok = None
    for leaf in jax.tree.leaves(state):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            f = jnp.isfinite(leaf)
            ok = f if ok is None else ok & f
    return ok


def _note_events(pending, pending_n, events, t0, dt):
    """Per step: put each crossing in the neuron's next free slot of the chunk's small buffer
    (a few selects, no scatter: cheap even when some neuron crosses at every step)."""
    out_p, out_n = {}, {}
    for name, (crossed, frac) in events.items():
        buf, k = pending[name], pending_n[name]
        slot = jnp.arange(buf.shape[1])[None, :] == k[:, None]
        out_p[name] = jnp.where(slot & crossed[:, None], (t0 + frac * dt)[:, None], buf)
        out_n[name] = k + crossed.astype(k.dtype)
    return out_p, out_n


def _flush_events(ev_times, ev_counts, pending, pending_n):
    """Per chunk: append the chunk's events to the per-neuron event buffers."""
    out_t, out_c = {}, {}
    for name, buf in ev_times.items():
        rows = jnp.arange(buf.shape[0])
        count, k = ev_counts[name], pending_n[name]
        cap = buf.shape[1]
        for j in range(pending[name].shape[1]):
            idx = count + j
            valid = (j < k) & (idx < cap)
            pos = jnp.minimum(idx, cap - 1)
            buf = buf.at[rows, pos].set(jnp.where(valid, pending[name][:, j], buf[rows, pos]))
        out_t[name] = buf
        out_c[name] = count + k
    return out_t, out_c


def solve(
    step: Callable,
    state0: Any,
    stimulus: Any,
    args: Any,
    *,
    n: int,
    n_steps: int,
    scheme: Scheme,
    record: Record,
    key: jax.Array | None,
    n_noise: int,
    initial_signals: dict[str, jnp.ndarray],
    throw: bool = True,
    progress: Callable[[float], None] | None = None,
    segments: int = 20,
    devices: Any = "auto",
    neuron_ids: Any = None,
) -> Solution:
    """Integrate ``step`` for ``n_steps`` steps of ``scheme.dt``.

    Main arguments:
        step: ``step(state, v_in, dt, dW, args) -> (state, StepOutput)`` for the whole
            batch, a module-level function (it keys the compilation cache);
            ``StepOutput`` has ``signals``, ``energy`` (J per step) and ``events``
            (``name -> (crossed, fraction)``) dictionaries of ``(n,)`` arrays.
        state0: initial state (pytree of ``(n,)`` arrays).
        stimulus: pytree with ``value(t) -> (n,)``, the input (V) at time ``t`` (s).
        args: pytree passed to ``step`` unchanged (parameters, draws).

    Other arguments:
        key: PRNG key for the noise (``None`` with ``n_noise = 0``).
        n_noise: standard normals per neuron-step (0 = deterministic, no draws).
        initial_signals: the recorded signals at ``t = 0``.
        neuron_ids: ``(n,)`` integers naming each neuron's noise stream (``fold_in(key, id)``;
            default ``0..n-1``): a neuron given the same id in another batch draws the same noise.
        throw: raise :class:`SolverError` on a non-finite state; else report ``t_fail``.
        progress: called with the completed fraction after every segment.
        devices: ``"auto"`` splits the neuron axis over all devices of the default backend
            when there are several and each gets at least ``MIN_NEURONS_PER_DEVICE`` neurons
            (on CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` exposes one
            device per core); ``None`` keeps one device; or a list of devices.

    Returns:
        :class:`Solution` (NumPy arrays).
    """
    dt = float(scheme.dt)
    every = max(1, int(record.every))
    # a chunk is the unit of event flushing; records fall on chunk ends, so it divides `every`
    chunk = _chunk_for(every)
    n_blocks = math.ceil(n_steps / every)
    segments = max(1, min(segments, n_blocks))
    blocks_per_seg = math.ceil(n_blocks / segments)
    n_segments = math.ceil(n_blocks / blocks_per_seg)
    signal_names = tuple(record.signals)
    k_events = int(record.max_events)

    substeps = max(1, int(scheme.noise_substeps))
    run_segment = _compiled(step, n, n_steps, dt, chunk, every // chunk, blocks_per_seg, signal_names, n_noise,
                            substeps)
    ids = jnp.arange(n) if neuron_ids is None else jnp.asarray(neuron_ids, jnp.uint32)
    neuron_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(ids) if n_noise else None

    probe = jax.eval_shape(
        lambda s, st, a: step(s, jnp.broadcast_to(st.value(jnp.asarray(0.0, real())), (n,)), dt,
                              jnp.zeros((n_noise, n)) if n_noise else None, a),
        state0, stimulus, args)[1]
    energy0 = energy_zeros(probe.energy, n)
    ev_t0 = {name: jnp.full((n, k_events), jnp.nan) for name in probe.events}
    ev_c0 = {name: jnp.zeros(n, jnp.int32) for name in probe.events}
    pend0 = {name: jnp.full((n, record.event_slots), jnp.nan) for name in probe.events}
    pend_n0 = {name: jnp.zeros(n, jnp.int32) for name in probe.events}
    last0 = {name: jnp.asarray(initial_signals[name]) for name in signal_names}
    carry = _Carry(state0, energy0, ev_t0, ev_c0, pend0, pend_n0, jnp.full(n, jnp.nan), last0)
    max_in_chunk = {name: 0 for name in probe.events}

    place = _placement(devices, n)
    carry, stimulus, args, neuron_keys = place((carry, stimulus, args, neuron_keys))

    recorded: dict[str, list] = {name: [np.asarray(initial_signals[name])[None]] for name in signal_names}
    for seg in range(n_segments):
        carry, (recs, in_chunk) = run_segment(carry, jnp.int32(seg), stimulus, args, neuron_keys)
        for name, v in in_chunk.items():
            max_in_chunk[name] = max(max_in_chunk[name], int(np.max(v)))
        for name in signal_names:
            recorded[name].append(np.asarray(recs[name]))
        if progress is not None:
            progress(min(1.0, (seg + 1) / n_segments))

    times = np.concatenate([[0.0], np.minimum(np.arange(1, n_blocks + 1) * every, n_steps) * dt])
    signals = {name: np.concatenate(v)[: n_blocks + 1] for name, v in recorded.items()}
    t_fail = np.asarray(carry.t_fail)
    if throw and np.isfinite(t_fail).any():
        i = int(np.nanargmin(np.where(np.isfinite(t_fail), t_fail, np.inf)))
        leaves = {k: float(np.asarray(v)[i]) for k, v in carry.state._asdict().items()} \
            if hasattr(carry.state, "_asdict") else {}
        shown = ", ".join(f"{k} = {v:g}" for k, v in leaves.items())
        raise SolverError(
            f"neuron {i} became non-finite at t = {t_fail[i]:.6g} s ({shown}); "
            f"reduce dt (now {dt:g} s) or check the parameters",
            neuron=i, time_s=float(t_fail[i]),
        )
    return Solution(
        times=times,
        signals=signals,
        energy={k: np.asarray(total) for k, (total, _) in carry.energy.items()},
        event_times={k: np.asarray(v) for k, v in carry.ev_times.items()},
        event_counts={k: np.asarray(v) for k, v in carry.ev_counts.items()},
        final_state=jax.tree.map(np.asarray, carry.state),
        t_fail=t_fail,
        n_steps=n_steps,
        max_events_per_chunk=max(max_in_chunk.values(), default=0),
    )


MIN_NEURONS_PER_DEVICE = 4096


def _chunk_for(every: int) -> int:
    """Steps per chunk: ``every`` itself up to MAX_CHUNK, else its largest divisor in
    [MAX_CHUNK/8, MAX_CHUNK], else ``every`` (events then wait a whole record interval in the
    per-chunk buffer, which grows on overflow)."""
    if every <= MAX_CHUNK:
        return every
    for c in range(MAX_CHUNK, MAX_CHUNK // 8 - 1, -1):
        if every % c == 0:
            return c
    return every


def _placement(devices: Any, n: int) -> Callable:
    """A function that shards every leaf whose leading axis is the neuron axis over ``devices``."""
    if devices == "auto":
        devices = jax.devices()
        if len(devices) < 2 or n % len(devices) or n < MIN_NEURONS_PER_DEVICE * len(devices):
            return lambda tree: tree
    if devices is None or len(devices) < 2:
        return lambda tree: tree
    if n % len(devices):
        raise ValueError(f"n = {n} neurons cannot be split evenly over {len(devices)} devices")
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("neuron",))

    def put(x):
        if isinstance(x, jax.Array) and x.ndim >= 1 and x.shape[0] == n:
            return jax.device_put(x, NamedSharding(mesh, PartitionSpec("neuron", *([None] * (x.ndim - 1)))))
        return x

    return lambda tree: jax.tree.map(put, tree)


@functools.lru_cache(maxsize=32)
def _compiled(step, n, n_steps, dt, chunk, chunks_per_block, blocks_per_seg, signal_names, n_noise, substeps):
    """The jitted segment runner for one static configuration (cached across calls)."""
    # a new program is about to be compiled: a process at the kernel's mapping limit dies in XLA
    # (checked here, on a cache miss, not on every call: reading /proc/self/maps costs milliseconds)
    map_limit.release_if_near_limit()

    def step_noise(neuron_keys, k):
        """Standard normals for global step ``k``: a pure function of (seed, neuron, step), so the
        noise does not depend on batch size, run length, chunking or recording. With
        ``substeps = r`` the increment is the normalised sum of the fine steps k*r .. k*r+r-1,
        i.e. exactly the Brownian path of a run at dt/r. float32 normals (ample for noise,
        cheaper to draw), used as float64."""
        def draw(key_i):
            if substeps == 1:
                return jax.random.normal(jax.random.fold_in(key_i, k), (n_noise,), jnp.float32)
            fine = jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(key_i, k * substeps + j),
                                                        (n_noise,), jnp.float32))(jnp.arange(substeps))
            return fine.sum(axis=0) / jnp.sqrt(jnp.float32(substeps))
        return jnp.transpose(jax.vmap(draw)(neuron_keys)).astype(real())  # (n_noise, n)

    def one_step(i, carry: _Carry, chunk_start, neuron_keys, stimulus, args):
        k = chunk_start + i
        t0 = k.astype(real()) * dt
        v_in = jnp.broadcast_to(stimulus.value(t0 + 0.5 * dt), (n,))
        dW = step_noise(neuron_keys, k) if n_noise else None
        state, out = step(carry.state, v_in, dt, dW, args)
        energy = accumulate(carry.energy, out.energy)
        pend, pend_n = _note_events(carry.pending, carry.pending_n, out.events, t0, dt)
        bad = ~_finite(state)
        t_fail = jnp.where(bad & jnp.isnan(carry.t_fail), t0 + dt, carry.t_fail)
        last = {name: out.signals[name] for name in signal_names}
        return carry._replace(state=state, energy=energy, pending=pend, pending_n=pend_n, t_fail=t_fail, last=last)

    def run_segment(carry, seg_index, stimulus, args, neuron_keys):
        def run_chunk(carry, chunk_index):
            start = chunk_index * chunk
            count = jnp.clip(n_steps - start, 0, chunk)
            body = lambda i, c: one_step(i, c, start, neuron_keys, stimulus, args)
            carry = jax.lax.fori_loop(0, count, body, carry)
            in_chunk = {k: jnp.max(v) for k, v in carry.pending_n.items()}
            ev_t, ev_c = _flush_events(carry.ev_times, carry.ev_counts, carry.pending, carry.pending_n)
            carry = carry._replace(ev_times=ev_t, ev_counts=ev_c,
                                   pending=jax.tree.map(lambda b: jnp.full_like(b, jnp.nan), carry.pending),
                                   pending_n=jax.tree.map(jnp.zeros_like, carry.pending_n))
            return carry, in_chunk

        def run_block(carry, block_index):
            first_chunk = block_index * chunks_per_block
            carry, in_chunk = jax.lax.scan(run_chunk, carry, first_chunk + jnp.arange(chunks_per_block))
            return carry, (carry.last, jax.tree.map(jnp.max, in_chunk))

        blocks = seg_index * blocks_per_seg + jnp.arange(blocks_per_seg)
        return jax.lax.scan(run_block, carry, blocks)

    return jax.jit(run_segment)
