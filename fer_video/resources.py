"""What the models take from the process: threads, and the standard error their C++ runtimes
write to."""

from __future__ import annotations

import contextlib
import os
import sys
import threading


def model_threads(beside_encoder: bool = False) -> int:
    """$FER_VIDEO_THREADS, else every core this process may run on. Several worker processes on
    one machine should split the cores between them (flows/runners.py does for local clusters):
    each model kernel spreading over all cores in every process only adds contention.

    `beside_encoder`: the annotated video is drawn and encoded while the frames are analysed.
    The models then get the cores the codecs leave (`codec_threads`): drawing and encoding keep
    the others busy, and a model's thread pool spends more CPU handing each invoke around than
    its threads save. On 2 cores one thread each made the whole command on the 30 s 720p clip
    0.95-0.99x the time in five interleaved comparisons; without the MP4 it made it 1.05x the
    time (docs/benchmarks.md, 2026-12-08)."""
    value = os.environ.get("FER_VIDEO_THREADS")
    if value:
        return max(1, int(value))
    cores = len(os.sched_getaffinity(0))
    return max(1, cores - codec_threads()) if beside_encoder else cores


def codec_threads() -> int:
    """Threads of each ffmpeg decoder and x264 encoder that runs beside the analysis: half the
    cores this process may run on, at least one. The analysis keeps the cores busy, and frame
    threads then cost more CPU in handing frames around than they save: on 2 cores one thread
    each decodes and encodes a 720p clip several times faster than it is analysed, for 0.5 s less
    CPU in 30 s of video (docs/benchmarks.md, 2026-12-07)."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


CODEC_NICENESS = 10  # how far below the analysis `run_behind` puts an ffmpeg decoding or encoding beside it


def run_behind(pid: int, niceness: int = CODEC_NICENESS) -> None:
    """Lower the scheduling priority of process `pid`, every thread of it: an ffmpeg decoding for
    the analysis or encoding what it draws. Both have slack (frames wait in their pipes), and the
    analysis is what the command waits for: with all cores busy, the scheduler then gives the
    analysis the CPU first and the codecs the rest, instead of slicing it evenly (the 30 s 720p
    clip 3-5% faster on 2 cores, docs/benchmarks.md). Where the priority cannot be set (another
    system, a process already gone), nothing changes. `pid` is a process's: given a thread's id,
    /proc/<id>/task still lists every thread of its process (`thread_behind` is for one thread)."""
    if not hasattr(os, "setpriority"):
        return
    try:
        behind = _below_this(niceness)
        # Linux keeps a niceness per thread: the main thread's first, so threads it starts from
        # now on inherit it, then any already started.
        os.setpriority(os.PRIO_PROCESS, pid, behind)
        tasks = f"/proc/{pid}/task"
        for tid in os.listdir(tasks) if os.path.isdir(tasks) else []:
            os.setpriority(os.PRIO_PROCESS, int(tid), behind)
    except OSError:
        pass


def thread_behind(niceness: int = CODEC_NICENESS) -> None:
    """`run_behind` for the calling thread alone (Linux keeps a niceness per thread): a thread
    that decodes in this process, as an ffmpeg process would beside the analysis."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _below_this(niceness))
    except OSError:
        pass


def _below_this(niceness: int) -> int:
    """`niceness` steps below the calling thread's priority, however nice it is already."""
    return min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)


_quiet = threading.Lock()
_quiet_depth = {1: 0, 2: 0}  # threads inside quiet_stderr hiding each descriptor
_saved: dict[int, int] = {}  # the descriptor's real target while hidden


@contextlib.contextmanager
def quiet_stderr(enabled: bool = True, also_stdout: bool = False):
    """TensorFlow and LiteRT print C++ start-up chatter (CUDA probing, delegates) straight to
    file descriptor 2, and TensorFlow's converter its MLIR logs to 1 as well: hide them while
    they run. Python's own sys.stdout/sys.stderr are flushed first, so nothing of ours is lost.
    Threads share the descriptors: the first to enter hides one and the last to leave brings it
    back (two threads each saving and restoring it in turn left it on /dev/null for good, and a
    batch's per-input lines went missing)."""
    if not enabled:
        yield
        return
    fds = (1, 2) if also_stdout else (2,)
    with _quiet:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in fds:
            if _quiet_depth[fd] == 0:
                _saved[fd] = os.dup(fd)
                with open(os.devnull, "w") as devnull:
                    os.dup2(devnull.fileno(), fd)
            _quiet_depth[fd] += 1
    try:
        yield
    finally:
        with _quiet:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd in fds:
                _quiet_depth[fd] -= 1
                if _quiet_depth[fd] == 0:
                    os.dup2(_saved[fd], fd)
                    os.close(_saved.pop(fd))


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
