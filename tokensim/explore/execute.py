"""Running many simulations: in this process, in local processes, or as Ray tasks.

A :class:`Job` is one compiled configuration and seed; :func:`run_job` simulates it and
returns the files of its result folder as text, made in a temporary folder of whatever
machine runs it, so the same function serves every executor and results flow back to the
caller, which caches them and writes them where they belong.

:func:`execute` takes the jobs, serves those already in the :class:`~tokensim.explore.cache.Cache`
from it, runs the others on an executor and hands every result to a callback as it arrives,
with a progress bar on a terminal. Results arrive in any order; callers index them, so the
tables they write do not depend on the executor or the number of processes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tokensim.explore.cache import Cache, run_key
from tokensim.perf.shared import note, notes_collected
from tokensim.progress import progress_bar


class ExecutorError(Exception):
    """An executor that cannot start (Ray missing, a cluster that does not answer)."""


@dataclass(frozen=True)
class Job:
    """One simulation: the lowered ``graph``, the ``seed`` (None: the workload's), and what
    its folder says about it (the spec's text, the ``--set`` values, whether to draw the
    page)."""

    graph: object
    seed: int | None = None
    spec_text: str | None = None
    overrides: tuple[str, ...] = ()
    page: bool = False
    key: str = field(default="", compare=False)

    def keyed(self) -> Job:
        from dataclasses import replace

        return replace(self, key=run_key(self.graph.spec, self.seed))


def run_job(job: Job) -> dict[str, str]:
    """Simulate ``job`` and return its folder's files (name -> text)."""
    from tokensim.metrics import summarize
    from tokensim.report import from_result, write, write_page
    from tokensim.sim.run import simulate

    result = simulate(job.graph, seed=job.seed)
    with tempfile.TemporaryDirectory(prefix="tokensim-") as tmp:
        write(
            result,
            tmp,
            summarize(result),
            graph=job.graph,
            spec_text=job.spec_text,
            overrides=list(job.overrides),
        )
        if job.page:
            write_page(tmp, from_result(tmp, result))
        return {p.name: p.read_text("utf-8") for p in sorted(Path(tmp).iterdir())}


def _indexed(item: tuple[int, Job]) -> tuple[int, dict[str, str], list[str]]:
    """Job ``item`` run: its index, its files and the notes it said (for the caller to say
    once, however many processes said them)."""
    with notes_collected() as said:
        files = run_job(item[1])
    return item[0], files, said


def _ignore_interrupt() -> None:
    # Ctrl-C reaches every process of the terminal's group: the workers leave it to the
    # parent, which stops them, so nothing is half-written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def cpus() -> int:
    """The CPUs this process may run on (fewer than the machine's under an affinity mask)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity masks on macOS and Windows
        return os.cpu_count() or 1


class Serial:
    """Every job in this process, one after another."""

    name = "serial"

    def run(
        self, jobs: Sequence[tuple[int, Job]]
    ) -> Iterator[tuple[int, dict[str, str], list[str]]]:
        for item in jobs:
            yield _indexed(item)


class Processes:
    """Jobs in ``jobs`` local worker processes (default: one per CPU)."""

    name = "local"

    def __init__(self, jobs: int | None = None):
        self.jobs = jobs or cpus()

    def run(
        self, jobs: Sequence[tuple[int, Job]]
    ) -> Iterator[tuple[int, dict[str, str], list[str]]]:
        if self.jobs == 1 or len(jobs) <= 1:
            yield from Serial().run(jobs)
            return
        if not _spawnable():
            print(
                "note: the main script is not a file (read from standard input?): worker "
                "processes could not start it, so the simulations run here, one at a time",
                file=sys.stderr,
            )
            yield from Serial().run(jobs)
            return
        import gc
        import multiprocessing

        # spawn: the workers are this process's own children, so joining the pool reaps
        # them (under forkserver they were the server's, and outlived the command as
        # zombies where nothing reaps orphans, as in a container)
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(min(self.jobs, len(jobs)), initializer=_ignore_interrupt)
        try:
            yield from pool.imap_unordered(_indexed, jobs, chunksize=1)
            pool.close()
        finally:
            pool.terminate()
            pool.join()
            del pool  # its semaphores are released (and unregistered) before the tracker stops
            gc.collect()
            _stop_resource_tracker()


def _spawnable() -> bool:
    """Whether a spawned worker can start: it imports the parent's main script again, which
    it cannot do when that script is no file (``python - < script``: its ``__file__`` is
    ``<stdin>``); the pool would then start and lose workers without end. An interactive
    session or ``python -c`` has no main file to import and spawns fine."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path is None or os.path.exists(path)


def _stop_resource_tracker() -> None:
    """Stop (and reap) the helper process multiprocessing starts beside a spawn pool; it
    would otherwise outlive the command as a zombie where nothing reaps orphans (PID 1 in
    a container). A later pool starts it again."""
    from multiprocessing import resource_tracker

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)  # CPython 3.11+
    if stop is not None:
        stop()


