"""Ctrl-C and SIGTERM: stop at once, clean up, exit 130 / 143 with one line.

The CLI installs `handle_signals()` first thing. A signal then

- raises `KeyboardInterrupt` (SIGINT) or `Terminated` (SIGTERM, a KeyboardInterrupt) in the main
  thread, which unwinds whatever it is doing (its `with` blocks remove their temp files);
- sets `CANCELLED`, which the pipeline's frame loops check (`check()`), so work in pool threads
  stops within a frame too;
- arms a deadline: whatever still runs after `GRACE` seconds (a thread stuck in a call, Prefect
  waiting on a server, an exit hook) is cut short by `hard_exit`, which removes the temp files
  still registered (`in_flight`), ends this process's child processes and exits.

`quiet_shutdown()` (after the command's work) keeps a signal from raising inside exit hooks,
where Python would print "Exception ignored in atexit callback" and exit 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

GRACE = 1.0  # seconds from the signal to the hard exit
EXIT_WAIT = 2.0  # seconds a second `hard_exit` waits on the first's before it exits itself
CANCELLED = threading.Event()
_partials: set[Path] = set()
_lock = threading.Lock()
_exiting = threading.Lock()
_received: list[int] = []
_raising = True


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C."""


class Cancelled(KeyboardInterrupt):
    """Raised in a pool thread once the command was interrupted."""


def exit_code() -> int:
    """128 + the first signal received (130 for SIGINT, 143 for SIGTERM); 130 if none."""
    return 128 + (_received[0] if _received else signal.SIGINT)


def check() -> None:
    """In long loops: stop once the command was interrupted."""
    if CANCELLED.is_set():
        raise Cancelled()


def wait(future) -> None:
    """Until `future` is done, for the main thread, waiting in 0.1 s slices. Python runs a
    signal's handler in the main thread, once that thread runs Python code again; the kernel may
    hand the signal to any thread, and then a main thread blocked in one long wait (a batch's
    jobs, a video's segments) would not stop until the work it waits on ends, seconds or minutes
    later. `future`: a `concurrent.futures.Future`, or anything else with `done()` (a Dask one)."""
    import time
    from concurrent.futures import Future
    from concurrent.futures import wait as wait_for

    while not future.done():
        if isinstance(future, Future):
            wait_for([future], timeout=0.1)
        else:
            time.sleep(0.1)


def result(future):
    """`future.result()` once `wait` has seen it done."""
    wait(future)
    return future.result()


@contextlib.contextmanager
def in_flight(path: str | Path):
    """While a temp file is being written: removed by `hard_exit` if the process is cut short."""
    path = Path(path)
    with _lock:
        _partials.add(path)
    try:
        yield path
    finally:
        with _lock:
            _partials.discard(path)


def _handler(signum, frame):
    first = not _received
    _received.append(signum)
    CANCELLED.set()
    if first:
        timer = threading.Timer(GRACE, hard_exit)
        timer.daemon = True
        timer.start()
    if _raising and first:
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def handle_signals() -> None:
    global _raising
    _raising = True
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def quiet_shutdown() -> None:
    """From here on a signal only arms the deadline: exit hooks run undisturbed or are cut short."""
    global _raising
    _raising = False


def interrupted() -> bool:
    return bool(_received)


def end_children(timeout: float = 0.3) -> None:
    """Terminate, then kill, every process this one started (ffmpeg, a Prefect server, Dask
    workers, scheduled runs), which a SIGTERM to this process alone does not reach."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with Dask
        return
    with contextlib.suppress(psutil.Error):
        children = psutil.Process().children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        _, alive = psutil.wait_procs(children, timeout=timeout)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(alive, timeout=timeout)


def remove_partials() -> None:
    with _lock:
        for path in list(_partials):
            with contextlib.suppress(OSError):
                path.unlink()
        _partials.clear()


_announced = False
_written = False


def announce(flush: bool = True) -> None:
    """The one line an interrupted command prints: once, after what stderr still buffers
    (`flush`), else as soon as it is called (a caller that gave up waiting on one stuck there)."""
    global _announced, _written
    if _announced and (flush or _written):
        return
    _announced = True
    if flush:
        with contextlib.suppress(BaseException):
            sys.stderr.flush()
    # Straight to the file descriptor: the interrupted thread may hold sys.stderr's lock.
    with contextlib.suppress(OSError):
        os.write(2, b"\nfer-video: error: interrupted\n" if _mid_line() else b"fer-video: error: interrupted\n")
    _written = True


def _mid_line() -> bool:
    """Whether a progress bar may have left the cursor mid-line on a terminal."""
    return sys.stderr.isatty() if sys.stderr else False


def hard_exit(code: int | None = None) -> None:
    """Clean up and leave now, without waiting on threads or running exit hooks. The first caller
    does it all; a second (the grace timer firing while the main thread gets here) waits on the
    first's exit, which would otherwise cut short its cleanup or its one line. It waits
    EXIT_WAIT at most: a first caller stuck (its stderr flush blocked on a full pipe) must not
    keep the process alive."""
    first = _exiting.acquire(timeout=EXIT_WAIT)  # never released: whoever holds it ends the process
    code = exit_code() if code is None else code
    with contextlib.suppress(BaseException):
        remove_partials()
    with contextlib.suppress(BaseException):
        end_children()
    announce(flush=first)
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
    os._exit(code)


def wait_for_threads(deadline: float) -> None:
    """Give pool threads until `deadline` (time.monotonic) to see CANCELLED and clean up."""
    import time

    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        thread.join(remaining)
