"""Stage 2: the tracks that are faces are kept, the rest (drawings, flickers) dropped, and the
kept ones numbered 1, 2, ... in order of appearance. The map from the analysis's track ids to the
kept ones goes with them: what the analysis gathered per track (the persons stage's face chips)
follows it, rather than being matched back by frame and box."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fer_video.faces.detectors import detector_spec
from fer_video.faces.record import Faces
from fer_video.jobs import AnnotateOptions
from fer_video.pipeline.analyse import Analysis

if TYPE_CHECKING:
    import pandas as pd


MIN_TRACK_FRAMES = 3  # a video's track seen in fewer analysed frames is a flicker, not a face


def drop_false_tracks(faces: Faces, min_score: float, min_frames: int) -> tuple[Faces, dict[int, int]]:
    """The faces of the tracks whose peak detector score reaches `min_score` and that are seen in
    at least `min_frames` analysed frames, ids renumbered 1, 2, ... in order of appearance (ties
    by the old id); and the map old id -> new id, which holds the kept tracks only."""
    import pandas as pd

    if not len(faces):
        return faces, {}
    per_face = pd.DataFrame({"track_id": faces.track_ids, "det_score": faces.scores, "frame_index": faces.frame_index})
    tracks = per_face.groupby("track_id").agg(peak=("det_score", "max"), frames=("frame_index", "nunique"),
                                              first=("frame_index", "min"))
    kept = tracks[(tracks.peak >= np.float32(min_score)) & (tracks.frames >= min_frames)]
    order = kept.sort_values(["first"], kind="stable").index
    mapping = {int(old): new for new, old in enumerate(order, start=1)}
    return renumbered(faces, mapping), mapping


def renumbered(faces: Faces, mapping: dict[int, int]) -> Faces:
    """The faces whose track id is in `mapping`, in their order, with the ids it maps them to."""
    import pandas as pd

    ids = pd.Series(faces.track_ids).map(mapping)
    kept = faces[ids.notna().to_numpy()]
    return kept.with_(track_ids=ids.dropna().to_numpy(np.int64))


def keep_faces(analysis: Analysis, options: AnnotateOptions) -> tuple[Faces, dict[int, int]]:
    """`analysis.faces` without the tracks that are not faces (see MIN_SCORE, MIN_TRACK_FRAMES),
    for a detector whose scores are confidences (its registry entry's score policy), and the map
    analysis track id -> kept track id. Another detector's tracks are all kept, under the ids the
    analysis gave them (the map is the identity). An image's face has one frame."""
    faces = analysis.faces
    if not detector_spec(analysis.detector).score_policy.filters_tracks:
        return faces, {int(t): int(t) for t in np.unique(faces.track_ids)}
    analysed = -(-analysis.frames_decoded // options.stride)
    min_frames = 1 if analysis.info.is_image else max(1, min(MIN_TRACK_FRAMES, analysed))
    return drop_false_tracks(faces, options.min_score, min_frames)
