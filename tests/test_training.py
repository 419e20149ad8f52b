"""Training round trip on a tiny FER2013-layout dataset made here (7 classes x 10 synthetic
48x48 faces-that-are-not-faces with a stripe pattern per class): `fer-video train`, again with one
more epoch (it must resume, not restart), the exported model in `ExpressionClassifier`, and
`fer-video evaluate --json`. Tiny widths and 2-3 epochs: this checks the plumbing, not accuracy.
"""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from fer_video.expression.training.data import load_folder, resolve_split, stratified_split
from fer_video.expression.training.export import file_sha256
from fer_video.expression.labels import EMOTIONS
from helpers import run_cli, tiny_fer_dataset

PER_CLASS = 10


def read_history(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_fer_dataset(tmp_path_factory.mktemp("tiny_fer"), PER_CLASS)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """Train 2 epochs, snapshot the run folder, train again asking for 3, then evaluate."""
    work = tmp_path_factory.mktemp("train")
    run_dir, export, report = work / "run", work / "models", work / "eval"
    common = ["--run-dir", run_dir, "--widths", "8,16", "--export", export]
    first = run_cli("train", dataset, "--epochs", "2", *common)
    assert first.returncode == 0, first.stderr
    history_1, log_1 = read_history(run_dir / "history.csv"), (run_dir / "train.log").read_text()
    card_1 = json.loads((run_dir / "model.json").read_text())
    second = run_cli("train", dataset, "--epochs", "3", *common)
    assert second.returncode == 0, second.stderr
    evaluated = run_cli("evaluate", dataset, "--split", "train", "--model", export / "fer_vgg.keras",
                        "--json", "--out", report)
    return SimpleNamespace(run_dir=run_dir, export=export, report=report, first=first, second=second,
                           evaluated=evaluated, history_1=history_1, log_1=log_1, card_1=card_1)


def test_train_writes_model_card_history_log_and_export(trained):
    run = trained.run_dir
    for name in ("model.keras", "model.json", "model.tflite", "history.csv", "train.log"):
        assert (run / name).exists(), name
    assert [int(r["epoch"]) for r in trained.history_1] == [0, 1]
    assert "epoch 1/2" in trained.log_1 and "epoch 2/2" in trained.log_1
    n_val = len(EMOTIONS) * round(PER_CLASS * 0.1)
    assert f"data: {len(EMOTIONS) * PER_CLASS - n_val} train, {n_val} validation" in trained.log_1
    card = trained.card_1
    assert card["name"] == "fer_vgg" and card["classes"] == list(EMOTIONS)
    assert card["temperature"] > 0
    assert card["validation"]["images"] == n_val
    assert card["config"]["widths"] == [8, 16] and card["config"]["epochs"] == 2
    assert (trained.export / "fer_vgg.keras").exists() and (trained.export / "fer_vgg.json").exists()
    assert json.loads((run / "model.json").read_text())["tflite_from_keras_sha256"] == file_sha256(run / "model.keras")
    exported = json.loads((trained.export / "fer_vgg.json").read_text())
    assert exported["tflite_from_keras_sha256"] == file_sha256(trained.export / "fer_vgg.keras")
    assert exported["tflite_sha256"] == file_sha256(trained.export / "fer_vgg.tflite")
    assert "Traceback" not in trained.first.stderr


def test_training_again_with_one_more_epoch_resumes(trained):
    history = read_history(trained.run_dir / "history.csv")
    assert len(history) == len(trained.history_1) + 1
    assert history[: len(trained.history_1)] == trained.history_1
    assert int(history[-1]["epoch"]) == 2
    new_log = (trained.run_dir / "train.log").read_text()[len(trained.log_1):]
    assert "epoch 3/3" in new_log
    assert "epoch 1/3" not in new_log and "epoch 2/3" not in new_log, "it restarted instead of resuming"
    card = json.loads((trained.export / "fer_vgg.json").read_text())
    assert card["config"]["epochs"] == 3


def test_exported_model_classifies(trained, dataset):
    from fer_video.expression.classify import ExpressionClassifier

    classifier = ExpressionClassifier(trained.export / "fer_vgg.keras")
    assert classifier.backend == "tflite (fer_vgg.tflite)", "--export writes a fresh .tflite"
    card = json.loads((trained.export / "fer_vgg.json").read_text())
    assert classifier.temperature == pytest.approx(card["temperature"])
    assert classifier.name == "fer_vgg"
    faces, labels, _ = load_folder(resolve_split(dataset, "train"))
    probs = classifier(faces)
    assert probs.shape == (len(labels), len(EMOTIONS)) and probs.dtype == np.float32
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert classifier(np.zeros((0, 48, 48), np.uint8)).shape == (0, len(EMOTIONS))
    with pytest.raises(ValueError):
        classifier(np.zeros((2, 32, 32), np.uint8))


def test_evaluate_prints_json_and_writes_report_and_png(trained):
    proc = trained.evaluated
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    images = len(EMOTIONS) * PER_CLASS
    assert report["images"] == images
    assert 0.0 <= report["accuracy"] <= 1.0
    for name, metrics in report["per_class"].items():
        assert name in EMOTIONS
        for key in ("precision", "recall", "f1-score"):
            assert 0.0 <= metrics[key] <= 1.0, (name, key)
    assert {"precision", "recall", "f1-score", "support"} <= set(report["per_class"]["happy"])
    matrix = report["confusion_matrix"]
    assert matrix["labels"] == list(EMOTIONS)
    counts = np.array(matrix["counts"])
    assert counts.shape == (len(EMOTIONS), len(EMOTIONS))
    assert counts.sum(axis=1).tolist() == [PER_CLASS] * len(EMOTIONS)
    assert report["accuracy"] == pytest.approx(np.trace(counts) / images)
    assert json.loads((trained.report / "report.json").read_text()) == report
    png = trained.report / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    picture = cv2.imread(str(png))
    assert picture is not None and min(picture.shape[:2]) >= 300


def test_same_seed_same_validation_split(dataset):
    _, labels, _ = load_folder(resolve_split(dataset, "train"))
    train_a, val_a = stratified_split(labels, 0.1, seed=1)
    train_b, val_b = stratified_split(labels, 0.1, seed=1)
    np.testing.assert_array_equal(val_a, val_b)
    np.testing.assert_array_equal(train_a, train_b)
    _, val_c = stratified_split(labels, 0.1, seed=2)
    assert not np.array_equal(val_a, val_c)
    # Stratified and complete: one of every class's ten held out, nothing lost or shared.
    assert np.bincount(labels[val_a], minlength=len(EMOTIONS)).tolist() == [1] * len(EMOTIONS)
    assert np.intersect1d(train_a, val_a).size == 0
    assert np.union1d(train_a, val_a).tolist() == list(range(len(labels)))


def test_load_folder_order_is_repeatable(dataset):
    _, labels_a, paths_a = load_folder(resolve_split(dataset, "train"))
    _, labels_b, paths_b = load_folder(dataset / "train")
    assert paths_a == paths_b and labels_a.tolist() == labels_b.tolist()


def test_resolve_split_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        resolve_split(tmp_path, "public_test")


def test_a_network_distilled_from_a_trained_one(trained, dataset, tmp_path):
    """--teacher: the student learns the labels and the teacher's softened predictions on the
    same augmented views; a teacher may be a run's network (best.keras) or the model the
    pipeline runs (model.keras), and the card records them."""
    run_dir = tmp_path / "student"
    teachers = [trained.run_dir / "best.keras", trained.run_dir / "model.keras"]
    result = run_cli("train", dataset, "--epochs", "1", "--run-dir", run_dir, "--widths", "4,8",
                     "--teacher", teachers[0], "--teacher", teachers[1], "--distill-weight", "0.5")
    assert result.returncode == 0, result.stderr
    card = json.loads((run_dir / "model.json").read_text())
    assert card["config"]["teachers"] == [str(t.resolve()) for t in teachers]
    assert card["config"]["distill_weight"] == 0.5
    assert 0 <= card["validation"]["accuracy"] <= 1
    assert "distilling from" in (run_dir / "train.log").read_text()
    history = read_history(run_dir / "history.csv")
    assert len(history) == 1 and 0 <= float(history[0]["val_accuracy"]) <= 1


def test_a_missing_teacher_is_one_line(dataset, tmp_path):
    result = run_cli("train", dataset, "--run-dir", tmp_path / "run", "--teacher", tmp_path / "nope.keras")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"fer-video: error: {tmp_path / 'nope.keras'}: no such teacher model"]
    assert not (tmp_path / "run").exists()  # checked before anything is made


