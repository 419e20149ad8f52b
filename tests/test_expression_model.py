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
