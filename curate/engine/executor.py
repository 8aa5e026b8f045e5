"""One small interface for parallel work: `Executor.map(fn, items)` with a progress bar.

The local engine uses a process pool (forkserver on Linux: workers start from a clean interpreter
and never inherit torch, kaggle, fiftyone or ray from the parent). With one worker, work runs in-process.
Results always come back in input order, so outputs never depend on the worker count.
The Ray engine (curate.engine.ray_engine, imported only when asked for) has the same `map` signature;
`Engine` names which one runs and with what.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from curate.core.errors import CurateError, InputError
from curate.core.lazy import lazy
from curate.engine import shared

ray_engine = lazy("curate.engine.ray_engine")  # Ray: only for --engine ray

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

_console = Console(stderr=True)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def progress_bar(quiet: bool = False) -> Progress:
    """The one progress bar style of curate (stderr; silent with --quiet). Where stderr is not a terminal
    (CI logs, files) each task leaves one plain line when it ends: `hashing 21/21 images 0:00:03`."""
    live = _console.is_interactive
    columns = [TextColumn("[bold]{task.description}" if live else "{task.description}")]
    columns += [BarColumn()] if live else []
    columns += [MofNCompleteColumn(), TextColumn("{task.fields[unit]}"), TimeElapsedColumn()]
    columns += [TimeRemainingColumn()] if live else []
    return Progress(*columns, console=_console, disable=quiet, transient=False)


BLAS_THREADS = "OPENBLAS_NUM_THREADS"  # numpy's BLAS (torch's MKL and OpenMP threads are not touched)


def one_blas_thread() -> None:
    """Keep this process's (and its children's) OpenBLAS to one thread, unless the user set it: a command
    runs a pool of one worker per core, and idle OpenBLAS threads spin on those cores (measured: a cold
    dedupe of 8,000 files on 2 workers, 8.6 -> 8.0 core-seconds, 4.76 -> 4.49 s). Takes effect where
    numpy is not loaded yet: the CLI calls it first thing; the pool's fork server starts with it."""
    os.environ.setdefault(BLAS_THREADS, "1")


def _init_worker() -> None:
    import cv2
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    # one worker per core: BLAS threads inside each worker would fight over the same cores (measured: a
    # dedupe hashing pass 2.8x slower on 2 workers with 112-px matrix products)
    threadpool_limits(1)
    # OpenCV's thread pool likewise: on small images its threads cost more CPU than they save (a template
    # match at 64 px: 59 us of CPU for 34 us of wall time on 2 threads)
    cv2.setNumThreads(1)


class Executor:
    """What every engine's executor offers: `map` (ordered results, a progress bar) and `share` (a payload
    sent once, curate.engine.shared). An engine gives `_results(fn, items, sizes, advance)`, the results
    in input order, calling `advance(size)` as items finish; one that can pull items as workers free up
    (`streams`) gives `_iter(fn, items, stream=True)` too."""

    workers: int
    quiet: bool
    streams = False

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Iterable,
        *,
        desc: str = "working",
        units: Callable[[Any], int] | None = None,
        unit: str = "items",
        stream: bool = False,
        total: int | None = None,
    ) -> Iterator:
        """Apply picklable `fn` to each item, yielding results in input order with a progress bar.

        `units(item)` sizes each item (e.g. boxes in a shard) so the bar counts real work. With `stream`,
        `items` (a generator) is pulled only as workers free up, so the caller's work that produces the
        items overlaps theirs, where the engine streams (the bar's total is `total` units when the caller
        knows it, else ?); otherwise the items are listed first.
        """
        if stream and self.streams:
            sizes: deque = deque()

            def pulled():
                for it in items:
                    sizes.append(units(it) if units else 1)
                    yield it

            with progress_bar(self.quiet) as bar:
                task = bar.add_task(desc, total=total, unit=unit)
                for result in self._iter(fn, pulled(), stream=True):
                    bar.advance(task, sizes.popleft())
                    yield result
            return
        items = list(items)
        sizes_list = [units(it) if units else 1 for it in items]
        with progress_bar(self.quiet) as bar:
            task = bar.add_task(desc, total=sum(sizes_list), unit=unit)
            yield from self._results(fn, items, sizes_list, lambda n: bar.advance(task, n))


