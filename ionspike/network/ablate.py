"""The ablation study: every variant of the neuron (and the LIF/ALIF baselines) x seeds x tasks,
trained identically; test accuracy with its 95 % interval, Welch's t-test against the full neuron
with Holm's correction across variants, firing rate and energy per inference.

Each run trains in its own folder ``out/runs/<task>/<variant>/seed<k>/`` with per-epoch
checkpoints and writes ``result.json`` when it finishes, so an interrupted study resumes where it
stopped, a finished run is never trained twice, and a study may be completed over several
invocations of the same command. ``results.json`` (the study) and ``results.csv`` (one row per
task and variant) are written at the end, atomically, with the study's wall time: this
invocation's (``wall_time_s``) and, from the ledger ``invocations.json`` that every invocation
appends to when it ends (finished, failed or interrupted), the sum over all of them
(``wall_time_all_invocations_s``; an invocation killed outright, e.g. by SIGKILL, is not counted).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from scipy import stats

from ionspike import __version__
from ionspike.errors import CheckpointError, ParameterError
from ionspike.io import atomic_write, jsonable, prepare_out_dir, write_json
from ionspike.network import energy as E
from ionspike.network import tasks, variants
from ionspike.network.train import TrainConfig, device_bin, load_task, result_summary, train

BASELINES = ("lif", "alif")
ALL = variants.VARIANTS + BASELINES
# quick: minutes on 2 CPU cores (a smoke run of the whole study); full: 80 epochs of the cosine
# schedule with best-epoch selection on the validation split, and no early stop. 80 epochs, not 40: at
# 40 the 1M1T1R variants were still climbing and the MNIST-1D table's conclusions moved with training
# length. No early stop: the schedule's last, low-rate epochs are where the device runs improve, and a
# patience of 16 (the default until 2026-12-05) ended 20 of the 36 runs of the paper device's
# MNIST-1D table early; where a variant had runs of both kinds, the stopped ones were the lower in 12
# of 17 (1.8 points on average), and the 1 ms gate device stopped at epoch 32 with 79.2 % where the
# whole schedule gives 83.8 % (seed 0; docs/model.md §7.5). `--patience N` still stops early.
SETTINGS = {
    "quick": {"hidden": 64, "epochs": 4, "n_train": 1000, "n_test": 500, "substeps_on": 4, "patience": None},
    "full": {"hidden": 128, "epochs": 80, "n_train": None, "n_test": None, "substeps_on": 4, "patience": None},
}
FULL_TASKS = ("mnist1d", "working_memory")
CSV_COLUMNS = ("task", "variant", "seeds", "accuracy_mean", "accuracy_ci95_low", "accuracy_ci95_high", "accuracy_std",
               "delta_vs_full", "p_value_vs_full", "p_holm_vs_full", "firing_rate_per_bin", "spikes_per_sample",
               "energy_paper_J", "energy_65nm_J", "energy_3nm_J", "best_epoch_mean", "note")


def resolve_variants(items) -> list[str]:
    """``["all"]`` or names from :data:`ALL`; unknown names raise. ``full`` is always included."""
    items = [str(v).strip() for v in (items or ["all"])]
    if items == ["all"]:
        return list(ALL)
    for v in items:
        if v not in ALL:
            raise ParameterError(f"unknown variant {v!r}; allowed: all, {', '.join(ALL)}")
    return list(dict.fromkeys(["full"] + items))


def left_out(variant_names, preset: str = "paper") -> dict[str, str]:
    """The variants of ``variant_names`` that would be the full neuron of ``preset`` itself, with
    why (:func:`ionspike.network.variants.unchanged`): an ablation leaves them out instead of
    training copies of the full neuron, and says so in its results."""
    from ionspike import presets

    base = presets.params(preset)
    skipped = {v: why for v in variant_names
               if v != "full" and v not in BASELINES and (why := variants.unchanged(v, base)) is not None}
    if skipped and all(v == "full" or v in skipped for v in variant_names):
        raise ParameterError(f"variants {', '.join(skipped)}: each would be the full neuron of preset = {preset!r} "
                             f"({'; '.join(f'{v}: {why}' for v, why in skipped.items())}), which leaves nothing to "
                             "compare: allowed variants that change it, or a baseline (lif, alif)")
    return skipped


def resolve_tasks(items) -> list[str]:
    items = list(items or ["mnist1d"])
    if items == ["all"]:
        return list(tasks.TASKS)
    return [tasks.check(t) for t in items]


def run_config(task: str, variant: str, seed: int, settings: dict, preset: str = "paper",
               device_settings: dict | None = None) -> TrainConfig:
    """One run's training settings; ``device_settings`` (e.g. ``rate_weight``) apply to the 1M1T1R
    variants only, the LIF/ALIF baselines keep their own defaults."""
    neuron = variant if variant in BASELINES else "1m1t1r"
    extra = {} if variant in BASELINES else dict(device_settings or {})
    return TrainConfig(task=task, neuron=neuron, variant="full" if variant in BASELINES else variant, preset=preset,
                       seed=seed, **settings, **extra)


def _raster(result: dict, samples: int = 1) -> list:
    """(bin, neuron) of every hidden spike of the first test sample(s), for the raster plot."""
    net, task = result["net"], result["task"]
    _, spikes = net.forward(result["weights"], result["instance"], task.x_test[:samples],
                            jax.random.fold_in(jax.random.key(result["config"]["seed"]), 3))
    b, _, n = np.nonzero(np.asarray(spikes))
    return [[int(i), int(j)] for i, j in zip(b, n)]


def _finished(config: TrainConfig, folder: Path) -> dict | None:
    """The run's saved result if it finished with these settings, else None."""
    done = folder / "result.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if saved.get("config") == jsonable(config.to_dict()):
            return saved
    return None


