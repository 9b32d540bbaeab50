r"""Fit the device model to measured DC sweeps or pulse trials.

Each fit alternates two stages for ``rounds`` rounds:

1. **Deterministic parameters by gradient descent** (optax Adam) through the JAX simulator of
   the measurement setup. The loss compares the *medians* of features of a batch of
   simulated trials with the measured medians. With the noise of the batch held fixed
   (common random numbers), the features are smooth functions of the parameters: crossing
   times are interpolated inside a step (:mod:`ionspike.calibrate.setups`), so the pathwise
   gradient exists. Parameters are optimised in unconstrained coordinates (log for rates,
   a logistic map onto the allowed interval for ``v_h``), from several starts; the best wins.
2. **Stochastic parameters by distribution matching**: a grid over ``N_eff`` and the
   cycle-to-cycle spread of ``ln mu``; each point simulates as many trials as were measured
   and scores the sum of two-sample KS distances between simulated and measured features.

Which parameters each fit frees, and why the others are held (not identifiable from that
experiment), is stated in :func:`fit_dc_sweeps` and :func:`fit_pulses`. Initial values come
from the data (closed forms below), so no file-specific tuning is needed. A fixed ``seed``
makes the whole fit repeatable.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ionspike.calibrate import features as feat
from ionspike.calibrate import setups
from ionspike.calibrate.data import DataError, DCSweeps, PulseTrials
from ionspike.errors import ParameterError
from ionspike.params import Memristor, NeuronParams, Noise
from ionspike.presets import load
from ionspike.precision import x64

# The DC hold is an event at a step boundary (the source leaving compliance), so autodiff sees no
# sensitivity in it: the DC fit's gradient is a central difference (noise fixed) of this step in
# the unconstrained coordinates (~5 mV of v_h, 5 % of mu). Pulse delays use autodiff.
DC_FD_STEP = 0.05
R_ON_PERCENTILE = 5  # of |V|/|I| over ON points below compliance: r_on of a DC fit
POLISH_STEPS = 4  # final re-centring steps on the medians after the grid (pulse fit: secant on mu)
N_EFF_GRID = (3.0, 5.0, 10.0, 20.0, 40.0, 100.0, 300.0, 1000.0, math.inf)
SIGMA_C2C_GRID = (0.0, 0.1, 0.2, 0.35)                                 # DC sweeps
SIGMA_C2C_GRID_PULSES = (0.0, 0.35, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)    # delays scatter over decades


@dataclass(frozen=True)
class FitOptions:
    """How hard to fit. ``n_grad``: trials in the gradient batch; ``steps``: Adam steps per start;
    ``restarts``: starts in the first round (later rounds start from the best); ``rounds``:
    alternations of the two stages; ``lr``: Adam learning rate (unconstrained coordinates);
    ``n_sim``: trials per grid point (None: as many as measured, at least 50); ``n_report``:
    trials in the final, reported comparison, drawn afresh (None: as many as measured, at least
    400, so that the KS distances measure the model more than its sampling); ``seed``: every
    random draw."""

    n_grad: int | None = None   # None: 16 sweeps (DC), 128 pulse trials
    steps: int = 25
    restarts: int = 3
    rounds: int = 2
    lr: float = 0.25
    n_sim: int | None = None
    n_report: int | None = None   # trials in the reported comparison (None: max(measured, 400))
    seed: int = 0
    n_eff_grid: tuple = N_EFF_GRID
    sigma_c2c_grid: tuple | None = None   # None: the default grid of the fit

    def __post_init__(self):
        for name in ("n_grad", "steps", "restarts", "rounds"):
            v = getattr(self, name)
            if name == "n_grad" and v is None:
                continue
            if not (isinstance(v, int) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1")
        if not (self.lr > 0):
            raise ParameterError(f"lr = {self.lr} is out of range: allowed (0, inf)")
        for name in ("n_sim", "n_report"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 2):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 2")


@dataclass
class Fit:
    """A calibration result. ``params``: the fitted neuron parameters (memristor and noise fitted,
    transistor and circuit from the base preset); ``fitted``: name -> SI value of what was freed;
    ``measured``/``simulated``: feature name -> samples; ``ks``: feature -> KS distance;
    ``loss``: final deterministic-stage loss; ``history``: one dict per stage."""

    kind: str
    params: NeuronParams
    fitted: dict
    measured: dict
    simulated: dict
    ks: dict
    loss: float
    history: list
    setup: dict
    measured_data: Any = None
    simulated_data: Any = None
    notes: list = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready: parameters, loss, measured and simulated samples, their statistics and KS distances."""
        out: dict[str, Any] = {"kind": self.kind, "fitted": self.fitted, "loss": self.loss,
                               "params": self.params.to_dict(), "setup": self.setup, "ks": self.ks,
                               "history": self.history, "notes": self.notes}
        for where, samples in (("measured", self.measured), ("simulated", self.simulated)):
            for name, x in samples.items():
                out[f"{where}.{name}"] = [None if not np.isfinite(v) else float(v) for v in np.asarray(x, float)]
                stats = feat.describe(x)
                if name in MISSING_AS:  # the median with absent features placed where they belong
                    filled = np.where(np.isnan(np.asarray(x, float)), MISSING_AS[name], np.asarray(x, float))
                    med = float(np.median(filled)) if filled.size else math.nan
                    stats["median_with_missing"] = med if abs(med) < 1e29 else math.copysign(math.inf, med)
                out[f"{where}.{name}.stats"] = stats
        return out


