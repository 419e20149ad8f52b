"""The shipped expression model on FER2013's public_test, classified as the pipeline classifies
(its TTA, logit bias and temperature from the model card). Needs the dataset beside the repo."""

from __future__ import annotations

import numpy as np
import pytest

from fer_video.expression.training.calibration import expected_calibration_error, recalls
from fer_video.expression.labels import EMOTIONS
from helpers import REPO

PUBLIC_TEST = REPO.parent / "shared" / "datasets" / "fer2013" / "public_test"


@pytest.fixture(scope="module")
def public_test():
    if not PUBLIC_TEST.is_dir():
        pytest.skip(f"FER2013 not found at {PUBLIC_TEST}: this test measures the shipped model on its public_test")
    from fer_video.expression.classify import ExpressionClassifier
    from fer_video.expression.training.data import load_folder

    faces, labels, _ = load_folder(PUBLIC_TEST)
    classifier = ExpressionClassifier()
    return classifier, classifier(faces), labels


def test_shipped_model_accuracy_calibration_and_rare_classes(public_test):
    """MODEL_CARD.md's figures: 64.4% (flip TTA for faces below 0.55 confidence), ECE 0.028, disgust
    and fear recall at least 0.45."""
    classifier, probs, labels = public_test
    assert classifier.backend == "tflite (fer_vgg.tflite)", "the shipped .tflite is fresh for the shipped .keras"
    assert len(labels) == 3589
    accuracy = float((probs.argmax(1) == labels).mean())
    assert accuracy >= 0.64, accuracy
    assert expected_calibration_error(probs, labels) <= 0.03
    recall = dict(zip(EMOTIONS, recalls(probs.argmax(1), labels, len(EMOTIONS))))
    assert recall["disgust"] >= 0.45 and recall["fear"] >= 0.45, recall
    assert np.isfinite(probs).all()


def test_mirroring_only_uncertain_faces_costs_at_most_0_3_points(public_test):
    """The card's `tta_flip_below` (chosen on the validation part, bench/flip_below.py) against
    mirroring every face: 64.4% vs 64.6% when it was chosen."""
    from fer_video.expression.classify import ExpressionClassifier
    from fer_video.expression.training.data import load_folder

    classifier, probs, labels = public_test
    if classifier.flip_below is None:
        pytest.skip("the shipped card mirrors every face")
    full = ExpressionClassifier(flip=True)
    assert full.flip_below is None
    full_accuracy = float((full(load_folder(PUBLIC_TEST)[0]).argmax(1) == labels).mean())
    accuracy = float((probs.argmax(1) == labels).mean())
    assert accuracy >= full_accuracy - 0.003, (accuracy, full_accuracy)