class LocalExecutor(Executor):
    name = "local"
    streams = True

    def __init__(self, workers: int | None = None, quiet: bool = False):
        self.workers = default_workers() if not workers or workers < 1 else int(workers)
        self.quiet = quiet

    def share(self, obj: Any):
        """A payload every task of the next maps reads with `.get()` (curate.engine.shared); a context
        manager. With one worker the object itself, else a temp file each worker process loads once."""
        return shared.Inline(obj) if self.workers == 1 else shared.InFile(obj)

    def prestart(self, module: str, *more: str) -> None:
        """Start the fork server now, importing `module` (what the workers will run) and `more` modules
        they will need in the background while this process does other work (reading a CSV, planning);
        the pool then starts in ~0.1 s, and no worker imports those itself."""
        if self.workers > 1:
            _context(module, more)

    def _iter(self, fn: Callable, items: Iterable, stream: bool = False) -> Iterator:
        if self.workers == 1 or (not stream and len(items) <= 1):
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):  # one worker, one core, as in the pool (see _init_worker)
                yield from map(fn, items)
            return
        from concurrent.futures.process import BrokenProcessPool  # here: a one-process run never imports it

        n = self.workers if stream else min(self.workers, len(items))
        window = 2 * n  # bounded in flight: memory stays flat however many items there are
        pool = _pool(self.workers, getattr(fn, "__module__", "curate"))
        pending: deque = deque()
        finished = False
        try:
            it = iter(items)
            for item in it:
                pending.append(pool.submit(_task, fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
            finished = True
        except BrokenProcessPool as e:
            raise CurateError("a worker process died (out of memory?); re-run to resume, "
                              "or use fewer --workers") from e
        finally:
            for f in pending:
                f.cancel()
            if not finished:  # Ctrl-C, an error or an abandoned generator: don't wait for the running items
                _POOLS.pop(self.workers, None)
                _terminate(pool)

    def _results(self, fn: Callable, items: list, sizes: list[int], advance: Callable[[int], None]) -> Iterator:
        for size, result in zip(sizes, self._iter(fn, items), strict=True):
            advance(size)
            yield result


_POOLS: dict[int, ProcessPoolExecutor] = {}  # worker count -> the pool every map of this process uses


@atexit.register
def _drop_pools() -> None:
    """Let the kept pools go while the interpreter is whole: one collected during its teardown has its
    manager's callback fail ("Exception ignored in ... weakref_cb") on stderr."""
    for pool in _POOLS.values():
        pool.shutdown(wait=False)
    _POOLS.clear()


def _pool(workers: int, module: str) -> ProcessPoolExecutor:
    """The process's pool of `workers` workers, started on first use (from a fork server that preloads
    `module`) and kept for the next maps: a command's stages (hashing, search, verification) share one
    pool instead of starting one each (~0.1 s a map). Workers start as tasks need them; the pool ends
    with the process, or at once when a map fails or is interrupted."""
    from concurrent.futures import ProcessPoolExecutor

    pool = _POOLS.get(workers)
    if pool is None or getattr(pool, "_broken", False) or getattr(pool, "_shutdown_thread", False):
        pool = _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=_context(module), initializer=_init_worker)
    return pool


def _task(fn: Callable, item: Any) -> Any:
    """One task in a worker: `fn(item)`, after dropping payloads of maps that have ended (a kept pool's
    workers would otherwise hold the last one until the next payload comes)."""
    shared.drop_ended()
    return fn(item)


def _context(module: str, more: tuple[str, ...] = ()):
    """The multiprocessing context of the pool: on Linux a fork server that has imported `module` (workers
    fork from it pre-imported, in milliseconds, and never inherit this process's torch, threads or locks)."""
    import multiprocessing as mp
    from multiprocessing import forkserver

    if not sys.platform.startswith("linux"):
        return mp.get_context("spawn")

    ctx = mp.get_context("forkserver")
    # "__main__": a console script's imports (typer, rich) are loaded once in the server, not per worker
    # curate.engine.warm: set-up that every worker would otherwise pay itself (OpenCV's tables)
    ctx.set_forkserver_preload(["__main__", module, "curate.engine.warm", *more])  # a server started earlier keeps its preloads
    user = os.environ.get(BLAS_THREADS)
    one_blas_thread()  # the server (and so every worker) is started with it
    try:
        forkserver.ensure_running()  # returns at once; the server imports `module` in the background
    finally:
        if user is None:  # this process (an API caller's) keeps its own setting
            os.environ.pop(BLAS_THREADS, None)
    return ctx


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: waiting would finish every running (and queued) item first, minutes for big shards.
    Workers ignore SIGINT, so they are terminated; every stage writes atomically or marker-last."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


ENGINE_NAMES = ("local", "ray")


@dataclass(frozen=True)
class Engine:
    """Where work runs: `local` (a process pool of `workers`; None: one per core) or `ray` (`address`:
    "auto" or "ray://HOST:PORT"; None: a local cluster, or the job's cluster under `ray job submit`).
    The CLI builds one from --engine, --workers and --ray-address and passes it to every API that runs
    work; the APIs still take a plain name ("local", "ray") and their own `workers` too."""

    kind: str = "local"
    workers: int | None = None
    address: str | None = None

    def __post_init__(self):
        if self.kind not in ENGINE_NAMES:
            raise InputError(f"unknown engine '{self.kind}'", f"choose one of: {', '.join(ENGINE_NAMES)}")
        if self.address is not None and self.kind != "ray":
            raise InputError("--ray-address needs --engine ray", "add --engine ray, or drop --ray-address")

    @classmethod
    def of(cls, engine: Engine | str | None, workers: int | None = None) -> Engine:
        """`engine` as an Engine; `workers`, when given, replaces its worker count (a caller that runs a
        few items in one process passes workers=1)."""
        eng = engine if isinstance(engine, Engine) else cls(engine or "local")
        return replace(eng, workers=workers) if workers is not None else eng

    @property
    def local(self) -> bool:
        return self.kind == "local"


def is_local(engine: Engine | str | None) -> bool:
    return Engine.of(engine).local


def make_executor(engine: Engine | str = "local", workers: int | None = None, quiet: bool = False,
                  ray_address: str | None = None, **ray_options):
    """The executor of `engine` (an Engine, or its name with `workers` and `ray_address`). Ray is
    imported here only, when it is asked for; `ray_options` (max_retries, max_in_flight) go to it."""
    eng = Engine.of(engine, workers)
    if ray_address is not None:
        eng = replace(eng, address=ray_address) if eng.kind == "ray" else Engine(eng.kind, eng.workers, ray_address)
    if eng.local:
        return LocalExecutor(eng.workers, quiet)
    try:
        ray_executor = ray_engine.RayExecutor  # the first use imports Ray
    except ImportError as e:
        raise InputError("--engine ray needs Ray, which is not installed", "pip install 'curate[ray]'") from e
    return ray_executor(eng.workers, quiet, ray_address=eng.address, **ray_options)
