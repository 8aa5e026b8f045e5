"""The Ray engine: the same `map(fn, items)` contract as the local process pool, run as Ray tasks.

Imported only for `--engine ray` (by executor.make_executor; nothing registers on import).
Results come back in input order; at most `max_in_flight` tasks run at once and at most `window`
results wait for an earlier one, so the driver never holds millions of task refs. Failed tasks are
retried (`max_retries`): exceptions inside the task itself, crashed workers or lost nodes by Ray.
Ray's own logs stay out of curate's output: no dashboard, workers' logs not forwarded to the driver,
Ray loggers at ERROR. (Ray's raylet still prints a notice on stdout when a worker process dies.)
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import ray  # ImportError here becomes "pip install 'curate[ray]'" in make_executor

from curate.core.errors import CurateError, InputError
from curate.engine import shared
from curate.engine.executor import Executor, default_workers

_QUIET = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
          "configure_logging": True}


def connect(address: str | None = None, workers: int | None = None) -> None:
    """Join a running cluster (`address`: "auto" or "ray://HOST:PORT"), or start a local one with
    `workers` CPUs. A process already connected (e.g. a test session) is reused as it is. Inside
    `ray job submit`, RAY_ADDRESS names the job's cluster and is used when no address is given."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _probe(address)
    try:
        with warnings.catch_warnings():  # Ray Client's timeout warning repeats the error below
            warnings.simplefilter("ignore")
            if address:
                ray.init(address=address, **_QUIET)
            else:
                ray.init(num_cpus=workers or default_workers(), **_QUIET)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
        where = f"at {address}" if address else "locally"
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot start or reach a Ray cluster {where}: {msg}",
                         "start one with `ray start --head`, check --ray-address, or drop it "
                         "for a local cluster") from e


def _probe(address: str) -> None:
    """One quick TCP connect to HOST:PORT (GCS or Ray Client port) first: for a port where nothing
    listens, ray.init retries for about ten minutes before it gives up. "auto" is left to Ray."""
    host, sep, port = address.split("://", 1)[-1].split("/", 1)[0].rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as e:
        raise InputError(f"cannot reach a Ray cluster at {address}: {e.strerror or type(e).__name__}",
                         "check --ray-address (HOST:6379 for `ray start --head`, ray://HOST:10001 for "
                         "Ray Client) and that the cluster is up") from None


def _call(fn: Callable, item: Any, attempts: int) -> Any:
    """Exceptions are retried here, in the task: Ray's own exception retries print a traceback to the
    driver's stdout for each one. CurateError (bad input) is not retried: it would fail the same way."""
    for attempt in range(attempts):
        try:
            return fn(item)
        except CurateError:
            raise
        except Exception:
            if attempt == attempts - 1:
                raise


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, workers: int | None = None, quiet: bool = False, ray_address: str | None = None,
                 max_retries: int = 2, max_in_flight: int | None = None):
        connect(ray_address, workers)
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        self.workers = int(workers) if workers and workers > 0 else cpus
        self.quiet = quiet
        self.max_in_flight = max_in_flight or 2 * self.workers  # keeps every core busy between waits
        self.window = 4 * self.max_in_flight  # finished results held for an earlier, slower one
        self.peak_in_flight = 0
        self.attempts = max_retries + 1
        self._task = ray.remote(num_cpus=1, max_retries=max_retries)(_call)  # retries crashed workers

    def share(self, obj: Any):
        """A payload for every task (curate.engine.shared): the object itself, which map's ray.put of the
        function stores once in the object store when the tasks take it through functools.partial."""
        return shared.Inline(obj)

    def _results(self, fn: Callable, items: list, sizes: list[int], advance: Callable[[int], None]) -> Iterator:
        """`fn` of each item as Ray tasks (the function put in the object store once), results in input
        order; the bar advances as tasks finish, in any order. Items are listed first (no streaming)."""
        fn_ref = ray.put(fn) if items else None
        pending: dict[Any, int] = {}  # running ref -> index
        finished: dict[int, Any] = {}  # index -> finished ref not yet yielded
        submitted = yielded = 0
        try:
            while yielded < len(items):
                while (submitted < len(items) and len(pending) < self.max_in_flight
                       and submitted - yielded < self.window):
                    pending[self._task.remote(fn_ref, items[submitted], self.attempts)] = submitted
                    submitted += 1
                self.peak_in_flight = max(self.peak_in_flight, len(pending))
                if yielded in finished:
                    result = _get(finished.pop(yielded))
                    yielded += 1
                    yield result
                    continue
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    finished[i] = ref
                    advance(sizes[i])
        finally:  # an error, Ctrl-C or an abandoned generator: stop what still runs
            for ref in pending:
                ray.cancel(ref)


def _get(ref) -> Any:
    """The task's result; its own exception (after retries) is raised as itself, not wrapped."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from e
        raise
    except ray.exceptions.RayError as e:  # worker or node died past its retries, object lost …
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise CurateError(f"a Ray task failed: {type(e).__name__}: {msg}",
                          "re-run the same command to resume; see the Ray logs (ray logs) for the cause") from e

