"""The `haar` detector: OpenCV's frontal-face cascade (shipped in opencv-python < 5): slower than
BlazeFace, no landmarks, and scores that are not confidences."""

from __future__ import annotations

import os

import cv2
import numpy as np

from fer_video.faces.record import N_KEYPOINTS, Faces


class HaarDetector:
    name = "haar"

    def __init__(self, min_face: int = 40, cascade: str = "haarcascade_frontalface_default.xml"):
        path = os.path.join(cv2.data.haarcascades, cascade)
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV Haar cascade not found at {path} (opencv-python 5 ships none)")
        self.min_face = min_face

    def reset(self) -> None:
        """Nothing to forget: every frame is searched from scratch."""

    def __call__(self, image: np.ndarray, position: int | None = None, ahead=None, time=None) -> Faces:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        rects, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_face, self.min_face),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            return Faces.empty()
        # Cascade weights are unbounded margins; squash them to (0, 1) for a comparable score.
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).ravel()))
        keypoints = np.full((len(rects), N_KEYPOINTS, 2), np.nan, np.float32)
        return Faces(np.asarray(rects, np.float32), scores, keypoints)
