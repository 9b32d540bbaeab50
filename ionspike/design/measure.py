"""Measure the design quantities (:data:`ionspike.design.spec.QUANTITIES`) of many candidate neurons at
once: every candidate is one neuron of a batched :func:`ionspike.simulate` call (its variables as
per-neuron parameter arrays), one call per stimulus; P(fire) targets add ``trials`` noisy devices per
candidate."""

from __future__ import annotations

import warnings

import numpy as np

from ionspike.design.spec import DesignSpec, Target
from ionspike.params import replace
from ionspike.simulate import simulate
from ionspike.study import metrics_of


def candidate_params(spec: DesignSpec, values: np.ndarray, repeat: int = 1):
    """The base parameters with each variable set per neuron: ``values`` (candidates, variables) in SI,
    each candidate repeated ``repeat`` times (consecutive neurons)."""
    values = np.atleast_2d(np.asarray(values, np.float64))
    return replace(spec.base, **{v.path: np.repeat(values[:, j], repeat) for j, v in enumerate(spec.variables)})


def chosen_params(spec: DesignSpec, values):
    """The base parameters with the variables set to one candidate's ``values`` (SI scalars)."""
    return replace(spec.base, **{v.path: float(x) for v, x in zip(spec.variables, np.ravel(values))})


def _groups(targets: tuple[Target, ...]) -> dict:
    """Targets that share one simulation: (stimulus, duration, noisy, trials, conditions) -> target indices."""
    out: dict = {}
    for i, t in enumerate(targets):
        if t.quantity == "ip_ratio":        # its own protocol (ip_ratio), one target at a time
            continue
        noisy = t.quantity == "p_fire"
        copies = t.trials if noisy else (t.devices if t.robust else 1)
        out.setdefault((t.stimulus_text, t.duration, noisy, copies, t.conditions, t.spread), []).append(i)
    return out


def _per_neuron(ds, quantity: str, after: float = 0.0) -> np.ndarray:
    with warnings.catch_warnings():           # neurons without two spikes: NaN, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        return _quantity(ds, quantity, after)


# design quantity -> the per-neuron metric of ionspike.study.metrics_of (one definition for sweeps and design)
_METRIC = {"first_spike": "first_spike_s", "spike_count": "spike_count", "isi": "isi_mean_s",
           "refractory": "isi_min_s", "energy_per_spike": "energy_input_per_spike_J",
           "total_energy_per_spike": "energy_per_spike_J", "p_fire": "fired"}


def _quantity(ds, quantity: str, after: float) -> np.ndarray:
    if after:       # only spikes after `after` count (the spec allows it for counts and intervals only)
        st = np.asarray(ds.spike_time.values, np.float64)
        ds = ds.assign(spike_time=(ds.spike_time.dims, np.sort(np.where(st > after, st, np.nan), axis=1)))
    if quantity == "rate":
        return 1.0 / metrics_of(ds, ["isi_mean_s"])["isi_mean_s"]
    return metrics_of(ds, [_METRIC[quantity]])[_METRIC[quantity]]


def measure(spec: DesignSpec, values: np.ndarray, *, seed: int | None = None) -> np.ndarray:
    """Quantities of every target for every candidate: (candidates, targets) in SI, NaN where a
    quantity is undefined (no spike, fewer than two spikes)."""
    values = np.atleast_2d(np.asarray(values, np.float64))
    n = values.shape[0]
    out = np.full((n, len(spec.targets)), np.nan)
    seed = spec.seed if seed is None else seed
    for i, t in enumerate(spec.targets):
        if t.quantity == "ip_ratio":
            out[:, i] = ip_ratio(spec, t, values, seed)
    for (text, duration, noisy, copies, conditions, spread), idx in _groups(spec.targets).items():
        stim = spec.targets[idx[0]].stimulus
        p = candidate_params(spec, values, copies)
        if conditions:
            p = replace(p, **dict(conditions))
        if spread:
            # device-to-device spread of mu: the same `copies` draws for every candidate (common random numbers)
            z = np.random.default_rng([spec.seed, 7]).standard_normal(copies)
            p = replace(p, mu=np.asarray(p.memristor.mu, np.float64) * np.tile(np.exp(spread * z), n))
        steps = {"rtol": 1e-4, "atol": 1e-7} if spec.adaptive and not noisy else {}
        ds = simulate(p, stim, duration=duration, deterministic=not noisy, seed=seed, signals=(), **steps)
        for i in idx:
            t = spec.targets[i]
            q = _per_neuron(ds, t.quantity, t.after).reshape(n, copies)
            if noisy:
                out[:, i] = q.mean(axis=1)
            elif spread:        # the fraction of devices whose value meets the interval
                out[:, i] = ((q >= t.low) & (q <= t.high)).mean(axis=1)
            else:
                out[:, i] = q[:, 0]
    return out


def ip_ratio(spec: DesignSpec, t: Target, values: np.ndarray, seed: int) -> np.ndarray:
    """The intrinsic-plasticity advance ratio of every candidate, by the protocol's own measurement
    (:func:`ionspike.protocols.plasticity.advance_ratios`; with an "auto" amplitude, each candidate's
    own matched amplitude: one batched amplitude sweep, then one batched paired-pulse run)."""
    from ionspike.protocols.plasticity import PAPER_FIRST_INTEGRATION_S, advance_ratios, match_amplitudes

    n = values.shape[0]
    p = candidate_params(spec, values)
    if t.conditions:
        p = replace(p, **dict(t.conditions))
    width = float(np.ravel(t.stimulus.width)[0])
    amplitude = (match_amplitudes(p, width, PAPER_FIRST_INTEGRATION_S * width / 20e-3, None, seed, neurons=n)
                 if t.auto_amplitude else float(np.ravel(t.stimulus.amplitude)[0]))
    return advance_ratios(p, amplitude, width, None, seed, neurons=n)


def measure_spice(spec: DesignSpec, values: np.ndarray, dt: float = 2e-6) -> list:
    """The deterministic targets of one candidate measured on its exported ngspice deck, run by the real
    ngspice (``dt``: the deck's maximum step, s); None for P(fire) (noise has no ngspice form) and for
    the IP ratio (a protocol of its own, not exported)."""
    from ionspike import spice

    p, _ = spice.exportable(chosen_params(spec, values).deterministic())
    out: list = [None] * len(spec.targets)
    for (text, duration, noisy, _, conditions, spread), idx in _groups(spec.targets).items():
        if noisy or spread:
            continue
        stim = spec.targets[idx[0]].stimulus
        pc = replace(p, **dict(conditions)) if conditions else p
        ds = spice.run(spice.netlist(pc, stim, duration=duration, dt=dt, n=1), pc, n=1)
        for i in idx:
            out[i] = float(_per_neuron(ds, spec.targets[i].quantity, spec.targets[i].after)[0])
    return out
