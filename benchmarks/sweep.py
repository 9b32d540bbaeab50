"""Sweeps on Dask: scaling with workers, the runner's per-task overhead, and a large Monte Carlo.

One command:  python benchmarks/sweep.py          (``--quick``: smaller; ``--mc-devices N``; ``--json OUT``)

(a) The same 2-axis sweep (stochastic preset, 4 R_c x 8 pulse amplitudes, 512 devices per point,
    40 ms, 64 tasks of 256 neurons) on a local cluster of 1 and of 2 workers: wall time of the
    whole `ionspike.sweep.run` (cluster start, worker start-up and each worker's one compilation
    included), the speed-up, and the speed-up once the workers run (first to last finished task).
    Target (issue 14): >= 1.7x on a 2-core machine. The two stores must be identical.
(b) Per-task overhead of the runner: 200 tasks that do nothing, submitted and gathered through
    `ionspike.runner.Runner` (2 workers), and the sweep's own cost per task (a Zarr region and its
    done flag) measured on 200 one-neuron tasks of a 0.1 ms simulation.
(c) Monte Carlo of ``--mc-devices`` (default 10^6) stochastic devices of the paper preset under one
    15 ms pulse at 0.9 V: P(fire) and the switching delay, on 2 workers, tasks of 2048 neurons;
    wall time and each worker's peak resident memory (bounded by the task size, not the study).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _study(**kw):
    from ionspike import study as S

    base = {"preset": "stochastic", "duration": "40 ms", "n": 64, "seed": 0, "task_size": 64,
            "metrics": ["first_spike_s", "spike_count", "fired", "switch_delay_s"],
            "stimulus": {"kind": "pulse", "amplitude": "0.9 V", "width": "1 ms", "period": "2 ms"},
            "axes": {"Rc": ["100 MOhm", "250 MOhm", "500 MOhm"], "amplitude": "0.8..1.2 V in 6 steps"}}
    base.update(kw)
    return S.from_dict(base, where="benchmark study")


def _run(study, workers: int, folder: Path) -> tuple[float, float]:
    """Wall time of the whole run, and of its steady part (from the first finished task to the last)."""
    from ionspike import sweep as W

    stamps = []
    t0 = time.perf_counter()
    W.run(study, folder, workers=workers, on_task=lambda: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    steady = (stamps[-1] - stamps[0]) * len(stamps) / max(len(stamps) - 1, 1) if len(stamps) > 1 else wall
    return wall, steady


def _arrays(folder: Path) -> dict:
    import xarray as xr

    with xr.open_zarr(folder / "sweep.zarr") as ds:
        return {k: ds[k].values for k in ds.data_vars}


def part_scaling(tmp: Path, quick: bool) -> dict:
    from ionspike import study as S

    study = _study(duration="20 ms" if quick else "40 ms", n=128 if quick else 512, task_size=256,
                   axes={"Rc": ["100 MOhm", "175 MOhm", "250 MOhm", "500 MOhm"], "amplitude": "0.8..1.2 V in 8 steps"})
    (t1, s1), (t2, s2) = _run(study, 1, tmp / "w1"), _run(study, 2, tmp / "w2")
    a, b = _arrays(tmp / "w1"), _arrays(tmp / "w2")
    same = all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    return {"tasks": len(S.tasks(study)), "neurons": int(math.prod(study.shape)), "duration_s": study.duration,
            "one_worker_s": t1, "two_workers_s": t2, "speedup": t1 / t2,
            "steady_one_worker_s": s1, "steady_two_workers_s": s2, "steady_speedup": s1 / s2, "identical": bool(same)}


def _nothing(task):
    return task


def part_overhead(tmp: Path) -> dict:
    from ionspike.runner import Runner

    n = 200
    with Runner(workers=2) as runner:
        runner.run(_nothing, range(4), on_result=lambda t, r: None, on_error=lambda t, e: None)   # warm
        t0 = time.perf_counter()
        got = []
        runner.run(_nothing, range(n), on_result=lambda t, r: got.append(r), on_error=lambda t, e: None)
        runner_per_task = (time.perf_counter() - t0) / n
    assert len(got) == n
    study = _study(duration="0.1 ms", n=200, task_size=1, axes={},
                   stimulus={"kind": "dc", "amplitude": "0.9 V"}, dt="2 us")
    total = _run(study, 2, tmp / "overhead")
    return {"runner_s_per_task": runner_per_task, "sweep_tasks": 200,
            "sweep_s_per_task_incl_simulate": total / 200, "sweep_total_s": total}


def _worker_peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def part_monte_carlo(tmp: Path, devices: int) -> dict:
    from ionspike import sweep as W

    study = _study(preset="paper", duration="15 ms", n=devices, task_size=2048, axes={},
                   metrics=["fired", "switch_delay_s", "first_spike_s"],
                   stimulus={"kind": "pulse", "amplitude": "0.9 V", "width": "15 ms", "period": "30 ms"})
    folder = tmp / "mc"
    t0 = time.perf_counter()
    peaks = {}
    # the sweep's own runner, then the workers' peak memory read on the same cluster
    import ionspike.runner as R

    original = R.Runner.run

    def run_and_measure(self, *a, **k):
        original(self, *a, **k)
        peaks.update(self.client.run(_worker_peak_mb))

    R.Runner.run = run_and_measure
    try:
        W.run(study, folder, workers=2)
    finally:
        R.Runner.run = original
    wall = time.perf_counter() - t0
    a = _arrays(folder)
    fired = a["fired"]
    delay = a["switch_delay_s"]
    return {"devices": devices, "tasks": math.ceil(devices / 2048), "wall_s": wall,
            "devices_per_s": devices / wall, "p_fire": float(np.mean(fired)),
            "median_switch_delay_s": float(np.nanmedian(delay)) if np.isfinite(delay).any() else None,
            "worker_peak_rss_mb": sorted(peaks.values()), "client_peak_rss_mb": _peak_rss_mb()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--mc-devices", type=int, default=None)
    ap.add_argument("--part", choices=("scaling", "overhead", "monte-carlo", "all"), default="all")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    devices = args.mc_devices or (20_000 if args.quick else 1_000_000)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.part in ("scaling", "all"):
            out["scaling"] = r = part_scaling(tmp, args.quick)
            print(f"(a) 2-axis sweep, {r['neurons']} neurons in {r['tasks']} tasks: 1 worker {r['one_worker_s']:.1f} s, "
                  f"2 workers {r['two_workers_s']:.1f} s: speed-up {r['speedup']:.2f}x (target >= 1.7x; once the "
                  f"workers have compiled: {r['steady_speedup']:.2f}x), identical stores: {r['identical']}", flush=True)
        if args.part in ("overhead", "all"):
            out["overhead"] = r = part_overhead(tmp)
            print(f"(b) runner overhead {1e3 * r['runner_s_per_task']:.1f} ms per task (no-op tasks, 2 workers); "
                  f"sweep {1e3 * r['sweep_s_per_task_incl_simulate']:.0f} ms per one-neuron task incl. simulate and "
                  f"Zarr write", flush=True)
        if args.part in ("monte-carlo", "all"):
            out["monte_carlo"] = r = part_monte_carlo(tmp, devices)
            print(f"(c) Monte Carlo, {r['devices']} devices (paper preset, one 15 ms pulse at 0.9 V): "
                  f"{r['wall_s']:.0f} s on 2 workers ({r['devices_per_s']:.0f} devices/s), P(fire) = {r['p_fire']:.4f}, "
                  f"median switching delay {r['median_switch_delay_s']}, worker peak RSS {r['worker_peak_rss_mb']} MB",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
