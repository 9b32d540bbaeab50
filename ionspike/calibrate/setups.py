r"""The two measurement setups of a bare diffusive memristor, simulated with the device model.

* :class:`DCSweep`: a triangular staircase ``0 -> v_peak -> 0`` from a source-measure unit
  with current compliance ``I_cc``. While ``|V|/R_d <= I_cc`` the device sees the applied
  voltage; above it the source limits the current, so the device voltage is ``I_cc R_d``.
  The current is read at the end of each hold and floored at the instrument floor.
* :class:`PulseSetup`: a voltage waveform through a series resistor ``R_s``: the device sees
  ``V R_d/(R_s + R_d)`` and the current is ``V/(R_s + R_d)``.

Both use the same laws as the neuron (:mod:`ionspike.device.memristor`: growth with the
drift-onset voltage, dissolution, residue, chemical-Langevin noise with ``N_eff``) and the
circuit's own step of the ionic state: :func:`ionspike.circuit.ionic_midpoint` (explicit
midpoint) and :func:`ionspike.circuit.langevin_kick` (Euler-Maruyama noise), with the device
voltage solved algebraically from the setup at the start and the half step. Every trial is one
switching cycle of one device, so each trial draws its own cycle-to-cycle factor of ``mu``
(``sigma_c2c_ln_mu``) and its own noise; device-to-device spread does not enter.

Besides the sampled traces (the same layout as measured data, so the same feature
extraction applies to both), the integrator records crossing times interpolated inside a
step (:func:`ionspike.events.upward_crossing`; a downward crossing of a level is the upward
crossing of the negated, shifted signal): the first time ``|I|`` rises through ``i_on``, the
first time it falls through ``i_off`` after last being above ``i_on``, and the first time ``x``
rises through ``X_LEVEL``. The
release and the ``x`` crossing move gradually with the parameters, so fits differentiate
through them (pathwise, with the noise held fixed); see ``X_LEVEL`` for why not ``t_on``.

Precision: the public simulators run in float64 (:func:`ionspike.precision.x64`) and return
NumPy arrays. The traceable cores (:func:`dc_sweep_run`, :func:`pulse_run`, :func:`trial_draws`)
are called inside a float64 entry point (the fits) and refuse to run in float32.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ionspike.calibrate.data import DCSweeps, PulseTrials
from ionspike.circuit import ionic_midpoint, langevin_kick
from ionspike.device.memristor import resistance
from ionspike.errors import ParameterError
from ionspike.events import upward_crossing
from ionspike.params import Memristor, Noise
from ionspike.precision import x64

COMPLIANCE, SERIES = 0, 1  # how the device voltage follows from the source
# The switch itself takes less than a step (|I| jumps decades at once), so a crossing time of |I|
# interpolated inside the step has almost no derivative: which step switches is what moves. The
# ionic state x = F + R passes mid-gap slowly (near the saddle-node, or under the steady drive of
# a pulse), so its crossing time, interpolated, has the true derivative -(dx/dtheta)/(dx/dt).
X_LEVEL = 0.5


class Crossings(NamedTuple):
    """Per-trial crossing times (s, NaN if none) interpolated inside a step."""

    t_on: np.ndarray    # first upward crossing of i_on
    t_off: np.ndarray   # first downward crossing of i_off after the current was last above i_on
    t_x: np.ndarray     # first upward crossing of x = F + R through X_LEVEL (for gradients, see below)


@dataclass(frozen=True)
class DCSweep:
    """Triangular staircase sweep ``0 -> v_peak -> 0`` with current compliance.

    ``v_peak`` V (sign = polarity), ``v_step`` V per point, ``hold`` s per point,
    ``compliance`` A, ``i_floor`` A (instrument floor), ``dt`` s integration step.
    The default timing (6 mV, 10 ms per point) is an assumption: the shared data does not
    record it (see its README); pass your instrument's.
    """

    v_peak: float = -0.6
    v_step: float = 6e-3
    hold: float = 10e-3
    compliance: float = 1e-6
    i_floor: float = 1e-15
    dt: float = 20e-6

    def __post_init__(self):
        _positive(self, v_step="V", hold="s", compliance="A", dt="s")
        if not (abs(self.v_peak) >= 2 * self.v_step):
            raise ParameterError(f"v_peak = {self.v_peak} V: |v_peak| must be at least 2 * v_step = "
                                 f"{2 * self.v_step} V")
        if self.hold / self.dt < 4:
            raise ParameterError(f"dt = {self.dt} s is out of range: at most hold/4 = {self.hold / 4} s")

    def levels(self) -> np.ndarray:
        """The applied voltage of each point, V: ``v_step, 2 v_step, ..., v_peak, ..., v_step, 0``."""
        n = int(round(abs(self.v_peak) / self.v_step))
        mags = np.concatenate([np.arange(1, n + 1), np.arange(n, -1, -1)]) * self.v_step
        return np.sign(self.v_peak) * mags

    def ramp_voltage(self, t):
        """|V| (V) of the continuous triangle through the middles of the staircase's holds, at time ``t``
        (s) from the start: the level a crossing at ``t`` is recorded at, made continuous so that
        interpolated crossing times turn into voltages with a gradient.

        The rising branch ``rate t + v_step/2`` and the falling one ``rate (2 t_peak + hold - t) -
        v_step/2`` meet at ``t_peak``; their minimum is written with ``abs`` so that NumPy input stays
        NumPy float64 and traced JAX input stays traceable."""
        rate = self.v_step / self.hold
        t_peak = round(abs(self.v_peak) / self.v_step) * self.hold
        return rate * (t_peak + 0.5 * self.hold - abs(t - t_peak))


@dataclass(frozen=True)
class PulseSetup:
    """A read/pulse/read waveform through a series resistor.

    ``amplitude`` V from ``t_start`` for ``width`` s, ``read`` V before and after,
    ``duration`` s in total, ``r_series`` Ω, ``sample`` s between recorded samples, ``dt`` s.
    """

    amplitude: float = 1.0
    width: float = 20e-3
    t_start: float = 1e-3
    read: float = 0.1
    duration: float = 51e-3
    r_series: float = 22e3
    sample: float = 5e-6
    dt: float = 5e-6

    def __post_init__(self):
        _positive(self, width="s", duration="s", sample="s", dt="s")
        if self.r_series < 0 or not np.isfinite(self.r_series):
            raise ParameterError(f"r_series = {self.r_series} ohm is out of range: allowed [0, inf)")
        if self.t_start < 0 or self.t_start + self.width > self.duration:
            raise ParameterError(f"t_start + width = {self.t_start + self.width} s is out of range: the pulse must end "
                                 f"within duration = {self.duration} s")
        ratio = self.sample / self.dt
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ParameterError(f"sample = {self.sample} s must be a whole multiple of dt = {self.dt} s")

    @classmethod
    def from_trials(cls, trials: PulseTrials, r_series: float, dt: float | None = None) -> "PulseSetup":
        """The setup that produced measured ``trials``: edges, amplitude and read level from the data."""
        from ionspike.calibrate.features import pulse_edges

        start, end = pulse_edges(trials)
        t0, t1 = float(np.nanmedian(start)), float(np.nanmedian(end))
        t, v = trials.time[0], trials.voltage
        inside = (trials.time > t0 + 0.1 * (t1 - t0)) & (trials.time < t1 - 0.1 * (t1 - t0))
        after = trials.time > t1 + 0.05 * (t1 - t0)
        sample = float(np.median(np.diff(t)))
        return cls(amplitude=float(np.median(v[inside])), width=t1 - t0, t_start=t0,
                   read=float(np.median(v[after])) if after.any() else 0.0,
                   duration=float(t[-1] - t[0]) + sample, r_series=r_series, sample=sample,
                   dt=sample if dt is None else dt)

    def waveform(self, t):
        """Applied voltage (V) at time ``t`` (s)."""
        t = np.asarray(t)
        on = (t >= self.t_start) & (t < self.t_start + self.width)
        return np.where(on, self.amplitude, self.read)


def _positive(record, **units):
    """Refuse any named field of ``record`` that is not a finite positive number (``units``: name -> unit)."""
    for name, unit in units.items():
        value = getattr(record, name)
        if not (np.isfinite(value) and value > 0):
            raise ParameterError(f"{name} = {value} {unit} is out of range: allowed (0, inf)")


def _device_voltage(v_app, r_d, mode: int, limit):
    """Voltage across the device (V) for applied ``v_app`` (V), device resistance ``r_d`` (Ω):
    ``mode`` COMPLIANCE with ``limit`` = I_cc (A), or SERIES with ``limit`` = R_s (Ω)."""
    if mode == COMPLIANCE:
        return jnp.clip(v_app, -limit * r_d, limit * r_d)
    return v_app * r_d / (limit + r_d)


def _step(F, R, v_app, mu_scale, m: Memristor, n_eff, dt, dW, mode, limit):
    """One step of (F, R) at applied voltage ``v_app``: the circuit's explicit midpoint
    (:func:`ionspike.circuit.ionic_midpoint`) with the device voltage from the setup, then its
    Euler-Maruyama noise (:func:`ionspike.circuit.langevin_kick`) unless ``dW`` is None."""

    def v_m(F, R):
        return _device_voltage(v_app, resistance(F + R, m), mode, limit)

    F, R, var_f, var_r, _ = ionic_midpoint(F, R, v_m(F, R), v_m, m, dt, mu_scale)
    if dW is None:
        return F, R
    return langevin_kick(F, R, var_f, var_r, dt, n_eff, dW)


def _current(F, R, v_app, m, mode, limit):
    r_d = resistance(F + R, m)
    return _device_voltage(v_app, r_d, mode, limit) / r_d


class _Carry(NamedTuple):
    F: jnp.ndarray
    R: jnp.ndarray
    log_i: jnp.ndarray     # log10 |I| at the end of the last step
    t_on: jnp.ndarray
    t_off: jnp.ndarray
    t_x: jnp.ndarray


def _first_time(t_prev, crossing, t, dt):
    """The earlier of ``t_prev`` (NaN: none yet) and a crossing ``(crossed, fraction)`` in the step
    that starts at ``t`` (s) and lasts ``dt`` (s)."""
    crossed, frac = crossing
    return jnp.where(crossed & jnp.isnan(t_prev), t + dt * frac, t_prev)


@functools.partial(jax.jit, static_argnames=("steps_per_point", "mode", "deterministic"))
def _integrate(m: Memristor, n_eff, mu_scale, v_points, t_points, dt, keys, limit, log_on, log_off,
               *, steps_per_point: int, mode: int, deterministic: bool):
    """Integrate a batch of trials over ``v_points`` (points, trials) applied-voltage levels, each held
    ``steps_per_point`` steps of ``dt``. Returns (|I| at each point's end (points, trials), Crossings)."""
    n = mu_scale.shape[0]
    zeros = jnp.zeros(n)
    carry = _Carry(zeros, zeros, jnp.full(n, -30.0), jnp.full(n, jnp.nan), jnp.full(n, jnp.nan), jnp.full(n, jnp.nan))

    @jax.checkpoint
    def point(carry: _Carry, xs):
        v_app, t0, index = xs
        if deterministic:
            noise = None
        else:  # per trial, per point: independent of the batch size and of the other trials
            noise = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, index), (steps_per_point, 2)))(keys)
            noise = jnp.transpose(noise, (1, 2, 0))          # (steps, 2, trials)

        def one(c: _Carry, xs):
            j, dW = xs
            F, R = _step(c.F, c.R, v_app, mu_scale, m, n_eff, dt, dW, mode, limit)
            if mode == COMPLIANCE:
                # while the source limits the current, x regulates itself by a discrete-time feedback
                # whose tangent dynamics grow without bound: no derivative flows through that phase
                clamped = jnp.abs(v_app) > limit * resistance(c.F + c.R, m)
                F = jnp.where(clamped, jax.lax.stop_gradient(F), F)
                R = jnp.where(clamped, jax.lax.stop_gradient(R), R)
            log_i = jnp.log10(jnp.abs(_current(F, R, v_app, m, mode, limit)) + 1e-30)
            t = t0 + j * dt
            t_on = _first_time(c.t_on, upward_crossing(c.log_i - log_on, log_i - log_on), t, dt)
            # the release: a downward crossing of i_off is an upward crossing of log_off - log|I|; it
            # counts after the switch, and is forgotten while the current is back above i_on
            crossed, frac = upward_crossing(log_off - c.log_i, log_off - log_i)
            t_off = jnp.where(log_i >= log_on, jnp.nan,
                              _first_time(c.t_off, (crossed & ~jnp.isnan(t_on), frac), t, dt))
            t_x = _first_time(c.t_x, upward_crossing(c.F + c.R - X_LEVEL, F + R - X_LEVEL), t, dt)
            return _Carry(F, R, log_i, t_on, t_off, t_x), None

        js = jnp.arange(steps_per_point, dtype=jnp.float64)
        carry, _ = jax.lax.scan(one, carry, (js, noise) if noise is not None else (js, None))
        return carry, 10.0 ** carry.log_i

    idx = jnp.arange(v_points.shape[0], dtype=jnp.uint32)
    carry, current = jax.lax.scan(point, carry, (v_points, t_points, idx))
    return current, Crossings(carry.t_on, carry.t_off, carry.t_x)


