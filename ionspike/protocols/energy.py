"""Energy per spike and its breakdown for every preset; the path from pJ to aJ."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ionspike import metrics as M
from ionspike import presets as P
from ionspike.protocols.common import key, swept
from ionspike.simulate import simulate
from ionspike.stimulus import PulseTrain, from_defaults

PAPER_65NM_J = 1.39e-12   # SI Table 7 configuration, inputs near 0.45 V
PAPER_3NM_J = 1e-18       # SI Note 5 projection (~1 aJ)
TRIALS = 4               # seeded trials per preset, pooled
TERMS = ("input", "supply", "dm", "rc", "transistor", "load", "stored_cg", "stored_cl")


def energy(presets=None, *, amplitudes=(0.7, 0.8, 0.9, 1.0, 1.1, 1.2), seed=0, progress=None):
    """Energy per output spike (J) for each preset on its default stimulus (deterministic; seeded noisy
    trials for a preset that fires only through its noise, see ``mode``), and
    against input amplitude for the paper preset (1 ms / 2 ms trains, 300 ms).

    Two figures per preset, kept apart because they differ by orders of magnitude:

    * ``energy_per_spike_J``: the neuron's own energy, drawn from the input source per output
      spike (it charges C_g to ~V_in once per spike, E ~ C_g V_in²; it is then dissipated in
      the DM and R_c). This is the quantity of the paper's pJ (measured, 65 nm) and aJ (3 nm)
      figures, which an output stage drawing V_DD²/R_l for a whole spike could not meet.
    * ``output_stage_energy_per_spike_J``: drawn from V_DD by the transistor and load (the
      read-out), and ``total_energy_per_spike_J`` = both.

    ``breakdown_J`` gives every element per spike (input, supply, DM, R_c, transistor, load,
    stored). Also ``c_g_F`` and ``energy_vs_amplitude_J`` (V -> neuron J per spike).
    """
    names = list(presets) if presets else P.names()
    rows, out = [], {"energy_per_spike_J": {}, "output_stage_energy_per_spike_J": {}, "total_energy_per_spike_J": {},
                     "breakdown_J": {}, "c_g_F": {}, "spikes": {}, "stimulus": {}, "mode": {}}
    total = len(names) + 1
    for i, name in enumerate(names):
        pre = P.load(name)
        stim = from_defaults(pre.defaults, f"preset {name!r}: defaults")
        # the nominal (deterministic) device; a preset that only fires through its noise and spread
        # (the stochastic one at its default input) is measured on TRIALS seeded noisy trials, pooled
        duration = pre.defaults.get("duration", "300 ms")
        ds = simulate(pre, stim, duration=duration, deterministic=True, seed=seed, signals=())
        out["mode"][name] = "deterministic"
        if int(ds.spike_count.sum()) == 0:
            ds = simulate(pre, stim, duration=duration, n=TRIALS, seed=seed, signals=())
            out["mode"][name] = f"{TRIALS} noisy trials"
        e = M.energy_per_spike(ds)
        out["energy_per_spike_J"][name] = e["input"]
        out["output_stage_energy_per_spike_J"][name] = e["supply"]
        out["total_energy_per_spike_J"][name] = e["total"]
        out["breakdown_J"][name] = {k: e[k] for k in TERMS}
        out["c_g_F"][name] = float(pre.params.circuit.c_g)
        out["spikes"][name] = e["spikes"]
        out["stimulus"][name] = stim.describe()
        rows.append([e[k] if e[k] is not None else np.nan for k in ("input",) + TERMS]
                    + [float(pre.params.circuit.c_g), float(stim.max_voltage())])
        if progress:
            progress((i + 1) / total)
    amps = swept("amplitudes", amplitudes, unit="V")
    base = P.load("paper")
    sweep = simulate(base, PulseTrain(amplitude=amps, width=1e-3, period=2e-3), duration="300 ms",
                     deterministic=True, seed=seed, signals=())
    per_amp = []
    for j in range(amps.size):
        one = sweep.isel(neuron=[j])
        e = M.energy_per_spike(one)
        per_amp.append(e["input"] if e["input"] is not None else np.nan)
    if progress:
        progress(1.0)
    rows = np.asarray(rows, float)
    ds = xr.Dataset(
        {"energy_per_spike": ("preset", rows[:, 0], {"units": "J", "long_name": "neuron (input-side) energy per spike"}),
         **{f"energy_{k}": ("preset", rows[:, 1 + i], {"units": "J", "long_name": f"{k} per spike"})
            for i, k in enumerate(TERMS)},
         "c_g": ("preset", rows[:, -2], {"units": "F"}),
         "c_g_v_in2": ("preset", rows[:, -2] * rows[:, -1] ** 2,
                       {"units": "J", "long_name": "C_g V_in^2: the input charges C_g once per spike"}),
         "v_in": ("preset", rows[:, -1], {"units": "V"}),
         "energy_vs_amplitude": ("amplitude", np.asarray(per_amp), {"units": "J"})},
        coords={"preset": names, "amplitude": ("amplitude", amps, {"units": "V"})},
        attrs={"protocol": "energy"})
    out["energy_vs_amplitude_J"] = {key(a): (float(v) if np.isfinite(v) else None) for a, v in zip(amps, per_amp)}
    out["paper_65nm_J"] = PAPER_65NM_J
    out["paper_3nm_J"] = PAPER_3NM_J
    return ds, out
