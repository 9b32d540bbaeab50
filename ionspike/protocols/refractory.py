"""Refractory period (docs/model.md §2.5): after a spike the gate sits near V_in, the DM has
no drive, and the neuron cannot fire again until C_g discharges through R_c."""

from __future__ import annotations

import numpy as np

from ionspike.params import replace
from ionspike.protocols.common import check_trials, derived_seed, key, resolve, swept
from ionspike.simulate import DEFAULT_DT_S, simulate
from ionspike.stimulus import PulseTrain

RC_SWEEP_OHM = (50e6, 100e6, 250e6, 500e6, 1e9)
PAPER_ISI_S = (2.25e-3, 2.3e-3, 4e-3, 8e-3, 23.8e-3)   # Fig. 4d
STEADY_AFTER_S = 0.5


def refractory(preset="paper", *, rc=RC_SWEEP_OHM, amplitude=0.8, width=1e-3, period=2e-3, duration=1.0,
               trials=200, seed=0, progress=None):
    """Mean ISI vs R_c (deterministic) and the recovery of firing after a spike (stochastic).

    * ISI: the 0.8 V, 1 ms / 2 ms train for ``duration`` s at each R_c; the mean ISI of the
      spikes after ``STEADY_AFTER_S`` (once the residue has built up), and the slope of ISI
      against R_c C_g fitted over R_c >= 100 MOhm.
    * Recovery: ``trials`` noisy neurons on the same train; for each neuron the interval from
      its first spike to its next one. ``p_refire`` (interval -> probability of having fired
      again within it) is that interval's distribution function and ``refractory_s`` the
      interval at which it reaches 50 %.
    """
    trials = check_trials(trials)
    p, name, dt = resolve(preset)
    dt = dt or DEFAULT_DT_S
    rc = swept("rc", rc, unit="ohm", positive=True)
    part = (lambda a, b: (lambda f: progress(a + (b - a) * f))) if progress else (lambda a, b: None)
    stim = PulseTrain(amplitude=amplitude, width=width, period=period)
    sweep = simulate(replace(p, Rc=rc), stim, duration=duration, dt=dt, deterministic=True, seed=seed,
                     signals=("V_in", "V_g", "I_d"), record_every=max(1, int(round(20e-6 / dt))),
                     progress=part(0.0, 0.5))
    isi = []
    for row in sweep.spike_time.values:
        t = row[np.isfinite(row)]
        d = np.diff(t[t >= STEADY_AFTER_S])
        isi.append(float(d.mean()) if d.size else np.nan)
    isi = np.asarray(isi)
    c_g = float(np.max(p.circuit.c_g))
    fit = (rc >= 100e6) & np.isfinite(isi)
    slope = float(np.polyfit(rc[fit] * c_g, isi[fit], 1)[0]) if fit.sum() >= 2 else None
    noisy = simulate(p, stim, duration=min(duration, 0.4), dt=dt, n=trials, seed=derived_seed(seed, 1), signals=(),
                     progress=part(0.5, 1.0))
    st = noisy.spike_time.values
    first_isi = st[:, 1] - st[:, 0] if st.shape[1] > 1 else np.full(st.shape[0], np.nan)
    grid = np.round(np.arange(1, 41) * period / 2, 9)
    fired_first = np.isfinite(st[:, 0])
    cdf = np.array([np.mean(np.nan_to_num(first_isi[fired_first], nan=np.inf) <= g) for g in grid]) \
        if fired_first.any() else np.full(grid.size, np.nan)
    above = np.nonzero(cdf >= 0.5)[0]
    refr = float(grid[above[0]]) if above.size else None
    ds = sweep.assign_coords(r_c=("neuron", rc))
    ds["isi_mean"] = ("neuron", isi, {"units": "s", "long_name": f"mean ISI after {STEADY_AFTER_S} s"})
    paper = dict(zip(RC_SWEEP_OHM, PAPER_ISI_S))
    ds["paper_isi"] = ("neuron", np.array([paper.get(float(r), np.nan) for r in rc]),
                       {"units": "s", "long_name": "paper Fig. 4d mean ISI"})
    ds["recovery_interval"] = ("interval", grid, {"units": "s"})
    ds["p_refire"] = ("interval", cdf, {"units": "1", "long_name": "P(fired again within the interval)"})
    ds["first_isi"] = ("trial", first_isi, {"units": "s"})
    ds.attrs.update(protocol="refractory", c_g_F=c_g)
    metrics = {
        "isi_s": {key(r): (float(v) if np.isfinite(v) else None) for r, v in zip(rc, isi)},
        "paper_isi_s": {key(r): v for r, v in zip(RC_SWEEP_OHM, PAPER_ISI_S)},
        "isi_vs_rc_cg_slope": slope,
        "refractory_s": refr,
        "p_refire": {key(g): float(c) for g, c in zip(grid, cdf)},
        "trials": trials, "preset": name,
    }
    return ds, metrics
