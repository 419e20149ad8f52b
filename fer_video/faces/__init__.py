"""Faces: the per-frame record, detectors, the tracker and the FER2013-style crop."""

from fer_video.faces.record import Faces

__all__ = ["Faces"]