def train_run(config: TrainConfig, folder: Path, task=None, progress=None) -> dict:
    """Train one run into ``folder`` (resuming its checkpoint) and write its ``result.json``; the
    unit of work of the study, in this process or on a Dask worker (:mod:`ionspike.runner`).
    ``progress(epoch, epochs, row)``: after every epoch trained here, as :func:`train`'s."""
    folder = Path(folder)
    result = train(config, folder, task=task, progress=progress)
    keep = result_summary(result)
    keep["raster"] = _raster(result) if config.seed == 0 else None
    write_json(folder / "result.json", keep)
    return json.loads((folder / "result.json").read_text())


def _run_one(config: TrainConfig, folder: Path, task, on_epoch) -> dict:
    saved = _finished(config, folder)
    if saved is None:
        saved = train_run(config, folder, task, lambda e, n, row: on_epoch(row))
        for _ in range(config.epochs - saved["epochs_done"]):
            on_epoch(None)
        return saved
    for row in saved["history"]:
        on_epoch(row)
    for _ in range(config.epochs - len(saved["history"])):   # stopped early: the bar still completes
        on_epoch(None)
    return saved


def _run_distributed(configs: dict, root: Path, runner, on_epochs, diverged: dict, on_start=None) -> None:
    """Train every unfinished run on the runner's workers (each writes its own folder). Progress:
    ``on_epochs(key, n)`` says that run ``key`` has ``n`` of its epochs (never fewer than before): a
    finished run at once with all of them, before ``on_start()`` is called and anything dispatched;
    a running one after each epoch, from the worker (a resumed run's first report counts its
    checkpoint's epochs too); every one with all of them when it ends (one that stopped early too). A run whose
    training diverged goes into ``diverged``; one that fails otherwise is reported after the others
    have finished."""
    failures = []

    def ok(item, result):
        on_epochs(item[0], item[1].epochs)

    pending = []
    for key, cfg in configs.items():
        folder = root / "runs" / key[0] / key[1] / f"seed{key[2]}"
        if _finished(cfg, folder) is None:
            pending.append((key, cfg, folder))
        else:            # finished before: counted at once, so a resumed study's progress starts where it stands
            on_epochs(key, cfg.epochs)
    if on_start is not None:
        on_start()

    def bad(item, exc):
        if isinstance(exc, FloatingPointError):
            diverged[item[0]] = f"{type(exc).__name__}: {exc}"
        else:
            failures.append(f"{'/'.join(map(str, item[0]))}: {type(exc).__name__}: {exc}")

    runner.run(_train_item, pending, on_result=ok, on_error=bad, on_event=lambda item, n: on_epochs(item[0], n))
    if failures:
        raise RuntimeError(f"{len(failures)} training run(s) failed: " + "; ".join(failures))


