"""What the models take from the process: threads, and the standard error their C++ runtimes
write to."""

from __future__ import annotations

import contextlib
import os
import sys


def model_threads() -> int:
    """$FER_VIDEO_THREADS, else every core this process may run on. Several worker processes on
    one machine should split the cores between them (flows/runners.py does for local clusters):
    each model kernel spreading over all cores in every process only adds contention."""
    value = os.environ.get("FER_VIDEO_THREADS")
    return max(1, int(value)) if value else len(os.sched_getaffinity(0))


@contextlib.contextmanager
def quiet_stderr(enabled: bool = True, also_stdout: bool = False):
    """TensorFlow and LiteRT print C++ start-up chatter (CUDA probing, delegates) straight to
    file descriptor 2, and TensorFlow's converter its MLIR logs to 1 as well: hide them while
    they run. Python's own sys.stdout/sys.stderr are flushed first, so nothing of ours is lost."""
    if not enabled:
        yield
        return
    fds = (1, 2) if also_stdout else (2,)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    with open(os.devnull, "w") as devnull:
        for fd in fds:
            os.dup2(devnull.fileno(), fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)


def new_interpreter(input_shape: list[int], **options):
    """A LiteRT `Interpreter(**options)` with its input resized to `input_shape` and its tensors
    allocated, and that input's index. The first allocation in a process prints an INFO banner
    (the XNNPACK delegate) from C++, wherever it happens: a Dask worker, a scheduled run. Failures
    still raise, with their message."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_stderr():
        interpreter = Interpreter(**options)
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, input_shape)
        interpreter.allocate_tensors()
    return interpreter, index