def test_bf16_fine_tune_from_a_trained_network_exports_float32(trained, dataset, tmp_path):
    """--init-from starts from a trained network's weights (the pipeline's wrapped model here);
    --precision mixed_bfloat16 trains in bf16 but the exported model and .tflite are float32."""
    import keras

    run_dir = tmp_path / "tuned"
    result = run_cli("train", dataset, "--epochs", "1", "--lr", "0", "--run-dir", run_dir, "--widths", "8,16",
                     "--precision", "mixed_bfloat16", "--init-from", trained.export / "fer_vgg.keras")
    assert result.returncode == 0, result.stderr
    card = json.loads((run_dir / "model.json").read_text())
    assert card["config"]["precision"] == "mixed_bfloat16"
    assert card["config"]["init_from"] == str((trained.export / "fer_vgg.keras").resolve())
    tuned = keras.models.load_model(run_dir / "model.keras", compile=False)
    start = keras.models.load_model(trained.export / "fer_vgg.keras", compile=False)
    assert all(w.dtype == np.float32 for w in tuned.get_weights())
    assert {layer.dtype_policy.name for layer in tuned.layers[-1].layers} == {"float32"}
    # lr 0: the convolutions keep the starting weights (batch norm's moving statistics move).
    conv = [i for i, w in enumerate(start.get_weights()) if w.ndim == 4]
    assert conv and all(np.array_equal(tuned.get_weights()[i], start.get_weights()[i]) for i in conv)
    x = np.random.default_rng(0).random((4, 48, 48, 1), np.float32)
    assert np.asarray(tuned(x)).dtype == np.float32
    assert (run_dir / "model.tflite").exists()
    assert json.loads((run_dir / "model.json").read_text())["tflite_quantization"] == "none"


def test_a_missing_starting_network_is_one_line(dataset, tmp_path):
    result = run_cli("train", dataset, "--run-dir", tmp_path / "run", "--init-from", tmp_path / "nope.keras")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"fer-video: error: {tmp_path / 'nope.keras'}: no such model to start from"]
