"""Room for a few raw frames in the pipes to and from ffmpeg.

A Linux pipe holds 64 KiB, a fifth of one 640x360 frame: with that, the decoder cannot decode
ahead while we detect, nor the encoder encode while we draw, so each side waits for the other
on every frame. A pipe of a few frames lets them overlap (about 0.4 s of a 20 s clip's
command, bench/peer_ratio.py). Where the system allows less, or has no such call (not Linux),
the pipe stays as it is: that is only slower.
"""

from __future__ import annotations

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

FRAMES_AHEAD = 4
_MAX_SIZE = "/proc/sys/fs/pipe-max-size"  # what an unprivileged process may ask for (1 MiB by default)


def enlarge_pipe(pipe, frame_bytes: int, frames: int = FRAMES_AHEAD) -> int:
    """Ask for room for `frames` frames (at most the system's limit); the pipe's size after."""
    want = frame_bytes * frames
    try:
        with open(_MAX_SIZE) as f:
            want = min(want, int(f.read()))
        return fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, want)
    except (OSError, ValueError, AttributeError):
        return 0
