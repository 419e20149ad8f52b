"""Face detectors: frame in, `Faces` out, one module per backend (`blazeface`, `haar`), with the
box helpers they share in `geometry`."""

from __future__ import annotations

DETECTORS = ("blazeface", "haar")


def make_detector(name: str = "blazeface", **options):
    if name == "blazeface":
        from fer_video.faces.detectors.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(**options)
    if name == "haar":
        from fer_video.faces.detectors.haar import HaarDetector

        return HaarDetector(**{k: v for k, v in options.items() if k in ("min_face",)})  # no state to pace
    raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
