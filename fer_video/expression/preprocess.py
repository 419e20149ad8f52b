"""The one preprocessing step shared by training, evaluation and the pipeline.

A face reaches the model as a FER2013-like crop: grey, 48x48, uint8. Scaling to [0, 1] happens
here and nowhere else, so a model never sees differently prepared inputs in training and use.
"""

from __future__ import annotations

import cv2
import numpy as np

FACE_SIZE = 48


def to_model_input(faces: np.ndarray) -> np.ndarray:
    """(N, 48, 48) or (N, 48, 48, 1) uint8 grey faces -> (N, 48, 48, 1) float32 in [0, 1]."""
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[..., np.newaxis]
    if faces.shape[1:] != (FACE_SIZE, FACE_SIZE, 1):
        raise ValueError(f"expected faces of shape (N, {FACE_SIZE}, {FACE_SIZE}), got {faces.shape}")
    return faces.astype(np.float32) * np.float32(1.0 / 255.0)


def read_face_image(path: str) -> np.ndarray:
    """A dataset image as a 48x48 uint8 grey face (resized if the file is another size)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.shape != (FACE_SIZE, FACE_SIZE):
        image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return image
