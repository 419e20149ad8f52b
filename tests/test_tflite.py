"""The expression model as the pipeline runs it: a .tflite in LiteRT, converted from the .keras
(fer_video/expression/export.py). Same probabilities as Keras, no TensorFlow at run time, and a
.tflite that no longer matches its .keras is never run."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from fer_video.expression.classify import DEFAULT_MODEL, ExpressionClassifier
from fer_video.expression.export import (
    TFLITE_KERAS_SHA_KEY,
    TFLITE_SHA_KEY,
    card_path,
    export_tflite,
    file_sha256,
    tflite_path,
)

CARD = {"name": "tiny", "temperature": 0.7, "logit_bias": [0.3, 1.0, 0.2, -0.5, 0, 0, -1.0], "code_version": "test"}


def faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def save_tiny_model(path, seed: int) -> None:
    """An untrained tiny model with weights and batch-norm statistics drawn at random, its logits
    scaled up so the probabilities are far from uniform (a real test of agreement)."""
    import keras

    from fer_video.expression.model import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(widths=(8, 16))
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.ndim == 1:  # batch norm gamma/beta/mean/variance, dense bias
            w = np.abs(rng.normal(1.0, 0.3, w.shape)).astype(np.float32)
        weights.append(w)
    weights[-2] = weights[-2] * 20  # dense kernel
    model.set_weights(weights)
    model.save(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("tensorflow", reason="exporting needs TensorFlow")
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    save_tiny_model(path, seed=1)
    card_path(path).write_text(json.dumps(CARD))
    export_tflite(path)
    return path


def test_export_writes_tflite_and_records_its_source_in_the_card(tiny):
    card = json.loads(card_path(tiny).read_text())
    assert {k: card[k] for k in CARD} == CARD, "the card's other keys are kept"
    assert card[TFLITE_KERAS_SHA_KEY] == file_sha256(tiny)
    assert card[TFLITE_SHA_KEY] == file_sha256(tflite_path(tiny))
    assert not [p.name for p in tiny.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("flip", [False, True])
def test_tflite_gives_the_keras_probabilities(tiny, flip):
    x = faces(77)  # two full batches of 32 and a padded tail of 13
    lite = ExpressionClassifier(tiny, flip=flip, backend="tflite")
    ref = ExpressionClassifier(tiny, flip=flip, backend="keras")
    assert lite.backend == "tflite (tiny.tflite)" and ref.backend == "keras"
    p, q = lite(x), ref(x)
    assert p.dtype == np.float32 and p.shape == (77, 7)
    assert p.max(axis=1).mean() > 0.5, "probabilities near uniform: the comparison would prove little"
    assert np.abs(p - q).max() < 1e-4
    # Batching and padding do not change a face's result.
    np.testing.assert_allclose(lite(x[5:6]), p[5:6], atol=1e-6)
    np.testing.assert_allclose(lite(x[:40]), p[:40], atol=1e-6)


def test_a_stale_tflite_is_not_run(tiny, tmp_path, caplog):
    """The .keras retrained (other weights) after its .tflite was written: the classifier must
    not run the old .tflite; it converts the new .keras in memory, and says so."""
    pytest.importorskip("tensorflow")
    import shutil

    for suffix in (".keras", ".json", ".tflite"):
        shutil.copy(tiny.with_suffix(suffix), tmp_path / f"m{suffix}")
    model = tmp_path / "m.keras"
    old = ExpressionClassifier(model, backend="tflite")(faces(20))
    save_tiny_model(model, seed=2)  # retrained; the card and the .tflite are the old ones
    with caplog.at_level(logging.WARNING, logger="fer_video.expression.classify"):
        classifier = ExpressionClassifier(model)
    assert classifier.backend == "tflite (converted in memory)"
    assert "stale" in caplog.text
    new, ref = classifier(faces(20)), ExpressionClassifier(model, backend="keras")(faces(20))
    assert np.abs(new - ref).max() < 1e-4
    assert np.abs(new - old).max() > 0.01
    with pytest.raises(FileNotFoundError, match="stale"):
        ExpressionClassifier(model, backend="tflite")


def test_a_tflite_that_is_not_the_recorded_file_is_not_run(tiny, tmp_path):
    import shutil

    for suffix in (".keras", ".json"):
        shutil.copy(tiny.with_suffix(suffix), tmp_path / f"m{suffix}")
    (tmp_path / "m.tflite").write_bytes(tflite_path(tiny).read_bytes() + b"\0")
    with pytest.raises(FileNotFoundError, match="not the file recorded"):
        ExpressionClassifier(tmp_path / "m.keras", backend="tflite")
    (tmp_path / "m.tflite").unlink()
    with pytest.raises(FileNotFoundError, match="no m.tflite"):
        ExpressionClassifier(tmp_path / "m.keras", backend="tflite")


def test_shipped_tflite_is_converted_from_the_shipped_keras():
    pytest.importorskip("tensorflow", reason="the comparison runs the .keras through TensorFlow")
    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    assert tflite_path(DEFAULT_MODEL).exists(), "run `python -m fer_video.expression.export models/fer_vgg.keras`"
    assert card[TFLITE_KERAS_SHA_KEY] == file_sha256(DEFAULT_MODEL), "models/fer_vgg.tflite is stale"
    assert card[TFLITE_SHA_KEY] == file_sha256(tflite_path(DEFAULT_MODEL))
    x = faces(64, seed=3)
    lite = ExpressionClassifier(backend="tflite")
    assert lite.sha256 == file_sha256(DEFAULT_MODEL), "job keys keep naming the .keras"
    ref = ExpressionClassifier(backend="keras")
    assert np.abs(lite(x) - ref(x)).max() < 1e-4
    assert np.abs(lite.logits(x) - ref.logits(x)).max() < 1e-3


def test_classifying_with_the_shipped_model_does_not_import_tensorflow():
    code = (
        "import sys, numpy as np\n"
        "from fer_video.expression.classify import ExpressionClassifier\n"
        "c = ExpressionClassifier()\n"
        "p = c(np.random.default_rng(0).integers(0, 256, (40, 48, 48), dtype=np.uint8))\n"
        "assert p.shape == (40, 7), p.shape\n"
        "print(c.backend)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["tflite (fer_vgg.tflite)", "[]"]


def test_one_classifier_serves_threads_at_once():
    """Batch jobs and segments in threads share the process's classifier; each call must get its
    own faces' probabilities (unguarded, LiteRT raised or swapped inputs between threads)."""
    import threading

    classifier = ExpressionClassifier()
    rng = np.random.default_rng(3)
    inputs = [rng.integers(0, 256, (n, 48, 48), np.uint8) for n in (3, 5, 7, 9) * 3]
    expected = [classifier(x) for x in inputs]
    errors: list = []

    def work(offset: int) -> None:
        try:
            for _ in range(20):
                for i in range(offset, len(inputs), 2):
                    np.testing.assert_allclose(classifier(inputs[i]), expected[i], atol=1e-6)
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_models_load_without_cpp_chatter_on_stderr():
    """A fresh process (a Dask worker, a scheduled run) loading both models: LiteRT's delegate
    banner is not printed into the user's terminal."""
    script = ("import numpy as np\n"
              "from fer_video.faces.detect import make_detector\n"
              "from fer_video.expression.classify import ExpressionClassifier\n"
              "make_detector()(np.zeros((64, 64, 3), np.uint8))\n"
              "print(ExpressionClassifier()(np.zeros((3, 48, 48), np.uint8)).shape)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "(3, 7)", proc.stderr
    assert proc.stderr == ""
