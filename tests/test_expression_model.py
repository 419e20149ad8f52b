"""The expression model's input contract, its training augmentation and its calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_video.expression.calibration import fit_logit_bias, recalls
from fer_video.expression.model import build_model, build_network
from fer_video.expression.preprocess import to_model_input
from fer_video.expression.train import augment_batch, centre_crop, class_weights


def test_prediction_does_not_depend_on_a_faces_contrast_or_brightness():
    """Faces cut from video differ in exposure and contrast; the model standardises each face,
    so a contrast or brightness change is invisible to it."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (8, 48, 48)).astype(np.uint8)
    flat = (faces.astype(np.float32) * 0.6 + 50).round().astype(np.uint8)
    model = build_model()
    a = model(to_model_input(faces), training=False).numpy()
    b = model(to_model_input(flat), training=False).numpy()
    np.testing.assert_allclose(a, b, atol=0.05)
    assert (a.argmax(1) == b.argmax(1)).all()


def test_the_shipped_model_sees_the_centre_crop_the_network_was_trained_on():
    """The pipeline hands the model 48x48 faces; training shows the network `crop`-px views. The
    wrapped model must give exactly the network's logits on the centre crop, and ignore the
    border it crops away."""
    network = build_network(widths=(8, 16), size=40)
    model = build_model(crop=40, network=network)
    assert model.input_shape == (None, 48, 48, 1)
    faces = np.random.default_rng(1).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    np.testing.assert_allclose(model(to_model_input(faces)).numpy(),
                               network(centre_crop(faces, 40)).numpy(), atol=1e-5)
    border = faces.copy()
    border[:, :4] = 0
    border[:, :, -4:] = 255
    np.testing.assert_allclose(model(to_model_input(border)).numpy(), model(to_model_input(faces)).numpy(), atol=1e-5)


def test_augmented_views_are_crops_of_the_face_in_range_and_repeatable():
    faces = np.random.default_rng(2).integers(0, 256, (64, 48, 48)).astype(np.uint8)
    a = augment_batch(faces, 40, np.random.default_rng(7))
    b = augment_batch(faces, 40, np.random.default_rng(7))
    assert a.shape == (64, 40, 40, 1) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment_batch(faces, 40, np.random.default_rng(8)))


def test_augmentation_without_jitter_is_the_centre_crop_or_its_mirror():
    """With zoom 1, no rotation, no shift, gamma 1 and no erasing, a view is the centre crop,
    mirrored or not: the geometry of the training views matches what the pipeline shows."""
    from fer_video.expression import train

    faces = np.random.default_rng(3).integers(0, 256, (16, 48, 48)).astype(np.uint8)

    class Fixed:
        def __init__(self, flips):
            self.flips = flips

        def uniform(self, low, high, size):
            return np.full(size, 1.0) if low == 0.85 else np.zeros(size)

        def random(self, n, dtype=None):
            return self.flips.astype(dtype or np.float64)

    flips = np.tile([0.0, 0.9], 8)  # < 0.5: mirrored
    views = train.augment_batch(faces, 40, Fixed(flips), erase_probability=0.0)[..., 0]
    centre = centre_crop(faces, 40)[..., 0]
    np.testing.assert_allclose(views[1::2], centre[1::2], atol=1e-6)
    np.testing.assert_allclose(views[0::2], centre[0::2, :, ::-1], atol=1e-6)


def test_class_weights_lift_rare_classes_and_average_one_per_face():
    labels = np.repeat(np.arange(7), [400, 40, 400, 700, 500, 500, 300])
    w = class_weights(labels, 0.5)
    assert w[1] > 3 * w[3] and w.argmax() == 1
    assert w[labels].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(class_weights(labels, 0.0), 1.0)


def test_logit_bias_brings_a_neglected_class_above_its_recall_floor():
    """A model whose logits underrate class 1 (it never wins): the fitted bias makes class 1's
    recall reach the floor, and accuracy does not collapse."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 7, 3000)
    logits = rng.normal(0, 1, (3000, 7))
    logits[np.arange(3000), labels] += 2.0
    logits[:, 1] -= 3.0
    before = recalls(logits.argmax(1), labels, 7)
    assert before[1] < 0.1
    bias = fit_logit_bias(logits, labels, recall_floor=0.5)
    after = (logits + bias).argmax(1)
    assert recalls(after, labels, 7).min() >= 0.5
    assert (after == labels).mean() > (logits.argmax(1) == labels).mean()
    assert abs(bias.mean()) < 1e-9


def test_classifier_applies_the_cards_tta_bias_and_temperature(tmp_path):
    pytest.importorskip("tensorflow", reason="exporting needs TensorFlow")
    from fer_video.expression.classify import ExpressionClassifier
    from fer_video.expression.export import card_path, export_tflite

    path = tmp_path / "m.keras"
    build_model(widths=(8, 16)).save(path)
    bias = [0.5, -0.2, 0.1, 0.0, 0.3, -0.4, -0.3]
    card_path(path).write_text(json.dumps({"temperature": 2.0, "logit_bias": bias, "tta": "none"}))
    export_tflite(path)
    bare = tmp_path / "bare.keras"
    bare.write_bytes(path.read_bytes())
    card_path(bare).write_text(json.dumps({}))
    export_tflite(bare)
    faces = np.random.default_rng(5).integers(0, 256, (6, 48, 48)).astype(np.uint8)
    plain = ExpressionClassifier(path)
    assert plain.flip is False
    raw = ExpressionClassifier(bare, flip=False).logits(faces)
    np.testing.assert_allclose(plain.logits(faces), raw + np.float32(bias), atol=1e-5)
    z = (raw + np.float32(bias)) / 2.0
    expected = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(plain(faces), expected / expected.sum(1, keepdims=True), atol=1e-5)
    card_path(path).write_text(json.dumps({**json.loads(card_path(path).read_text()), "tta": "flip"}))
    assert ExpressionClassifier(path).flip is True
    assert ExpressionClassifier(path, flip=False).flip is False
