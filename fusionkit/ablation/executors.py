"""Executors: where a study's runs execute. Each yields the runs' records as they finish (in any order).

- ``local``, 1 worker: sequentially in this process (the only mode that reports each run's own stages);
- ``local``, N workers: N spawned processes (``spawn``: no forked torch state), each with its share of the cores;
- ``dask``: a ``dask.distributed`` client, on a scheduler address or a local cluster started for the study.

A run that an executor loses (a worker process killed, a Dask worker gone) is yielded as a failed record; the
study goes on. Interrupting the consumer (an exception) cancels the runs not yet started.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

from ..errors import RunError
from .worker import RunTask, failed_record, init_worker, run_task


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def per_worker_threads(workers: int, threads: int | None) -> int:
    return threads or max(1, cores() // max(1, workers))


def run_local(tasks: Sequence[RunTask], workers: int = 1, threads: int | None = None,
              run_progress=None) -> Iterator[dict]:
    if workers <= 1:
        for t in tasks:
            yield run_task(t if threads is None else _with_threads(t, threads), run_progress)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    n = per_worker_threads(workers, threads)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=init_worker,
                               initargs=(n,))
    try:
        futures = {pool.submit(run_task, _with_threads(t, n)): t for t in tasks}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # the worker process died (killed, out of memory)
                yield failed_record(futures[fut], f"{type(exc).__name__}: the worker process was lost ({exc})")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_dask(tasks: Sequence[RunTask], scheduler: str | None = None, workers: int = 1, threads: int | None = None,
             client=None) -> Iterator[dict]:
    """Submit every run to a Dask cluster. ``client``: an existing ``distributed.Client`` (left open);
    ``scheduler``: its address; neither: a ``LocalCluster`` of ``workers`` single-threaded processes."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise RunError(f"the dask executor needs dask.distributed ({exc})",
                       "install it: pip install 'fusionkit[dask]' (or use --executor local)") from exc
    own_client = own_cluster = None
    if client is None:
        if scheduler:
            try:
                client = own_client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise RunError(f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                               "start it with `dask scheduler` and check the address and port (default 8786), "
                               "or drop --scheduler to run a local cluster") from exc
            n = threads
        else:
            own_cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
            client = own_client = Client(own_cluster)
            n = per_worker_threads(workers, threads)
    else:
        n = threads
    futures = {}
    try:
        for t in tasks:
            futures[client.submit(run_task, _with_threads(t, n), pure=False)] = t
        for fut in as_completed(list(futures)):
            try:
                yield fut.result()
            except Exception as exc:  # a lost worker, or fusionkit missing on it
                yield failed_record(futures[fut], f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'run lost'}")
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def _with_threads(task: RunTask, threads: int | None) -> RunTask:
    if threads is None or task.threads == threads:
        return task
    from dataclasses import replace

    return replace(task, threads=threads)
