"""Frames into ffmpeg's pipe by vmsplice (fer_video.video.pipes.FramePipe): the real ffmpeg binary
must receive every frame exactly as it was when written, even when the caller drops each frame
at once and its memory goes to the next one while the pipe still refers to it."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from fer_video.video.ffmpeg_binary import ffmpeg_exe
from fer_video.video import pipes
from fer_video.video.pipes import FramePipe, enlarge_pipe

WIDTH, HEIGHT = 160, 96  # 23 KB a frame: below malloc's mmap threshold, so a freed frame's memory is reused at once
FRAME_BYTES = WIDTH * HEIGHT * 3 // 2


def _raw_copy(out, delay_s: float = 0.0) -> subprocess.Popen:
    """ffmpeg copying raw I420 frames from its stdin to `out`, unchanged; it starts reading
    after `delay_s`, so the frames written meanwhile wait in the pipe."""
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "rawvideo",
            "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}", "-i", "pipe:", "-f", "rawvideo", str(out)]
    if delay_s:
        args = [sys.executable, "-c", f"import os, time, sys; time.sleep({delay_s}); os.execv(sys.argv[1], sys.argv[1:])",
                *args]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)


def _frame(i: int) -> np.ndarray:
    return np.full((HEIGHT * 3 // 2, WIDTH), i % 251, np.uint8)


def _written(frames_pipe_args, out, n: int, delay_s: float, room: int = 4) -> bytes:
    """What ffmpeg receives of `n` frames written through a FramePipe into a pipe with room for
    `room` of them, the reader starting after `delay_s`."""
    proc = _raw_copy(out, delay_s)
    enlarge_pipe(proc.stdin, FRAME_BYTES, frames=room)
    pipe = FramePipe(proc.stdin, FRAME_BYTES, **frames_pipe_args)
    for i in range(n):
        frame = np.empty((HEIGHT * 3 // 2, WIDTH), np.uint8)  # likely the memory of the frame dropped just before
        frame[:] = _frame(i)
        pipe.write(frame)
        del frame  # the caller keeps nothing
    # While the pipe is closed and ffmpeg reads what is left in it, this thread goes on making
    # frames, in the memory of the last ones written if the pipe let go of them too soon.
    closing = threading.Thread(target=pipe.close, args=(proc,))
    closing.start()
    while closing.is_alive():
        junk = [np.full((HEIGHT * 3 // 2, WIDTH), 255, np.uint8) for _ in range(8)]
        del junk
    closing.join()
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    return out.read_bytes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="vmsplice is Linux's; elsewhere frames are written")
def test_spliced_frames_reach_ffmpeg_as_written_though_the_caller_drops_them(tmp_path):
    expected = b"".join(_frame(i).tobytes() for i in range(120))
    assert pipes._vmsplice is not None  # libc has it here
    # The reader starts late: the first frames sit in the pipe by reference while new frames are
    # made in the memory of the dropped ones.
    assert _written({}, tmp_path / "spliced.yuv", 120, delay_s=0.5) == expected
    assert _written({"splice": False}, tmp_path / "written.yuv", 120, delay_s=0.0) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="vmsplice is Linux's; elsewhere frames are written")
def test_the_last_frames_stay_until_the_reader_has_read_them(tmp_path):
    """All 30 frames fit in the pipe and the reader starts only after it is closed: closing keeps
    them until ffmpeg has read them, while the program goes on allocating."""
    expected = b"".join(_frame(i).tobytes() for i in range(30))
    assert _written({}, tmp_path / "closed.yuv", 30, delay_s=0.5, room=30) == expected


def test_a_file_that_is_not_a_pipe_is_written_plainly(tmp_path):
    path = tmp_path / "frames.yuv"
    with open(path, "wb") as f:
        pipe = FramePipe(f, FRAME_BYTES)
        for i in range(3):
            pipe.write(_frame(i))
        assert not pipe.splicing  # vmsplice takes only pipes
    assert path.read_bytes() == b"".join(_frame(i).tobytes() for i in range(3))


def test_a_reader_that_has_gone_is_a_broken_pipe(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE)
    proc.wait(timeout=30)
    pipe = FramePipe(proc.stdin, FRAME_BYTES)
    with pytest.raises(BrokenPipeError):
        pipe.write(_frame(0))
    proc.stdin.close = lambda: None  # its buffer is empty; nothing to flush into the broken pipe
