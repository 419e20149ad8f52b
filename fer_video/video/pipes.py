"""Raw frames through the pipes to and from ffmpeg: room for a few of them in each pipe, and
frames handed to the encoder without a copy.

A Linux pipe holds 64 KiB, a fifth of one 640x360 frame: with that, the decoder cannot decode
ahead while we detect, nor the encoder encode while we draw, so each side waits for the other
on every frame. A pipe of a few frames lets them overlap (about 0.4 s of a 20 s clip's
command, bench/peer_ratio.py). Where the system allows less, or has no such call (not Linux),
the pipe stays as it is: that is only slower.

A frame written to a pipe is copied into pages the kernel allocates for it, then copied out and
the pages freed by the reader. `FramePipe` gives the pipe references to the frame's own pages
instead (vmsplice(2)), so the reader's copy is the only one: about 0.4 s less CPU for the 30 s
720p clip's 900 frames in the command, on both sides of the pipe together, and 0.75 s alone
(bench/pipes.py; docs/benchmarks.md, 2026-12-07 22:03).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections import deque

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

FRAMES_AHEAD = 4
_MAX_SIZE = "/proc/sys/fs/pipe-max-size"  # what an unprivileged process may ask for (1 MiB by default)
_DEFAULT_SIZE = 1 << 16


def enlarge_pipe(pipe, frame_bytes: int, frames: int = FRAMES_AHEAD) -> int:
    """Ask for room for `frames` frames (at most the system's limit); the pipe's size after."""
    want = frame_bytes * frames
    try:
        with open(_MAX_SIZE) as f:
            want = min(want, int(f.read()))
        return fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, want)
    except (OSError, ValueError, AttributeError):
        return 0


def pipe_size(pipe) -> int:
    """Bytes the pipe holds at most (Linux's default where it cannot be asked)."""
    try:
        return fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ)
    except (OSError, AttributeError):
        return _DEFAULT_SIZE


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _load_vmsplice():
    """libc's vmsplice, or None where there is none (not Linux)."""
    try:
        call = ctypes.CDLL(None, use_errno=True).vmsplice
    except (OSError, AttributeError, TypeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_ulong, ctypes.c_uint]
    call.restype = ctypes.c_ssize_t
    return call


_vmsplice = _load_vmsplice()


class FramePipe:
    """Writes whole frames to `pipe` (a subprocess's stdin), by vmsplice where it can.

    The pipe then reads a frame's pages only when the reader takes them, so a frame must not
    change after it is written until then. The pipe holds at most its size in bytes, so the
    frames it can still be reading are the last `size // frame_bytes + 2`: this keeps those
    alive (their memory is not handed to a new array), and callers never write into a frame
    once it is written; `close` keeps them until the reader has exited. Raises BrokenPipeError
    when the reader has gone, as `write` does.
    """

    def __init__(self, pipe, frame_bytes: int, splice: bool = True):
        self._pipe = pipe
        self._fd = pipe.fileno()
        self._splice = _vmsplice if splice else None
        self._held: deque = deque(maxlen=pipe_size(pipe) // max(frame_bytes, 1) + 2)

    @property
    def splicing(self) -> bool:
        return self._splice is not None

    def write(self, frame: np.ndarray) -> None:
        data = np.ascontiguousarray(frame)
        if self._splice is not None and self._spliced(data):
            self._held.append(data)
        else:
            self._pipe.write(data.data)

    def _spliced(self, data: np.ndarray) -> bool:
        """`data` into the pipe by vmsplice; False, with nothing written, where vmsplice cannot
        take this file (not a pipe after all, or a kernel without it): plain writes from then on."""
        address, size, done = data.ctypes.data, data.nbytes, 0
        while done < size:
            vec = _IoVec(address + done, size - done)
            n = self._splice(self._fd, ctypes.byref(vec), 1, 0)
            if n >= 0:
                done += n
                continue
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code == errno.EPIPE:
                raise BrokenPipeError(code, os.strerror(code))
            if code in (errno.ENOSYS, errno.EINVAL, errno.EBADF) and done == 0:
                self._splice = None
                return False
            raise OSError(code, os.strerror(code))
        return True

    def close(self, reader=None) -> None:
        """Close this end of the pipe. What is still in the pipe still refers to the last frames:
        they are kept until `reader` (the process reading it) has exited."""
        try:
            self._pipe.close()
        finally:
            if reader is not None:
                reader.wait()
                self._held.clear()
