"""The loader thread hands over what serial iteration would, raises what the source raised, and stops."""

from __future__ import annotations

import threading
import time

import pytest

from ssl_bench.data.prefetch import ThreadPrefetcher
from ssl_bench.errors import DataError


def test_items_arrive_in_order_transformed_in_the_loader_thread():
    seen_in: set[str] = set()

    def double(x: int) -> int:
        seen_in.add(threading.current_thread().name)
        return 2 * x

    with ThreadPrefetcher(iter(range(50)), depth=3, transform=double) as items:
        assert list(items) == [2 * i for i in range(50)]
    assert seen_in == {"ssl_bench-loader"}


def test_a_source_error_reaches_the_consumer_unchanged_after_the_good_items():
    def source():
        yield 1
        yield 2
        raise DataError("cannot read image /data/img05.jpg: truncated")

    items = ThreadPrefetcher(source())
    assert next(items) == 1 and next(items) == 2
    with pytest.raises(DataError, match="img05.jpg"):
        next(items)
    with pytest.raises(StopIteration):  # and stays stopped
        next(items)


def test_close_stops_the_thread_and_closes_the_source_generator():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    items = ThreadPrefetcher(endless(), depth=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    time.sleep(0.05)  # let the thread park on the full queue
    items.close()
    assert not items._thread.is_alive()
    assert closed.is_set()
    with pytest.raises(StopIteration):
        next(items)


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        ThreadPrefetcher(iter([]), depth=0)
