"""The detector registry: a detector is one entry in `DETECTORS`, and every stage that depends on
the detector (making it, the FER crop, keep's false-track filter, the CLI's choices, analysis)
finds it there. The fake detector here is registered by this file alone."""

from types import SimpleNamespace

import numpy as np
import pytest

from fer_video.faces.align import crop_geometry, fer_crops
from fer_video.faces.detectors import DETECTORS, CropGeometry, DetectorSpec, ScorePolicy, detector_spec, make_detector
from fer_video.faces.record import N_KEYPOINTS, Faces
from fer_video.jobs import AnnotateOptions
from fer_video.pipeline.analyse import Analysis
from fer_video.pipeline.keep import keep_faces

UNKNOWN = "unknown detector 'yunet'; choose from blazeface, haar"


class CentreBox:
    """Finds one face in the middle of every frame, scored 0.3: under any --min-score."""

    name = "centre"

    def __init__(self, min_face: int = 40, **_):
        self.min_face = min_face
        self.resets = 0

    def __call__(self, image, position=None, ahead=None, time=None) -> Faces:
        height, width = image.shape[:2]
        side = height / 2
        box = [[(width - side) / 2, (height - side) / 2, side, side]]
        return Faces(np.array(box, np.float32), np.array([0.3], np.float32),
                     np.full((1, N_KEYPOINTS, 2), np.nan, np.float32))

    def reset(self) -> None:
        self.resets += 1


def register(monkeypatch, filters_tracks: bool) -> DetectorSpec:
    spec = DetectorSpec("centre", CentreBox, CropGeometry(1.5, 0.2), ScorePolicy(filters_tracks=filters_tracks))
    monkeypatch.setitem(DETECTORS, "centre", spec)
    return spec


def tracks(detector: str) -> Analysis:
    """Two tracks of three analysed frames each, peaking at 0.3 and 0.9."""
    faces = Faces(np.zeros((6, 4)), np.array([0.3, 0.2, 0.3, 0.9, 0.8, 0.9], np.float32), np.zeros((6, N_KEYPOINTS, 2)),
                  track_ids=[1, 1, 1, 2, 2, 2], frame_index=[0, 1, 2] * 2)
    return Analysis(SimpleNamespace(is_image=False), "clip", faces, frames_decoded=3, detector=detector)


def test_a_registered_detector_is_made_and_cropped_by_its_entry(monkeypatch):
    spec = register(monkeypatch, filters_tracks=True)
    detector = make_detector("centre", min_face=20, min_score=0.5, frame_rate=25.0)  # what analysis passes
    assert isinstance(detector, CentreBox) and detector.min_face == 20
    assert detector_spec("centre") is spec and crop_geometry("centre") == CropGeometry(1.5, 0.2)

    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    faces = detector(image)
    own, blazeface = (fer_crops(image, faces, crop_geometry(name)) for name in ("centre", "blazeface"))
    assert own.shape == (1, 48, 48) and not np.array_equal(own, blazeface)


@pytest.mark.parametrize("filters_tracks, kept", [(True, [1]), (False, [1, 2])])
def test_keep_filters_by_the_registered_score_policy(monkeypatch, filters_tracks, kept):
    register(monkeypatch, filters_tracks)
    faces, ids = keep_faces(tracks("centre"), AnnotateOptions(min_score=0.7))
    assert sorted(set(faces.track_ids)) == kept  # filtered: the 0.9 track only, renumbered 1
    assert ids == ({2: 1} if filters_tracks else {1: 1, 2: 2})


def test_the_shipped_detectors_score_policies():
    """BlazeFace's scores are confidences; Haar's are squashed cascade margins, so its tracks stay."""
    assert sorted(set(keep_faces(tracks("blazeface"), AnnotateOptions(min_score=0.7))[0].track_ids)) == [1]
    assert sorted(set(keep_faces(tracks("haar"), AnnotateOptions(min_score=0.7))[0].track_ids)) == [1, 2]


def test_a_registered_detector_is_a_cli_choice(monkeypatch):
    from fer_video.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["annotate", "clip.mp4", "--detector", "centre"])
    register(monkeypatch, filters_tracks=True)
    assert build_parser().parse_args(["annotate", "clip.mp4", "--detector", "centre"]).detector == "centre"


def test_analysis_runs_a_registered_detector(monkeypatch, good_small_clip):
    from fer_video.pipeline import probe
    from fer_video.pipeline.analyse import analyse

    register(monkeypatch, filters_tracks=False)
    options = AnnotateOptions(detector="centre", video=False, progress=False, persons=False)
    analysis = analyse(probe(good_small_clip.path), options)
    assert analysis.detector == "centre"
    assert len(analysis.faces) == good_small_clip.frames and (analysis.faces.scores == np.float32(0.3)).all()
    assert len(keep_faces(analysis, options)[0]) == len(analysis.faces)  # its policy: no score filter


def test_an_unknown_detector_is_a_clear_error():
    for lookup in (make_detector, crop_geometry, detector_spec):
        with pytest.raises(ValueError, match=UNKNOWN):
            lookup("yunet")
    with pytest.raises(ValueError, match=UNKNOWN):
        keep_faces(tracks("yunet"), AnnotateOptions())