def require_float64(name: str) -> None:
    """Refuse to trace a calibration core in float32: resistances span 1e4..1e12 Ohm and crossing
    times are interpolated inside microsecond steps (see :mod:`ionspike.precision`)."""
    if not jax.config.jax_enable_x64:
        raise ParameterError(f"{name} needs JAX float64: call it inside ionspike.precision.float64() (the "
                             "public fits and simulate_dc_sweeps/simulate_pulses do this themselves)")


def _numpy_crossings(c: Crossings) -> Crossings:
    return Crossings(*(np.asarray(v, dtype=np.float64) for v in c))


def _trial_keys(seed: int, n: int):
    base = jax.random.PRNGKey(seed)
    k_c2c, k_noise = jax.random.split(base)
    return k_c2c, jax.vmap(lambda i: jax.random.fold_in(k_noise, i))(jnp.arange(n, dtype=jnp.uint32))


def _check_trials(n):
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ParameterError(f"n_trials = {n!r} is out of range: allowed integers >= 1")


def dc_sweep_run(m: Memristor, n_eff, mu_scale, keys, setup: DCSweep, i_on: float, i_off: float, deterministic: bool):
    """Traceable core of :func:`simulate_dc_sweeps`: ``(|I| (points, trials), Crossings)`` as JAX arrays
    (float64: call inside :func:`ionspike.precision.float64`)."""
    require_float64("dc_sweep_run")
    levels = setup.levels()
    n = mu_scale.shape[0]
    spp = int(round(setup.hold / setup.dt))
    v_points = jnp.broadcast_to(jnp.asarray(levels)[:, None], (levels.size, n))
    t_points = jnp.arange(levels.size) * setup.hold
    return _integrate(m, n_eff, mu_scale, v_points, t_points, setup.hold / spp, keys, setup.compliance,
                      np.log10(i_on), np.log10(i_off), steps_per_point=spp, mode=COMPLIANCE,
                      deterministic=deterministic)


