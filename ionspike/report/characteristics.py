"""Figures of the characterisation protocols, drawn only from their saved Datasets."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ionspike.io import save_figure  # noqa: E402

MS = 1e3


def _input_and_response(ax, ds, i, t_max, series, ylabel, title):
    """Neuron ``i``'s input (grey) and ``series`` [(variable, label)] against time up to ``t_max`` s."""
    t = ds.time.values
    sel = t <= (t_max if t_max is not None and np.isfinite(t_max) else t[-1])
    ax.plot(t[sel] * MS, ds.V_in.values[sel, i], color="0.6", lw=0.7, label="V_in (V)")
    for name, label in series:
        ax.plot(t[sel] * MS, ds[name].values[sel, i], lw=1.0, label=label)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)


def leaky_integration(ds: xr.Dataset, axes=None):
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    gaps = ds.gap.values
    first = ds.first_spike.values
    axes[0].plot(gaps * MS, ds.pulses_to_fire.values, "o-")
    axes[0].set_xlabel("gap between pulses (ms)")
    axes[0].set_ylabel("pulses to fire")
    axes[0].set_title(f"leaky integration ({ds.attrs['amplitude_V']:g} V, {ds.attrs['width_s'] * MS:g} ms pulses)")
    i = int(np.argmax(gaps))
    _input_and_response(axes[1], ds, i, first[i] + 3e-3, [("F", "F"), ("R", "R")],
                        "V_in (V), ionic state (1)", f"gap {gaps[i] * MS:g} ms")
    return axes


def threshold(ds: xr.Dataset, axes=None):
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    amp = ds.amplitude.values
    first = ds.first_spike.values
    fired = np.isfinite(first)
    axes[0].plot(amp, ds.peak_I_d.values * 1e6, "o-", label="peak drain current")
    axes[0].set_xlabel("pulse amplitude (V)")
    axes[0].set_ylabel("peak I_d (µA)")
    ax2 = axes[0].twinx()
    ax2.plot(amp[fired], first[fired] * MS, "s--", color="C1", label="first spike")
    ax2.set_ylabel("first spike (ms)")
    axes[0].set_title("threshold: all-or-none output (1 ms / 2 ms pulses)")
    dc = ds.dc_level.values
    fd = ds.dc_first_spike_time.values
    axes[1].plot(dc, np.where(np.isfinite(fd), fd * MS, np.nan), "o-")
    axes[1].set_xlabel("DC input (V)")
    axes[1].set_ylabel("first spike (ms)")
    axes[1].set_title("DC threshold (no point: no spike)")
    return axes


def cascade(ds: xr.Dataset, axes=None):
    if axes is None:
        fig, axes = plt.subplots(1, 1, figsize=(10, 3.6))
        axes = [axes]
    ax = axes[0]
    t = ds.time.values * MS
    stages = int(ds.attrs.get("stages", 1))
    for k in range(stages):
        ax.plot(t, ds.V_in.values[:, k] + 1.4 * k, color="0.6", lw=0.6)
        ax.plot(t, ds.V_g.values[:, k] + 1.4 * k, lw=0.9, label=f"stage {k}: V_g (input in grey)")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("voltage (V), stages offset by 1.4 V")
    ax.set_title(f"cascade: each stage driven by the previous load (V_DD = {ds.attrs['v_dd_V']:g} V)")
    ax.legend(fontsize=7, loc="upper left")
    return axes


def intrinsic_plasticity(ds: xr.Dataset, axes=None):
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    gaps = ds.gap.values
    axes[0].semilogx(gaps * MS, ds.advance.values * MS, "o-")
    axes[0].set_xlabel("gap between the pulses (ms)")
    axes[0].set_ylabel("advance of the 2nd spike (ms)")
    axes[0].set_title(f"intrinsic plasticity ({ds.attrs['amplitude_V']:g} V, {ds.attrs['width_s'] * MS:g} ms pairs)")
    w = ds.attrs["width_s"]
    _input_and_response(axes[1], ds, 0, 2 * w + gaps[0] + 2e-3, [("V_g", "V_g (V)"), ("R", "residue R (1)")],
                        "V, 1", f"gap {gaps[0] * MS:g} ms")
    return axes


