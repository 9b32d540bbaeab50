"""Run a study's tasks on Dask (``dask.distributed``): from a laptop to a cluster.

One job: take tasks, submit them, hand each result (or failure) to the caller as it finishes.
What a task is and where its result goes belong to the caller (:mod:`ionspike.sweep` writes
Zarr regions; ``ablate`` writes training-run folders); the runner knows neither.

* **Where**: by default a ``LocalCluster`` of one single-threaded worker process per core (each
  worker's XLA is told to use one thread, so workers do not fight over cores); ``scheduler`` (or
  the ``DASK_SCHEDULER_ADDRESS`` environment variable) connects to an existing cluster
  (``dask scheduler`` / ``dask worker``, dask-jobqueue, dask-mpi). An unreachable address is an
  error after ``timeout`` seconds, not a hang.
* **Progress**: a task may call :func:`report` as it goes (a training run: each epoch); the
  caller's ``on_event`` receives the message in its own thread while the task still runs (Dask's
  worker events, so it works on any cluster, not only one that shares a file system).
* **Faults**: a worker that dies mid-task costs only its task, which Dask runs again elsewhere
  (up to ``distributed.scheduler.allowed-failures`` times), or, where the scheduler cancels it
  instead, the runner submits again (``CANCELLED_RETRIES`` times); a task that raises is reported
  to ``on_error`` and the other tasks go on.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ionspike.errors import ParameterError

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
CANCELLED_RETRIES = 3   # times a task the cluster cancelled (not failed) is submitted again
#: one thread per worker process for the numerical libraries (JAX's CPU backend sizes its own pool
#: by the CPUs the process may use: local workers are pinned to one core each, see _OneCore)
WORKER_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

POLL_S = 0.2            # how often run() looks for finished tasks and reports while it waits, s

_REPORTING = contextvars.ContextVar("ionspike_runner_reporting", default=None)   # (topic, task index) in a task


def report(message) -> None:
    """Send ``message`` (msgpack-serialisable: numbers, strings, lists, dicts) from a task running on
    a runner's worker to the ``on_event`` of the :meth:`Runner.run` that submitted it; a no-op
    anywhere else (the same task code runs in-process too)."""
    where = _REPORTING.get()
    if where is None:
        return
    from distributed import get_worker

    topic, index = where
    get_worker().log_event(topic, [index, message])


def _reporting(topic, index, fn, *args):
    """Run ``fn(*args)`` on a worker with :func:`report` pointed at ``topic`` as task ``index``
    (``topic`` None: nobody listens, and report does nothing: no event is kept on the scheduler)."""
    token = _REPORTING.set(None if topic is None else (topic, index))
    try:
        return fn(*args)
    finally:
        _REPORTING.reset(token)


def _one_core_plugin():
    """A worker plugin that pins each local worker process to its own core before JAX starts in it
    (XLA's CPU thread pool follows the process's CPU affinity; measured on 2 cores: a pinned
    simulate runs in 2.98 s where the unpinned one took 3.5 s with 1.7 cores busy, so two
    unpinned workers would fight over both cores)."""
    from distributed import WorkerPlugin

    class OneCore(WorkerPlugin):
        name = "ionspike-one-core"

        def setup(self, worker):
            if not hasattr(os, "sched_setaffinity"):
                return
            cpus = sorted(os.sched_getaffinity(0))
            try:
                index = int(worker.name)
            except (TypeError, ValueError):
                return
            os.sched_setaffinity(0, {cpus[index % len(cpus)]})

    return OneCore()


@dataclass
class Runner:
    """A Dask client for the duration of a ``with`` block.

    ``scheduler``: an address (``tcp://HOST:PORT``) of a running scheduler, or None for the
    environment's ``DASK_SCHEDULER_ADDRESS`` or else a local cluster of ``workers`` processes
    (default: one per core)."""

    scheduler: str | None = None
    workers: int | None = None
    timeout: float = 20.0
    client: Any = None
    cluster: Any = None

    def __enter__(self) -> "Runner":
        from distributed import Client, LocalCluster

        address = self.scheduler or os.environ.get(SCHEDULER_ENV) or None
        if address is not None:
            if not isinstance(address, str) or ":" not in address:
                raise ParameterError(f"--scheduler {address!r}: allowed an address such as tcp://127.0.0.1:8786")
            try:
                self.client = Client(address, timeout=f"{self.timeout}s")
            except (OSError, TimeoutError) as exc:
                raise ParameterError(f"--scheduler {address!r} is not reachable within {self.timeout:g} s: {exc}") \
                    from None
        else:
            n = self.workers if self.workers is not None else (os.cpu_count() or 1)
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
                raise ParameterError(f"--workers {n!r} is out of range: allowed integers 1..1024")
            env = dict(WORKER_ENV)
            for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
                if name in os.environ:
                    env[name] = os.environ[name]
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                        env=env, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
            self.client.register_plugin(_one_core_plugin())
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    @property
    def dashboard(self) -> str | None:
        try:
            return self.client.dashboard_link
        except Exception:  # noqa: BLE001 -- no dashboard (bokeh missing): nothing to print
            return None

    def run(self, fn: Callable, tasks: Iterable, *, on_result: Callable[[Any, Any], None],
            on_error: Callable[[Any, BaseException], None], on_event: Callable[[Any, Any], None] | None = None,
            args: tuple = ()) -> None:
        """Submit ``fn(*args, task)`` for every task; call ``on_result(task, result)`` (in this
        process, one at a time, in completion order) or ``on_error(task, exception)``, and
        ``on_event(task, message)`` (in this thread too) for every :func:`report` of a running
        task, before its ``on_result``."""
        from distributed import as_completed

        tasks = list(tasks)
        topic = None if on_event is None else f"ionspike-{uuid.uuid4().hex}"
        events: queue.SimpleQueue = queue.SimpleQueue()
        if on_event is not None:     # subscribed before anything is submitted: the scheduler sees it first
            self.client.subscribe_topic(topic, lambda event: events.put(event[1]))

        def drain():
            while True:
                try:
                    index, message = events.get_nowait()
                except queue.Empty:
                    return
                on_event(tasks[index], message)

        # hash=False: a key of this call's own (equal data scattered by an earlier run() would share its
        # key, and that run releasing it cancelled this run's tasks: 'cancelled 4 times')
        shared = [tuple(self.client.scatter(a, broadcast=True, hash=False) for a in args)]
        futures, resubmitted = {}, {}

        def submit(index):
            fut = self.client.submit(_reporting, topic, index, fn, *shared[0], tasks[index], pure=False)
            futures[fut] = index
            return fut

        pending = as_completed([submit(i) for i in range(len(tasks))])
        try:
            while not pending.is_empty():
                ready = pending.next_batch(block=on_event is None)
                if on_event is not None:
                    # a task's events travel ahead of its result on the worker's stream: taken after
                    # the ready futures, every event of a finished task is in the queue by now
                    drain()
                    if not ready:
                        time.sleep(POLL_S)
                for fut in ready:
                    index = futures.pop(fut)
                    if fut.status == "cancelled":
                        # the scheduler can drop a task whose worker died mid-run ("already forgotten")
                        # instead of rerunning it (seen with a SIGKILLed worker under load): submit it
                        # again, a bounded number of times
                        tries = resubmitted.get(index, 0) + 1
                        if tries > CANCELLED_RETRIES:
                            on_error(tasks[index], RuntimeError(f"the cluster cancelled this task {tries} times"))
                        else:
                            resubmitted[index] = tries
                            # ... and its arguments with it, when they died with that worker: scattered
                            # while it was the only one (an external cluster whose workers are still
                            # joining), they had no other copy, and every resubmission was cancelled too
                            if any(f.status != "finished" for f in shared[0]):
                                shared[0] = tuple(self.client.scatter(a, broadcast=True, hash=False) for a in args)
                            pending.add(submit(index))
                    elif fut.status == "error":
                        on_error(tasks[index], fut.exception())
                    else:
                        on_result(tasks[index], fut.result())
                    fut.release()
        finally:
            if on_event is not None:
                self.client.unsubscribe_topic(topic)
