"""Finding an ffmpeg binary without configuration."""

from __future__ import annotations

import functools
import os
import shutil


@functools.cache
def ffmpeg_exe() -> str:
    """$FER_VIDEO_FFMPEG, else the binary imageio-ffmpeg installs, else ffmpeg on PATH.

    imageio-ffmpeg's build comes first because it is known to carry libx264 and aac; a system
    ffmpeg may lack them.
    """
    if os.environ.get("FER_VIDEO_FFMPEG"):
        return os.environ["FER_VIDEO_FFMPEG"]
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found:
            return found
    raise RuntimeError("no ffmpeg binary: install imageio-ffmpeg or put ffmpeg on PATH")


def ffmpeg_path(path: str | os.PathLike) -> str:
    """A local file's name as ffmpeg can only take it for that file.

    ffmpeg reads a leading `-` as an option and a leading `word:` as a protocol (`file:a.mp4`
    opens `a.mp4`, `concat:...` several files); an absolute path starts with `/`, which is
    neither.
    """
    return os.path.abspath(os.fspath(path))