def _train_item(item) -> dict:
    """A runner task: one training run, its epochs reported to the study as they end."""
    from ionspike.runner import report

    _, config, folder = item
    return train_run(config, folder, progress=lambda epoch, epochs, row: report(epoch))


def interval95(values) -> tuple[float, float] | tuple[None, None]:
    """Two-sided 95 % confidence interval of the mean (Student's t), or (None, None) for one value."""
    a = np.asarray(values, float)
    if a.size < 2:
        return None, None
    half = stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size)
    return float(a.mean() - half), float(a.mean() + half)


def holm(pvalues: dict) -> dict:
    """Holm's step-down adjustment of a family of p-values (``None`` entries are left out)."""
    named = sorted(((p, k) for k, p in pvalues.items() if p is not None), key=lambda t: t[0])
    m = len(named)
    out: dict = {k: None for k in pvalues}
    running = 0.0
    for i, (p, k) in enumerate(named):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def _summary(runs: list[dict], full: list[float] | None, energies: dict, shape: dict) -> dict:
    acc = np.array([r["test_accuracy"] for r in runs], float)
    spikes = float(np.mean([r["spikes_per_sample"] for r in runs]))
    low, high = interval95(acc)
    out = {"seeds": len(runs), "accuracy": acc.tolist(), "accuracy_mean": float(acc.mean()),
           "accuracy_std": float(acc.std(ddof=1)) if acc.size > 1 else None,
           "accuracy_ci95": [low, high] if low is not None else None,
           "val_accuracy_mean": float(np.mean([r["val_accuracy"] for r in runs])) if all(
               r["val_accuracy"] is not None for r in runs) else None,
           "best_epoch_mean": float(np.mean([r["best_epoch"] for r in runs])),
           "firing_rate_per_bin": float(np.mean([r["firing_rate_per_bin"] for r in runs])),
           "spikes_per_sample": spikes, "note": runs[0]["neuron"].get("note", ""),
           "energy": E.per_inference(spikes, spike_energy_J=energies["spike_energy_J"],
                                     read_energy_J=energies["read_energy_J"], **shape)}
    out["delta_vs_full"] = float(acc.mean() - np.mean(full)) if full is not None else None
    p = None
    if full is not None and acc.size > 1 and len(full) > 1:
        if np.std(acc) > 0 or np.std(full) > 0:
            p = float(stats.ttest_ind(acc, full, equal_var=False).pvalue)
    out["p_value_vs_full"] = p
    width = max(len(r["history"]) for r in runs)
    curves = [[h["val_accuracy"] for h in r["history"]] + [r["history"][-1]["val_accuracy"]] * (width - len(r["history"]))
              for r in runs]
    out["curve_mean"] = None if any(c[0] is None for c in curves) else np.mean(curves, axis=0).tolist()
    return out


