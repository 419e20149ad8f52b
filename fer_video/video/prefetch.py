"""Frames decoded ahead, in a thread, while the caller works on the previous ones.

Reading a frame from ffmpeg's pipe, converting it to BGR and the shot-cut histogram are all C
calls that release the GIL: done in a second thread they overlap with detection and drawing
instead of adding to them (about 0.5 s of a 20 s clip's command on 2 cores). At most `ahead`
items wait in the queue, so memory stays a few frames whatever the video's length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

AHEAD = 3
_END = object()
_POLL_S = 0.1  # how often a producer blocked on a full queue checks whether the consumer left


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(make_items: Callable[[], Iterator[T]], ahead: int = AHEAD) -> Iterator[T]:
    """The items of `make_items()`, produced in a worker thread up to `ahead` before they are
    used. An exception the items raise is raised here, after the items before it, as a plain
    loop would. When the caller stops early (break, an exception, Ctrl-C), the producer stops
    and closes its iterator in its own thread (a generator runs its clean-up there: `read_frames`
    ends its ffmpeg)."""
    items: queue.Queue = queue.Queue(ahead)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        iterator = make_items()
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # handed to the consumer, raised in its thread
            put(_Failed(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=10)
