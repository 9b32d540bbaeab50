"""Stochasticity (docs/model.md §2.7, §3.4, §3.10): probabilistic firing near threshold, a random
switching delay, and irregular inter-spike intervals."""

from __future__ import annotations

import numpy as np

from ionspike.protocols.common import check_trials, derived_seed, first_after, key, resolve, swept, wilson
from ionspike.simulate import DEFAULT_DT_S, simulate
from ionspike.stimulus import PulseTrain

AMPLITUDES_V = (0.7, 0.8, 0.9, 1.0, 1.1)
PAPER_P_FIRE = {0.8: 0.05, 0.9: 0.76, 1.0: 0.95}  # Fig. 3c,d: 15 ms pulses


def stochasticity(preset="paper", *, trials=500, amplitudes=AMPLITUDES_V, width=15e-3, train_trials=100,
                  train_duration=0.5, seed=0, progress=None):
    """``trials`` single pulses of ``width`` s at each amplitude, and a pulse train for ISI statistics.

    Metrics: ``p_fire`` (V -> fraction of trials with an output spike during the pulse, with
    its Wilson 95 % interval ``p_fire_ci``), ``delay_median_s`` and ``delay_cv`` (V -> the
    switching delay from pulse onset, over trials that fired), ``isi_cv`` (CV of all ISIs
    after the first spike, 0.8 V 1 ms/2 ms train, ``train_trials`` trials).
    """
    trials = check_trials(trials)
    train_trials = check_trials(train_trials, "train_trials")
    p, name, dt = resolve(preset)
    dt = dt or DEFAULT_DT_S
    amplitudes = swept("amplitudes", amplitudes, unit="V")
    amps = np.repeat(amplitudes, trials)
    part = (lambda a, b: (lambda f: progress(a + (b - a) * f))) if progress else (lambda a, b: None)
    ds = simulate(p, PulseTrain(amplitude=amps, width=width, period=width, n_pulses=1), duration=width + 1e-3, dt=dt,
                  seed=seed, signals=(), progress=part(0.0, 0.7))
    delay = first_after(ds, 0.0, width)
    fired = np.isfinite(delay)
    p_fire, ci, med, cv = {}, {}, {}, {}
    for a in amplitudes:
        sel = amps == a
        k, n = int(fired[sel].sum()), int(sel.sum())
        p_fire[key(a)] = k / n
        ci[key(a)] = list(wilson(k, n))
        d = delay[sel & fired]
        med[key(a)] = float(np.median(d)) if d.size else None
        cv[key(a)] = float(d.std() / d.mean()) if d.size > 1 else None
    train = simulate(p, PulseTrain(amplitude=0.8, width=1e-3, period=2e-3), duration=train_duration, dt=dt,
                     n=train_trials, seed=derived_seed(seed, 1), signals=(), progress=part(0.7, 1.0))
    isis = [np.diff(t[np.isfinite(t)]) for t in train.spike_time.values]
    isis = np.concatenate([x for x in isis if x.size]) if any(x.size for x in isis) else np.array([])
    out = ds.drop_vars([v for v in ds.data_vars if v.startswith("energy") or v == "status_t_fail"])
    out = out.assign_coords(amplitude=("neuron", amps))
    out["delay"] = ("neuron", delay, {"units": "s", "long_name": "switching delay from pulse onset (NaN: no spike)"})
    out["train_isi"] = ("isi", isis, {"units": "s"})
    levels = np.asarray(amplitudes, float)
    out["p_fire"] = ("level", np.array([p_fire[key(a)] for a in levels]), {"units": "1"})
    out["p_fire_ci"] = (("level", "bound"), np.array([ci[key(a)] for a in levels]), {"units": "1"})
    out = out.assign_coords(level=("level", levels, {"units": "V"}))
    out["paper_p_fire"] = ("paper_level", np.array(list(PAPER_P_FIRE.values())), {"units": "1"})
    out = out.assign_coords(paper_level=("paper_level", np.array(list(PAPER_P_FIRE)), {"units": "V"}))
    out.attrs.update(protocol="stochasticity", width_s=width, trials=trials)
    metrics = {
        "p_fire": p_fire, "p_fire_ci": ci, "delay_median_s": med, "delay_cv": cv,
        "isi_cv": float(isis.std() / isis.mean()) if isis.size > 1 else None,
        "isi_mean_s": float(isis.mean()) if isis.size else None,
        "paper_p_fire": {key(k): v for k, v in PAPER_P_FIRE.items()},
        "trials": trials, "width_s": width, "preset": name,
    }
    return out, metrics