def ablate(task_names=("mnist1d",), variant_names=("all",), seeds: int = 3, *, mode: str = "quick", out: str | Path,
           overrides: dict | None = None, read_energy="1 fJ", preset: str = "paper",
           device_overrides: dict | None = None,
           progress: Callable[[int, int, str], None] | None = None, runner=None) -> dict:
    """Run the study; returns (and writes to ``out``) the results. ``overrides``: settings of every
    run (hidden, epochs, patience, n_train, ...); ``preset`` and ``device_overrides`` (e.g.
    ``{"rate_weight": 300}``): the 1M1T1R runs only. ``runner``: an open
    :class:`ionspike.runner.Runner` to train the runs on its Dask workers (None: one after the
    other in this process); the results are the same either way."""
    if mode not in SETTINGS:
        raise ParameterError(f"mode = {mode!r} is unknown: allowed {', '.join(SETTINGS)}")
    if not (isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1):
        raise ParameterError(f"seeds = {seeds!r} is out of range: allowed integers >= 1")
    task_list, variant_list = resolve_tasks(task_names), resolve_variants(variant_names)
    skipped = left_out(variant_list, preset)
    variant_list = [v for v in variant_list if v not in skipped]
    settings = {**SETTINGS[mode], **(overrides or {})}
    device_overrides = dict(device_overrides or {})
    configs = {(t, v, s): run_config(t, v, s, settings, preset, device_overrides) for t in task_list
               for v in variant_list for s in range(seeds)}                    # validates every run's settings before any training
    energies = {"spike_energy_J": E.spike_energies(), "read_energy_J": E.read_energy(read_energy)}
    root = prepare_out_dir(out)
    earlier = _read_ledger(root)      # before any training: a ledger that cannot be read stops the study here
    t_start = time.perf_counter()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    finished = False
    try:
        results = _study(configs, task_list, variant_list, seeds, settings, energies, root, mode, preset, progress,
                         runner)
        results["left_out_variants"] = skipped
        if device_overrides:
            results["device_settings"] = device_overrides
        finished = True
    finally:
        wall = time.perf_counter() - t_start
        write_json(root / LEDGER, earlier + [{"started": started_at, "wall_time_s": wall, "finished": finished}])
    results["wall_time_s"] = wall
    results["invocations"] = len(earlier) + 1
    results["wall_time_all_invocations_s"] = float(sum(i["wall_time_s"] for i in earlier) + wall)
    write_json(root / "results.json", results)
    _write_csv(root / "results.csv", results)
    return results


LEDGER = "invocations.json"


def _read_ledger(root: Path) -> list[dict]:
    """The earlier invocations of the study in ``root`` (none if it has no ledger yet); an unreadable
    ledger is an error naming it, raised before anything is trained (this invocation appends to it,
    atomically, when it ends)."""
    path = root / LEDGER
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())
        ok = isinstance(entries, list) and all(
            isinstance(e, dict) and isinstance(e.get("wall_time_s"), (int, float)) and e["wall_time_s"] >= 0
            for e in entries)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        ok = False
    if not ok:
        raise CheckpointError(f"{str(path)!r} is not the study's invocation ledger (a JSON list of "
                              "{'started', 'wall_time_s', 'finished'}): restore it, or delete it to restart the "
                              "wall-time count (the finished runs are kept either way)")
    return entries


