"""Metrics computed from a simulation Dataset (no physics, no plotting).

All times in s, energies in J. Per-neuron lists use ``None`` where a value does not
exist (no spike, fewer than two spikes), so they serialise to JSON ``null``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import xarray as xr

ENERGY_TERMS = ("input", "supply", "dm", "rc", "transistor", "load", "stored_cg", "stored_cl")


def spike_times(ds: xr.Dataset, neuron: int, event: str = "spike_time") -> np.ndarray:
    """Spike (or DM turn-on, ``event="dm_on_time"``) times of one neuron, s."""
    t = ds[event].sel(neuron=neuron).values
    return t[np.isfinite(t)]


def _none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def isi(ds: xr.Dataset, neuron: int, after: float = 0.0) -> np.ndarray:
    """Inter-spike intervals of one neuron, s, for spikes after ``after`` s."""
    t = spike_times(ds, neuron)
    return np.diff(t[t >= after])


def energy_per_spike(ds: xr.Dataset) -> dict:
    """Energy per output spike over the whole batch, J: total drawn and each term.

    ``total`` = energy drawn from the input source plus from ``V_DD``, divided by the number
    of output spikes of all neurons; each element's term divided the same way. ``None``
    when no neuron spiked. In a cascade only stage 0's input counts as drawn (later stages
    are fed by the previous stage's supply).
    """
    spikes = int(ds["spike_count"].sum())
    terms = {k: float(ds[f"energy_{k}"].sum()) for k in ENERGY_TERMS}
    if "stage" in ds.coords:
        # a cascade: stages >= 1 draw their input from the previous stage's supply, already counted
        terms["input"] = float(ds["energy_input"].where(ds["stage"] == 0, 0.0).sum())
    if spikes == 0:
        return {"total": None, "spikes": 0, **{k: None for k in terms}}
    return {"total": (terms["input"] + terms["supply"]) / spikes, "spikes": spikes,
            **{k: v / spikes for k, v in terms.items()}}


def energy_balance(ds: xr.Dataset) -> np.ndarray:
    """Per-neuron residual ``E_in - (E_dissipated + ΔE_stored)``, J (should be ~0)."""
    drawn = ds["energy_input"] + ds["energy_supply"]
    spent = sum(ds[f"energy_{k}"] for k in ("dm", "rc", "transistor", "load", "stored_cg", "stored_cl"))
    return (drawn - spent).values


def summarize(ds: xr.Dataset) -> dict:
    """The metrics written to ``metrics.json``."""
    n = ds.sizes["neuron"]
    first, counts, isi_mean = [], [], []
    for i in range(n):
        t = spike_times(ds, i)
        first.append(_none(t[0]) if t.size else None)
        counts.append(int(ds["spike_count"].values[i]))
        isi_mean.append(_none(float(np.mean(np.diff(t)))) if t.size > 1 else None)
    eps = energy_per_spike(ds)
    return {
        "first_spike_s": first,
        "spike_count": counts,
        "isi_mean_s": isi_mean,
        "dm_on_count": [int(c) for c in ds["dm_on_count"].values],
        "energy_per_spike_J": eps["total"],
        "input_energy_per_spike_J": eps["input"],
        "energy_per_spike_breakdown_J": {k: eps[k] for k in ENERGY_TERMS},
        "energy_total_J": float((ds["energy_input"] + ds["energy_supply"]).sum()),
        "duration_s": float(ds.attrs["duration_s"]),
        "dt_s": float(ds.attrs["dt_s"]),
        "seed": int(ds.attrs["seed"]),
        "n": int(n),
        "preset": ds.attrs.get("preset", ""),
        "params": json.loads(ds.attrs["params_json"]),
        "stimulus": json.loads(ds.attrs["stimulus_json"]),
    }
