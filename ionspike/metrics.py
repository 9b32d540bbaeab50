"""Metrics computed from a simulation Dataset (no physics, no plotting).

All times in s, energies in J. Per-neuron lists use ``None`` where a value does not
exist (no spike, fewer than two spikes, a neuron whose state became non-finite), so they
serialise to JSON ``null``. Batch totals count only the neurons whose status is ``ok``.
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


def status(ds: xr.Dataset) -> list[str]:
    """Per-neuron status names (``"ok"``, ``"non_finite"``) from the Dataset's ``status`` codes
    (every neuron ``ok`` in a Dataset without them, e.g. from ngspice)."""
    if "status" not in ds:
        return ["ok"] * ds.sizes["neuron"]
    meanings = str(ds["status"].attrs.get("flag_meanings", "ok non_finite")).split()
    values = [int(v) for v in np.asarray(ds["status"].attrs.get("flag_values", range(len(meanings))))]
    names = dict(zip(values, meanings))
    return [names.get(int(c), f"status_{int(c)}") for c in ds["status"].values]


def _ok(ds: xr.Dataset) -> np.ndarray:
    return np.array([s == "ok" for s in status(ds)], dtype=bool)


def energy_per_spike(ds: xr.Dataset) -> dict:
    """Energy per output spike over the batch's ``ok`` neurons, J: total drawn and each term.

    ``total`` = energy drawn from the input source plus from ``V_DD``, divided by the number
    of output spikes of those neurons; each element's term divided the same way. ``None``
    when none of them spiked. In a cascade only stage 0's input counts as drawn (later stages
    are fed by the previous stage's supply).
    """
    ok = xr.DataArray(_ok(ds), dims="neuron")
    spikes = int(ds["spike_count"].where(ok, 0).sum())
    terms = {k: float(ds[f"energy_{k}"].where(ok, 0.0).sum()) for k in ENERGY_TERMS}
    if "stage" in ds.coords:
        # a cascade: stages >= 1 draw their input from the previous stage's supply, already counted
        terms["input"] = float(ds["energy_input"].where(ok & (ds["stage"] == 0), 0.0).sum())
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
    """The metrics written to ``metrics.json``.

    Per neuron: ``status`` (``"ok"`` or ``"non_finite"``), first spike, spike count, mean ISI
    and DM turn-on count; a neuron that is not ``ok`` has ``None`` for each (its state, and
    so everything counted after the failure, is meaningless). Energies and totals are over
    the ``ok`` neurons (``n_ok`` of ``n``); ``None`` when there are none.
    """
    n = ds.sizes["neuron"]
    states = status(ds)
    ok = _ok(ds)
    first, counts, isi_mean, dm_on = [], [], [], []
    for i in range(n):
        if not ok[i]:
            for values in (first, counts, isi_mean, dm_on):
                values.append(None)
            continue
        t = spike_times(ds, i)
        first.append(_none(t[0]) if t.size else None)
        counts.append(int(ds["spike_count"].values[i]))
        isi_mean.append(_none(float(np.mean(np.diff(t)))) if t.size > 1 else None)
        dm_on.append(int(ds["dm_on_count"].values[i]))
    eps = energy_per_spike(ds)
    total = float((ds["energy_input"] + ds["energy_supply"]).values[ok].sum()) if ok.any() else None
    return {
        "status": states,
        "n_ok": int(ok.sum()),
        "first_spike_s": first,
        "spike_count": counts,
        "isi_mean_s": isi_mean,
        "dm_on_count": dm_on,
        "energy_per_spike_J": eps["total"],
        "input_energy_per_spike_J": eps["input"],
        "energy_per_spike_breakdown_J": {k: eps[k] for k in ENERGY_TERMS},
        "energy_total_J": total,
        "duration_s": float(ds.attrs["duration_s"]),
        "dt_s": float(ds.attrs["dt_s"]),
        "seed": int(ds.attrs["seed"]),
        "n": int(n),
        "preset": ds.attrs.get("preset", ""),
        "params": json.loads(ds.attrs["params_json"]),
        "stimulus": json.loads(ds.attrs["stimulus_json"]),
    }
