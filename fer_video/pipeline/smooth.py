"""Stage 3: each track's probabilities smoothed over time, which fixes its label and confidence
(`Faces.labels`, `Faces.confidence`). Over the whole video's faces at once: a centred window or
an HMM needs a face's future frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fer_video.faces.record import Faces
from fer_video.smoothing import Smoothing

if TYPE_CHECKING:
    import pandas as pd


def smooth(faces: Faces, smoothing: str) -> Faces:
    """`faces` in (frame_index, track_id) order, their smoothed probabilities filled (per track,
    over time)."""
    import pandas as pd

    smoother = Smoothing.parse(smoothing)
    faces = faces[np.lexsort((faces.track_ids, faces.frame_index))]  # stable: ties keep their order
    smoothed = np.zeros(faces.probs.shape, np.float32)
    raw = faces.probs.astype(np.float64)
    times = faces.timestamp_s
    for index in pd.Series(faces.track_ids).groupby(faces.track_ids, sort=False).indices.values():
        smoothed[index] = smoother(raw[index], times[index])
    return faces.with_(smoothed=smoothed)
