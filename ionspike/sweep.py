"""``ionspike sweep``: a study's tasks on Dask, its results in one Zarr store, figures from the store.

Output folder::

    sweep.zarr/     one xarray Dataset: a variable per metric, dims = the axes + ``device``,
                    coordinates = the axis values (SI), attributes = the study, the version, the
                    seed; ``task_done`` (one flag per task) is set only after the task's data is written
    <metric>.png    curves against the first axis (one line per value of the second, 16-84 %
                    band over devices; P(fire) with a 95 % Wilson band), and a heatmap for two axes
    errors.json     tasks that raised (their grid points and the error), when any did

``xr.open_zarr(out / "sweep.zarr")`` is all a user needs to analyse it. A rerun of the same study
finds the store, skips the tasks marked done and computes the rest (a killed run loses only the
tasks in flight); a store of another study is refused (:class:`ionspike.io.OutputFolder` identity).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from ionspike import __version__
from ionspike import study as S
from ionspike.io import write_json

STORE = "sweep.zarr"


def identity(study: S.Study) -> dict:
    """What an output folder must match to be resumed (a digest of the study)."""
    return {"study_sha256": hashlib.sha256(study.identity().encode()).hexdigest()}


def _template(study: S.Study):
    import dask.array as da
    import xarray as xr

    dims, shape, chunk = study.dims, study.shape, S.chunk_shape(study)
    coords = {name: (name, np.asarray(values, float)) for name, values in study.axes}
    coords["device"] = ("device", np.arange(study.n))
    data = {}
    for m in study.metrics:
        unit, meaning = S.METRICS[m]
        data[m] = (dims, da.full(shape, np.nan, chunks=chunk, dtype=float), {"units": unit, "long_name": meaning})
    n_tasks = len(S.tasks(study))
    data["task_done"] = (("task",), da.zeros(n_tasks, chunks=1, dtype=np.int8),
                         {"long_name": "1 once the task's region is written"})
    attrs = {"title": "ionspike sweep", "ionspike_version": __version__, "study": study.identity(),
             "study_description": json.dumps(S.describe(study)), "seed": study.seed}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _readable(path: Path, study: S.Study) -> bool:
    import xarray as xr

    try:
        with xr.open_zarr(path) as ds:
            return ds.attrs.get("study") == study.identity()
    except Exception:  # noqa: BLE001
        return False


def open_store(root: Path, study: S.Study, *, fresh: bool = False):
    """The store of ``study`` in ``root`` (created when missing, unreadable, of another study, or
    ``fresh``); returns ``(path, done flags)``."""
    path = root / STORE
    if not fresh and _readable(path, study):
        return _existing(root, study)
    if path.exists():
        shutil.rmtree(path)
    # Zarr format 2 with consolidated metadata: read by every Zarr implementation, opened in one read
    _template(study).to_zarr(path, mode="w", compute=False, consolidated=True, zarr_format=2)
    return path, np.zeros(len(S.tasks(study)), bool)


def _existing(root: Path, study: S.Study):
    """``(path, done flags)`` of the study's store if it exists and is this study's, else no flags set."""
    import xarray as xr

    path = root / STORE
    if path.exists():
        try:
            with xr.open_zarr(path) as ds:
                if ds.attrs.get("study") == study.identity():
                    return path, np.asarray(ds["task_done"].values, bool)
        except Exception:  # noqa: BLE001 -- unreadable: open_store makes it again
            pass
    return path, np.zeros(len(S.tasks(study)), bool)


def write_task(path: Path, study: S.Study, task: S.Task, result: dict) -> None:
    """The task's region of every metric, then its done flag (a resume trusts only flagged regions)."""
    import xarray as xr

    dims = study.dims
    xr.Dataset({m: (dims, result[m]) for m in study.metrics}).to_zarr(path, region=task.region(dims), mode="r+")
    xr.Dataset({"task_done": (("task",), np.ones(1, np.int8))}).to_zarr(
        path, region={"task": slice(task.index, task.index + 1)}, mode="r+")


def grid_point(study: S.Study, task: S.Task) -> dict:
    """The axis values a task covers (for error reports)."""
    out = {}
    for (name, values), (a, b) in zip(study.axes, task.slices):
        out[name] = list(values[a:b])
    out["devices"] = list(task.slices[-1])
    return out


