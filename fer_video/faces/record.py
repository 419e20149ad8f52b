"""`Faces`: the columnar record of faces that every stage takes and returns.

The detector fills boxes, scores and keypoints; the tracker track ids; the classifier raw
probabilities; smoothing the smoothed ones; the renderer draws them and the timeline sink
(`TimelineSink`) turns them into rows. Arrays stay aligned: row i is one face, and one face is
one timeline row, so the frame's index and time are columns too (the same value on every row
of a frame): faces gathered from several frames for one classifier call, or a whole video's
faces in the sink, are still one `Faces`. Modelled on supervision's `Detections`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

N_EMOTIONS = 7
N_KEYPOINTS = 6  # BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear


@dataclass
class Faces:
    boxes: np.ndarray  # (N, 4) float32: x, y, w, h in source pixels
    scores: np.ndarray  # (N,) float32 detector confidence
    keypoints: np.ndarray  # (N, 6, 2) float32 in source pixels; NaN where the detector gives none
    track_ids: np.ndarray = field(default=None)  # (N,) int64; -1 before tracking
    probs: np.ndarray = field(default=None)  # (N, 7) float32 raw class probabilities; NaN before classifying
    smoothed: np.ndarray = field(default=None)  # (N, 7) float32 smoothed over the track; NaN before smoothing
    frame_index: np.ndarray = field(default=None)  # (N,) int64 index of the face's frame; -1 before `in_frame`
    timestamp_s: np.ndarray = field(default=None)  # (N,) float64 that frame's time; NaN before `in_frame`

    def __post_init__(self):
        n = len(self.boxes)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(n, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(n)
        self.keypoints = np.asarray(self.keypoints, np.float32).reshape(n, N_KEYPOINTS, 2)
        self.track_ids = _column(self.track_ids, (n,), np.int64, -1)
        self.probs = _column(self.probs, (n, N_EMOTIONS), np.float32, np.nan)
        self.smoothed = _column(self.smoothed, (n, N_EMOTIONS), np.float32, np.nan)
        self.frame_index = _column(self.frame_index, (n,), np.int64, -1)
        self.timestamp_s = _column(self.timestamp_s, (n,), np.float64, np.nan)

    @classmethod
    def empty(cls) -> "Faces":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, N_KEYPOINTS, 2)))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "Faces":
        """The faces selected by an int (one face, still a `Faces`), a slice, a boolean mask or an
        index array."""
        if isinstance(index, (int, np.integer)):
            index = np.array([index])  # a row, not a scalar: every column keeps its rank
        return Faces(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def with_(self, **columns) -> "Faces":
        return replace(self, **columns)

    def in_frame(self, index: int, time: float) -> "Faces":
        """These faces stamped with the frame they were found in."""
        n = len(self)
        return self.with_(frame_index=np.full(n, index, np.int64), timestamp_s=np.full(n, time, np.float64))

    @property
    def xyxy(self) -> np.ndarray:
        x, y, w, h = self.boxes.T
        return np.stack([x, y, x + w, y + h], axis=1)

    @staticmethod
    def concat(parts: list["Faces"]) -> "Faces":
        if not parts:
            return Faces.empty()
        return Faces(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Faces)})


def _column(values, shape: tuple, dtype, missing) -> np.ndarray:
    if values is None:
        return np.full(shape, missing, dtype)
    return np.asarray(values, dtype).reshape(shape)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of x, y, w, h boxes."""
    ax1, ay1, aw, ah = (a[:, i : i + 1] for i in range(4))
    bx1, by1, bw, bh = (b[:, i] for i in range(4))
    iw = np.clip(np.minimum(ax1 + aw, bx1 + bw) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay1 + ah, by1 + bh) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    return inter / np.maximum(aw * ah + bw * bh - inter, 1e-9)
