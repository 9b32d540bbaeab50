"""The whole study in one call: characteristics and energy, the published-numbers table,
calibration on measured data, and the RSNN ablation; cached per stage, resumable, into one report.

Layout of ``out``::

    out/.ionspike.json              marker: command, ionspike version and mode (refuses a foreign folder)
    out/stages/<stage>/stage.json   a finished stage's results (written last, atomically)
    out/stages/<stage>/...          its data (.nc, .json, .csv) and figures (.png)
    out/summary.json                every stage's results (no timings: identical when resumed)
    out/timing.json                 seconds per stage of the last run
    out/index.html                  the report (figures embedded, data linked)

A stage whose ``stage.json`` exists is skipped unless ``force``; stages resume inside too
(each protocol of the characteristics, each training run of the ablation), and every random
draw is seeded, so an interrupted run ends with the same ``summary.json`` as an uninterrupted one.
Nothing is written outside ``out`` (the output policy of :class:`ionspike.io.OutputFolder`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

from ionspike import __version__, io, published
from ionspike.errors import ParameterError

#: the presets the study uses: the characteristics and calibration base, the stochastic-threshold
#: preset, and those whose resolved parameters the report lists
STUDY_PRESET, STOCHASTIC_PRESET = "paper", "stochastic"
LISTED_PRESETS = (STUDY_PRESET, STOCHASTIC_PRESET, "paper-fit", "65nm", "3nm")
STAGES = ("characteristics", "stochastic_preset", "published", "published_fit", "calibration", "ablation")
FIT_PRESET = "paper-fit"   # made by `ionspike design` from ionspike/design/targets/ (docs/model.md §11.4)
MARKER = io.MARKER   # the output policy's marker: command kind, ionspike version, mode
# per mode: trials of the stochastic protocols (None: the protocols' defaults), the ablation study
MODES = {
    "tiny": {"trials": 8, "ablation": {"tasks": ["digits"], "variants": ["full", "no_ip", "lif"], "seeds": 2,
                                       "settings": {"hidden": 8, "epochs": 1, "n_train": 64, "n_test": 32}},
             "calibration": {"steps": 2, "restarts": 1, "rounds": 1}},
    "quick": {"trials": None, "ablation": {"tasks": ["mnist1d"], "variants": ["all"], "seeds": 3,
                                           "settings": {}},   # `ionspike ablate`'s quick settings
              "calibration": {"steps": 10, "restarts": 1, "rounds": 1}},
    "full": {"trials": 2000, "ablation": {"tasks": ["mnist1d", "working_memory"], "variants": ["all"], "seeds": 3,
                                          "mode": "full",
                                          "settings": {}},
             "calibration": {}},
}


def output_folder(out: str | Path, mode: str, *, force: bool = False) -> io.OutputFolder:
    """The report's folder under the output policy of every command (:class:`ionspike.io.OutputFolder`):
    a new, empty or earlier report folder of the same ionspike version and mode (resumed); a file,
    a link, a foreign non-empty folder or another version's or mode's report is refused unless
    ``force``. Resumable: a failed run keeps its finished stages and removes only empty folders it made."""
    if mode not in MODES:
        raise ParameterError(f"mode = {mode!r} is unknown: allowed {', '.join(MODES)}")
    return io.OutputFolder(out, "reproduce", force=force, resumable=True,
                           identity={"ionspike_version": __version__, "mode": mode})


# ----------------------------------------------------------------------------- stages
def _characteristics(folder: Path, mode: str, ctx: dict, progress) -> dict:
    from ionspike import protocols
    from ionspike.report import characteristics as figs

    metrics, datasets = {}, {}
    names = protocols.names()

    def save(name, result):
        ds, m = result
        io.write_netcdf(folder / f"{name}.nc", ds)
        figs.plot(name, io.read_netcdf(folder / f"{name}.nc"), folder / name)
        io.write_json(folder / f"{name}.json", m)

    runner = ctx.get("runner")
    pending = [n for n in names if not (folder / f"{n}.json").exists()]
    if runner is not None and pending:      # every protocol a task on the Dask workers, saved here as it finishes
        failures = []
        runner.run(_protocol, [(n, STUDY_PRESET, MODES[mode]["trials"]) for n in pending],
                   on_result=lambda item, r: save(item[0], r),
                   on_error=lambda item, e: failures.append(f"{item[0]}: {type(e).__name__}: {e}"))
        if failures:
            raise RuntimeError("protocol(s) failed: " + "; ".join(failures))
    for i, name in enumerate(names):
        done = folder / f"{name}.json"
        if not done.exists():
            save(name, protocols.run(name, STUDY_PRESET, trials=MODES[mode]["trials"], seed=0))
        metrics[name] = json.loads(done.read_text())
        datasets[name] = io.read_netcdf(folder / f"{name}.nc")
        progress((i + 1) / len(names))
    figs.summary(datasets, folder / "summary.png")
    return {"preset": STUDY_PRESET, "metrics": metrics, "figures": [f"{n}.png" for n in names] + ["summary.png"]}


def _protocol(item):
    """One protocol run (a task of the runner): ``(Dataset, metrics)``."""
    from ionspike import protocols

    name, preset, trials = item
    return protocols.run(name, preset, trials=trials, seed=0)


def _stochastic_preset(folder: Path, mode: str, ctx: dict, progress) -> dict:
    from ionspike import protocols
    from ionspike.report import characteristics as figs

    ds, m = protocols.run("stochasticity", STOCHASTIC_PRESET, trials=MODES[mode]["trials"], seed=0)
    io.write_netcdf(folder / "stochasticity.nc", ds)
    figs.plot("stochasticity", io.read_netcdf(folder / "stochasticity.nc"), folder / "stochasticity")
    progress(1.0)
    return {"preset": STOCHASTIC_PRESET, "metrics": {"stochasticity": m}, "figures": ["stochasticity.png"]}


def _published(folder: Path, mode: str, ctx: dict, progress) -> dict:
    rows = published.compare(ctx["characteristics"]["metrics"], ctx["stochastic_preset"]["metrics"])
    progress(1.0)
    return {"rows": rows, "passed": sum(r["pass"] for r in rows), "total": len(rows)}


def _published_fit(folder: Path, mode: str, ctx: dict, progress) -> dict:
    """The published table for the paper-fit preset (its own protocols; the stochastic preset's P(fire)
    rows as in the paper preset's table). Not in --tiny: it reruns every protocol (~2.5 min)."""
    if mode == "tiny":
        progress(1.0)
        return {"skipped": True, "preset": FIT_PRESET,
                "note": "not run in --tiny (it reruns every protocol on the paper-fit preset); see "
                        "`ionspike published --preset paper-fit`"}
    table = published.measure(FIT_PRESET, stochastic_preset=STOCHASTIC_PRESET, trials=MODES[mode]["trials"], seed=0,
                              progress=progress)
    return {"skipped": False, **table}


def _calibration(folder: Path, mode: str, ctx: dict, progress) -> dict:
    measured = ctx.get("measured")
    if measured is None:
        progress(1.0)
        return {"skipped": True, "note": "no --measured folder given: calibration skipped (pass a folder in the "
                                         "layout of shared/data, with dm_symmetric_dc_sweeps.npz and/or dm_pulse_*.npz)"}
    from ionspike import calibrate
    from ionspike.report import calibration as figs

    root = Path(measured)
    if not root.is_dir():
        raise ParameterError(f"--measured {str(root)!r} is not a folder: allowed a folder in the shared/data layout")
    sweeps = sorted(root.glob("*dc_sweeps*.npz"))
    pulses = sorted(root.glob("*pulse*.npz"))
    if not sweeps and not pulses:
        raise ParameterError(f"--measured {str(root)!r} holds no *dc_sweeps*.npz or *pulse*.npz file")
    options = calibrate.FitOptions(seed=0, **MODES[mode]["calibration"])
    out, jobs = {"skipped": False, "fits": {}}, [(p, "dc-sweeps") for p in sweeps[:1]] + [(p, "pulses") for p in pulses[:1]]
    for i, (path, kind) in enumerate(jobs):
        sub = folder / kind
        if kind == "dc-sweeps":
            fit = calibrate.fit_dc_sweeps(calibrate.load_dc_sweeps(path), base=STUDY_PRESET, options=options)
        else:
            # the shared pulse data: ~22 kOhm series resistor (shared/data/README.md)
            fit = calibrate.fit_pulses(calibrate.load_pulse_trials(path), r_series=22e3, base=STUDY_PRESET,
                                       options=options)
        calibrate.write(fit, sub, source=path.name, base=STUDY_PRESET)
        figs.plot(sub)
        out["fits"][kind] = {"file": path.name, "ks": fit.ks, "fitted": fit.fitted, "verdict": fit.verdict.to_dict(),
                             "notes": list(fit.notes), "figures": [f"{kind}/{p.name}" for p in sorted(sub.glob("*.png"))]}
        progress((i + 1) / len(jobs))
    return out


def _ablation(folder: Path, mode: str, ctx: dict, progress) -> dict:
    from ionspike.network import ablate as A
    from ionspike.report import network as figs

    spec = MODES[mode]["ablation"]
    results = A.ablate(spec["tasks"], spec["variants"], spec["seeds"], mode=spec.get("mode", "quick"), out=folder,
                       overrides=spec["settings"], progress=lambda d, n, label: progress(d / n),
                       runner=ctx.get("runner"))
    figs.plot_ablation(folder / "results.json", folder)
    table = {t: {v: {k: s[k] for k in ("accuracy_mean", "accuracy_std", "accuracy_ci95", "accuracy", "p_value_vs_full",
                                        "p_holm_vs_full", "delta_vs_full", "best_epoch_mean", "firing_rate_per_bin",
                                        "spikes_per_sample", "note")}
                 | {"energy_J": {p: e["total_J"] for p, e in s["energy"]["per_preset"].items()},
                    "neuron_energy_J": {p: e["neurons_J"] for p, e in s["energy"]["per_preset"].items()}}
                 for v, s in entry["variants"].items()} for t, entry in results["tasks"].items()}
    return {"settings": results["settings"], "seeds": results["seeds"], "table": table,
            "statistics": results["statistics"],   # wall times stay in results.json: a resumed run differs there
            "spike_energy_J": results["spike_energy_J"], "read_energy_J": results["read_energy_J"],
            "figures": ["accuracy_by_variant.png", "learning_curves.png", "raster.png"], "csv": "results.csv"}


RUNNERS = {"characteristics": _characteristics, "stochastic_preset": _stochastic_preset, "published": _published,
           "published_fit": _published_fit, "calibration": _calibration, "ablation": _ablation}


def run(out: str | Path = "report", *, mode: str = "quick", measured: str | Path | None = None, force: bool = False,
        progress: Callable[[str, float], None] | None = None, command: str | None = None, runner=None) -> dict:
    """Run (or resume) every stage into ``out`` and write ``summary.json`` and ``index.html``.

    ``force`` reruns every stage (finished ones too) and accepts a folder that holds something
    other than this report. ``runner``: an open :class:`ionspike.runner.Runner` on whose workers the
    characteristics' protocols and the ablation's training runs go (None: in this process); the
    results are the same."""
    if measured is not None and not Path(measured).is_dir():
        raise ParameterError(f"--measured {str(measured)!r} is not a folder: allowed a folder in the shared/data layout")
    folder = output_folder(out, mode, force=force)
    command = command or " ".join(shlex.quote(a) for a in ["ionspike", *sys.argv[1:]])
    ctx: dict = {"measured": None if measured is None else str(Path(measured).resolve()), "runner": runner}
    timing = {}
    with folder as root:
        for name in STAGES:
            stage = io.prepare_out_dir(root / "stages" / name)
            done = stage / "stage.json"
            t0 = time.perf_counter()
            if done.exists() and not force:
                result = json.loads(done.read_text())
            else:
                result = io.jsonable(RUNNERS[name](stage, mode, ctx, lambda f, n=name: progress and progress(n, f)))
                io.write_json(done, result)
                result = json.loads(done.read_text())
            if progress:
                progress(name, 1.0)
            ctx[name] = result
            timing[name] = time.perf_counter() - t0
        summary = {"ionspike_version": __version__, "mode": mode, "command": command,
                   "measured": None if measured is None else Path(measured).name,
                   "environment": _environment(), "parameters": _parameters(), "stages": {n: ctx[n] for n in STAGES}}
        io.write_json(root / "summary.json", summary)
        summary = json.loads((root / "summary.json").read_text())
        io.write_json(root / "timing.json", {"seconds": timing})
        from ionspike.report.html import write_report

        write_report(root, summary)
    return summary


def _parameters() -> dict:
    """The presets the study uses, resolved, SI."""
    from ionspike import presets

    return io.jsonable({n: presets.load(n).params.to_dict() for n in LISTED_PRESETS})


def _environment() -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("jax", "jaxlib", "numpy", "scipy", "xarray", "optax", "matplotlib", "mnist1d", "scikit-learn"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"python": sys.version.split()[0], "packages": versions, "platform": sys.platform,
            "cpu_count": os.cpu_count()}