def pulse_run(m: Memristor, n_eff, mu_scale, keys, setup: PulseSetup, i_level: float, deterministic: bool):
    """Traceable core of :func:`simulate_pulses`: ``(|I| (samples, trials), Crossings)`` as JAX arrays
    (float64: call inside :func:`ionspike.precision.float64`)."""
    require_float64("pulse_run")
    n = mu_scale.shape[0]
    spp = int(round(setup.sample / setup.dt))
    t_points = np.arange(int(round(setup.duration / setup.sample))) * setup.sample
    levels = np.asarray(setup.waveform(t_points + 0.5 * setup.sample))  # the level during each sample
    v_points = jnp.broadcast_to(jnp.asarray(levels)[:, None], (levels.size, n))
    return _integrate(m, n_eff, mu_scale, v_points, jnp.asarray(t_points), setup.sample / spp, keys, setup.r_series,
                      np.log10(i_level), np.log10(i_level) - 1.0, steps_per_point=spp, mode=SERIES,
                      deterministic=deterministic)


def trial_draws(noise: Noise, n_trials: int, seed: int, deterministic: bool = False):
    """Per-trial cycle factors of ``mu`` (all 1 when ``deterministic``) and noise keys for ``seed``;
    trial i's draws do not depend on ``n_trials``. Float64: call inside :func:`ionspike.precision.float64`."""
    _check_trials(n_trials)
    require_float64("trial_draws")
    k_c2c, keys = _trial_keys(seed, n_trials)
    if deterministic:
        return jnp.ones(n_trials), keys
    return jax.vmap(lambda i: jnp.exp(noise.sigma_c2c_ln_mu * jax.random.normal(jax.random.fold_in(k_c2c, i))))(
        jnp.arange(n_trials, dtype=jnp.uint32)), keys


