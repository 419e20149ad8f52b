"""A face's grey template: its box shrunk to 24x24 grey, zero mean, unit norm. Two templates'
dot product is their normalised correlation: about 1 for the same picture, about 0 unrelated.
The tracker's appearance check (`fer_video.faces.appearance`) and the detector's check of a
predicted face (`BlazeFaceDetector`) both compare faces this way."""

from __future__ import annotations

import cv2
import numpy as np

TEMPLATE_PX = 24


def grey_template(image: np.ndarray, box: np.ndarray, size: int = TEMPLATE_PX) -> np.ndarray:
    """`size` x `size` float32 of the face at `box` (x, y, w, h; clipped to the frame, at least a
    pixel: a box half out of the frame too) in BGR or grey `image`."""
    x, y, w, h = (float(v) for v in box)
    height, width = image.shape[:2]
    fx0, fy0 = int(min(max(x, 0), width - 1)), int(min(max(y, 0), height - 1))
    fx1, fy1 = int(min(x + w, width)), int(min(y + h, height))
    face = image[fy0:max(fy1, fy0 + 1), fx0:max(fx1, fx0 + 1)]
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY) if face.ndim == 3 else face
    template = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    template -= template.mean()
    template /= float(np.linalg.norm(template)) + 1e-6
    return template


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum())
