"""The traces figure of ``ionspike simulate``: input, ionic state, gate, drain current."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ionspike.io import save_figure  # noqa: E402

MAX_NEURONS_DRAWN = 4


def _scale(units: str, values: np.ndarray) -> tuple[float, str]:
    """A readable engineering scale for an axis: (factor, label unit)."""
    mag = float(np.nanmax(np.abs(values))) if values.size and np.isfinite(values).any() else 1.0
    for factor, prefix in ((1.0, ""), (1e3, "m"), (1e6, "µ"), (1e9, "n"), (1e12, "p"), (1e15, "f")):
        if mag * factor >= 1.0 or prefix == "f":
            return factor, f"{prefix}{units}"
    return 1.0, units


def plot_traces(ds: xr.Dataset, path: str | Path | None = None, neurons: list[int] | None = None):
    """Draw V_in, F/R, V_g (with V_T and spikes) and I_d against time for a few neurons.

    Reads only the Dataset (units from attrs). Saves to ``path`` (PNG/SVG by suffix, atomically,
    never through a link) when given; returns the figure.
    """
    if neurons is None:
        neurons = list(range(min(MAX_NEURONS_DRAWN, ds.sizes["neuron"])))
    t = ds["time"].values
    tf, tunit = _scale("s", t)
    panels = [name for name in ("V_in", "F", "V_g", "I_d") if name in ds]
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(8, 1.9 * max(len(panels), 1) + 0.6),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes, panels):
        if name == "F":
            for k, i in enumerate(neurons):
                c = colors[k % len(colors)]
                ax.plot(t * tf, ds["F"].sel(neuron=i), color=c, lw=1, label=f"F, neuron {i}" if k < 2 else None)
                if "R" in ds:
                    ax.plot(t * tf, ds["R"].sel(neuron=i), color=c, lw=1, ls="--",
                            label=f"R, neuron {i}" if k < 2 else None)
            ax.set_ylabel("ionic state (1)")
            ax.legend(loc="upper left", fontsize=7, ncol=2)
            continue
        values = ds[name].sel(neuron=neurons).values
        f, unit = _scale(ds[name].attrs.get("units", ""), values)
        for k, i in enumerate(neurons):
            ax.plot(t * tf, ds[name].sel(neuron=i) * f, color=colors[k % len(colors)], lw=1,
                    label=f"neuron {i}")
        ax.set_ylabel(f"{name} ({unit})")
        if name == "V_g":
            vt = float(ds.attrs.get("spike_threshold_V", np.nan))
            ax.axhline(vt * f, color="k", ls=":", lw=0.8, label="V_T")
            for k, i in enumerate(neurons):
                st = ds["spike_time"].sel(neuron=i).values
                st = st[np.isfinite(st)]
                ax.plot(st * tf, np.full(st.size, vt * f), "v", ms=3, color=colors[k % len(colors)])
            ax.legend(loc="upper left", fontsize=7, ncol=3)
    axes[-1].set_xlabel(f"time ({tunit})")
    fig.suptitle(f"ionspike: preset {ds.attrs.get('preset', '') or 'custom'}, dt = {ds.attrs['dt_s']:g} s",
                 fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=120)
        plt.close(fig)
    return fig
