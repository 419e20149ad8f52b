"""Stage 3: each track's probabilities smoothed over time, and its label and confidence chosen.
Columnar over the whole timeline: a centred window or an HMM needs a face's future frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_video.expression.labels import EMOTIONS
from fer_video.smoothing import Smoothing
from fer_video.timeline.schema import RAW, SMOOTH


def smooth(rows: pd.DataFrame, smoothing: str) -> pd.DataFrame:
    """Adds p_<emotion> (smoothed per track over time), label and confidence."""
    smoother = Smoothing.parse(smoothing)
    rows = rows.sort_values(["frame_index", "track_id"], kind="stable").reset_index(drop=True)
    smoothed = np.zeros((len(rows), len(EMOTIONS)), np.float32)
    raw = rows[RAW].to_numpy(np.float64)
    times = rows["timestamp_s"].to_numpy()
    for _, index in rows.groupby("track_id", sort=False).indices.items():
        smoothed[index] = smoother(raw[index], times[index])
    for i, name in enumerate(SMOOTH):
        rows[name] = smoothed[:, i]
    best = smoothed.argmax(axis=1) if len(rows) else np.zeros(0, int)
    rows["label"] = pd.Categorical.from_codes(best, categories=list(EMOTIONS))
    rows["confidence"] = smoothed[np.arange(len(rows)), best]
    return rows