def run(study: S.Study, root: Path, *, scheduler: str | None = None, workers: int | None = None,
        on_start: Callable[[int, int, str | None], None] | None = None,
        on_task: Callable[[], None] | None = None) -> dict:
    """Run the study into ``root`` (an open output folder). Returns ``{"tasks", "done_before",
    "computed", "failed": [...], "store"}``."""
    from ionspike.runner import Runner

    all_tasks = S.tasks(study)
    path, done = _existing(root, study)
    pending = [t for t in all_tasks if not done[t.index]]
    failed = []
    summary = {"tasks": len(all_tasks), "done_before": int(done.sum()), "computed": 0, "failed": failed,
               "store": str(path)}
    errors = root / "errors.json"
    if pending:
        params = study.params()
        with Runner(scheduler=scheduler, workers=workers) as runner:   # connected before anything is written
            path, done = open_store(root, study)
            if on_start is not None:
                on_start(len(all_tasks), len(pending), runner.dashboard)

            def ok(task, result):
                write_task(path, study, task, result)
                summary["computed"] += 1
                if on_task is not None:
                    on_task()

            def bad(task, exc):
                failed.append({"task": task.index, "grid_point": grid_point(study, task),
                               "error": f"{type(exc).__name__}: {exc}"})
                if on_task is not None:
                    on_task()

            runner.run(S.compute, pending, on_result=ok, on_error=bad, args=(study, params))
    elif on_start is not None:          # every task already in the store
        on_start(len(all_tasks), 0, None)
    if failed:
        write_json(errors, {"failed": failed})
    elif errors.exists():
        errors.unlink()
    draw(path, root)
    return summary


# ----------------------------------------------------------------------------------- figures
def _wilson(p, n, z=1.96):
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def draw(path: Path, root: Path) -> list[Path]:
    """Figures of every metric from the saved store (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    from ionspike.io import save_figure

    written = []
    with xr.open_zarr(path) as ds:
        axes = [d for d in ds[next(iter(v for v in ds.data_vars if v != "task_done"))].dims if d != "device"]
        for m in [v for v in ds.data_vars if v != "task_done"]:
            da = ds[m].load()
            unit = da.attrs.get("units", "")
            extra = {d: 0 for d in axes[2:]}
            sub = da.isel(extra) if extra else da
            fig, ax = plt.subplots(1, 2 if len(axes) >= 2 else 1, figsize=(11 if len(axes) >= 2 else 6, 4),
                                   squeeze=False)
            left = ax[0, 0]
            if not axes:
                vals = sub.values.ravel()
                vals = vals[np.isfinite(vals)]
                left.hist(vals, bins=40)
                left.set_xlabel(f"{m} ({unit})")
                left.set_ylabel("devices")
            else:
                x = sub[axes[0]].values
                lines = sub[axes[1]].values if len(axes) >= 2 else [None]
                for val in lines[:8]:
                    cur = sub if val is None else sub.sel({axes[1]: val})
                    v = cur.values.reshape(len(x), -1)
                    if m == "fired":
                        mean = np.nanmean(v, axis=1)
                        lo, hi = _wilson(mean, np.sum(np.isfinite(v), axis=1).clip(1))
                    else:
                        with np.errstate(all="ignore"):
                            import warnings

                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore", RuntimeWarning)
                                mean = np.nanmean(v, axis=1)
                                lo, hi = np.nanpercentile(v, 16, axis=1), np.nanpercentile(v, 84, axis=1)
                    label = None if val is None else f"{axes[1]} = {val:.4g}"
                    left.plot(x, mean, marker="o", ms=3, label=label)
                    left.fill_between(x, lo, hi, alpha=0.2)
                left.set_xlabel(axes[0])
                left.set_ylabel("P(fire)" if m == "fired" else f"{m} ({unit})")
                if len(axes) >= 2:
                    left.legend(fontsize=7)
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        heat = np.nanmean(sub.values, axis=-1)
                    im = ax[0, 1].imshow(heat.T, origin="lower", aspect="auto",
                                         extent=(-0.5, len(x) - 0.5, -0.5, len(lines) - 0.5))
                    ax[0, 1].set_xticks(range(len(x)), [f"{v:.3g}" for v in x], rotation=60, fontsize=6)
                    ax[0, 1].set_yticks(range(len(lines)), [f"{v:.3g}" for v in lines], fontsize=6)
                    ax[0, 1].set_xlabel(axes[0])
                    ax[0, 1].set_ylabel(axes[1])
                    fig.colorbar(im, ax=ax[0, 1], label=("P(fire)" if m == "fired" else f"mean {m} ({unit})"))
            title = m + (f" ({', '.join(f'{d} = {float(da[d].values[0]):.3g}' for d in extra)})" if extra else "")
            fig.suptitle(title)
            fig.tight_layout()
            out = root / f"{m}.png"
            save_figure(fig, out)
            plt.close(fig)
            written.append(out)
    return written


def peak_neurons(study: S.Study) -> int:
    """Neurons one task simulates at once (the memory a worker needs scales with it)."""
    return math.prod(S.chunk_shape(study))
