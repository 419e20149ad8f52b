"""The stages between analysis and smoothing on `Faces`: which tracks `keep_faces` keeps and the
map of their ids it hands on, and the persons stage following that map (not the faces' boxes)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fer_video.faces.record import N_KEYPOINTS, Faces
from fer_video.jobs import AnnotateOptions
from fer_video.pipeline.analyse import Analysis
from fer_video.pipeline.keep import keep_faces


def faces_of(tracks: list[tuple[int, int, float, tuple]]) -> Faces:
    """Faces from (frame_index, track_id, detector score, box) tuples, in that order."""
    frames, ids, scores, boxes = zip(*tracks)
    n = len(tracks)
    return Faces(np.array(boxes, float), np.array(scores, np.float32), np.zeros((n, N_KEYPOINTS, 2)),
                 track_ids=ids, frame_index=frames, timestamp_s=np.array(frames) / 10)


def analysis_of(faces: Faces, frames: int, chips: pd.DataFrame | None = None) -> Analysis:
    return Analysis(SimpleNamespace(is_image=False), "clip", faces, frames_decoded=frames, detector="blazeface",
                    face_chips=chips)


def test_keep_faces_maps_the_kept_tracks_to_ids_in_order_of_appearance():
    box = (10, 10, 40, 40)
    faces = faces_of([(0, 7, 0.9, box), (0, 4, 0.9, box),     # 4 and 7 both first in frame 0: by old id
                      (1, 7, 0.9, box), (1, 4, 0.9, box), (1, 5, 0.95, box),  # 5: one frame, a flicker
                      (2, 7, 0.9, box), (2, 4, 0.9, box), (2, 3, 0.6, box),   # 3: never reaches 0.7
                      (3, 3, 0.6, box), (3, 2, 0.9, box), (4, 3, 0.6, box),
                      (4, 2, 0.9, box), (5, 2, 0.9, box)])
    kept, ids = keep_faces(analysis_of(faces, frames=6), AnnotateOptions(min_score=0.7))
    assert ids == {4: 1, 7: 2, 2: 3}  # dropped tracks are absent
    assert kept.track_ids.tolist() == [2, 1, 2, 1, 2, 1, 3, 3, 3]  # the faces' own order, renumbered
    np.testing.assert_array_equal(kept.frame_index, [0, 0, 1, 1, 2, 2, 3, 4, 5])
    # Each kept face is the analysis's face under its mapped id.
    old = faces[np.isin(faces.track_ids, list(ids))]
    assert [ids[t] for t in old.track_ids] == kept.track_ids.tolist()
    np.testing.assert_array_equal(kept.scores, old.scores)


def test_keep_faces_of_no_faces():
    kept, ids = keep_faces(analysis_of(Faces.empty(), frames=5), AnnotateOptions())
    assert len(kept) == 0 and ids == {}


class _VectorEmbedder:
    """Each chip is already its embedding: what the clustering sees is set by the test."""

    def embed_chips(self, chips):
        return np.stack(chips).astype(np.float32)


def _unit(i: int) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[i] = 1
    return v


@pytest.mark.parametrize("identity", [False, True])
def test_persons_follow_keeps_id_map_where_two_tracks_share_a_box(monkeypatch, identity):
    """Tracks 8 and 9 are two people in the same box in frame 0 (a coordinate match could not
    tell their faces apart); track 6 comes back later as the person of track 8; track 3 is a
    flicker, dropped, its chips with it. Person ids follow the kept ids that `keep_faces` gave."""
    from fer_video.faces.embed import FaceEmbedder
    from fer_video.persons.stage import persons_in_video

    monkeypatch.setattr(FaceEmbedder, "shared", classmethod(lambda cls: _VectorEmbedder()))
    same = (100, 50, 60, 60)
    faces = faces_of([(0, 9, 0.9, same), (0, 8, 0.9, same), (0, 3, 0.9, (300, 50, 60, 60)),
                      (1, 9, 0.9, same), (1, 8, 0.9, (104, 50, 60, 60)),
                      (2, 9, 0.9, same), (2, 8, 0.9, (108, 50, 60, 60)),
                      (10, 6, 0.9, same), (11, 6, 0.9, same), (12, 6, 0.9, same)])
    people = {8: _unit(0), 9: _unit(1), 6: _unit(0), 3: _unit(0)}
    chips = pd.DataFrame({"track_id": np.array([3, 6, 8, 9], np.int32), "time_s": [0.0, 1.0, 0.0, 0.0],
                          "quality": np.ones(4, np.float32), "chip": pd.Series([people[t] for t in (3, 6, 8, 9)])})
    options = AnnotateOptions(min_score=0.7, identity=identity)
    kept, ids = keep_faces(analysis_of(faces, frames=13, chips=chips), options)
    assert ids == {8: 1, 9: 2, 6: 3}

    persons, embeddings = persons_in_video(kept, chips, ids, options)
    assert dict(zip(persons.track_ids.tolist(), persons.person_ids.tolist())) == {1: 1, 2: 2, 3: 1}
    assert all(name is None for name in persons.persons)
    np.testing.assert_array_equal(persons.track_ids, kept.track_ids)
    np.testing.assert_array_equal(persons.boxes, kept.boxes)
    # Each kept track's embedding is its own chip's: by the map, not by where its boxes are.
    by_track = {int(t): e for t, e in zip(embeddings["track_id"], embeddings["embedding"])}
    assert sorted(by_track) == [1, 2, 3]
    for old, new in ids.items():
        np.testing.assert_array_equal(by_track[new], people[old])


def test_without_chips_every_track_is_its_own_person():
    from fer_video.persons.stage import persons_in_video

    faces = faces_of([(0, 1, 0.9, (0, 0, 9, 9)), (0, 2, 0.9, (0, 0, 9, 9))])
    persons, embeddings = persons_in_video(faces, None, {1: 1, 2: 2}, AnnotateOptions())
    assert persons.person_ids.tolist() == [1, 2] and embeddings is None


def test_one_stage_table_for_the_direct_runner_the_flow_and_the_recorder():
    from fer_video.pipeline import STAGE_TABLE, Stages
    from flows.annotate import STAGES as FLOW_STAGES

    direct = Stages()
    assert [getattr(direct, s.attribute) for s in STAGE_TABLE] == [s.run for s in STAGE_TABLE]
    # Each flow task is made from its row: its name, and the same function underneath.
    tasks = [getattr(FLOW_STAGES, s.attribute) for s in STAGE_TABLE]
    assert [t.name for t in tasks] == [s.task for s in STAGE_TABLE]
    assert [t.fn for t in tasks] == [s.run for s in STAGE_TABLE]
    wrapped = Stages(wrap=lambda stage: stage.task)  # what the recorder does, with names for functions
    assert [getattr(wrapped, s.attribute) for s in STAGE_TABLE] == [s.task for s in STAGE_TABLE]
    with pytest.raises(TypeError):
        Stages(smooth_=len)  # a misspelt stage is refused, not silently added
