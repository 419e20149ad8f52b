"""From the timeline's rows back to `Faces`: each frame's faces rebuilt from its rows (for the
renderer, which takes the rows `fer_video.pipeline.annotate.rows_of` makes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_video.faces.record import N_KEYPOINTS, Faces
from fer_video.timeline.schema import RAW, SMOOTH


def faces_by_frame(rows: pd.DataFrame) -> dict[int, Faces]:
    """Each analysed frame's faces, from timeline rows (keypoints are not kept in a timeline).

    Columns are taken out once and split with NumPy: a pandas groupby over the frames copied
    every column (the string ones too) per frame, 20% of a 20 s clip's whole command."""
    order, frames, starts, ends = _frame_runs(rows)
    boxes = rows[["x", "y", "w", "h"]].to_numpy()[order]
    scores = rows["det_score"].to_numpy()[order]
    tracks = rows["track_id"].to_numpy()[order]
    probs = rows[list(RAW)].to_numpy()[order]
    smoothed = rows[list(SMOOTH)].to_numpy()[order] if SMOOTH[0] in rows else None
    times = rows["timestamp_s"].to_numpy()[order]
    return {
        int(frames[a]): Faces(
            boxes[a:b], scores[a:b], np.full((b - a, N_KEYPOINTS, 2), np.nan), track_ids=tracks[a:b],
            probs=probs[a:b], smoothed=None if smoothed is None else smoothed[a:b],
            frame_index=frames[a:b], timestamp_s=times[a:b],
        )
        for a, b in zip(starts, ends)
    }


def values_by_frame(rows: pd.DataFrame, values) -> dict[int, list]:
    """Each analysed frame's share of `values` (one per row), in the order `faces_by_frame` gives
    that frame's faces."""
    order, frames, starts, ends = _frame_runs(rows)
    values = np.asarray(values, dtype=object)[order]
    return {int(frames[a]): list(values[a:b]) for a, b in zip(starts, ends)}


def _frame_runs(rows: pd.DataFrame):
    """The rows' order by frame (stable), the sorted frame indices, and where each frame's run of
    rows starts and ends in that order."""
    frames = rows["frame_index"].to_numpy()
    order = np.argsort(frames, kind="stable")
    frames = frames[order]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]]) if len(frames) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(frames)].astype(int)
    return order, frames, starts, ends