def no_langevin(noise: Noise, deterministic: bool | None = None) -> bool:
    """True when the run has no chemical-Langevin noise: ``deterministic`` or ``N_eff = inf``
    (cycle-to-cycle spread of ``mu`` still applies unless ``deterministic``)."""
    return bool(deterministic) or not np.isfinite(noise.n_eff)


@x64
def simulate_dc_sweeps(m: Memristor, noise: Noise, setup: DCSweep = DCSweep(), *, n_trials: int = 1, seed: int = 0,
                       i_on: float = 1e-8, i_off: float = 1e-11, deterministic: bool | None = None):
    """Simulate ``n_trials`` sweeps; returns ``(DCSweeps, Crossings)`` (crossing times in s from the start,
    NumPy float64 arrays).

    Deterministic (no Langevin noise, no cycle spread) when ``deterministic``; no Langevin noise
    when ``N_eff = inf`` (the cycle-to-cycle spread of ``mu`` remains).
    """
    det = no_langevin(noise, deterministic)
    scale, keys = trial_draws(noise, n_trials, seed, bool(deterministic))
    current, cross = dc_sweep_run(m, noise.n_eff, scale, keys, setup, i_on, i_off, det)
    current = np.maximum(np.asarray(current).T, setup.i_floor)
    voltage = np.broadcast_to(setup.levels(), current.shape).copy()
    return DCSweeps(voltage=voltage, current=current, time=None, source="simulated"), _numpy_crossings(cross)


@x64
def simulate_pulses(m: Memristor, noise: Noise, setup: PulseSetup = PulseSetup(), *, n_trials: int = 1, seed: int = 0,
                    i_level: float = 1e-6, deterministic: bool | None = None):
    """Simulate ``n_trials`` pulse trials; returns ``(PulseTrials, Crossings)``: ``t_on`` is the first
    time ``|I|`` rises through ``i_level`` (s from the start of the record); NumPy float64 arrays."""
    det = no_langevin(noise, deterministic)
    scale, keys = trial_draws(noise, n_trials, seed, bool(deterministic))
    current, cross = pulse_run(m, noise.n_eff, scale, keys, setup, i_level, det)
    current = np.asarray(current).T
    n_points = current.shape[1]
    t_points = np.arange(n_points) * setup.sample
    time = np.broadcast_to(t_points + setup.sample, current.shape).copy()
    voltage = np.broadcast_to(np.asarray(setup.waveform(t_points + 0.5 * setup.sample)), current.shape).copy()
    return PulseTrials(time=time, voltage=voltage, current=current, source="simulated"), _numpy_crossings(cross)
