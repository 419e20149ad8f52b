"""Video in and out through the ffmpeg binary: probe, stream frames, encode H.264 with audio.

`read` and `write` (OpenCV, NumPy) are imported when first used: folder discovery and the output
rules need only `probe`, and importing the others cost 0.1 s before `batch` printed its first line.
"""

from fer_video.video.probe import MediaInfo, probe  # light: no OpenCV, no NumPy; and the name
# `probe` must be the function, not the submodule of that name

_LATER = {"DecodeStats": "read", "Frame": "read", "read_frames": "read", "VideoWriter": "write"}

__all__ = ["DecodeStats", "Frame", "MediaInfo", "VideoWriter", "probe", "read_frames"]


def __getattr__(name: str):
    if name not in _LATER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_LATER[name]}"), name)
    globals()[name] = value
    return value
