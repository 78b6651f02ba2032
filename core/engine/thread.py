"""The engine: one long-lived thread that owns every MLX call.

MLX streams belong to the thread that made them, so all model work (load, generate, quantize, bench) is
sent here as a job. A job is a function taking a `JobContext`; it emits events through the context and
returns a result. Callers get a `Job` back: a future for the result, its own event queue, and `cancel()`.
Cancelling sets a flag that long loops check once per step (one decode step, one layer), and removes a
job that has not started yet.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import queue
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from ..errors import JobCancelled, TemperError
from .events import Cancelled, Event, Failed, Finished, Started, is_terminal

log = logging.getLogger(__name__)
T = TypeVar("T")
Listener = Callable[[Event], None]
_STOP = object()


class JobContext:
    """What a running job sees: its id, the cancel flag, a way to emit events, and the engine's state."""

    def __init__(self, job: Job[Any], engine: Engine):
        self.job = job
        self.engine = engine

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def cancelled(self) -> bool:
        return self.job.cancel_requested.is_set()

    def check(self) -> None:
        """Raise JobCancelled if a cancel was requested: call once per step of a long loop."""
        if self.cancelled:
            if self.job.resumable:
                raise JobCancelled("stopped: the app closed; resume it next time", resumable=True)
            raise JobCancelled()

    def emit(self, event: Event) -> None:
        self.engine._dispatch(self.job, event)

    @property
    def state(self) -> dict[str, Any]:
        """Objects that live on the engine thread between jobs (loaded models, caches)."""
        return self.engine.state


class Job(Generic[T]):
    def __init__(self, job_id: int, kind: str, fn: Callable[[JobContext], T]):
        self.id = job_id
        self.kind = kind
        self.fn = fn
        self.future: Future[T] = Future()
        self.cancel_requested = threading.Event()
        self.resumable = False
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def cancel(self, *, resumable: bool = False) -> None:
        self.resumable = self.resumable or resumable
        self.cancel_requested.set()

    def result(self, timeout: float | None = None) -> T:
        return self.future.result(timeout)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Yield this job's events until (and including) its terminal event."""
        while True:
            event = self._events.get(timeout=timeout)
            yield event
            if is_terminal(event):
                return

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind}>"


class Engine:
    """Owns the MLX thread. Thread-safe: submit from anywhere, listen from anywhere."""

    def __init__(self, name: str = "temper-engine"):
        from ..accel.kernel_cache import persist

        persist()                # MLX-CUDA's compiled kernels kept across reboots (before any MLX work)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._ids = itertools.count(1)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.state: dict[str, Any] = {}
        self.current: Job[Any] | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        # Stop and join at interpreter exit: a daemon thread killed mid-MLX-call can leave MLX's own
        # threads joinable, which aborts the process ("terminate called without an active exception").
        ref = weakref.ref(self)
        atexit.register(lambda: (engine := ref()) is not None and engine.shutdown(10.0))

    # -- public API -------------------------------------------------------------------------------------
    def submit(self, fn: Callable[[JobContext], T], *, kind: str = "job") -> Job[T]:
        job: Job[T] = Job(next(self._ids), kind, fn)
        self._queue.put(job)
        return job

    def run(self, fn: Callable[[JobContext], T], *, kind: str = "job", timeout: float | None = None) -> T:
        """Submit and wait: for scripts and tests that want the result, not the events."""
        return self.submit(fn, kind=kind).result(timeout)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event of every job (on the engine thread). Returns a remover."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def cancel_all(self, *, resumable: bool = False) -> None:
        """Cancel the running and queued jobs. `resumable`: the app is closing, so a recorded job stays open
        to be offered for resume next time (instead of being recorded as cancelled)."""
        if self.current is not None:
            self.current.cancel(resumable=resumable)
        pending: list[Any] = []
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for item in pending:
            if isinstance(item, Job):
                item.cancel(resumable=resumable)
            self._queue.put(item)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def is_engine_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def shutdown(self, timeout: float | None = 5.0) -> None:
        self.cancel_all()
        self._queue.put(_STOP)
        if self._abandoned:
            timeout = 0.0
        if not self.is_engine_thread():
            self._thread.join(timeout)

    def interrupt(self, grace: float) -> bool:
        """Cancel every job and wait up to `grace` seconds for the running one to stop (it stops at its next
        `ctx.check()`). Returns True if the engine is idle. If not, the caller is about to leave: exit
        handlers then stop waiting for this engine (the process ends through os._exit, core/exit.py)."""
        self.cancel_all()
        deadline = time.monotonic() + grace
        while self.current is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        idle = self.current is None
        self._abandoned = not idle
        return idle

    # -- engine thread ----------------------------------------------------------------------------------
    def _dispatch(self, job: Job[Any], event: Event) -> None:
        job._events.put(event)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not kill the engine
                log.exception("engine listener failed on %r", event)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            self._execute(item)

    def _execute(self, job: Job[Any]) -> None:
        if job.cancel_requested.is_set():
            job.future.set_exception(JobCancelled())
            self._dispatch(job, Cancelled(job.id))
            return
        self.current = job
        job.future.set_running_or_notify_cancel()
        self._dispatch(job, Started(job.id, job.kind))
        try:
            result = job.fn(JobContext(job, self))
        except JobCancelled as exc:
            job.future.set_exception(exc)
            self._dispatch(job, Cancelled(job.id, str(exc)))
        except TemperError as exc:
            job.future.set_exception(exc)
            self._dispatch(job, Failed(job.id, str(exc), type(exc).__name__))
        except Exception as exc:
            log.debug("job %s failed:\n%s", job, traceback.format_exc())
            job.future.set_exception(exc)
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            self._dispatch(job, Failed(job.id, message, type(exc).__name__))
        else:
            job.future.set_result(result)
            self._dispatch(job, Finished(job.id, result))
        finally:
            self.current = None


_default: Engine | None = None
_default_lock = threading.Lock()


def running_engine() -> Engine | None:
    """The process-wide engine if one was started (never starts one)."""
    return _default


def get_engine() -> Engine:
    """The process-wide engine (created on first use, stopped and joined at interpreter exit).

    Joining at exit matters: a daemon thread killed mid-MLX-call can leave MLX's own threads
    joinable, which aborts the process ("terminate called without an active exception")."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Engine()
        return _default
