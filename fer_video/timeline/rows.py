"""Between `Faces` and the timeline's rows: the sink that turns every analysed frame's faces into
the rows DataFrame, and the way back, a frame's `Faces` rebuilt from its rows (for the renderer,
which runs after smoothing, on the rows)."""

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
    """Each analysed frame's faces, from timeline rows (keypoints are not kept in a timeline)."""
    frames = {}
    for index, group in rows.groupby("frame_index", sort=False):
        n = len(group)
        frames[index] = Faces(
            group[["x", "y", "w", "h"]].to_numpy(), group["det_score"].to_numpy(),
            np.full((n, N_KEYPOINTS, 2), np.nan), track_ids=group["track_id"].to_numpy(),
            probs=group[RAW].to_numpy(), smoothed=group[SMOOTH].to_numpy() if SMOOTH[0] in group else None,
            frame_index=group["frame_index"].to_numpy(), timestamp_s=group["timestamp_s"].to_numpy(),
        )
    return frames
