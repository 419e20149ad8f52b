"""Face detectors: what the pipeline asks of one (`Detector`) and the registry of them (`DETECTORS`).

A detector is its backend module (`blazeface`, `haar`) plus one `DetectorSpec` in DETECTORS: its
name, how to make it, where the FER crop sits relative to its boxes, and whether its scores are
confidences that `keep`'s false-track filter can compare with `--min-score`. Every stage that
depends on the detector reads the spec (analysis makes it and crops with its geometry, keep
filters by its score policy, the CLI offers its name to `--detector`), so a new detector is a
module and one entry here.

Importing this module costs nothing (no numpy, no OpenCV): the CLI takes `--detector`'s choices
from DETECTORS before any work starts, and a backend is imported when its detector is made. The
helpers the backends share (weighted NMS, clipping, resizing) are in `geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    import numpy as np

    from fer_video.faces.record import Faces


class Detector(Protocol):
    """What the pipeline calls on a detector (`fer_video.pipeline.analyse`).

    A detector that scans on a schedule and looks ahead (BlazeFace) also has `slot(time) -> int`,
    the stretch of its scan schedule a timestamp falls in: analysis then holds the frames up to
    the next scan and passes the last of them as `ahead`. Without `slot`, `ahead` is never given.
    """

    name: str  # its key in DETECTORS; the timeline's `detector`, by which keep finds its score policy

    def __call__(self, image: np.ndarray, position: int | None = None, ahead: tuple | None = None,
                 time: float | None = None) -> Faces:
        """The faces in a BGR frame. `position`: the frame's place among analysed frames; `ahead`:
        a later frame of the same shot as (image, position, time); `time`: the frame's timestamp,
        seconds. A detector that keeps nothing from frame to frame ignores all three."""
        ...

    def reset(self) -> None:
        """Forget what earlier frames showed: the pipeline calls it at a shot cut."""
        ...


@dataclass(frozen=True)
class CropGeometry:
    """Where the FER2013-style crop sits relative to a detector's box (`fer_video.faces.align`)."""

    scale: float  # crop side / detector box width
    shift_y: float  # crop centre minus box centre, in box widths (negative: up)


@dataclass(frozen=True)
class ScorePolicy:
    """What a detector's scores can be used for."""

    # True: the scores are calibrated confidences, so keep drops a track whose peak score is under
    # `--min-score` (drawings, hands) or that is seen in too few frames (flickers). False: they are
    # on another scale, and every track is kept.
    filters_tracks: bool


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    # The options analysis passes: min_face, min_score (its candidate threshold, at most 0.5),
    # frame_rate (analysed frames per second, None for an image), threads (of each model invoke).
    # A factory drops the ones its detector has no use for.
    make: Callable[..., Detector]
    crop: CropGeometry
    score_policy: ScorePolicy


def _blazeface(**options) -> Detector:
    from fer_video.faces.detectors.blazeface import BlazeFaceDetector

    return BlazeFaceDetector(**options)


def _haar(**options) -> Detector:
    from fer_video.faces.detectors.haar import HaarDetector

    return HaarDetector(**{k: v for k, v in options.items() if k in ("min_face",)})  # no state to pace


# The crops were measured by running each detector on FER2013 training images, upscaled and padded
# so the detector has context (bench/fer_crop_geometry.py reproduces it). BlazeFace's boxes (from
# its short-range model) sit inside the face: the FER crop is 1.23x the box width, centred 0.09
# box widths above its centre (tests/test_fer_crop.py checks that this framing matches FER2013's
# best). Haar's box is nearly the FER crop itself: 1.03x, centred 0.01 widths above.
DETECTORS: dict[str, DetectorSpec] = {
    "blazeface": DetectorSpec("blazeface", _blazeface, CropGeometry(1.23, -0.09), ScorePolicy(filters_tracks=True)),
    # Haar's scores are squashed cascade margins, not confidences: --min-score means nothing there.
    "haar": DetectorSpec("haar", _haar, CropGeometry(1.03, -0.01), ScorePolicy(filters_tracks=False)),
}


def detector_spec(name: str) -> DetectorSpec:
    """The registry's entry for `name`; an unknown name is a ValueError that lists the known ones."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}") from None


def make_detector(name: str = "blazeface", **options) -> Detector:
    return detector_spec(name).make(**options)
