"""The timeline's rows as a DataFrame, made from `Faces` (`rows_of`), and the way back, each
frame's `Faces` rebuilt from its rows (`faces_by_frame`): for tests, benches and readers that
want a table; the pipeline itself passes `Faces` from stage to sink."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_video.expression.labels import EMOTIONS
from fer_video.faces.record import N_KEYPOINTS, Faces, timeline_columns
from fer_video.timeline.schema import RAW, SMOOTH


def rows_of(faces: Faces, video_id: str, source_path: str) -> pd.DataFrame:
    """`faces` as timeline rows: one row per face, in the faces' order; `video_id` and
    `source_path` (made absolute) on every row, `label` a Categorical of EMOTIONS, as `load` reads
    a timeline."""
    rows = pd.DataFrame({"video_id": video_id, "source_path": str(Path(source_path).resolve()),
                         **timeline_columns(faces)})
    rows["label"] = pd.Categorical.from_codes(faces.label_ids, categories=list(EMOTIONS))
    return rows


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


def _frame_runs(rows: pd.DataFrame):
    """The rows' order by frame (stable), the sorted frame indices, and where each frame's run of
    rows starts and ends in that order."""
    frames = rows["frame_index"].to_numpy()
    order = np.argsort(frames, kind="stable")
    frames = frames[order]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]]) if len(frames) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(frames)].astype(int)
    return order, frames, starts, ends
