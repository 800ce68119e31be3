"""Runners: claim trials from the store, run them on local processes or Ray, record outcomes.

Only the driver (this process) writes to the store; workers just return outcomes. A heartbeat
thread keeps the lease on the driver's running trials alive while they run. A trial lost with
its Ray node is sent again (``MAX_RESENDS``): it stays this driver's in the store, so it is
done once and counted once.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from petscale.errors import UserError
from petscale.study.integrity import result_problem
from petscale.study.store import LEASE_S, Owner, Store, trial_folder
from petscale.study.worker import DEFAULT_TRIAL, Outcome, execute, resolve, watch_parent

BACKENDS = ("local", "ray")
#: How many times a trial lost with its node (not by its own fault) is sent again.
MAX_RESENDS = 3


class Events:
    """What a runner reports as it goes; the CLI's progress bar overrides these no-ops."""

    def queued(self, counts: dict[str, int]) -> None:
        """The study's trials are in the store; ``counts`` per status before running."""

    def started(self, tid: str, config: dict[str, Any]) -> None:
        """A trial was claimed and sent to a worker."""

    def ended(self, tid: str, config: dict[str, Any], outcome: Outcome) -> None:
        """A trial finished (``outcome["ok"]``) or failed, and is recorded."""

    def resent(self, tid: str, config: dict[str, Any], error: str) -> None:
        """A trial in flight was lost with its node (``error`` says how) and was sent again."""


class Executor(Protocol):
    def submit(self, config: dict[str, Any], out: str | None) -> Any: ...

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        """Block until at least one handle is ready; return the ready ones with outcomes."""
        ...

    def close(self) -> None: ...