# ----------------------------------------------------------------------------------------
# generic pieces


def _central_difference(loss: Callable, h: float) -> Callable:
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


def _adam(loss: Callable, starts: list[np.ndarray], opts: FitOptions, progress,
          fd_step: float | None = None) -> tuple[np.ndarray, float, list]:
    """Minimise ``loss`` from each start with Adam (cosine-decayed rate); return the best point, its
    loss and the loss traces. Gradients by autodiff, or by central differences if ``fd_step``."""
    vg = jax.jit(jax.value_and_grad(loss)) if fd_step is None else _central_difference(loss, fd_step)
    best, best_loss, traces = None, math.inf, []
    for theta0 in starts:
        opt = optax.adam(optax.cosine_decay_schedule(opts.lr, opts.steps, alpha=0.1))
        theta = jnp.asarray(theta0, dtype=jnp.float64)
        state = opt.init(theta)
        trace = []
        for _ in range(opts.steps):
            value, grad = vg(theta)
            value = float(value)
            trace.append(value)
            if value < best_loss:
                best, best_loss = np.asarray(theta), value
            if not np.all(np.isfinite(np.asarray(grad))):
                break
            updates, state = opt.update(grad, state, theta)
            theta = optax.apply_updates(theta, updates)
            if progress:
                progress()
        value = float(vg(theta)[0])
        trace.append(value)
        if value < best_loss:
            best, best_loss = np.asarray(theta), value
        traces.append(trace)
    if best is None:
        raise DataError("the fit found no finite loss from any start: the simulated device never produces the "
                        "measured features (check the setup: compliance, series resistance, timing)")
    return best, best_loss, traces


def _grid(score: Callable, m: Memristor, opts: FitOptions, progress, sigmas: tuple):
    """Best (N_eff, sigma_c2c) on the grid. ``score(m, noise) -> (value, m')`` re-centres the
    deterministic parameters for that noise (noise shifts the medians) and scores the result;
    lower is better. Returns the best noise, its re-centred memristor, its score and the table."""
    rows, best, best_m, best_score = [], None, m, math.inf
    for n_eff in opts.n_eff_grid:
        for sigma in (opts.sigma_c2c_grid or sigmas):
            if not np.isfinite(n_eff) and sigma == 0.0:
                continue  # fully deterministic: every trial identical, no distribution to match
            noise = Noise(n_eff=float(n_eff), sigma_d2d_ln_mu=0.0, sigma_c2c_ln_mu=float(sigma))
            s, m_new = score(m, noise)
            rows.append({"n_eff": n_eff if np.isfinite(n_eff) else "inf", "sigma_c2c_ln_mu": sigma, "score": s,
                         "v_h": m_new.v_h, "mu": m_new.mu})
            if s < best_score:
                best, best_m, best_score = noise, m_new, s
            if progress:
                progress()
    return best, best_m, best_score, rows


# where a missing feature belongs in its distribution: a sweep that never switches has its threshold
# above the sweep, one that never releases its hold below zero, a trial that never switches its
# delay after the pulse. KS distances count them there instead of dropping them.
MISSING_AS = {"vth_V": 1e30, "vhold_V": -1e30, "delay_s": 1e30}


def ks_with_missing(name: str, a, b) -> float:
    """Two-sample KS distance of feature ``name`` with NaN (feature absent) placed per ``MISSING_AS``."""
    fill = MISSING_AS.get(name)
    a, b = np.asarray(a, float), np.asarray(b, float)
    if fill is not None:
        a, b = np.where(np.isnan(a), fill, a), np.where(np.isnan(b), fill, b)
    if not (np.any(~np.isnan(a)) and np.any(~np.isnan(b))):
        return 1.0
    return feat.ks_distance(np.where(np.isinf(a), np.sign(a) * 1e30, a), np.where(np.isinf(b), np.sign(b) * 1e30, b))


def _ks_sum(measured: dict, simulated: dict) -> tuple[float, dict]:
    ks = {name: ks_with_missing(name, x, simulated[name]) for name, x in measured.items()}
    return float(sum(ks.values())), ks


def _logistic(z, lo, hi):
    return lo + (hi - lo) * jax.nn.sigmoid(z)


def _logit(v, lo, hi):
    u = np.clip((v - lo) / (hi - lo), 1e-6, 1 - 1e-6)
    return float(np.log(u / (1 - u)))


def _base_params(base) -> NeuronParams:
    if isinstance(base, NeuronParams):
        return base
    return load(base).params


def _n_sim(opts: FitOptions, n_measured: int, least: int) -> int:
    return opts.n_sim if opts.n_sim is not None else max(n_measured, least)


# ----------------------------------------------------------------------------------------
# DC sweeps


def sweep_signs(sweeps: DCSweeps) -> np.ndarray:
    """+1 or -1 per sweep: the sign of its largest-magnitude voltage."""
    v = sweeps.voltage
    return np.sign(v[np.arange(v.shape[0]), np.argmax(np.abs(v), axis=1)])


