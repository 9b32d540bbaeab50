"""Robustness of a trained 1M1T1R network to device variability: test accuracy against the
device-to-device spread of ln mu at test time, each spread over several fresh device draws
("different chips"), the trained weights unchanged.

A network trained with one device realisation (or none) meets, on another chip, devices whose
growth rate mu differs by a lognormal factor per neuron. Variability-aware training
(``TrainConfig.train_sigma_d2d``) draws that factor afresh for every batch; this module measures
what it buys: ``robustness([dir_trained_at_0, dir_trained_at_0.2])``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from ionspike.errors import ParameterError
from ionspike.io import atomic_write, write_json
from ionspike.network.ablate import interval95
from ionspike.network.train import evaluate, load_model, split

SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.5)
CHIPS = 10


def check_sigmas(values) -> tuple[float, ...]:
    out = []
    for v in values:
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= float(v) <= 5.0):
            raise ParameterError(f"sigma = {v!r} is out of range: allowed [0, 5] (standard deviation of ln mu)")
        out.append(float(v))
    if not out:
        raise ParameterError("sigmas: give at least one spread, e.g. 0,0.1,0.2,0.3,0.5")
    return tuple(out)


def evaluate_model(folder: str | Path, sigmas=SIGMAS, chips: int = CHIPS, seed: int = 0, n_test: int | None = None,
                   progress=None) -> dict:
    """Test accuracy of the model in ``folder`` at each test-time spread, over ``chips`` device draws
    each (chip ``c`` uses the same key for every spread, so the curves compare like with like)."""
    sigmas = check_sigmas(sigmas)
    if not (isinstance(chips, int) and not isinstance(chips, bool) and chips >= 1):
        raise ParameterError(f"chips = {chips!r} is out of range: allowed integers >= 1")
    config, net, weights, task = load_model(folder)
    if config.neuron != "1m1t1r":
        raise ParameterError(f"--model {str(folder)!r} is a {config.neuron} network: device variability applies to "
                             "1m1t1r networks only")
    _, _, (x_te, y_te) = split(config, task)
    if n_test is not None:
        x_te, y_te = x_te[:n_test], y_te[:n_test]
    root = jax.random.key(seed)
    eval_key = jax.random.fold_in(root, 1)
    acc = np.zeros((len(sigmas), chips))
    for i, sigma in enumerate(sigmas):
        for c in range(chips):
            instance = net.draws(jax.random.fold_in(root, 1000 + c), sigma_d2d=sigma)
            acc[i, c] = evaluate(net, weights, instance, x_te, y_te, jax.random.fold_in(eval_key, c))["accuracy"]
            if progress:
                progress(i * chips + c + 1, len(sigmas) * chips)
    rows = []
    for i, sigma in enumerate(sigmas):
        low, high = interval95(acc[i])
        rows.append({"sigma_d2d_ln_mu": sigma, "accuracy": acc[i].tolist(), "mean": float(acc[i].mean()),
                     "std": float(acc[i].std(ddof=1)) if chips > 1 else None, "ci95": [low, high]})
    return {"model": str(folder), "trained_sigma_d2d": config.train_sigma_d2d, "config": config.to_dict(),
            "chips": chips, "n_test": int(len(y_te)), "seed": seed, "rows": rows}


def robustness(models, out: str | Path, sigmas=SIGMAS, chips: int = CHIPS, seed: int = 0, n_test: int | None = None,
               progress=None) -> dict:
    """Evaluate every model folder; write ``robustness.json`` and ``robustness.csv`` into ``out``."""
    models = [Path(m) for m in models]
    if not models:
        raise ParameterError("--model: give at least one trained model folder")
    results = {"sigmas": list(check_sigmas(sigmas)), "chips": chips, "models": []}
    for k, folder in enumerate(models):
        results["models"].append(evaluate_model(folder, sigmas, chips, seed, n_test,
                                                None if progress is None else (lambda d, n, k=k: progress(k, d, n))))
    for entry in results["models"]:
        base = entry["rows"][0]["mean"]
        for row in entry["rows"]:
            row["loss_vs_first_points"] = 100.0 * (base - row["mean"])
    out = Path(out)
    write_json(out / "robustness.json", results)
    lines = ["model,trained_sigma_d2d,test_sigma_d2d,accuracy_mean,accuracy_std,ci95_low,ci95_high,loss_points"]
    for entry in results["models"]:
        for row in entry["rows"]:
            ci = row["ci95"]
            lines.append(",".join(str(v) for v in (
                '"' + entry["model"].replace('"', "'") + '"', entry["trained_sigma_d2d"], row["sigma_d2d_ln_mu"],
                f"{row['mean']:.6g}", "" if row["std"] is None else f"{row['std']:.6g}",
                "" if ci[0] is None else f"{ci[0]:.6g}", "" if ci[1] is None else f"{ci[1]:.6g}",
                f"{row['loss_vs_first_points']:.4g}")))
    atomic_write(out / "robustness.csv", lambda p: p.write_text("\n".join(lines) + "\n"))
    return results
