"""Stage 2: the tracks that are faces are kept, the rest (drawings, flickers) dropped, and the
kept ones numbered 1, 2, ... in order of appearance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_video.faces.detectors import detector_spec
from fer_video.jobs import AnnotateOptions
from fer_video.pipeline.analyse import Analysis


MIN_TRACK_FRAMES = 3  # a video's track seen in fewer analysed frames is a flicker, not a face


def drop_false_tracks(rows: pd.DataFrame, min_score: float, min_frames: int) -> pd.DataFrame:
    """Rows of the tracks whose peak detector score reaches `min_score` and that are seen in at
    least `min_frames` analysed frames; ids renumbered 1, 2, ... in order of appearance."""
    if not len(rows):
        return rows
    tracks = rows.groupby("track_id").agg(peak=("det_score", "max"), frames=("frame_index", "nunique"),
                                          first=("frame_index", "min"))
    kept = tracks[(tracks.peak >= np.float32(min_score)) & (tracks.frames >= min_frames)]
    order = kept.sort_values(["first"], kind="stable").index
    mapping = {old: new for new, old in enumerate(order, start=1)}
    rows = rows[rows["track_id"].isin(mapping)]
    return rows.assign(track_id=rows["track_id"].map(mapping).astype(np.int32)).reset_index(drop=True)


def keep_faces(analysis: Analysis, options: AnnotateOptions) -> pd.DataFrame:
    """`analysis.rows` without the tracks that are not faces (see MIN_SCORE, MIN_TRACK_FRAMES),
    for a detector whose scores are confidences (its registry entry's score policy); another
    detector's tracks are all kept. An image's face has one frame."""
    if not detector_spec(analysis.detector).score_policy.filters_tracks:
        return analysis.rows
    analysed = -(-analysis.frames_decoded // options.stride)
    min_frames = 1 if analysis.info.is_image else max(1, min(MIN_TRACK_FRAMES, analysed))
    return drop_false_tracks(analysis.rows, options.min_score, min_frames)