def refractory(ds: xr.Dataset, axes=None):
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    rc = ds.r_c.values
    axes[0].plot(rc * ds.attrs["c_g_F"] * MS, ds.isi_mean.values * MS, "o-", label="ionspike")
    paper = ds.paper_isi.values
    if np.isfinite(paper).any():
        axes[0].plot(rc * ds.attrs["c_g_F"] * MS, paper * MS, "s--", label="paper Fig. 4d")
    axes[0].set_xlabel("R_c C_g (ms)")
    axes[0].set_ylabel("mean ISI (ms)")
    axes[0].set_title("refractory: ISI vs R_c (0.8 V, 1 ms / 2 ms)")
    axes[0].legend(fontsize=7)
    axes[1].plot(ds.recovery_interval.values * MS, ds.p_refire.values, "o-")
    axes[1].axhline(0.5, color="0.5", ls=":")
    axes[1].set_xlabel("time since a spike (ms)")
    axes[1].set_ylabel("P(fired again)")
    axes[1].set_title("recovery of firing (noisy trials)")
    return axes


def stochasticity(ds: xr.Dataset, axes=None):
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    amp = ds.amplitude.values
    levels = ds.level.values
    ci = ds.p_fire_ci.values * 100
    p = ds.p_fire.values * 100
    # Wilson bounds can sit a rounding error inside p at p = 0 or 1: clip the bar lengths at 0
    yerr = [np.maximum(p - ci[:, 0], 0.0), np.maximum(ci[:, 1] - p, 0.0)]
    axes[0].errorbar(levels, p, yerr=yerr, fmt="o-", capsize=3, label="ionspike (95 % CI)")
    axes[0].plot(ds.paper_level.values, ds.paper_p_fire.values * 100, "s--", label="paper Fig. 3c,d")
    axes[0].set_xlabel(f"pulse amplitude (V), {ds.attrs['width_s'] * MS:g} ms pulse")
    axes[0].set_ylabel("firing probability (%)")
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"stochastic firing ({ds.attrs['trials']} trials per level)")
    for a in levels:
        d = np.sort(ds.delay.values[(amp == a) & np.isfinite(ds.delay.values)])
        if d.size:
            axes[1].step(d * MS, np.arange(1, d.size + 1) / (amp == a).sum(), where="post", label=f"{a:g} V")
    axes[1].set_xlabel("switching delay (ms)")
    axes[1].set_ylabel("cumulative fraction of trials")
    axes[1].legend(fontsize=7)
    return axes


def energy(ds: xr.Dataset, axes=None):
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    cg = ds.c_g.values
    e = ds.energy_per_spike.values
    axes[0].loglog(cg, e, "o")
    for name, x, y in zip(ds.preset.values, cg, e):
        axes[0].annotate(str(name), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes[0].loglog(cg, ds.c_g_v_in2.values, "s", mfc="none", color="0.4", label="C_g V_in²")
    axes[0].set_xlabel("gate capacitance C_g (F)")
    axes[0].loglog(cg, ds.energy_supply.values, "x", color="C3", label="output stage (V_DD)")
    axes[0].set_ylabel("neuron energy per spike (J)")
    axes[0].set_title("energy per spike: pJ to aJ")
    axes[0].legend(fontsize=7)
    axes[1].plot(ds.amplitude.values, ds.energy_vs_amplitude.values * 1e12, "o-")
    axes[1].set_xlabel("input amplitude (V), paper preset")
    axes[1].set_ylabel("neuron energy per spike (pJ)")
    return axes


PLOTTERS = {"leaky_integration": leaky_integration, "threshold": threshold, "cascade": cascade,
            "intrinsic_plasticity": intrinsic_plasticity, "refractory": refractory,
            "stochasticity": stochasticity, "energy": energy}


def plot(name: str, ds: xr.Dataset, stem: str | Path) -> list[Path]:
    """Draw protocol ``name`` from its Dataset into ``stem.png`` and ``stem.svg``."""
    axes = PLOTTERS[name](ds)
    fig = np.ravel(axes)[0].figure
    fig.tight_layout()
    paths = []
    for suffix in (".png", ".svg"):
        path = Path(f"{stem}{suffix}")
        save_figure(fig, path, dpi=110)
        paths.append(path)
    plt.close(fig)
    return paths


def summary(datasets: dict[str, xr.Dataset], path: str | Path) -> Path:
    """One figure with the first panel of every protocol present."""
    names = [n for n in PLOTTERS if n in datasets]
    cols = 2
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.3 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        if name == "cascade":
            PLOTTERS[name](datasets[name], [ax])
        else:
            extra = fig.add_axes([0, 0, 0.01, 0.01])
            PLOTTERS[name](datasets[name], [ax, extra])
            extra.remove()
    for ax in axes.ravel()[len(names):]:
        ax.remove()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return Path(path)