def dc_setup_from_data(sweeps: DCSweeps, *, hold: float, compliance: float | None, i_on: float,
                       dt: float) -> setups.DCSweep:
    """The (positive) sweep that produced ``sweeps``: peak and step from the voltages, compliance
    given or detected, ``hold`` s per point (not recorded in the data: an assumption)."""
    v = sweeps.voltage
    v_peak = float(np.median(np.max(np.abs(v), axis=1)))
    steps = np.abs(np.diff(v, axis=1))
    v_step = float(np.median(steps[steps > 0]))
    if compliance is None:
        compliance = feat.detect_compliance(np.abs(sweeps.current)[np.abs(sweeps.current) >= i_on])
    if compliance is None:
        compliance = 1.0  # no clamp seen: 1 A never limits a memristor sweep
    return setups.DCSweep(v_peak=v_peak, v_step=v_step, hold=hold, compliance=compliance, dt=dt)


def _fit_dc_single(sweeps: DCSweeps, *, base: str | NeuronParams = "paper", polarity: str = "symmetric",
                  hold: float = 10e-3, compliance: float | None = None, i_on: float = 1e-8, i_off: float = 1e-11,
                  dt: float = 50e-6, options: FitOptions = FitOptions(), progress: Callable | None = None) -> Fit:
    r"""Fit the memristor to quasi-static I-V sweeps.

    Freed: ``v_h`` and ``mu`` (gradient stage, on the medians of the threshold and hold voltages),
    ``N_eff`` and ``sigma_c2c_ln_mu`` (grid stage, on their distributions); ``r_off`` and ``r_on``
    from the data in closed form (median ``|V|/|I|`` of OFF points and of ON points below
    compliance: their ``R_ON_PERCENTILE`` percentile, since most of them belong to the release, and
    at most the lowest ``|V|/I_cc`` at compliance;
    ``r_on`` keeps the base value if every ON point sits at compliance). Held at the
    base preset: ``alpha``, ``beta``, ``gamma1``, ``gamma2``, ``lam`` -- a sweep measures two
    voltages per cycle, which fix a drift onset and a drive-to-dissolution ratio, not the
    individual rates.

    A symmetric device is one model device for both polarities (``|V|`` drives it): all sweeps
    are pooled and simulated as forward sweeps; the per-polarity medians are reported in
    ``setup["by_polarity"]``. An asymmetric device is fitted on the sweeps of the polarity that
    switches (most sweeps).

    Initialisation from the data: the hold lags the drift onset by however long the residue
    takes to decay, so candidate onsets are scanned in one deterministic batch, each with ``mu``
    from the saddle-node of the filament equation at the measured threshold,
    :math:`\mu (V_{th} - V_h) = (\gamma_1+\beta)(1+\alpha)^2/4`; the one whose hold is nearest
    the measured median starts the fit.
    """
    if polarity not in ("symmetric", "asymmetric"):
        raise ParameterError(f"polarity = {polarity!r}: allowed 'symmetric' or 'asymmetric'")
    feat.require_switching(sweeps, i_on)
    p0 = _base_params(base)
    v_th, v_hold = feat.threshold_hold_voltages(sweeps, i_on, i_off)
    if not np.isfinite(v_hold).any():
        raise DataError(f"no sweep releases: |I| never falls below i_off = {i_off} A on a falling branch after "
                        f"being above i_on = {i_on} A; the hold voltage cannot be measured")
    signs = sweep_signs(sweeps)
    if polarity == "asymmetric":  # the switching polarity is the forward one
        switched = np.isfinite(v_th)
        forward = 1.0 if np.sum(signs[switched] > 0) >= np.sum(signs[switched] < 0) else -1.0
        keep = signs == forward
        v_th, v_hold, signs = v_th[keep], v_hold[keep], signs[keep]
    by_polarity = {name: {"n_measured": int(np.sum(signs == g)),
                          "measured_median_vth_V": float(np.nanmedian(v_th[signs == g])),
                          "measured_median_vhold_V": float(np.nanmedian(v_hold[signs == g]))}
                   for name, g in (("positive", 1.0), ("negative", -1.0)) if np.isfinite(v_th[signs == g]).any()}
    res = feat.on_off_resistance(sweeps, i_on, i_off, compliance)
    setup = dc_setup_from_data(sweeps, hold=hold, compliance=compliance or res["compliance_A"], i_on=i_on, dt=dt)
    measured = {"vth_V": v_th, "vhold_V": v_hold}
    med_th, med_hold = float(np.nanmedian(v_th)), float(np.nanmedian(v_hold))
    v_max = abs(setup.v_peak)
    r_off = float(np.nanmedian(res["r_off_ohm"])) if np.isfinite(res["r_off_ohm"]).any() else p0.memristor.r_off
    # ON points below compliance are mostly the release, passing through every resistance from r_on
    # up: the most conductive of them (a low percentile, robust to single samples) is r_on
    v_abs, i_abs = np.abs(sweeps.voltage), np.abs(sweeps.current)
    on = (i_abs >= i_on) & (i_abs < (1 - 0.01) * setup.compliance) & (v_abs > 0)
    notes = []
    at_compliance = i_abs >= (1 - 0.01) * setup.compliance
    if on.any():
        r_on = float(np.percentile(v_abs[on] / i_abs[on], R_ON_PERCENTILE))
        if at_compliance.any():  # at compliance R_d = |V_device|/I_cc <= |V|/I_cc: the lowest |V| bounds r_on
            r_on = min(r_on, float(np.min(v_abs[at_compliance])) / setup.compliance)
    else:
        r_on = p0.memristor.r_on
        notes.append(f"every ON point sits at compliance: r_on kept at the base value {r_on:g} ohm")
    r_on = min(r_on, 0.5 * r_off)
    m0 = dataclasses.replace(p0.memristor, polarity=polarity, r_off=r_off, r_on=r_on, v_h_reverse_shift=0.0)
    gamma = m0.gamma1 + m0.beta
    cand = np.linspace(0.0, 0.9 * med_th, 16)
    mus = gamma * (1 + m0.alpha) ** 2 / (4 * np.maximum(med_th - cand, 0.01 * v_max))
    _, c = setups.simulate_dc_sweeps(dataclasses.replace(m0, v_h=cand, mu=mus), Noise(), setup,
                                     n_trials=cand.size, i_on=i_on, i_off=i_off)
    err = np.abs(np.asarray(setup.ramp_voltage(c.t_off)) - med_hold)
    k = int(np.nanargmin(err)) if np.isfinite(err).any() else int(np.argmin(np.abs(cand - med_hold)))
    v_h0, mu0 = float(cand[k]), float(mus[k])
    scale_v = max(setup.v_step, 1e-3)  # V: the data's voltage resolution sets the loss scale
    n_meas = int(v_th.size)
    n_sim = _n_sim(options, n_meas, 50)
    n_grad = options.n_grad or 16

    def unpack(theta):
        return dataclasses.replace(m0, v_h=_logistic(theta[0], 0.0, v_max), mu=jnp.exp(theta[1]))

    def pack(m):
        return np.array([_logit(m.v_h, 0, v_max), math.log(m.mu)])

    def make_loss(noise: Noise):
        det = setups.no_langevin(noise)
        scale, keys = setups.trial_draws(noise, n_grad, options.seed + 1)

        def loss(theta):
            _, c = setups.dc_sweep_run(unpack(theta), noise.n_eff, scale, keys, setup, i_on, i_off, det)
            th = jnp.nanmedian(setup.ramp_voltage(c.t_on))
            ho = jnp.nanmedian(setup.ramp_voltage(c.t_off))
            # a batch that never switches (or never releases) scores as if at the sweep's far end
            th = jnp.where(jnp.isnan(th), 2 * v_max, th)
            ho = jnp.where(jnp.isnan(ho), -v_max, ho)
            return ((th - med_th) / scale_v) ** 2 + ((ho - med_hold) / scale_v) ** 2
        return loss

    def features_of(m, noise, seed, n=None):
        sim, _ = setups.simulate_dc_sweeps(m, noise, setup, n_trials=n or n_sim, seed=seed, i_on=i_on, i_off=i_off)
        th, ho = feat.threshold_hold_voltages(sim, i_on, i_off)
        return {"vth_V": th, "vhold_V": ho}, sim

    def recentre(m, f):
        """Shift v_h by the hold-median error, then scale mu so that the threshold's distance above v_h
        matches (V_th - v_h ~ 1/mu at the saddle-node). ``f``: the features simulated at ``m``."""
        th_s, ho_s = np.nanmedian(f["vth_V"]), np.nanmedian(f["vhold_V"])
        if not (np.isfinite(th_s) and np.isfinite(ho_s)):
            return m
        v_h = float(np.clip(m.v_h + (med_hold - ho_s), 0.0, 0.95 * med_th))
        ratio = (th_s - m.v_h) / max(med_th - v_h, 1e-3)
        return dataclasses.replace(m, v_h=v_h, mu=float(m.mu * np.clip(ratio, 0.25, 4.0)))

    def score(m, noise):
        """Re-centre the device for this noise, then score it (sum of KS distances)."""
        m = recentre(m, features_of(m, noise, options.seed + 2)[0])
        return _ks_sum(measured, features_of(m, noise, options.seed + 2)[0])[0], m

    m_init = dataclasses.replace(m0, v_h=v_h0, mu=mu0)
    starts = [pack(m_init), pack(dataclasses.replace(m_init, mu=mu0 * 0.5)),
              pack(dataclasses.replace(m_init, mu=mu0 * 2.0))][:options.restarts]
    noise = Noise(n_eff=100.0, sigma_c2c_ln_mu=0.1)
    m, history, loss, theta = m_init, [], math.inf, starts[0]
    for r in range(options.rounds):
        theta, loss, traces = _adam(make_loss(noise), starts if r == 0 else [theta], options, progress,
                                    fd_step=DC_FD_STEP)
        m = jax.tree.map(float, unpack(jnp.asarray(theta)))
        history.append({"stage": "gradient", "round": r, "loss": loss, "v_h": m.v_h, "mu": m.mu, "traces": traces})
        noise, m, best, rows = _grid(score, m, options, progress, SIGMA_C2C_GRID)
        theta = pack(m)
        history.append({"stage": "grid", "round": r, "best": best, "n_eff": noise.n_eff,
                        "sigma_c2c_ln_mu": noise.sigma_c2c_ln_mu, "v_h": m.v_h, "mu": m.mu, "grid": rows})
    for _ in range(POLISH_STEPS - 1):  # a few more re-centring steps: the medians are the fit's objective
        m = recentre(m, features_of(m, noise, options.seed + 2)[0])
    history.append({"stage": "polish", "v_h": m.v_h, "mu": m.mu})
    n_report = options.n_report or max(n_meas, 400)
    simulated, sim = features_of(m, noise, options.seed + 3, n_report)  # fresh draws for the reported comparison
    _, ks = _ks_sum(measured, simulated)
    params = dataclasses.replace(p0, memristor=m, noise=noise)
    fitted = {"v_h": m.v_h, "mu": m.mu, "r_on": m.r_on, "r_off": m.r_off, "n_eff": noise.n_eff,
              "sigma_c2c_ln_mu": noise.sigma_c2c_ln_mu}
    setup_info = dict(dataclasses.asdict(setup), i_on=i_on, i_off=i_off, n_measured=n_meas, n_simulated=n_report,
                      polarity=polarity, by_polarity=by_polarity)
    return Fit("dc-sweeps", params, fitted, measured, simulated, ks, loss, history, setup_info,
               measured_data=sweeps, simulated_data=sim, notes=notes)


