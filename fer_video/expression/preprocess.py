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


def match_training_sharpness(faces: np.ndarray, sigma: float) -> np.ndarray:
    """Blur sharp faces (N, 48, 48) uint8 to the sharpness of the faces a model was trained on.

    The FER2013 copy our model was trained on has a blurred train split (mean Laplacian variance
    6.5, where faces cut from video or FER2013's public_test have hundreds to thousands); a
    Gaussian of sigma 3.0 px brings our own video crops to the same value (bench/sharpness.py).
    The model card records the sigma; 0 leaves faces as they are.
    """
    if sigma <= 0 or len(faces) == 0:
        return faces
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for f in faces])


def read_face_image(path: str) -> np.ndarray:
    """A dataset image as a 48x48 uint8 grey face (resized if the file is another size)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.shape != (FACE_SIZE, FACE_SIZE):
        image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return image
