"""Local engine: the stage functions in this process, or in a pool of worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from imageconductor.curation.config import CurationConfig
from imageconductor.curation.inputs import InputItem
from imageconductor.curation.stages import Pass1Result, Pass2Result, analyse_input, annotate_clip


class LocalEngine:
    """Runs pass 1 and pass 2 with ``workers`` processes (1 = in this process). Yields results as they finish."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _map(self, fn: Callable[..., Any], jobs: Iterable[tuple]) -> Iterator[Any]:
        if self.workers == 1:
            for args in jobs:
                yield fn(*args)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        pending: set[Future] = set()
        job_iter = iter(jobs)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * self.workers:
                try:
                    args = next(job_iter)
                except StopIteration:
                    exhausted = True
                    break
                pending.add(self._pool.submit(fn, *args))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def run_pass1(self, items: Iterable[InputItem], config: CurationConfig) -> Iterator[Pass1Result]:
        yield from self._map(analyse_input, ((item, config) for item in items))

    def run_pass2(self, jobs: Iterable[tuple[str, bytes]], config: CurationConfig) -> Iterator[Pass2Result]:
        yield from self._map(annotate_clip, ((key, clip, config) for key, clip in jobs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
