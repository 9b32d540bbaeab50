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
    """Train and validation accuracy per epoch of one training run (``result.json`` of ``ionspike
    train``), the selected epoch and the test accuracy of its weights."""
    r = json.loads(Path(result_json).read_text())
    h = r["history"]
    ep = [row["epoch"] for row in h]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(ep, [row["train_accuracy"] for row in h], "o-", label="train")
    if h and h[0].get("val_accuracy") is not None:
        ax.plot(ep, [row["val_accuracy"] for row in h], "s-", label="validation")
    if r.get("best_epoch") and r.get("test_accuracy") is not None:
        ax.axvline(r["best_epoch"], color="k", lw=0.8, ls=":")
        ax.plot([r["best_epoch"]], [r["test_accuracy"]], "r*", ms=12, label=f"test (epoch {r['best_epoch']})")
    c = r["config"]
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1),
           title=f"{c['task']}: {c['neuron']} ({c['variant']}), {c['hidden']} hidden, {c['readout']} readout")
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
        ci = [v[k].get("accuracy_ci95") for k in labels]
        std = [0.0 if c is None else mean[i] - c[0] for i, c in enumerate(ci)]   # 95 % interval half-width
        colors = ["tab:red" if k == "full" else "tab:gray" if k in ("lif", "alif") else "tab:blue" for k in labels]
        ax.bar(range(len(labels)), mean, yerr=std, color=colors, capsize=3)
        for i, k in enumerate(labels):
            seeds = v[k]["accuracy"]
            ax.plot(np.full(len(seeds), i), seeds, "k.", ms=3)
            p = v[k].get("p_holm_vs_full", v[k]["p_value_vs_full"])
            if p is not None:
                ax.text(i, mean[i] + std[i] + 0.01, f"p_Holm={p:.2g}", ha="center", fontsize=7, rotation=90)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set(ylabel="test accuracy (mean, 95 % interval)", ylim=(0, 1.1), title=f"{t} ({v['full']['seeds']} seeds)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(path))


def learning_curves(results: dict, path: Path) -> Path:
    """Validation accuracy per epoch, mean over seeds, of every variant; one panel per task."""
    names = list(results["tasks"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.0), squeeze=False)
    for ax, t in zip(axes[0], names):
        for k, s in results["tasks"][t]["variants"].items():
            curve = s["curve_mean"]
            if curve is None:
                continue
            ax.plot(range(1, len(curve) + 1), curve, "-", lw=2.5 if k == "full" else 1.2, label=k)
        ax.set(xlabel="epoch", ylabel="validation accuracy (mean over seeds)", title=t)
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


def robustness(results_json: Path, path: Path) -> Path:
    """Test accuracy against the test-time device spread, mean with a 95 % band over chips, one
    curve per model (``robustness.json`` of ``ionspike robustness``)."""
    r = json.loads(Path(results_json).read_text())
    fig, ax = plt.subplots(figsize=(5.8, 4.0))
    for entry in r["models"]:
        x = [row["sigma_d2d_ln_mu"] for row in entry["rows"]]
        mean = np.array([row["mean"] for row in entry["rows"]])
        lo = np.array([row["ci95"][0] if row["ci95"][0] is not None else row["mean"] for row in entry["rows"]])
        hi = np.array([row["ci95"][1] if row["ci95"][1] is not None else row["mean"] for row in entry["rows"]])
        trained = entry["trained_sigma_d2d"]
        label = f"trained at sigma = {trained:g}" if trained is not None else "trained on one device draw"
        ax.plot(x, mean, "o-", label=label)
        ax.fill_between(x, lo, hi, alpha=0.25)
    ax.set(xlabel="test-time device-to-device spread of ln mu", ylabel=f"test accuracy ({r['chips']} chips)",
           ylim=(0, 1), title="robustness to device variability")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))
