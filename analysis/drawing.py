"""Draw a report's plots on several cores: matplotlib is single-threaded and holds the GIL.

Each plot is a call `fn(*args)` that writes one file. In parallel mode with ≥ 2 cores the calls
run in worker processes forked from a forkserver that has imported matplotlib (and the main
script) once; `warm()` starts it early, so that import overlaps other work (a sweep warms it
before its report's imports and tables). Otherwise, or if the workers cannot start, the calls
run in this process, one after the other. A cold `analysis/report.py` gains nothing from it:
its server would first import the same modules the script itself is importing.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

# "__main__" too: the server imports the main script once instead of every worker (spawn semantics).
PRELOAD = ["__main__", "analysis.plots"]
MAX_WORKERS = 4


def _context():
    if (os.cpu_count() or 1) < 2 or "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    if not _main_is_safe():
        return None
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _main_is_safe() -> bool:
    """Whether the workers may import the main script: a new process re-imports it (spawn
    semantics), which runs an unguarded user script's top level again. Ours are guarded; a
    notebook or `python -m` has no script to re-run."""
    main = sys.modules["__main__"]
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:
        return True
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.isfile(path) and os.path.abspath(path).startswith(root + os.sep)


def warm() -> None:
    """Start the forkserver now (it imports in the background); harmless to repeat."""
    if _context() is not None:
        from multiprocessing import forkserver

        forkserver.ensure_running()


class Drawer:
    """Runs plot calls; as a context manager it waits for them and re-raises the first error."""

    def __init__(self, parallel: bool = False):
        ctx = _context() if parallel else None
        workers = min(MAX_WORKERS, os.cpu_count() or 1)
        self._pool = ProcessPoolExecutor(workers, mp_context=ctx) if ctx is not None else None
        self._jobs: list[tuple[Future | None, Callable, tuple]] = []
        self._broken = False  # a worker died: the rest is drawn here; the pool is still shut down

    def submit(self, fn: Callable, *args) -> None:
        future = None
        if self._pool is not None and not self._broken:
            try:
                future = self._pool.submit(fn, *args)
            except BrokenProcessPool:
                self._broken = True
        if future is None:
            fn(*args)
        self._jobs.append((future, fn, args))

    def __enter__(self) -> Drawer:
        return self

    def __exit__(self, exc_type, *_) -> None:
        try:
            if exc_type is None:  # after an error upstream nobody waits for the plots
                for future, fn, args in self._jobs:
                    if future is not None:
                        _result_or_rerun(future, fn, args)
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)


def _result_or_rerun(future: Future, fn: Callable, args: tuple) -> None:
    try:
        future.result()
    except BrokenProcessPool:  # a worker could not start (e.g. no main file to re-import): draw here
        fn(*args)
