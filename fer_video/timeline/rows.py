"""Between `Faces` and the timeline's rows: the sink that turns every analysed frame's faces into
the rows DataFrame, and the way back, each frame's `Faces` rebuilt from its rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_video.faces.record import N_KEYPOINTS, Faces
from fer_video.timeline.schema import RAW, SMOOTH


class TimelineSink:
    """`append` each frame's classified `Faces`; `rows` gives the timeline's rows so far, raw
    probabilities filled (smoothing adds the rest). Only the small per-face columns are kept."""

    def __init__(self):
        self._parts: list[Faces] = []

    def append(self, faces: Faces) -> None:
        if len(faces):
            self._parts.append(faces)

    def rows(self, video_id: str, source_path: str) -> pd.DataFrame:
        faces = Faces.concat(self._parts)
        rows = pd.DataFrame({
            "video_id": video_id,
            "source_path": source_path,
            "frame_index": faces.frame_index,
            "timestamp_s": faces.timestamp_s,
            "track_id": faces.track_ids.astype(np.int32),
            "x": faces.boxes[:, 0], "y": faces.boxes[:, 1], "w": faces.boxes[:, 2], "h": faces.boxes[:, 3],
            "det_score": faces.scores,
        })
        for i, name in enumerate(RAW):
            rows[name] = faces.probs[:, i]
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