class Ray:
    """Jobs as Ray tasks on the cluster at ``address``, or on a local Ray started for the
    purpose (with ``jobs`` CPUs, default all) when no address is given. The workers must
    be able to import tokensim and read the files the spec reads (traces, cost tables)."""

    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorError("the Ray executor needs Ray: pip install 'tokensim[ray]'") from None
        self.address = address
        self.jobs = jobs

    def run(
        self, jobs: Sequence[tuple[int, Job]]
    ) -> Iterator[tuple[int, dict[str, str], list[str]]]:
        import ray

        started = not ray.is_initialized()
        if started:
            options = {"address": self.address} if self.address else {"num_cpus": self.jobs}
            try:
                ray.init(
                    **options,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = self.address or "a local Ray"
                raise ExecutorError(f"cannot start Ray on {where}: {err}") from None
        remote = ray.remote(num_cpus=1)(_indexed)
        pending = [remote.remote(item) for item in jobs]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as err:  # the task's own error, as is
                        cause = getattr(err, "cause", None)
                        raise (cause if isinstance(cause, Exception) else err) from None
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def executor(kind: str = "local", jobs: int | None = None, address: str | None = None):
    """The executor named ``kind``: 'local' (processes) or 'ray'."""
    if kind == "ray":
        return Ray(address, jobs)
    if address:
        raise ExecutorError("--address is for --executor ray")
    return Processes(jobs)


@dataclass
class Tally:
    """How many jobs ran and how many came from the cache."""

    ran: int = 0
    cached: int = 0


def execute(
    jobs: Sequence[Job],
    run_on,
    cache: Cache,
    on_result: Callable[[int, dict[str, str], bool], None],
    label: str = "runs",
    bar: bool = True,
    tally: Tally | None = None,
) -> Tally:
    """Run ``jobs`` (keyed) on the executor ``run_on``, serving cached ones from ``cache``;
    call ``on_result(index, files, cached)`` for each as it is ready, and count them in
    ``tally``. Every finished job is cached before the next is awaited, so an interrupted
    call loses only the jobs that were running."""
    tally = tally if tally is not None else Tally()
    todo = []
    progress = progress_bar(sys.stderr, label, "run") if bar else None
    finished = 0
    if progress is not None:
        progress(0, len(jobs))  # shown from the start, as the jobs' count
    try:
        for i, job in enumerate(jobs):
            files = cache.get(job.key)
            if files is None:
                todo.append((i, job))
                continue
            tally.cached += 1
            on_result(i, files, True)
            finished += 1
            if progress is not None:
                progress(finished, len(jobs))
        for i, files, said in run_on.run(todo) if todo else ():
            for message in said:
                note(message)
            cache.put(jobs[i].key, files)
            tally.ran += 1
            on_result(i, files, False)
            finished += 1
            if progress is not None:
                progress(finished, len(jobs))
    finally:
        if progress is not None:
            progress.close()
    return tally


def metrics_of(jobs, run_on, cache, bar, tally, label: str) -> list[dict]:
    """Every job's metrics, in order; ``label`` heads the progress bar (what is being
    tried)."""
    got: list[dict] = [{}] * len(jobs)

    def keep(j: int, files: dict[str, str], cached: bool) -> None:
        got[j] = json.loads(files["metrics.json"])

    execute(jobs, run_on, cache, keep, label=label, bar=bar, tally=tally)
    return got
