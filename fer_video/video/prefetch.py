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


def prefetch(make_items: Callable[[], Iterator[T]], ahead: int = AHEAD, behind: bool = False) -> "Prefetched[T]":
    """The items of `make_items()`, produced in a worker thread up to `ahead` before they are
    used; the thread starts at once, so the first items are on their way while the caller gets
    ready for them (the analysis loads its models while ffmpeg starts). An exception the items
    raise is raised here, after the items before it, as a plain loop would. When the caller stops
    early (`close`, break, an exception, Ctrl-C) or drops it, the producer stops and closes its
    iterator in its own thread (a generator runs its clean-up there: `read_frames` ends its
    ffmpeg). `behind`: the thread runs at the codecs' lower priority (`thread_behind`), for items
    decoded in this process (`fer_video.video.libav`) rather than by an ffmpeg process."""
    return Prefetched(make_items, ahead, behind)


class Prefetched(Iterator[T]):
    def __init__(self, make_items: Callable[[], Iterator[T]], ahead: int, behind: bool = False):
        self._items: queue.Queue = queue.Queue(ahead)
        self._stop = threading.Event()  # set when the consumer is done: the producer stops
        # The worker holds the queue and the event, not this object: dropped, it is closed.
        self._worker = threading.Thread(target=_produce, args=(make_items, self._items, self._stop, behind),
                                        name="prefetch", daemon=True)
        self._worker.start()

    def __next__(self) -> T:
        if self._stop.is_set():
            raise StopIteration
        try:
            item = self._items.get()
        except BaseException:
            self.close()
            raise
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failed):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stop the producer and wait for it to close its iterator; safe to call again."""
        self._stop.set()
        if self._worker is not threading.current_thread():
            self._worker.join(timeout=10)

    def __del__(self) -> None:
        self.close()


def _put(items: queue.Queue, stop: threading.Event, item) -> bool:
    while not stop.is_set():
        try:
            items.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            pass
    return False


def _produce(make_items, items: queue.Queue, stop: threading.Event, behind: bool = False) -> None:
    iterator = None
    if behind:
        from fer_video.resources import thread_behind

        thread_behind()  # this thread only: it ends with the items
    try:
        iterator = make_items()
        for item in iterator:
            if not _put(items, stop, item):
                return
        _put(items, stop, _END)
    except BaseException as error:  # handed to the consumer, raised in its thread
        _put(items, stop, _Failed(error))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