MIN_PER_POLARITY = 20  # sweeps of each polarity needed to fit a symmetric device's polarities apart


def _subset(sweeps: DCSweeps, keep: np.ndarray) -> DCSweeps:
    return DCSweeps(voltage=sweeps.voltage[keep], current=sweeps.current[keep],
                    time=None if sweeps.time is None else sweeps.time[keep], source=sweeps.source)


def fits_needed(sweeps: DCSweeps, polarity: str = "symmetric", per_polarity: bool = True) -> int:
    """How many single-polarity fits :func:`fit_dc_sweeps` runs on ``sweeps`` (1 or 2)."""
    signs = sweep_signs(sweeps)
    both = min(np.sum(signs > 0), np.sum(signs < 0)) >= MIN_PER_POLARITY
    return 2 if polarity == "symmetric" and per_polarity and both else 1


@x64
def fit_dc_sweeps(sweeps: DCSweeps, *, base: str | NeuronParams = "paper", polarity: str = "symmetric",
                  per_polarity: bool = True, hold: float = 10e-3, compliance: float | None = None,
                  i_on: float = 1e-8, i_off: float = 1e-11, dt: float = 50e-6, options: FitOptions = FitOptions(),
                  progress: Callable | None = None) -> Fit:
    """Fit the memristor to quasi-static I-V sweeps (see :func:`_fit_dc_single` for one polarity).

    A symmetric device swept in both polarities (at least ``MIN_PER_POLARITY`` sweeps each) is,
    with ``per_polarity``, fitted on each polarity's sweeps apart: the positive fit gives ``v_h``
    and ``mu``, the negative one ``v_h_reverse_shift`` and ``mu_reverse_factor``; the noise is the
    candidate (each polarity's own, and their middles) that scores the lowest pooled KS sum on the
    combined device, after each
    polarity's onset and rate are re-centred on its own medians under that noise. Real
    "symmetric" devices have two different interfaces, and their sweeps show it.
    """
    if polarity not in ("symmetric", "asymmetric"):
        raise ParameterError(f"polarity = {polarity!r}: allowed 'symmetric' or 'asymmetric'")
    kwargs = dict(base=base, polarity=polarity, hold=hold, compliance=compliance, i_on=i_on, i_off=i_off, dt=dt,
                  options=options, progress=progress)
    signs = sweep_signs(sweeps)
    if fits_needed(sweeps, polarity, per_polarity) == 1:
        return _fit_dc_single(sweeps, **kwargs)
    feat.require_switching(sweeps, i_on)
    fwd = _fit_dc_single(_subset(sweeps, signs > 0), **kwargs)
    rev = _fit_dc_single(_subset(sweeps, signs < 0), **kwargs)
    mf, mr = fwd.params.memristor, rev.params.memristor
    m = dataclasses.replace(mf, v_h_reverse_shift=mr.v_h - mf.v_h, mu_reverse_factor=mr.mu / mf.mu)
    setup = setups.DCSweep(**{k: fwd.setup[k] for k in ("v_peak", "v_step", "hold", "compliance", "i_floor", "dt")})
    v_th, v_hold = feat.threshold_hold_voltages(sweeps, i_on, i_off)
    measured = {"vth_V": v_th, "vhold_V": v_hold}
    n_sim = _n_sim(options, sweeps.n_sweeps, 50)
    n_of = {g: max(int(round(n_sim * np.mean(signs == g))), 2) for g in (1.0, -1.0)}

    targets = {g: (float(np.nanmedian(v_th[signs == g])), float(np.nanmedian(v_hold[signs == g])))
               for g in (1.0, -1.0)}

    n_report = options.n_report or max(sweeps.n_sweeps, 400)
    n_report_of = {g: max(int(round(n_report * np.mean(signs == g))), 2) for g in (1.0, -1.0)}

    def simulate(m, noise, seed, counts=None):
        out = {}
        for g in (1.0, -1.0):
            sim, _ = setups.simulate_dc_sweeps(m, noise, dataclasses.replace(setup, v_peak=g * abs(setup.v_peak)),
                                               n_trials=(counts or n_of)[g], seed=seed + (g < 0), i_on=i_on,
                                               i_off=i_off)
            out[g] = (sim, *feat.threshold_hold_voltages(sim, i_on, i_off))
        return out

    def pooled(f):
        return {"vth_V": np.concatenate([f[g][1] for g in f]), "vhold_V": np.concatenate([f[g][2] for g in f])}

    def recentre(m, noise):
        """Each polarity's onset and rate re-centred on its own medians under the shared noise (the
        polarities were fitted with their own noise), as in the single fit's re-centring."""
        for _ in range(POLISH_STEPS):
            f = simulate(m, noise, options.seed + 2)
            onset = {1.0: m.v_h, -1.0: m.v_h + m.v_h_reverse_shift}
            mu = {1.0: m.mu, -1.0: m.mu * m.mu_reverse_factor}
            for g in (1.0, -1.0):
                th_s, ho_s = np.nanmedian(f[g][1]), np.nanmedian(f[g][2])
                if not (np.isfinite(th_s) and np.isfinite(ho_s)):
                    continue
                new = float(np.clip(onset[g] + targets[g][1] - ho_s, 0.0, 0.95 * targets[g][0]))
                mu[g] *= float(np.clip((th_s - onset[g]) / max(targets[g][0] - new, 1e-3), 0.25, 4.0))
                onset[g] = new
            m = dataclasses.replace(m, v_h=onset[1.0], mu=mu[1.0], v_h_reverse_shift=onset[-1.0] - onset[1.0],
                                    mu_reverse_factor=mu[-1.0] / mu[1.0])
        return m, _ks_sum(measured, pooled(simulate(m, noise, options.seed + 2)))[0]

    # the shared noise: each polarity's own, and their geometric/arithmetic middles
    nf, nr = fwd.params.noise, rev.params.noise
    n_effs = sorted({nf.n_eff, nr.n_eff, math.sqrt(nf.n_eff * nr.n_eff) if np.isfinite(nf.n_eff * nr.n_eff)
                     else max(nf.n_eff, nr.n_eff)})
    sigmas = sorted({nf.sigma_c2c_ln_mu, nr.sigma_c2c_ln_mu, 0.5 * (nf.sigma_c2c_ln_mu + nr.sigma_c2c_ln_mu)})
    scored = []
    for n_eff in n_effs:
        for sigma in sigmas:
            noise = Noise(n_eff=float(n_eff), sigma_c2c_ln_mu=float(sigma))
            m_fit, score = recentre(m, noise)
            scored.append((score, noise, m_fit))
            if progress:
                progress()
    _, noise, m = min(scored, key=lambda t: t[0])
    f = simulate(m, noise, options.seed + 3, n_report_of)   # fresh draws for the reported comparison
    simulated = pooled(f)
    _, ks = _ks_sum(measured, simulated)
    by_polarity = {}
    for name, g, sub in (("positive", 1.0, fwd), ("negative", -1.0, rev)):
        by_polarity[name] = dict(sub.setup["by_polarity"][name], simulated_median_vth_V=float(np.nanmedian(f[g][1])),
                                 simulated_median_vhold_V=float(np.nanmedian(f[g][2])),
                                 ks_vth=ks_with_missing("vth_V", v_th[signs == g], f[g][1]),
                                 ks_vhold=ks_with_missing("vhold_V", v_hold[signs == g], f[g][2]),
                                 fitted=sub.fitted)
    sim = DCSweeps(voltage=np.concatenate([f[g][0].voltage for g in f]),
                   current=np.concatenate([f[g][0].current for g in f]), source="simulated")
    params = dataclasses.replace(fwd.params, memristor=m, noise=noise)
    fitted = {"v_h": m.v_h, "mu": m.mu, "v_h_reverse_shift": m.v_h_reverse_shift,
              "mu_reverse_factor": m.mu_reverse_factor, "r_on": m.r_on, "r_off": m.r_off,
              "n_eff": noise.n_eff, "sigma_c2c_ln_mu": noise.sigma_c2c_ln_mu}
    history = [{"stage": "positive sweeps", "history": fwd.history}, {"stage": "negative sweeps", "history": rev.history},
               {"stage": "noise of the combined device", "candidates": [
                   {"score": sc, "n_eff": nz.n_eff, "sigma_c2c_ln_mu": nz.sigma_c2c_ln_mu, "v_h": mm.v_h, "mu": mm.mu}
                   for sc, nz, mm in scored]}]
    setup_info = dict(fwd.setup, n_measured=sweeps.n_sweeps, n_simulated=sim.n_sweeps, per_polarity=True,
                      by_polarity=by_polarity)
    notes = fwd.notes + rev.notes + [
        "fitted per polarity: r_on/r_off are the positive sweeps'; noise chosen on the combined device"]
    return Fit("dc-sweeps", params, fitted, measured, simulated, ks, min(fwd.loss, rev.loss), history, setup_info,
               measured_data=sweeps, simulated_data=sim, notes=notes)


