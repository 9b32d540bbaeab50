"""`ionspike sweep` on real Dask: a scheduler and workers as separate processes on 127.0.0.1, the
default local cluster, a killed worker, a killed client, and the study file's errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ionspike import study as S
from ionspike.errors import ParameterError, UnitError
from ionspike.runner import WORKER_ENV, Runner

STUDY = """
preset = "stochastic"
duration = "8 ms"
n = 6
seed = 11
task_size = {task_size}
[stimulus]
kind = "pulse"
amplitude = "1.2 V"
width = "1 ms"
period = "2 ms"
[axes]
Rc = ["100 MOhm", "250 MOhm"]
amplitude = "1.0..1.2 V in 3 steps"
"""
CLI = [sys.executable, "-m", "ionspike.cli"]


def _study(tmp: Path, task_size: int) -> Path:
    path = tmp / f"study_{task_size}.toml"
    path.write_text(STUDY.format(task_size=task_size))
    return path


def _arrays(out: Path) -> dict:
    with xr.open_zarr(out / "sweep.zarr") as ds:
        assert int(ds["task_done"].sum()) == ds.sizes["task"]
        return {k: ds[k].values for k in ds.data_vars if k != "task_done"}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)       # NaN == NaN here; values bit for bit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _done(out: Path) -> int:
    import warnings

    try:
        with warnings.catch_warnings():            # polled while the store may be half-created
            warnings.simplefilter("ignore")
            with xr.open_zarr(out / "sweep.zarr") as ds:
                return int(ds["task_done"].sum())
    except Exception:  # noqa: BLE001 -- not created yet
        return 0


def _wait(cond, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study on the default local cluster (2 workers), 6 tasks of one grid point each."""
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "ref"
    run = subprocess.run(CLI + ["sweep", str(_study(tmp, 6)), "--out", str(out), "--workers", "2"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    arrays = _arrays(out)
    assert arrays["spike_count"].shape == (2, 3, 6)
    assert np.nansum(arrays["spike_count"]) > 0 and np.isnan(arrays["first_spike_s"]).any()   # the grid spans firing
    for m in S.METRICS:
        assert (out / f"{m}.png").stat().st_size > 5_000
    return tmp, arrays


def test_external_scheduler_and_workers_with_one_killed_give_the_same_arrays(reference):
    tmp, ref = reference
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, **WORKER_ENV)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        time.sleep(2)
        workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                     "--no-nanny", "--host", "127.0.0.1"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for _ in range(2)]
        procs += workers
        out = tmp / "ext"
        client = subprocess.Popen(CLI + ["sweep", str(_study(tmp, 6)), "--out", str(out), "--scheduler", address],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # kill one worker (by its PID) once the study is under way, with tasks left to run
        _wait(lambda: _done(out) >= 1 or client.poll() is not None, 300, "the first task")
        killed_midway = _done(out) < 6 and client.poll() is None
        os.kill(workers[0].pid, signal.SIGKILL)
        _, err = client.communicate(timeout=600)
        assert client.returncode == 0, err
        assert killed_midway
        _same(_arrays(out), ref)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_killed_client_resumes_other_chunks_one_worker_same_arrays(reference):
    """SIGKILL the `ionspike sweep` process mid-study; the rerun recomputes only unfinished tasks and
    ends with the same arrays (here with 1 worker and 4 tasks of 2 grid points: chunking and worker
    count do not change a value)."""
    tmp, ref = reference
    out = tmp / "killed"
    study = _study(tmp, 12)
    assert len(S.tasks(S.load(study))) == 4
    proc = subprocess.Popen(CLI + ["sweep", str(study), "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait(lambda: _done(out) >= 1 or proc.poll() is not None, 300, "the first task")
    os.killpg(proc.pid, signal.SIGKILL)       # the client and its local cluster, at once
    proc.wait()
    done = _done(out)
    assert 1 <= done < 4
    rerun = subprocess.run(CLI + ["sweep", str(study), "--out", str(out), "--workers", "1"],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {done} of 4 tasks already in the store, computing {4 - done}" in rerun.stderr
    assert f"({4 - done} tasks computed, {done} reused, 0 failed)" in " ".join(rerun.stderr.split())
    _same(_arrays(out), ref)
    # another study is refused in this folder, and the store is left as it was
    before = (out / "sweep.zarr" / ".zattrs").read_bytes()
    other = tmp / "other.toml"
    other.write_text(study.read_text().replace("seed = 11", "seed = 12"))
    bad = subprocess.run(CLI + ["sweep", str(other), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "study_sha256" in bad.stderr
    assert (out / "sweep.zarr" / ".zattrs").read_bytes() == before


def test_unreachable_scheduler_is_an_error_within_the_timeout():
    port = _free_port()
    t0 = time.time()
    with pytest.raises(ParameterError, match=f"tcp://127.0.0.1:{port}' is not reachable within 3 s"):
        with Runner(scheduler=f"tcp://127.0.0.1:{port}", timeout=3.0):
            pass
    assert time.time() - t0 < 30


def test_a_task_that_raises_is_reported_and_the_rest_completes(tmp_path):
    from ionspike import sweep as W

    st = S.from_dict(tomllib.loads(STUDY.format(task_size=6).replace('"1.0..1.2 V in 3 steps"', "[1.0, 1.2]")))
    # a grid point the simulator refuses: mu = -1 (out of range) at one of two points
    bad = S.Study(**{**st.__dict__, "axes": (("mu", (550.0, -1.0)),), "n": 2, "task_size": 2})
    with Runner(workers=1) as runner:
        failures, results = [], []
        runner.run(S.compute, S.tasks(bad), on_result=lambda t, r: results.append(t),
                   on_error=lambda t, e: failures.append((W.grid_point(bad, t), str(e))), args=(bad, bad.params()))
    assert len(results) == 1 and len(failures) == 1
    point, message = failures[0]
    assert point["mu"] == [-1.0] and "memristor.mu" in message


@pytest.mark.parametrize("text, error, match", [
    ("[axes]\nbogus = [1, 2]", ParameterError, "axis 'bogus' is neither a stimulus field"),
    ("[axes]\nRc = []", ParameterError, "axis 'Rc' is empty"),
    ("[axes]\nRc = [\"3 V\"]", UnitError, "expected ohm"),
    ("[axes]\namplitude = \"1..2 V in 0 steps\"", ParameterError, "is empty: allowed N >= 1"),
    ("[axes]\nRc = [\"-5 MOhm\"]", ParameterError, "circuit.r_c"),
    ("n = 0", ParameterError, "n = 0 is out of range"),
    ("metrics = [\"speed\"]", ParameterError, "metrics \\['speed'\\] unknown"),
    ("[stimulus]\nkind = \"dc\"\nwidth = \"1 ms\"", ParameterError, "unknown for kind 'dc'"),
])
def test_study_file_errors_name_the_key_and_what_is_allowed(text, error, match):
    with pytest.raises(error, match=match):
        S.from_dict(tomllib.loads(text))


def test_tasks_tile_the_grid_and_neurons_keep_their_ids():
    st = S.from_dict(tomllib.loads(STUDY.format(task_size=12)))
    cover = np.zeros(st.shape, int)
    for t in S.tasks(st):
        cover[tuple(slice(a, b) for a, b in t.slices)] += 1
    assert np.all(cover == 1) and S.chunk_shape(st) == (1, 2, 6)


def test_reproduce_protocol_on_the_runner_equals_in_process():
    """`reproduce --workers` sends each protocol to the runner: the metrics are the same as in process."""
    from ionspike import protocols
    from ionspike import reproduce as R

    item = ("refractory", R.STUDY_PRESET, R.MODES["tiny"]["trials"])
    with Runner(workers=1) as runner:
        got = []
        runner.run(R._protocol, [item], on_result=lambda t, r: got.append(r), on_error=lambda t, e: got.append(e))
    assert len(got) == 1 and isinstance(got[0], tuple), got
    _, metrics = got[0]
    _, local = protocols.run(*item[:2], trials=item[2], seed=0)
    assert metrics == local


def _report_then_wait(folder, index):
    """A runner task that reports 1, waits until the caller has seen it (the caller's on_event
    writes a file), then reports 2 and 3 and returns its index."""
    from ionspike.runner import report

    report(1)
    seen, deadline = Path(folder) / f"seen-{index}", time.monotonic() + 60
    while not seen.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the report did not reach the caller while the task ran")
        time.sleep(0.05)
    report(2)
    report(3)
    return index


def test_task_reports_reach_the_caller_while_the_task_runs_and_before_its_result(tmp_path):
    """runner.report from a task on a real local cluster: the caller's on_event gets each message
    while the task still runs (the task waits for the caller to have seen its first), in order and
    before the task's result; outside a runner task report does nothing."""
    from ionspike.runner import report

    log = []

    def on_event(task, message):
        log.append(("event", task, message))
        if message == 1:
            (tmp_path / f"seen-{task}").write_text("")

    with Runner(workers=2) as runner:
        runner.run(_report_then_wait, [0, 1], args=(str(tmp_path),), on_event=on_event,
                   on_result=lambda t, r: log.append(("result", t, r)), on_error=lambda t, e: log.append(("error", t, e)))
        # without on_event nobody listens: report does nothing on the worker, and the results still come
        # (the same args as the run before: each run scatters its own copy, or the first one's release
        # cancelled this one's tasks)
        quiet = []
        runner.run(_report_then_wait, [0, 1], args=(str(tmp_path),), on_result=lambda t, r: quiet.append(r),
                   on_error=lambda t, e: quiet.append(e))
        assert sorted(quiet, key=str) == [0, 1], quiet
    for t in (0, 1):
        assert [e for e in log if e[1] == t] == [("event", t, 1), ("event", t, 2), ("event", t, 3), ("result", t, t)]
    report("not in a runner task")     # a no-op: the same task code runs in-process too


def _cancel_own_first_run(marker):
    """A runner task that, on its first run, has the scheduler cancel it while it runs (as the
    scheduler may do with a task whose worker died); on the next run it returns normally."""
    import distributed

    marker = Path(marker)
    if not marker.exists():
        marker.write_text("cancelled once")
        key = distributed.get_worker().get_current_task()
        distributed.get_client().cancel(distributed.Future(key), force=True)
        time.sleep(5)               # the cancellation reaches the client while this run is still going
    return "done"


def test_a_task_the_cluster_cancels_is_submitted_again(tmp_path):
    results, errors = [], []
    with Runner(workers=1) as runner:
        runner.run(_cancel_own_first_run, [str(tmp_path / "marker")], on_result=lambda t, r: results.append(r),
                   on_error=lambda t, e: errors.append(e))
    assert (tmp_path / "marker").exists() and results == ["done"] and errors == []
