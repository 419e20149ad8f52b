"""`Faces`: the columnar record of one frame's faces that every stage takes and returns.

Detector -> tracker -> classifier each fill their own columns; arrays stay aligned, row i is
one face. Modelled on supervision's `Detections`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

N_EMOTIONS = 7
N_KEYPOINTS = 6  # BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear


@dataclass
class Faces:
    boxes: np.ndarray  # (N, 4) float32: x, y, w, h in source pixels
    scores: np.ndarray  # (N,) float32 detector confidence
    keypoints: np.ndarray  # (N, 6, 2) float32 in source pixels; NaN where the detector gives none
    track_ids: np.ndarray = field(default=None)  # (N,) int64; -1 before tracking
    probs: np.ndarray = field(default=None)  # (N, 7) float32 raw class probabilities; NaN before

    def __post_init__(self):
        n = len(self.boxes)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(n, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(n)
        self.keypoints = np.asarray(self.keypoints, np.float32).reshape(n, N_KEYPOINTS, 2)
        self.track_ids = (
            np.full(n, -1, np.int64) if self.track_ids is None else np.asarray(self.track_ids, np.int64)
        )
        self.probs = (
            np.full((n, N_EMOTIONS), np.nan, np.float32) if self.probs is None
            else np.asarray(self.probs, np.float32).reshape(n, N_EMOTIONS)
        )

    @classmethod
    def empty(cls) -> "Faces":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, N_KEYPOINTS, 2)))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "Faces":
        """Rows selected by a boolean mask, index array or slice."""
        return Faces(
            self.boxes[index], self.scores[index], self.keypoints[index],
            self.track_ids[index], self.probs[index],
        )

    def with_(self, **columns) -> "Faces":
        return replace(self, **columns)

    @property
    def xyxy(self) -> np.ndarray:
        x, y, w, h = self.boxes.T
        return np.stack([x, y, x + w, y + h], axis=1)

    @staticmethod
    def concat(parts: list["Faces"]) -> "Faces":
        if not parts:
            return Faces.empty()
        return Faces(
            np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
            np.concatenate([p.keypoints for p in parts]), np.concatenate([p.track_ids for p in parts]),
            np.concatenate([p.probs for p in parts]),
        )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of x, y, w, h boxes."""
    ax1, ay1, aw, ah = (a[:, i : i + 1] for i in range(4))
    bx1, by1, bw, bh = (b[:, i] for i in range(4))
    iw = np.clip(np.minimum(ax1 + aw, bx1 + bw) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay1 + ah, by1 + bh) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    return inter / np.maximum(aw * ah + bw * bh - inter, 1e-9)