# ----------------------------------------------------------------------------------------
# pulse trials


def on_fraction(trials: PulseTrials, delays: np.ndarray, level: float, t_end: float) -> np.ndarray:
    """Per trial, the fraction of samples between its switch and the pulse end ``t_end`` (s) with
    ``|I| >= level`` (A): 1 for a device that stays ON, lower for one that flickers; NaN if it
    did not switch."""
    start, _ = feat.pulse_edges(trials)
    out = np.full(trials.n_trials, np.nan)
    for k in range(trials.n_trials):
        if np.isfinite(delays[k]):
            sel = (trials.time[k] > start[k] + delays[k]) & (trials.time[k] < t_end)
            if sel.any():
                out[k] = float(np.mean(np.abs(trials.current[k][sel]) >= level))
    return out


@x64
def fit_pulses(trials: PulseTrials, *, r_series: float, base: str | NeuronParams = "paper",
               polarity: str | None = None, i_level: float | None = None, dt: float | None = None,
               options: FitOptions = FitOptions(), progress: Callable | None = None) -> Fit:
    r"""Fit the memristor to switching-delay trials under a voltage pulse through ``r_series`` (Ω).

    Freed: ``mu`` (gradient stage, on the median delay), ``N_eff`` and ``sigma_c2c_ln_mu`` (grid
    stage, on the delay distribution); ``r_on`` and ``r_off`` in closed form from the ON current
    and the current early in the pulse, :math:`R = V/I - R_s`. Held at the base preset: ``v_h``
    (one pulse amplitude cannot separate the drift onset from ``mu``: give trials at several
    amplitudes, or fix ``v_h`` from DC sweeps with ``base``), ``alpha``, ``beta``, the
    dissolution rates and ``lam``. The relaxation after the pulse is reported, not fitted.

    Initialisation: ``mu`` from the deterministic bridging time without dissolution,
    :math:`t_d \approx (1+2\alpha)/(2\mu (V - V_h))`, at the measured median delay.
    """
    if not (np.isfinite(r_series) and r_series >= 0):
        raise ParameterError(f"r_series = {r_series} ohm is out of range: allowed [0, inf)")
    p0 = _base_params(base)
    setup = setups.PulseSetup.from_trials(trials, r_series, dt)
    level = float(np.nanmedian(feat.switching_levels(trials))) if i_level is None else float(i_level)
    delays = feat.switching_delays(trials, level)
    if not np.isfinite(delays).any():
        raise DataError(f"no trial switches: |I| never rises through i_level = {level:g} A during the pulse")
    relax = feat.relaxation_times(trials, level)
    i_on = float(np.nanmedian(feat.on_current(trials)))
    v = setup.amplitude
    start, _ = feat.pulse_edges(trials)
    early = (trials.time >= start[:, None]) & (trials.time < start[:, None] + 0.1 * np.nanmin(delays))
    i_pre = float(np.median(np.abs(trials.current[early]))) if early.any() else abs(v) / p0.memristor.r_off
    r_on = abs(v) / i_on - r_series
    r_off = abs(v) / max(i_pre, 1e-15) - r_series
    notes = []
    if r_on <= 0:
        notes.append(f"ON current {i_on:g} A exceeds V/R_s: r_on set to 1 % of r_series")
        r_on = 0.01 * max(r_series, 1.0)
    pol = polarity or p0.memristor.polarity
    m0 = dataclasses.replace(p0.memristor, polarity=pol, r_on=r_on, r_off=max(r_off, 2 * r_on))
    med = float(np.nanmedian(delays))
    drive = abs(v) - m0.v_h
    if drive <= 0:
        raise DataError(f"pulse amplitude {abs(v):g} V is not above the base preset's v_h = {m0.v_h:g} V: "
                        "the model cannot switch; pass a base preset with a lower v_h")
    mu0 = (1 + 2 * m0.alpha) / (2 * drive * med)
    measured = {"delay_s": delays}
    t_end = setup.t_start + setup.width
    on_meas = float(np.nanmean(on_fraction(trials, delays, level, t_end)))
    n_sim = _n_sim(options, trials.n_trials, 400)   # few measured trials: simulate enough for smooth CDFs
    n_grid = min(n_sim, 200)
    # the fit needs the delays only: simulate up to the end of the pulse
    pulse_only = dataclasses.replace(setup, duration=min(setup.duration, setup.t_start + setup.width + 2 * setup.sample))
    n_grad = options.n_grad or 128

    def unpack(theta):
        return dataclasses.replace(m0, mu=jnp.exp(theta[0]))

    def make_loss(noise: Noise):
        det = setups.no_langevin(noise)
        scale, keys = setups.trial_draws(noise, n_grad, options.seed + 1)

        def loss(theta):
            _, c = setups.pulse_run(unpack(theta), noise.n_eff, scale, keys, pulse_only, level, det)
            d = c.t_x - setup.t_start   # x mid-gap: differentiable stand-in for the switch (see setups.X_LEVEL)
            # no crossing during the pulse: not switched, counted as late (no gradient from those trials)
            d = jnp.where(jnp.isnan(d) | (d > setup.width), 10 * setup.width, d)
            md = jnp.median(d)
            return (jnp.log(md / med) / math.log(1.1)) ** 2   # 10 % off the median costs 1
        return loss

    def simulate(m, noise, n, seed):
        return setups.simulate_pulses(m, noise, setup, n_trials=n, seed=seed, i_level=level)

    def delays_of(m, noise, with_on=False):
        sim, _ = setups.simulate_pulses(m, noise, pulse_only, n_trials=n_grid, seed=options.seed + 2, i_level=level)
        d = feat.switching_delays(sim, level)
        return (d, float(np.nanmean(on_fraction(sim, d, level, t_end))) if np.isfinite(d).any() else 0.0) \
            if with_on else d

    def score(m, noise):
        """Re-centre mu on the median delay (delay ~ 1/mu well above threshold), then score: KS of the
        delays, plus the gap in the ON fraction after switching (a switched device that flickers OFF
        again is not what was measured), plus, as a tie-break (KS on a handful of trials is coarse),
        the log-quantile mismatch."""
        d = delays_of(m, noise)
        if np.isfinite(d).any():
            d_all = np.where(np.isnan(d), 10 * setup.width, d)   # never switched counts as late
            m = dataclasses.replace(m, mu=float(m.mu * np.clip(np.median(d_all) / med, 0.25, 4.0)))
        d, on_sim = delays_of(m, noise, with_on=True)
        if not np.isfinite(d).any():
            return 10.0, m
        q = np.linspace(0.1, 0.9, 9)
        d_all = np.where(np.isnan(d), 10 * setup.width, d)   # never switched: after the pulse
        dq = np.quantile(np.log(d_all), q) - np.nanquantile(np.log(delays), q)
        return (ks_with_missing("delay_s", delays, d) + abs(on_sim - on_meas)
                + 0.05 * float(np.mean(np.abs(dq)))), m

    starts = [np.array([math.log(mu0 * f)]) for f in (1.0, 0.5, 2.0)][:options.restarts]
    noise = Noise(n_eff=100.0, sigma_c2c_ln_mu=0.1)
    m, history, loss = m0, [], math.inf
    for r in range(options.rounds):
        theta, loss, traces = _adam(make_loss(noise), starts if r == 0 else [theta], options, progress)
        m = dataclasses.replace(unpack(theta), mu=float(jnp.exp(theta[0])))
        history.append({"stage": "gradient", "round": r, "loss": loss, "mu": m.mu, "traces": traces})
        noise, m, best, rows = _grid(score, m, options, progress, SIGMA_C2C_GRID_PULSES)
        theta = np.array([math.log(m.mu)])
        history.append({"stage": "grid", "round": r, "best": best, "n_eff": noise.n_eff,
                        "sigma_c2c_ln_mu": noise.sigma_c2c_ln_mu, "mu": m.mu, "grid": rows})
    # polish mu on the median delay with more trials: secant steps in (log mu, log median delay)
    pts = []
    for _ in range(POLISH_STEPS):
        sim, _ = setups.simulate_pulses(m, noise, pulse_only, n_trials=n_sim, seed=options.seed + 2, i_level=level)
        d = feat.switching_delays(sim, level)
        log_md = math.log(float(np.median(np.where(np.isnan(d), 10 * setup.width, d))))
        pts.append((math.log(m.mu), log_md))
        slope = -1.0
        if len(pts) >= 2 and pts[-1][1] != pts[-2][1]:
            slope = float(np.clip((pts[-1][1] - pts[-2][1]) / (pts[-1][0] - pts[-2][0]), -5.0, -0.2))
        step = float(np.clip((math.log(med) - log_md) / slope, -math.log(2), math.log(2)))
        m = dataclasses.replace(m, mu=float(m.mu * math.exp(step)))
    history.append({"stage": "polish", "points_log_mu_log_median": pts, "mu": m.mu})
    n_report = options.n_report or max(trials.n_trials, 400)
    sim, _ = simulate(m, noise, n_report, options.seed + 3)
    d = feat.switching_delays(sim, level)
    simulated = {"delay_s": d}
    _, ks = _ks_sum(measured, simulated)
    sim_relax = feat.relaxation_times(sim, level)
    params = dataclasses.replace(p0, memristor=m, noise=noise)
    fitted = {"mu": m.mu, "r_on": m.r_on, "r_off": m.r_off, "n_eff": noise.n_eff,
              "sigma_c2c_ln_mu": noise.sigma_c2c_ln_mu}
    setup_info = dict(dataclasses.asdict(setup), i_level=level, n_measured=trials.n_trials, n_simulated=n_report)
    fit = Fit("pulses", params, fitted, measured, simulated, ks, loss, history, setup_info,
              measured_data=trials, simulated_data=sim, notes=notes)
    fit.measured["relaxation_s"] = relax
    fit.measured["on_fraction"] = on_fraction(trials, delays, level, t_end)
    fit.simulated["on_fraction"] = on_fraction(sim, d, level, t_end)
    fit.simulated["relaxation_s"] = sim_relax
    return fit
