"""``simulate``: parameters + stimulus -> traces as an xarray Dataset.

Composes the layers: parameters (:mod:`ionspike.params`, presets), the circuit step
(:mod:`ionspike.circuit`), the generic solver (:mod:`ionspike.solve`) and returns data
with units in the attributes. Randomness comes only from ``seed``: a per-neuron
device-to-device draw, per-neuron per-cycle cycle-to-cycle draws and per-neuron noise
streams, each derived from the neuron index so that neuron ``i`` sees the same draws
whatever the batch size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ionspike import checks, circuit
from ionspike.errors import ParameterError, StimulusError
from ionspike.params import NeuronParams
from ionspike.presets import Preset, resolve
from ionspike.adaptive import BrownianTree, Controller, solve_adaptive
from ionspike.solve import Record, Scheme, solve
from ionspike.stimulus import STEPS_PER_SEGMENT, Stimulus
from ionspike.units import parse_quantity
from ionspike import precision as _precision
from ionspike.precision import real, x64

UNITS = {"V_in": "V", "F": "1", "R": "1", "V_g": "V", "V_d": "V", "I_d": "A"}
LONG_NAMES = {"V_in": "input voltage", "F": "filament", "R": "residue", "V_g": "gate (membrane) voltage",
              "V_d": "drain voltage", "I_d": "drain current"}
# physics limits on dt (see _check_dt): fraction of the fastest ionic rate per step
MAX_RATE_DT = 0.2
MAX_GROWTH_DT = 0.5
BASE_MAX_EVENTS = 64          # automatic event buffer: this plus one per refractory period R_c C_g ...
AUTO_MAX_EVENTS_CAP = 4096    # ... up to this (a buffer that overflows grows and the run is repeated)
MAX_NOISE_SUBSTEPS = 4096
# adaptive stepping, per unit of the preset's fixed step (2 us at paper: 100 ns, 1 ps, 10 ns)
FIRST_STEP_PER_DT = 0.05
MIN_STEP_PER_DT = 5e-7
TREE_RESOLUTION_PER_DT = 5e-3
# per-neuron status in the Dataset (``status``) and in metrics.summarize
STATUS_OK, STATUS_NON_FINITE = 0, 1
STATUS_MEANINGS = ("ok", "non_finite")
# memory estimate (see _check_memory): bytes per neuron of state, parameters, draws, energy terms
# and XLA temporaries (measured peak ~2.7 kB per neuron with 66-event buffers, counted apart)
STATE_BYTES_PER_NEURON = 2048
MEMORY_LIMIT_ENV = "IONSPIKE_MEMORY_LIMIT"   # bytes; overrides the detected memory
DEFAULT_DT_S = 2e-6   # s: the time step when neither the caller nor the preset gives one (docs/model.md §6.1)


def _batch_size(params: NeuronParams, stimulus: Stimulus, n: int | None) -> int:
    sizes = {int(np.size(leaf)) for leaf in jax.tree.leaves(params)}
    sizes.add(stimulus.size())
    if n is not None:
        sizes.add(checks.integer("n", n, 1))
    sizes.discard(1)
    if len(sizes) > 1:
        raise ParameterError(f"per-neuron lengths disagree: n, parameter arrays and stimulus give {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _bytes(x: float) -> str:
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} B"


def memory_limit() -> tuple[float, str]:
    """(bytes a run may hold in host memory, where that number comes from): ``$IONSPIKE_MEMORY_LIMIT``
    if set, else the physical memory of this machine."""
    text = os.environ.get(MEMORY_LIMIT_ENV)
    if text:
        try:
            limit = float(text)
        except ValueError:
            raise ParameterError(f"${MEMORY_LIMIT_ENV} = {text!r}: expected a number of bytes, e.g. 8e9") from None
        if not (limit > 0):
            raise ParameterError(f"${MEMORY_LIMIT_ENV} = {text!r} is out of range: allowed (0, inf) bytes")
        return limit, f"${MEMORY_LIMIT_ENV}"
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "physical memory"
    except (AttributeError, ValueError, OSError):  # no sysconf: no limit known
        return math.inf, "unknown"


def _accelerator_memory() -> tuple[float, str]:
    """(bytes of the first accelerator's memory, its platform); (inf, "") on CPU, when JAX does not
    report it, or when ``$IONSPIKE_MEMORY_LIMIT`` overrides the limits."""
    if os.environ.get(MEMORY_LIMIT_ENV):
        return math.inf, ""
    try:
        device = jax.devices()[0]
        stats = (device.memory_stats() or {}) if device.platform != "cpu" else {}
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        return math.inf, ""
    return (float(stats["bytes_limit"]), f"{device.platform} memory") if stats.get("bytes_limit") else (math.inf, "")


def _check_memory(n: int, n_steps: int, record_every: int, signals: tuple, max_events: int, c2c: bool,
                  noise_substeps: int) -> None:
    """Refuse a run whose arrays cannot fit, before any of them is allocated.

    Per neuron: the state and temporaries, two event buffers (and their flush copy), the
    cycle-to-cycle draws and the fine noise draws live on the device; the recorded signals
    reach the host one segment (1/20 of the run) at a time, and are held there whole (the
    segments, their concatenation and the Dataset: x2.5).
    """
    records = n_steps // record_every + 2
    device_part = (STATE_BYTES_PER_NEURON + 2 * 2 * 8 * max_events + (8 * (max_events + 1) if c2c else 0)
                   + 8 * circuit.N_NOISE * noise_substeps + 2 * 8 * len(signals) * math.ceil(records / 20))
    host_part = device_part + 2.5 * 8 * len(signals) * records
    what = (f"state and temporaries, event buffers of {max_events} per neuron, {len(signals)} recorded "
            f"signal(s) x {records} points")
    advice = "reduce n, record fewer signals or points (signals=(), record_every) or shorten the run"
    for need, (limit, source) in ((float(n) * host_part, memory_limit()), (float(n) * device_part,
                                                                          _accelerator_memory())):
        if need > limit:
            raise ParameterError(
                f"n = {n} neurons need an estimated {_bytes(need)} ({what}), more than the {_bytes(limit)} "
                f"available ({source}; set ${MEMORY_LIMIT_ENV} in bytes to override): {advice}")


def _check_devices(devices: Any, n: int) -> Any:
    if devices is None:
        return None
    if isinstance(devices, str):
        return checks.choice("devices", devices, ("auto",))
    if not (isinstance(devices, (list, tuple)) and devices and all(isinstance(d, jax.Device) for d in devices)):
        raise ParameterError(f"devices = {devices!r}: allowed 'auto', None or a non-empty list of JAX devices "
                             f"(e.g. jax.devices())")
    if n % len(devices):
        raise ParameterError(f"devices: {n} neurons cannot be split evenly over {len(devices)} devices; "
                             f"allowed n a multiple of {len(devices)}")
    return list(devices)


def _check_signals(signals: Any) -> tuple[str, ...]:
    if isinstance(signals, str) or not isinstance(signals, (list, tuple)):
        raise ParameterError(f"signals = {signals!r}: expected a tuple of names from {list(circuit.SIGNALS)} "
                             "(() for none)")
    unknown = [s for s in signals if s not in circuit.SIGNALS]
    if unknown:
        raise ParameterError(f"signals: unknown {unknown}; allowed {list(circuit.SIGNALS)}")
    if len(set(signals)) != len(signals):
        raise ParameterError(f"signals = {tuple(signals)!r} names a signal twice; allowed each of "
                             f"{list(circuit.SIGNALS)} once")
    return tuple(signals)


def _check_dt(dt: float, duration: float, p: NeuronParams, stimulus: Stimulus, v_max_extra: float = 0.0) -> int:
    checks.positive("dt", dt, unit="s")
    checks.positive("duration", duration, unit="s")
    seg = stimulus.min_segment()
    if dt > seg / STEPS_PER_SEGMENT:
        raise ParameterError(
            f"dt = {dt:g} s is too coarse for the stimulus: its shortest segment is {seg:g} s, "
            f"allowed dt in (0, {seg / STEPS_PER_SEGMENT:g}] s ({STEPS_PER_SEGMENT} steps per segment)")
    m = p.memristor
    rate = float(np.max(np.asarray(m.gamma1) + np.asarray(m.beta) + np.asarray(m.gamma2)))
    if rate > 0 and dt * rate > MAX_RATE_DT:
        raise ParameterError(
            f"dt = {dt:g} s is too coarse for the physics: the ionic rates gamma1 + beta + gamma2 = {rate:g} 1/s "
            f"allow dt in (0, {MAX_RATE_DT / rate:g}] s")
    drive = max(max(stimulus.max_abs_voltage(), v_max_extra) - float(np.min(m.v_h)), 0.0)
    growth = float(np.max(np.asarray(m.mu))) * drive / float(np.min(m.alpha))
    if growth > 0 and dt * growth > MAX_GROWTH_DT:
        raise ParameterError(
            f"dt = {dt:g} s is too coarse for the physics: the filament growth rate near bridging, "
            f"mu (|V_in|max - v_h)/alpha = {growth:g} 1/s, allows dt in (0, {MAX_GROWTH_DT / growth:g}] s")
    n_steps = duration / dt
    if n_steps > 2**31 - 1:
        raise ParameterError(f"duration/dt = {n_steps:g} steps exceeds 2^31 - 1; raise dt or shorten the run")
    if n_steps < 1 or abs(n_steps - round(n_steps)) > 1e-6 * n_steps:
        raise ParameterError(f"duration = {duration:g} s must be a whole number (>= 1) of steps dt = {dt:g} s "
                             f"(it is {n_steps:.6g} steps)")
    return int(round(n_steps))


def draw_spread(p: NeuronParams, n: int, cycles: int, key, neuron_ids=None) -> circuit.Draws:
    """Device-to-device and cycle-to-cycle factors of ``mu`` (lognormal, median 1).

    Neuron ``i``'s draws come from keys folded with its id (``neuron_ids[i]``, default ``i``) and
    the cycle index, so they do not depend on ``n``, on ``cycles`` or on the rest of the batch.
    """
    k_d2d, k_c2c = jax.random.split(key)
    idx = jnp.arange(n) if neuron_ids is None else jnp.asarray(neuron_ids, jnp.uint32)
    z = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(k_d2d, i)))(idx)
    d2d = jnp.exp(jnp.broadcast_to(p.noise.sigma_d2d_ln_mu, (n,)) * z)
    c2c = None
    if float(np.max(p.noise.sigma_c2c_ln_mu)) > 0:
        def row(i):
            k = jax.random.fold_in(k_c2c, i)
            return jax.vmap(lambda c: jax.random.normal(jax.random.fold_in(k, c)))(jnp.arange(cycles))
        zc = jax.vmap(row)(idx)
        c2c = jnp.exp(jnp.broadcast_to(p.noise.sigma_c2c_ln_mu, (n,))[:, None] * zc)
    return circuit.Draws(mu_d2d=d2d, mu_c2c=c2c)


def _keys(seed: int):
    """(spread key, noise key) of a run: the one place a seed becomes keys."""
    return jax.random.split(jax.random.key(seed))


@x64
def device_spread(params: NeuronParams, n: int, seed: int) -> np.ndarray:
    """The per-neuron device-to-device factors of ``mu`` that ``simulate(..., n=n, seed=seed)`` uses."""
    params = resolve(params).params
    n, seed = checks.integer("n", n, 1), checks.seed(seed)
    _check_memory(n, 1, 1, (), 0, False, 1)
    k_spread, _ = _keys(seed)
    return np.asarray(draw_spread(jax.tree.map(jnp.asarray, params), n, 1, k_spread).mu_d2d)


def _neuron_step(state, v_in, dt, dW, args):
    params, draws = args
    return circuit.step(state, v_in, params, dt, dW, draws)


def _adaptive_neuron_step(state, v_in, h, dW, args):
    params, draws = args
    return circuit.adaptive_step(state, v_in, params, h, dW, draws)


@dataclasses.dataclass(frozen=True)
class _CascadeStep:
    """Step of ``stages``-long chains; hashable by value so compilations are cached per length."""

    stages: int

    def __call__(self, state, v_in, dt, dW, args):
        params, draws = args
        return circuit.step(state, circuit.cascade_input(v_in, state, params, self.stages), params, dt, dW, draws)


@_precision.per_call
def simulate(
    params: NeuronParams | Preset | str = "paper",
    stimulus: Stimulus | None = None,
    *,
    duration: float | str,
    n: int | None = None,
    seed: int = 0,
    dt: float | str | None = None,
    deterministic: bool = False,
    record_every: int | None = None,
    signals: tuple[str, ...] = circuit.SIGNALS,
    max_events: int | None = None,
    noise_substeps: int = 1,
    throw: bool = True,
    progress: Callable[[float], None] | None = None,
    devices: Any = "auto",
    stages: int = 1,
    neuron_ids: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_step: float | str | None = None,
    precision: str = "float64",
) -> xr.Dataset:
    """Simulate a batch of 1M1T1R neurons.

    Main arguments:
        params: :class:`NeuronParams` (fields may be per-neuron arrays), a :class:`Preset`,
            or a preset name / TOML path.
        stimulus: the input waveform (per-neuron fields allowed).
        duration: simulated time, s or a unit string ("300 ms").
        n: number of neurons (default: implied by per-neuron arrays, else 1).
        seed: all randomness (spread and noise) derives from it; an integer in [0, 2^63 - 1].
        dt: time step, s or unit string (default: the preset's, else 2 µs).
        deterministic: switch off noise and spread (``N_eff = inf``, ``sigma = 0``).

    Other arguments:
        record_every: record signals every this many steps (default: ~2000 points).
        signals: which of ``V_in, F, R, V_g, V_d, I_d`` to record (``()`` for none).
        max_events: initial per-neuron event buffer (default ``None``: room for one event
            per refractory period ``R_c C_g``); grown and rerun if exceeded.
        noise_substeps: Brownian-path control (see :class:`ionspike.solve.Scheme`): ``dt=h,
            noise_substeps=r`` follows the same noise path as ``dt=h/r``, for convergence
            studies of the stochastic model.
        throw: raise on a non-finite state; with ``False`` the Dataset's ``status`` marks each
            neuron ``ok`` (0) or ``non_finite`` (1), ``status_t_fail`` gives the time, and a
            failed neuron's energies are NaN (its spikes before the failure are kept).
        progress: callback with the completed fraction.
        devices: ``"auto"``, ``None`` or a list of JAX devices to split the neurons over
            (see :func:`ionspike.solve.solve`).
        stages: cascade length: with ``stages > 1`` each of the ``n`` chains has ``stages``
            neurons, stage 0 driven by ``stimulus`` and stage ``k`` by the voltage on stage
            ``k-1``'s load (:func:`ionspike.circuit.cascade_input`). Neurons are laid out
            stage-major and the Dataset gets a ``stage`` coordinate on ``neuron``.
        neuron_ids: ``(n,)`` distinct integers in [0, 2^32) naming each neuron's random streams
            (spread and noise; default ``0..n-1``): a neuron with the same id, parameters and
            stimulus gives the same result in any batch (studies split over workers use it).
        rtol, atol: adaptive stepping (docs/model.md §6.10) when either is given (the other then
            defaults to ``rtol = 1e-6``, ``atol = 1e-9``): each neuron takes its own steps under a
            PI controller, ending a step at every edge of the stimulus, with a Brownian path that
            does not depend on the steps (:mod:`ionspike.adaptive`); ``dt`` then only sets the
            record grid (``record_every * dt``). Both in (0, 1). Default: the fixed step ``dt``.
        max_step: the longest adaptive step, s or a unit string (default: no limit).
        precision: ``"float64"`` (default) or ``"float32"``: the arithmetic of the whole run. float32
            is for large stochastic batches (about half the memory, faster on a GPU); its accuracy
            against float64 on first-spike time, P(fire) and ISI is stated in docs/model.md §6.11.
            Energies accumulate in the same precision.

    Returns:
        ``xarray.Dataset`` with dims ``time`` × ``neuron`` (recorded signals), ``spike`` and
        ``dm_event`` (event times, NaN-padded), per-neuron counts, energies (J) and status;
        units in each variable's ``units`` attribute; parameters (SI JSON) and settings in attrs.

    Raises:
        ParameterError, StimulusError, PresetError, UnitError: invalid input (names the
            argument, its value and the allowed range or type), including a run whose arrays
            would not fit in memory (estimated before anything is allocated).
        SolverError: a neuron became non-finite (time and neuron index), when ``throw``.
    """
    preset = resolve(params)
    p = preset.params
    if stimulus is None:
        raise StimulusError("stimulus is required: e.g. PulseTrain(0.8, 1e-3, 2e-3) or DC(0.8)")
    if not isinstance(stimulus, Stimulus):
        raise StimulusError(f"stimulus = {stimulus!r}: expected an ionspike.stimulus waveform")
    seed = checks.seed(seed)
    if checks.flag("deterministic", deterministic):
        p = p.deterministic()
    throw = checks.flag("throw", throw)
    # the preset's own time scale (its fixed step) sets the adaptive steps' bounds and the noise's resolution
    time_scale = parse_quantity(preset.dt or DEFAULT_DT_S, "s", name="dt")
    controller = _controller(rtol, atol, max_step, time_scale)
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress = {progress!r}: expected a function of the completed fraction, or None")
    duration = parse_quantity(duration, "s", name="duration")
    dt = parse_quantity(dt if dt is not None else (preset.dt or DEFAULT_DT_S), "s", name="dt")
    signals = _check_signals(signals)
    n = _batch_size(p, stimulus, n)
    stages = checks.integer("stages", stages, 1)
    if controller is not None:
        if stages > 1:
            raise ParameterError(f"rtol/atol (adaptive stepping) with stages = {stages}: a cascade's neurons "
                                 "share every step (allowed stages = 1, or a fixed dt for cascades)")
        checks.positive("dt", dt, unit="s")
        checks.positive("duration", duration, unit="s")
        n_steps = max(1, int(math.ceil(duration / dt - 1e-9)))   # the record grid's unit, not a step
    else:
        n_steps = _check_dt(dt, duration, p, stimulus, float(np.max(p.circuit.v_dd)) if stages > 1 else 0.0)
    chains, n = n, n * stages
    if record_every is None:
        # ~2000 recorded points; with nothing to record, long blocks (fewer loop exits)
        record_every = max(1, n_steps // 2000) if signals else min(n_steps, 2048)
    record_every = checks.integer("record_every", record_every, 1)
    noise_substeps = checks.integer("noise_substeps", noise_substeps, 1, MAX_NOISE_SUBSTEPS)
    if max_events is None:
        # room for one event per refractory period (R_c C_g) so that a rerun is rare
        rc_cg = float(np.min(np.asarray(p.circuit.r_c) * np.asarray(p.circuit.c_g)))
        max_events = int(min(BASE_MAX_EVENTS + math.ceil(duration / rc_cg), AUTO_MAX_EVENTS_CAP))
    max_events = checks.integer("max_events", max_events, 1)
    devices = _check_devices(devices, n)
    c2c = float(np.max(p.noise.sigma_c2c_ln_mu)) > 0
    _check_memory(n, n_steps, record_every, signals, max_events, c2c, noise_substeps)
    if stages > 1:
        p = jax.tree.map(lambda a: np.tile(np.asarray(a), stages) if np.ndim(a) else a, p)

    if neuron_ids is not None:
        if stages > 1:
            raise ParameterError("neuron_ids applies to single neurons (stages = 1)")
        ids = np.asarray(neuron_ids)
        if (ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0
                or ids.max() >= 2**32 or np.unique(ids).size != n):
            raise ParameterError(f"neuron_ids of shape {ids.shape}: allowed {n} distinct integers in [0, 2^32)")
        neuron_ids = ids.astype(np.uint32)
    k_spread, k_noise = _keys(seed)
    stochastic_noise = math.isfinite(float(np.min(p.noise.n_eff)))
    stim = _tile_stimulus(stimulus.batched(chains), stages) if stages > 1 else stimulus.batched(n)
    jparams = jax.tree.map(jnp.asarray, p)

    slots = 4
    while True:
        draws = draw_spread(jparams, n, max_events + 1, k_spread, neuron_ids)
        state0 = circuit.rest_state(jparams, draws)
        init = _initial_signals(state0, stim, jparams, stages)
        step = _neuron_step if stages == 1 else _CascadeStep(stages)
        args = (jparams, draws)
        if controller is not None:
            sol, stats = solve_adaptive(
                _adaptive_neuron_step, state0, stim, args, n=n, duration=duration,
                record_dt=min(record_every * dt, duration), signals=signals, max_events=max_events,
                controller=controller, key=k_noise if stochastic_noise else None,
                n_noise=circuit.N_NOISE if stochastic_noise else 0, initial_signals=init, throw=throw,
                progress=progress, devices=devices, neuron_ids=neuron_ids,
                brownian=BrownianTree(resolution=time_scale * TREE_RESOLUTION_PER_DT))
            needed = max(int(c.max(initial=0)) for c in sol.event_counts.values())
            if needed <= max_events:
                break
            max_events = max(max_events, 1 << (needed - 1).bit_length())
            _check_memory(n, n_steps, record_every, signals, max_events, c2c, noise_substeps)
            continue
        stats = None
        sol = solve(
            step, state0, stim, args,
            n=n, n_steps=n_steps, scheme=Scheme(dt=dt, noise_substeps=noise_substeps),
            record=Record(every=record_every, signals=signals, max_events=max_events, event_slots=slots),
            key=k_noise if stochastic_noise else None,
            n_noise=circuit.N_NOISE if stochastic_noise else 0,
            initial_signals=init, throw=throw, progress=progress, devices=devices, neuron_ids=neuron_ids,
        )
        needed = max(int(c.max(initial=0)) for c in sol.event_counts.values())
        if needed <= max_events and sol.max_events_per_chunk <= slots:
            break
        # a buffer overflowed (counts kept running, so we know by how much): rerun with room for all
        max_events = max(max_events, 1 << (needed - 1).bit_length())
        slots = max(slots, sol.max_events_per_chunk)
        _check_memory(n, n_steps, record_every, signals, max_events, c2c, noise_substeps)

    ds = _to_dataset(sol, p, preset, stimulus, n, dt, duration, seed, deterministic, draws, state0)
    if stats is not None:
        ds["steps_accepted"] = ("neuron", stats.accepted, {"units": "1", "long_name": "accepted adaptive steps"})
        ds["steps_rejected"] = ("neuron", stats.rejected, {"units": "1", "long_name": "rejected adaptive steps"})
        ds.attrs.update({"stepping": "adaptive", "rtol": controller.rtol, "atol": controller.atol,
                         "max_step_s": controller.max_step if math.isfinite(controller.max_step) else "inf",
                         "min_step_s": controller.min_step,
                         "noise_resolution_s": time_scale * TREE_RESOLUTION_PER_DT,
                         "record_dt_s": min(record_every * dt, duration), "loop_iterations": stats.iterations})
    else:
        ds.attrs["stepping"] = "fixed"
    ds.attrs["precision"] = precision
    if stages > 1:
        ds = ds.assign_coords(stage=("neuron", np.repeat(np.arange(stages), chains)),
                              chain=("neuron", np.tile(np.arange(chains), stages)))
        ds.attrs["stages"] = stages
    return ds


def _controller(rtol, atol, max_step, time_scale: float = DEFAULT_DT_S) -> Controller | None:
    """The adaptive controller the arguments ask for, or None (fixed steps). ``time_scale`` (s, the
    preset's fixed step) sets the first and the smallest step, so that a preset 1000x faster (3nm)
    gets steps 1000x shorter."""
    if rtol is None and atol is None:
        if max_step is not None:
            raise ParameterError(f"max_step = {max_step!r} applies to adaptive stepping: give rtol and/or atol too")
        return None
    kw = {}
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ParameterError(f"{name} = {value!r}: expected a number in (0, 1)")
            kw[name] = float(value)
    if max_step is not None:
        kw["max_step"] = parse_quantity(max_step, "s", name="max_step")
        checks.positive("max_step", kw["max_step"], unit="s")
    kw["first_step"] = time_scale * FIRST_STEP_PER_DT
    kw["min_step"] = min(time_scale * MIN_STEP_PER_DT, kw.get("max_step", math.inf))
    return Controller(**kw)


def _tile_stimulus(stim: Stimulus, stages: int) -> Stimulus:
    """Per-neuron stimulus fields repeated for every stage (only stage 0 uses them)."""
    kw = {}
    for f in dataclasses.fields(stim):
        v = getattr(stim, f.name)
        kw[f.name] = jnp.tile(v, stages) if (f.name != "times" and jnp.ndim(v) == 1) else \
            (jnp.tile(v, (stages, 1)) if jnp.ndim(v) == 2 else v)
    return dataclasses.replace(stim, **kw)


def _initial_signals(state0, stim, p, stages=1):
    """Recorded signals at t = 0; V_in is what each neuron sees (the cascade wiring included)."""
    from ionspike.device.transistor import drain_current

    i_d, _ = drain_current(state0.V_g, state0.V_d, p.transistor)
    v_in = jnp.broadcast_to(stim.value(jnp.asarray(0.0, real())), state0.F.shape)
    if stages > 1:
        v_in = circuit.cascade_input(v_in, state0, p, stages)
    return {"V_in": v_in, "F": state0.F, "R": state0.R, "V_g": state0.V_g, "V_d": state0.V_d, "I_d": i_d}


def _to_dataset(sol, p, preset, stimulus, n, dt, duration, seed, deterministic, draws, state0) -> xr.Dataset:
    neuron = np.arange(n)
    data = {}
    for name, arr in sol.signals.items():
        data[name] = (("time", "neuron"), arr, {"units": UNITS[name], "long_name": LONG_NAMES[name]})

    def events(name, dim):
        count = sol.event_counts[name]
        k = int(max(count.max(initial=0), 1))
        return (("neuron", dim), sol.event_times[name][:, :k], {"units": "s"}), count

    data["spike_time"], spike_count = events("spike", "spike")
    data["spike_time"][2]["long_name"] = "output spike times (V_g rising through V_T), NaN-padded"
    data["spike_count"] = ("neuron", spike_count, {"units": "1"})
    data["dm_on_time"], dm_count = events("dm_on", "dm_event")
    data["dm_on_time"][2]["long_name"] = "DM turn-on times (F + R rising through 1), NaN-padded"
    data["dm_on_count"] = ("neuron", dm_count, {"units": "1"})
    failed = np.isfinite(sol.t_fail)
    for name, e in sol.energy.items():
        data[f"energy_{name}"] = ("neuron", np.where(failed, np.nan, e),
                                  {"units": "J", "long_name": f"energy: {name} (NaN: the neuron failed)"})
    final = circuit.stored_energy(jax.tree.map(jnp.asarray, sol.final_state), p)
    start = circuit.stored_energy(state0, p)
    for name in final:
        data[f"energy_stored_{name}"] = ("neuron", np.where(failed, np.nan, np.asarray(final[name] - start[name])),
                                         {"units": "J", "long_name": f"change of energy stored on C_{name[1:]}"})
    data["mu_scale_d2d"] = ("neuron", np.asarray(draws.mu_d2d), {"units": "1"})
    data["status"] = ("neuron", np.where(failed, STATUS_NON_FINITE, STATUS_OK).astype(np.int8),
                      {"long_name": "neuron status", "flag_values": np.array([STATUS_OK, STATUS_NON_FINITE], np.int8),
                       "flag_meanings": " ".join(STATUS_MEANINGS)})
    data["status_t_fail"] = ("neuron", sol.t_fail, {"units": "s", "long_name": "first non-finite time (NaN = ok)"})
    ds = xr.Dataset(data, coords={"time": ("time", sol.times, {"units": "s"}), "neuron": neuron})
    from ionspike import __version__

    ds.attrs.update({
        "title": "ionspike 1M1T1R neuron simulation",
        "ionspike_version": __version__,
        "preset": preset.name,
        "params_json": json.dumps(p.to_dict()),
        "stimulus_json": json.dumps(stimulus.describe()),
        "dt_s": dt,
        "duration_s": duration,
        "n_steps": sol.n_steps,
        "seed": seed,
        "deterministic": int(deterministic),
        "spike_threshold_V": float(np.max(p.transistor.threshold)),
    })
    return ds
