"""Load the next batches in a background thread of the training process while the model trains.

When the model trains on the CPU, the DataLoader runs in the training process (``train.workers: auto``
gives 0 workers there; ``runtime.performance.resolve_workers`` says why). Loading serially between
steps then costs the whole pipeline time on top of every step. A thread overlaps it: PIL's decoder and
torch's kernels release the GIL, so the loader thread fills the gaps the training threads leave (Python
dispatch, barriers, memory-bound kernels). Measured on the 2-core development box, the three timed in
alternating blocks in one run: end to end / model-only 0.81 loading serially between steps, 0.89 with two
worker processes, 0.91 with this thread (and 0.85 vs 0.94, serially vs the thread, in another run).

Why not torch's DataLoader: its workers are processes only. torchdata's ``nodes.Prefetcher`` does the
same, but the suite does not otherwise need torchdata.

Order is kept, so the batches and every random choice in them are exactly those of loading serially
(the pipeline draws from per-sample generators, never from the global RNG, which the training thread owns).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_END = object()  # the source is exhausted


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ThreadPrefetcher(Generic[T]):
    """Iterate ``source`` in a daemon thread, ``depth`` items ahead, applying ``transform`` there.

    An exception raised by the source (an unreadable image's ``DataError``) is raised again, unchanged, by
    the ``next`` that would have returned that item. ``close`` (or leaving a ``with`` block) stops the
    thread; call it before dropping the prefetcher, or the thread stays parked on a full queue.

    Args:
        source: the iterator to run ahead; the thread becomes its only consumer.
        depth: items kept ready (each is a whole batch, so memory grows by ``depth`` batches).
        transform: applied to each item in the thread (e.g. ``to_device`` on a CPU, which normalises).
    """

    DEPTH = 2  # default: one batch to take now, one being made

    def __init__(
        self, source: Iterator[Any], depth: int = DEPTH, transform: Callable[[Any], T] | None = None
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._fill, args=(source, transform), name="ssl_bench-loader", daemon=True
        )
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Wait for room, checking for ``close`` every 0.1 s; False once closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, source: Iterator[Any], transform: Callable[[Any], T] | None) -> None:
        try:
            for item in source:
                if not self._put(transform(item) if transform else item):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the consumer, who decides
            self._put(_Failure(e))
        finally:
            close = getattr(source, "close", None)  # a generator: release what it holds (a DataLoader)
            if close is not None:
                close()

    def __iter__(self) -> ThreadPrefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._stop.is_set():
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._stop.set()
            raise StopIteration
        if isinstance(item, _Failure):
            self._stop.set()
            raise item.error
        return item

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (it finishes the item in hand first) and drop what it had loaded."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout)

    def __enter__(self) -> ThreadPrefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
