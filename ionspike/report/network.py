"""Figures of network training and of the ablation study, drawn only from the saved JSON."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ionspike.io import save_figure  # noqa: E402


def _save(fig, path: Path) -> Path:
    save_figure(fig, path, dpi=120, format="png")
    plt.close(fig)
    return path


def learning_curve(result_json: Path, path: Path) -> Path:
    """Train and test accuracy per epoch of one training run (``result.json`` of ``ionspike train``)."""
    r = json.loads(Path(result_json).read_text())
    h = r["history"]
    ep = [row["epoch"] for row in h]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(ep, [row["train_accuracy"] for row in h], "o-", label="train")
    ax.plot(ep, [row["test_accuracy"] for row in h], "s-", label="test")
    c = r["config"]
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1),
           title=f"{c['task']}: {c['neuron']} ({c['variant']}), {c['hidden']} hidden")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, Path(path))


def accuracy_by_variant(results: dict, path: Path) -> Path:
    """Mean test accuracy ± std over seeds, one panel per task; p-values against the full neuron."""
    names = list(results["tasks"])
    fig, axes = plt.subplots(1, len(names), figsize=(max(6.0, 1.0 + 0.7 * len(results["variants"])) * len(names), 4.4),
                             squeeze=False)
    for ax, t in zip(axes[0], names):
        v = results["tasks"][t]["variants"]
        labels = list(v)
        mean = [v[k]["accuracy_mean"] for k in labels]
        std = [v[k]["accuracy_std"] or 0.0 for k in labels]
        colors = ["tab:red" if k == "full" else "tab:gray" if k in ("lif", "alif") else "tab:blue" for k in labels]
        ax.bar(range(len(labels)), mean, yerr=std, color=colors, capsize=3)
        for i, k in enumerate(labels):
            seeds = v[k]["accuracy"]
            ax.plot(np.full(len(seeds), i), seeds, "k.", ms=3)
            p = v[k]["p_value_vs_full"]
            if p is not None:
                ax.text(i, mean[i] + std[i] + 0.01, f"p={p:.2g}", ha="center", fontsize=7, rotation=90)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set(ylabel="test accuracy", ylim=(0, 1.1), title=f"{t} ({v['full']['seeds']} seeds)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(path))


def learning_curves(results: dict, path: Path) -> Path:
    """Test accuracy per epoch, mean over seeds, of every variant; one panel per task."""
    names = list(results["tasks"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.0), squeeze=False)
    for ax, t in zip(axes[0], names):
        for k, s in results["tasks"][t]["variants"].items():
            curve = s["curve_mean"]
            ax.plot(range(1, len(curve) + 1), curve, "-", lw=2.5 if k == "full" else 1.2, label=k)
        ax.set(xlabel="epoch", ylabel="test accuracy (mean over seeds)", title=t)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, Path(path))


def raster(results: dict, path: Path) -> Path:
    """Hidden spikes of the full neuron (seed 0) on the first test sample of each task."""
    names = [t for t in results["tasks"] if results["tasks"][t].get("raster") is not None]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(5.5 * max(len(names), 1), 3.8), squeeze=False)
    for ax, t in zip(axes[0], names):
        entry = results["tasks"][t]
        bin_ms = entry.get("bin_period_s", 2e-3) * 1e3       # device time per bin (saved by the study)
        r = np.asarray(entry["raster"]).reshape(-1, 2)
        ax.plot(r[:, 0] * bin_ms, r[:, 1], "|", ms=4, color="k")
        ax.set(xlabel=f"device time (ms, {bin_ms:g} ms bins)", ylabel="hidden neuron", title=f"{t}: full 1M1T1R neuron, seed 0",
               xlim=(0, entry["bins_per_sample"] * bin_ms))
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_ablation(results_json: Path, out: Path) -> list[Path]:
    """The study's three figures next to its ``results.json``."""
    results = json.loads(Path(results_json).read_text())
    out = Path(out)
    return [accuracy_by_variant(results, out / "accuracy_by_variant.png"),
            learning_curves(results, out / "learning_curves.png"), raster(results, out / "raster.png")]
