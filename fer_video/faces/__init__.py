"""Faces: the per-frame record, detectors, the tracker and the FER2013-style crop.

`Faces` is imported when first used: the detector registry (`fer_video.faces.detectors`) is read
by the command line's option checks, which load no numpy.
"""

__all__ = ["Faces"]


def __getattr__(name: str):
    if name == "Faces":
        from fer_video.faces.record import Faces

        return Faces
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