def run_study(
    folder: str | Path,
    configs: Iterable[Mapping[str, Any]],
    *,
    trial: str = DEFAULT_TRIAL,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float = 0.0,
    retry_failed: bool = False,
    lease_s: float = LEASE_S,
    events: Events | None = None,
    keep_deltas: bool = False,
) -> dict[str, int]:
    """Run every trial of ``configs`` not yet done in the store at ``folder``.

    ``workers`` trials run at once (default 1; on a Ray cluster, as many as its CPUs allow).
    With ``keep_deltas`` each trial writes its run folder to ``trial_folder(folder, id)``.
    Returns the counts per status over ``configs`` at the end.
    """
    check_run_options(backend, workers, cpus_per_trial, gpus_per_trial)
    resolve(trial)  # a wrong path fails here, once, not in every trial
    events = events or Events()
    with Store(folder, lease_s) as store:
        store.queue(configs)
        if retry_failed:
            store.retry_failed()
        counts = store.counts(wanted_only=True)
        events.queued(counts)
        if counts["pending"] == 0:
            return counts
        owner = Owner()
        executor: Executor
        if backend == "ray":
            executor, slots = _RayExecutor.start(
                trial, workers, address, cpus_per_trial, gpus_per_trial
            )
        else:
            slots = workers or 1
            threads = max(1, int(cpus_per_trial or _cores() // slots))
            executor = _Inline(trial, threads) if slots == 1 else _Pool(trial, slots, threads)
        try:
            with _heartbeat(store.folder, owner, lease_s):
                _drive(store, owner, executor, slots, events, keep_deltas)
        finally:
            store.release(owner)  # an interrupted run leaves its trials pending, not running
            executor.close()
        return store.counts(wanted_only=True)


def check_run_options(
    backend: str = "local",
    workers: int | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float = 0.0,
) -> None:
    """The runner's options, checked (the CLI calls it before it writes anything)."""
    if _launched_processes() > 1:
        raise UserError(
            "a study runs from one process, not under torchrun or accelerate launch (WORLD_SIZE "
            "is set): each process would drive the study and join every trial's process group; "
            "spread trials with --workers or --backend ray, or tune one trial over processes"
        )
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    cpus_ok = cpus_per_trial is None or (math.isfinite(cpus_per_trial) and cpus_per_trial > 0)
    if not cpus_ok or not (math.isfinite(gpus_per_trial) and gpus_per_trial >= 0):
        raise UserError("--cpus-per-trial must be a number > 0 and --gpus-per-trial one >= 0")


def _drive(
    store: Store,
    owner: Owner,
    executor: Executor,
    slots: int,
    events: Events,
    keep_deltas: bool,
) -> None:
    in_flight: dict[Any, tuple[str, dict[str, Any]]] = {}
    resends: Counter[str] = Counter()

    def send(tid: str, config: dict[str, Any]) -> None:
        out = str(trial_folder(store.folder, tid)) if keep_deltas else None
        in_flight[executor.submit(config, out)] = (tid, config)

    while True:
        while len(in_flight) < slots and (claimed := store.claim(owner)) is not None:
            events.started(*claimed)
            send(*claimed)
        if not in_flight:
            return
        for handle, outcome in executor.wait(list(in_flight)):
            tid, config = in_flight.pop(handle)
            if outcome.get("lost") and resends[tid] < MAX_RESENDS:
                # Not the trial's failure: it runs again, still claimed by this driver (the
                # store's row stays running, its attempts unchanged), and is recorded once.
                resends[tid] += 1
                events.resent(tid, config, outcome["error"])
                send(tid, config)
                continue
            problem = result_problem(outcome["result"]) if outcome["ok"] else None
            if problem is not None:  # recorded as done, it would stop every reader of the store
                outcome = {"ok": False, "error": f"StoreError: {problem}", "traceback": ""}
            if outcome["ok"]:
                store.finish(tid, outcome["result"])
            else:
                store.fail(tid, owner, outcome["error"], outcome["traceback"])
            events.ended(tid, config, outcome)


@contextmanager
def _heartbeat(folder: Path, owner: Owner, lease_s: float) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        with Store(folder, lease_s) as store:  # its own connection: sqlite3 is per thread
            while not stop.wait(lease_s / 4):
                store.heartbeat(owner)

    thread = threading.Thread(target=beat, daemon=True, name="petscale-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class _Inline:
    """One worker: run each trial in the driver itself (no process to start, easy to debug)."""

    def __init__(self, trial: str, threads: int) -> None:
        self.trial, self.threads = trial, threads
        self.ready: dict[int, Outcome] = {}
        self.handles = itertools.count()

    def submit(self, config: dict[str, Any], out: str | None) -> int:
        handle = next(self.handles)
        self.ready[handle] = execute(self.trial, config, self.threads, out)
        return handle

    def wait(self, handles: list[int]) -> list[tuple[int, Outcome]]:
        return [(h, self.ready.pop(h)) for h in handles]

    def close(self) -> None:
        pass


class _Pool:
    """N spawned worker processes, each given cores // N threads."""

    def __init__(self, trial: str, workers: int, threads: int) -> None:
        self.trial, self.workers, self.threads = trial, workers, threads
        self.pool = self._new_pool()

    def _new_pool(self) -> futures.ProcessPoolExecutor:
        return futures.ProcessPoolExecutor(
            self.workers,
            mp_context=get_context("spawn"),  # fork is unsafe once torch has started threads
            initializer=watch_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, config: dict[str, Any], out: str | None) -> futures.Future:
        try:
            return self.pool.submit(execute, self.trial, config, self.threads, out)
        except BrokenProcessPool:  # a worker died (out of memory?): start a fresh pool
            self.pool = self._new_pool()
            return self.pool.submit(execute, self.trial, config, self.threads, out)

    def wait(self, handles: list[futures.Future]) -> list[tuple[futures.Future, Outcome]]:
        done, _ = futures.wait(handles, return_when=futures.FIRST_COMPLETED)
        return [(f, _outcome(f.result)) for f in done]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class _RayExecutor:
    """Trials as Ray tasks with num_cpus / num_gpus each; results come back to the driver."""

    def __init__(self, ray: Any, trial: str, cpus: float, gpus: float, owns_ray: bool) -> None:
        self.ray, self.trial, self.owns_ray = ray, trial, owns_ray
        self.threads = max(1, int(cpus))
        # No Ray retries: they would also rerun a trial that crashed its own worker (out of
        # memory, a segfault), which is recorded as failed (--retry-failed reruns it). A trial
        # lost with its node comes back as "lost", and the driver sends it again.
        self.remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(execute)
        self.lost = (ray.exceptions.NodeDiedError,)

    @classmethod
    def start(
        cls,
        trial: str,
        workers: int | None,
        address: str | None,
        cpus: float | None,
        gpus: float,
    ) -> tuple[_RayExecutor, int]:
        ray = _import_ray()
        owns_ray = not ray.is_initialized()
        if address:
            cpus = cpus or 1.0
            if owns_ray:
                ray.init(address=address, logging_level=logging.WARNING)
            workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        else:
            workers = workers or 1
            cpus = cpus or max(1, _cores() // workers)
            if owns_ray:
                ray.init(
                    num_cpus=int(max(1.0, workers * cpus)),
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                )
        return cls(ray, trial, cpus, gpus, owns_ray), workers

    def submit(self, config: dict[str, Any], out: str | None) -> Any:
        return self.remote.remote(self.trial, config, self.threads, out)

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        return [(ref, _outcome(lambda ref=ref: self.ray.get(ref), self.lost)) for ref in ready]

    def close(self) -> None:
        if self.owns_ray:
            self.ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("the ray backend needs Ray: pip install 'petscale[ray]'") from None
    return ray


def _outcome(get: Callable[[], Outcome], lost: tuple[type[Exception], ...] = ()) -> Outcome:
    # `execute` catches the trial's own errors; what is left here is a dead worker or node.
    try:
        return get()
    except lost as e:  # the node went away under the trial: no fault of the trial's
        error = f"node lost: {type(e).__name__}: {e}"
        return {"ok": False, "lost": True, "error": error, "traceback": ""}
    except Exception as e:
        return {"ok": False, "error": f"worker died: {type(e).__name__}: {e}", "traceback": ""}


def _launched_processes() -> int:
    """WORLD_SIZE, as torchrun and accelerate launch set it for each process they start."""
    try:
        return int(os.environ.get("WORLD_SIZE") or 1)
    except ValueError:
        return 1


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