def _study(configs, task_list, variant_list, seeds, settings, energies, root, mode, preset, progress, runner) -> dict:
    """Train (or collect) every run of ``configs`` and summarise them (see :func:`ablate`)."""
    total = sum(c.epochs for c in configs.values())
    done = [0]
    diverged: dict = {}     # (task, variant, seed) -> why: a run whose training diverged is reported, not fatal
    if runner is not None:
        counting_finished = [True]     # the finished runs' epochs are reported once, as a whole
        per_run: dict = {}

        def counted(key, n):
            per_run[key] = max(per_run.get(key, 0), min(int(n), configs[key].epochs))
            done[0] = sum(per_run.values())
            if progress and not counting_finished[0]:
                progress(done[0], total, "runs on the Dask workers")

        def started():
            counting_finished[0] = False
            if progress:
                progress(done[0], total, "runs on the Dask workers")

        _run_distributed(configs, root, runner, counted, diverged, on_start=started)
        done[0] = total              # every run is finished (or diverged); collecting them below counts nothing
        if progress:
            progress(total, total, "runs on the Dask workers")
    results = {"version": __version__, "mode": mode, "settings": settings, "seeds": seeds, "preset": preset,
               "variants": variant_list, "tasks": {}, **energies, "energy_assumptions": E.__doc__.strip(),
               "statistics": "accuracy: mean over seeds with a two-sided 95 % Student-t interval; p: Welch's t-test "
                             "against full, Holm-adjusted across the variants of a task (p_holm)"}
    for t in task_list:
        task = load_task(configs[(t, variant_list[0], 0)])
        per_variant = {}
        for v in variant_list:
            runs = []
            for s in range(seeds):
                def on_epoch(row, label=f"{t} {v} seed {s}"):
                    if runner is not None:     # counted when the workers finished it
                        return
                    done[0] += 1
                    if progress:
                        progress(done[0], total, label)

                if (t, v, s) in diverged:
                    continue
                try:
                    runs.append(_run_one(configs[(t, v, s)], root / "runs" / t / v / f"seed{s}", task, on_epoch))
                except FloatingPointError as exc:      # non-finite loss or weights (train.train)
                    diverged[(t, v, s)] = f"{type(exc).__name__}: {exc}"
            if runs:
                per_variant[v] = runs
        if "full" not in per_variant:
            raise FloatingPointError(f"{t}: every run of the full neuron diverged, nothing to compare against: "
                                     + "; ".join(f"seed {k[2]}: {why}" for k, why in diverged.items() if k[:2] == (t, "full")))
        cfg = configs[(t, "full", 0)]
        bins = task.steps * cfg.bins_per_step
        shape = {"n_in": task.channels, "hidden": settings["hidden"], "n_out": task.n_classes, "bins": bins}
        full_acc = [r["test_accuracy"] for r in per_variant["full"]]
        summary = {v: _summary(runs, None if v == "full" else full_acc, energies, shape)
                   for v, runs in per_variant.items()}
        adjusted = holm({v: s["p_value_vs_full"] for v, s in summary.items() if v != "full"})
        for v, s in summary.items():
            s["p_holm_vs_full"] = adjusted.get(v)
            lost = sorted(k[2] for k in diverged if k[:2] == (t, v))
            if lost:
                s["diverged_seeds"] = lost
                s["note"] = (s["note"] + "; " if s["note"] else "") + f"training diverged for seed(s) {lost}: left out"
        results["tasks"][t] = {"description": task.description, "bins_per_step": cfg.bins_per_step,
                               "bins_per_sample": bins, "bin_period_s": device_bin(cfg).period,
                               "task_options": dict(cfg.task_options), "variants": summary,
                               "runs": {v: [{k: r[k] for k in ("test_accuracy", "val_accuracy", "best_epoch",
                                                               "spikes_per_sample", "firing_rate_per_bin", "history",
                                                               "seconds")}
                                            for r in runs] for v, runs in per_variant.items()},
                               "raster": per_variant["full"][0].get("raster")}
    results["diverged_runs"] = [{"task": k[0], "variant": k[1], "seed": k[2], "error": why}
                                for k, why in sorted(diverged.items())]
    results["train_seconds_total"] = float(sum(r["seconds"] for entry in results["tasks"].values()
                                               for rs in entry["runs"].values() for r in rs))
    return results


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _write_csv(path: Path, results: dict) -> None:
    lines = [",".join(CSV_COLUMNS)]
    for t, entry in results["tasks"].items():
        for v, s in entry["variants"].items():
            e = s["energy"]["per_preset"]
            ci = s["accuracy_ci95"] or [None, None]
            row = [t, v, s["seeds"], s["accuracy_mean"], ci[0], ci[1], s["accuracy_std"], s["delta_vs_full"],
                   s["p_value_vs_full"], s["p_holm_vs_full"], s["firing_rate_per_bin"], s["spikes_per_sample"],
                   e["paper"]["total_J"], e["65nm"]["total_J"], e["3nm"]["total_J"], s["best_epoch_mean"],
                   '"' + s["note"].replace('"', "'") + '"']
            lines.append(",".join(_fmt(x) for x in row))
    atomic_write(path, lambda p: p.write_text("\n".join(lines) + "\n"))
