"""The expression model's input contract."""

from __future__ import annotations

import numpy as np

from fer_video.expression.model import build_model
from fer_video.expression.preprocess import to_model_input


def test_prediction_does_not_depend_on_a_faces_contrast_or_brightness():
    """FER2013's train split is lower in contrast than its test split and than faces cut from
    video; the model standardises each face, so a contrast or brightness change is invisible."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (8, 48, 48)).astype(np.uint8)
    flat = (faces.astype(np.float32) * 0.6 + 50).round().astype(np.uint8)  # train-split-like contrast
    model = build_model()
    a = model(to_model_input(faces), training=False).numpy()
    b = model(to_model_input(flat), training=False).numpy()
    np.testing.assert_allclose(a, b, atol=0.05)
    assert (a.argmax(1) == b.argmax(1)).all()


def test_matching_training_sharpness_blurs_only_when_the_model_asks():
    import cv2

    from fer_video.expression.preprocess import match_training_sharpness

    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (4, 48, 48)).astype(np.uint8)
    assert match_training_sharpness(faces, 0.0) is faces
    blurred = match_training_sharpness(faces, 3.25)
    assert blurred.shape == faces.shape and blurred.dtype == np.uint8

    def sharpness(x):
        return np.mean([cv2.Laplacian(f.astype(np.float32), cv2.CV_32F).var() for f in x])

    assert sharpness(blurred) < sharpness(faces) / 100


def test_matching_training_sharpness_is_the_face_by_face_blur_exactly():
    """It blurs all faces in one call (side by side, each padded with its own reflection): the
    result must be what blurring each face alone gives, to the bit."""
    import cv2

    from fer_video.expression.preprocess import match_training_sharpness

    faces = np.random.default_rng(2).integers(0, 256, (33, 48, 48)).astype(np.uint8)
    for sigma in (0.5, 1.0, 3.0, 3.25, 7.9, 20.0):
        alone = np.stack([cv2.GaussianBlur(f, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for f in faces])
        np.testing.assert_array_equal(match_training_sharpness(faces, sigma), alone, err_msg=f"sigma {sigma}")
    np.testing.assert_array_equal(match_training_sharpness(faces[:1], 3.25)[0],
                                  cv2.GaussianBlur(faces[0], (0, 0), 3.25, borderType=cv2.BORDER_REFLECT))
