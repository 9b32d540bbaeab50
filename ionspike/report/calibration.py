"""Figures of a calibration, drawn only from its saved ``fit.json`` and ``curves.json``; written
atomically, never through a link (:func:`ionspike.io.save_figure`)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ionspike import io  # noqa: E402

COLORS = {"measured": "tab:blue", "simulated": "tab:red"}
UNIT_SCALE = {"_V": (1.0, "V"), "_s": (1e3, "ms")}


def _samples(fit: dict, side: str, name: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in fit.get(f"{side}.{name}", [])], dtype=float)


def _features(fit: dict) -> list[str]:
    return sorted(k.split(".", 1)[1] for k in fit if k.startswith("measured.") and not k.endswith(".stats"))


def _scale(name: str) -> tuple[float, str]:
    for suffix, (factor, unit) in UNIT_SCALE.items():
        if name.endswith(suffix):
            return factor, unit
    return 1.0, ""


def distributions(fit: dict, path: Path) -> Path:
    """Histogram (top) and empirical CDF (bottom) of each feature, measured vs simulated, with KS."""
    names = _features(fit)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6.4), squeeze=False)
    for j, name in enumerate(names):
        factor, unit = _scale(name)
        log = name.endswith("_s")
        for side in ("measured", "simulated"):
            x = _samples(fit, side, name) * factor
            x = x[np.isfinite(x) & ((x > 0) if log else True)]
            if x.size == 0:
                continue
            bins = np.geomspace(x.min(), x.max(), 25) if log and x.min() > 0 else 25
            axes[0, j].hist(x, bins=bins, density=True, alpha=0.5, color=COLORS[side], label=f"{side} (n={x.size})")
            xs = np.sort(x)
            axes[1, j].step(xs, np.arange(1, xs.size + 1) / xs.size, where="post", color=COLORS[side], label=side)
        for ax in axes[:, j]:
            if log:
                ax.set_xscale("log")
            ax.set_xlabel(f"{name} ({unit})" if unit else name)
        ks = fit.get("ks", {}).get(name)
        axes[0, j].set_title(f"{name}: KS = {ks:.3f}" if ks is not None else name)
        axes[0, j].legend(fontsize=7)
        axes[1, j].set_ylabel("CDF")
    verdict = fit.get("verdict")
    if verdict is not None:
        fig.suptitle("verdict: " + ("passed" if verdict["passed"] else "FAILED: " + "; ".join(verdict["reasons"])),
                     fontsize=8, wrap=True)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def overlay(curves: dict, path: Path) -> Path:
    """Measured vs simulated traces: |I| vs |V| for sweeps, |I| vs time for pulse trials."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for side in ("measured", "simulated"):
        c = curves.get(side)
        if not c:
            continue
        if curves["kind"] == "dc-sweeps":
            for k, (v, i) in enumerate(zip(c["voltage_V"], c["current_A"])):
                ax.plot(np.abs(v), i, color=COLORS[side], lw=0.6, alpha=0.4, label=f"{side} sweeps" if k == 0 else None)
            ax.plot(c["median_abs_voltage_V"], 10 ** np.asarray(c["median_log10_current"]), color=COLORS[side], lw=2,
                    label=f"{side} median")
            ax.set_xlabel("|V| (V)")
        else:
            for k, (t, i) in enumerate(zip(c["time_s"], c["current_A"])):
                ax.plot(np.asarray(t) * 1e3, i, color=COLORS[side], lw=0.6, alpha=0.5,
                        label=f"{side} trials" if k == 0 else None)
            ax.set_xlabel("time (ms)")
    ax.set_yscale("log")
    ax.set_ylabel("|I| (A)")
    ax.set_title("I-V sweeps, measured vs simulated" if curves["kind"] == "dc-sweeps" else "pulse trials")
    ax.legend(fontsize=7)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot(out_dir: str | Path) -> list[Path]:
    """Draw every calibration figure from ``out_dir/fit.json`` and ``out_dir/curves.json``."""
    out_dir = Path(out_dir)
    fit = json.loads((out_dir / "fit.json").read_text())
    curves = json.loads((out_dir / "curves.json").read_text())
    name = "iv_overlay.png" if fit["kind"] == "dc-sweeps" else "pulse_overlay.png"
    return [overlay(curves, out_dir / name), distributions(fit, out_dir / "distributions.png")]
