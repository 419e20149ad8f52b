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
    faces = np.asarray(faces)
    if faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
    n, h, w = faces.shape
    # The kernel size OpenCV picks itself for ksize (0, 0): 6 sigma for uint8, 8 sigma otherwise.
    ksize = int(np.rint(sigma * (3 if faces.dtype == np.uint8 else 4) * 2 + 1)) | 1
    r = ksize // 2
    if r >= min(h, w):  # a kernel wider than a face: reflections of reflections; face by face
        return np.stack([cv2.GaussianBlur(f, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for f in faces])
    # One blur over all faces side by side, each padded left and right with its own reflection,
    # is bit-identical to blurring face by face (top and bottom are the image's own border; the
    # kernel never reaches past a face's padding) and ten times faster: 48x48 images are too
    # small for OpenCV's vectorised filters, and a loop of 256 calls costs more than the work.
    wide = np.pad(faces.transpose(1, 0, 2), ((0, 0), (0, 0), (r, r)), mode="symmetric")  # (h, n, w + 2r)
    out = cv2.GaussianBlur(wide.reshape(h, n * (w + 2 * r)), (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(out.reshape(h, n, w + 2 * r)[:, :, r : r + w].transpose(1, 0, 2))


def read_face_image(path: str) -> np.ndarray:
    """A dataset image as a 48x48 uint8 grey face (resized if the file is another size)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.shape != (FACE_SIZE, FACE_SIZE):
        image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return image
