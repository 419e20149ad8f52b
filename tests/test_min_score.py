"""False faces: a cartoon title card and a faceless animation (BlazeFace: 0.53 and nothing, once
0.5-0.71) give no tracks; the astronaut still gives hers, also with a hand over her cheek and her head
turned. `--min-score` and the short-track rule, in this process and through the CLI's option."""

from __future__ import annotations

import pytest

from conftest import FPS
from fer_video.samples import (Shot, astronaut_face, cartoon_card, faceless_animation, hand_over, make_drawn_clip,
                               make_shots_clip)
from helpers import read_timeline


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drawn")
    return {"cartoon": make_drawn_clip(folder / "cartoon.mp4", cartoon_card, seconds=2.0, fps=FPS),
            "faceless": make_drawn_clip(folder / "faceless.mp4", faceless_animation, seconds=2.0, fps=FPS)}


@pytest.mark.parametrize("kind", ["cartoon", "faceless"])
def test_drawn_clips_give_no_tracks(kind, drawn, annotate_once):
    result, _ = annotate_once(drawn[kind], video=False)
    rows, _ = read_timeline(result.timeline)
    assert result.tracks == 0 and len(rows) == 0, rows.groupby("track_id").det_score.agg(["size", "max"])


def test_a_lower_min_score_lets_the_cartoon_heads_through(drawn, annotate_once):
    """The detector does see them: it is the threshold that drops them. Every frame analysed: it
    finds them in 3 frames of 50, and analysing every other frame samples only some of those."""
    from fer_video.jobs import MIN_SCORE

    result, _ = annotate_once(drawn["cartoon"], video=False, min_score=0.5, analyse_rate=0)
    rows, meta = read_timeline(result.timeline)
    assert result.tracks >= 1 and rows.det_score.max() < MIN_SCORE


def test_the_astronaut_still_gives_her_faces(two_face_clip, annotate_once):
    result, _ = annotate_once(two_face_clip, video=False)
    rows, _ = read_timeline(result.timeline)
    assert result.tracks == 2
    assert rows.groupby("track_id").frame_index.nunique().min() >= 0.95 * two_face_clip.frames


@pytest.fixture(scope="module")
def covered_clip(tmp_path_factory):
    """2 s at 10 fps: the astronaut's face turned (squashed to 0.75 of its width, as a yaw turn
    foreshortens it) with a drawn hand over her cheek (46% of the face's box) throughout. Its
    track's peak score measured 0.729 (2026-12-06), median 0.656: a real face the 0.75 default
    of before dropped, like issue 26's laughing face behind a hand (0.73)."""
    import cv2

    face = hand_over(astronaut_face(), "astronaut", "cheek", 0.46)
    face = cv2.resize(face, (150, 240), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("covered") / "covered.mp4"
    return make_shots_clip(path, [Shot(2.0, {"astronaut": (0.5, 0.5, 0.0, 9.0)})], {"astronaut": face}, fps=10,
                           face_width=112)


def test_a_face_behind_a_hand_is_kept(covered_clip, annotate_once):
    result, _ = annotate_once(covered_clip, video=False)
    rows, _ = read_timeline(result.timeline)
    assert result.tracks == 1, rows
    assert rows.frame_index.nunique() >= 18  # of 20 frames
    assert rows.det_score.max() < 0.75  # the old default: the threshold, not an easier clip, keeps it


def test_min_score_is_part_of_the_job_key():
    from fer_video.pipeline import AnnotateOptions

    assert AnnotateOptions(min_score=0.7).settings() != AnnotateOptions(min_score=0.8).settings()
    with pytest.raises(ValueError):
        AnnotateOptions(min_score=1.5)


def test_short_tracks_are_dropped_from_videos_not_images():
    import numpy as np

    from fer_video.faces.record import Faces
    from fer_video.pipeline import drop_false_tracks

    faces = Faces(np.zeros((5, 4)), np.float32([0.9, 0.6, 0.6, 0.95, 0.6]), np.zeros((5, 6, 2)),
                  track_ids=[1, 1, 1, 2, 3], frame_index=[0, 1, 2, 5, 0])
    kept, ids = drop_false_tracks(faces, min_score=0.7, min_frames=3)
    assert kept.track_ids.tolist() == [1, 1, 1] and ids == {1: 1}  # 2: one frame; 3: never reaches 0.7
    image, ids = drop_false_tracks(faces[faces.track_ids == 2], min_score=0.7, min_frames=1)
    assert image.track_ids.tolist() == [1] and ids == {2: 1}  # ids renumbered in order of appearance
