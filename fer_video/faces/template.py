"""A face's grey template: its box shrunk to 24x24 grey, zero mean, unit norm. Two templates'
dot product is their normalised correlation: about 1 for the same picture, about 0 unrelated.
The tracker's appearance check (`fer_video.faces.appearance`) and the detector's check of a
predicted face (`BlazeFaceDetector`) both compare faces this way."""

from __future__ import annotations

import threading

import cv2
import numpy as np

TEMPLATE_PX = 24


class _Recent(threading.local):
    image: np.ndarray | None = None  # held, so that its id is not reused while its templates are kept
    templates: dict | None = None


_recent = _Recent()


def grey_template(image: np.ndarray, box: np.ndarray, size: int = TEMPLATE_PX) -> np.ndarray:
    """`size` x `size` float32 of the face at `box` (x, y, w, h; clipped to the frame, at least a
    pixel: a box half out of the frame too) in BGR or grey `image`, read-only.

    The detector and the tracker's appearance check each ask for the template of the same face
    in the same frame: the templates of the last image asked about (per thread) are kept and
    given again, so an image must not be drawn on between two calls (the pipeline's BGR frames
    are only read; it draws on the decoded planes)."""
    key = (size, *(float(v) for v in box))
    if _recent.image is not image:
        _recent.image, _recent.templates = image, {}
    template = _recent.templates.get(key)
    if template is None:
        template = _recent.templates[key] = _grey_template(image, key[1:], size)
        template.flags.writeable = False
    return template


def _grey_template(image: np.ndarray, box: tuple, size: int) -> np.ndarray:
    x, y, w, h = box
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
