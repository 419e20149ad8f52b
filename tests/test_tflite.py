"""The expression model as the pipeline runs it: a .tflite in LiteRT, converted from the .keras
(fer_video/expression/training/export.py). Same probabilities as Keras, no TensorFlow at run time, and a
.tflite that no longer matches its .keras is never run."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from fer_video.expression.classify import DEFAULT_MODEL, ExpressionClassifier
from fer_video.jobs import AnnotateOptions, model_sha256
from fer_video.jobs import fingerprint, model_fingerprint
from fer_video.expression.training.export import (
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

    from fer_video.expression.training.model import build_model

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
    x = faces(77)  # two full invokes of 32 and a tail of 13 (8, 4 and 1)
    lite = ExpressionClassifier(tiny, flip=flip, backend="tflite")
    ref = ExpressionClassifier(tiny, flip=flip, backend="keras")
    assert lite.backend == "tflite (tiny.tflite)" and ref.backend == "keras"
    p, q = lite(x), ref(x)
    assert p.dtype == np.float32 and p.shape == (77, 7)
    assert p.max(axis=1).mean() > 0.5, "probabilities near uniform: the comparison would prove little"
    assert np.abs(p - q).max() < 1e-4
    # How a batch is split into invokes does not change a face's result.
    np.testing.assert_allclose(lite(x[5:6]), p[5:6], atol=1e-6)
    np.testing.assert_allclose(lite(x[:40]), p[:40], atol=1e-6)


def test_a_batch_runs_unpadded_as_invokes_of_the_sizes_it_breaks_into():
    """The model costs the same per face in invokes of 8 as of 64, so padding 10 faces to 16 would
    spend 60% more on zeros: 10 run as 8 and 2, with the logits each face gets on its own."""
    from fer_video.expression.classify import _LiteRT

    model = _LiteRT(DEFAULT_MODEL.with_suffix(".tflite").read_bytes(), threads=1, max_images=64)
    x = faces(10)[..., None].astype(np.float32) / 255
    logits = model(x)
    assert sorted(model._interpreters) == [2, 8]
    alone = np.concatenate([model(x[i : i + 1]) for i in range(10)])
    np.testing.assert_array_equal(logits, alone)
    assert model(x[:0]).shape == (0, 7)
    model(np.concatenate([x] * 5)[:47])  # 32 + 8 + 4 + 2 + 1
    assert sorted(model._interpreters) == [1, 2, 4, 8, 32]


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
    assert tflite_path(DEFAULT_MODEL).exists(), "run `python -m fer_video.expression.training.export models/fer_vgg.keras`"
    assert card[TFLITE_KERAS_SHA_KEY] == file_sha256(DEFAULT_MODEL), "models/fer_vgg.tflite is stale"
    assert card[TFLITE_SHA_KEY] == file_sha256(tflite_path(DEFAULT_MODEL))
    x = faces(64, seed=3)
    lite = ExpressionClassifier(backend="tflite")
    assert lite.sha256 == model_fingerprint(DEFAULT_MODEL), "job keys name the .keras and its card, not the .tflite"
    ref = ExpressionClassifier(backend="keras")
    if card.get("tflite_quantization", "none") == "none":
        assert np.abs(lite(x) - ref(x)).max() < 1e-4
        assert np.abs(lite.logits(x) - ref.logits(x)).max() < 1e-3
    else:  # int8: the network's answers within quantisation error (MODEL_CARD.md measures its accuracy)
        p, q = lite(x), ref(x)
        assert np.abs(p - q).max() < 0.1 and np.abs(p - q).mean() < 0.01, np.abs(p - q).max()
        assert (p.argmax(1) == q.argmax(1)).mean() >= 0.95


def test_a_quantised_conversion_is_part_of_the_model_fingerprint():
    """An int8 .tflite gives results of its own (another calibration, other answers), so job keys
    must change with it; a float32 one gives the network's, so they must not."""
    card = {"temperature": 0.5, "tflite_from_keras_sha256": "k", "tflite_sha256": "a", "tflite_quantization": "none"}
    assert fingerprint("net", card) == fingerprint("net", {**card, "tflite_sha256": "b"})
    int8 = {**card, "tflite_quantization": "int8"}
    assert fingerprint("net", int8) != fingerprint("net", {**int8, "tflite_sha256": "b"})
    assert fingerprint("net", int8) != fingerprint("net", card)


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
              "from fer_video.faces.detectors import make_detector\n"
              "from fer_video.expression.classify import ExpressionClassifier\n"
              "make_detector()(np.zeros((64, 64, 3), np.uint8))\n"
              "print(ExpressionClassifier()(np.zeros((3, 48, 48), np.uint8)).shape)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "(3, 7)", proc.stderr
    assert proc.stderr == ""


def astronaut_crops(n: int, seed: int) -> np.ndarray:
    """(n, 48, 48) uint8 grey faces cut from scikit-image's astronaut at random sizes, places and
    exposures, half of them mirrored: real-looking inputs that need no dataset."""
    import cv2

    from fer_video.samples import astronaut_face

    grey = cv2.cvtColor(astronaut_face(), cv2.COLOR_BGR2GRAY)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        side = int(rng.integers(110, 180))
        y, x = int(rng.integers(0, grey.shape[0] - side)), int(rng.integers(0, grey.shape[1] - side))
        face = cv2.resize(grey[y : y + side, x : x + side], (48, 48), interpolation=cv2.INTER_AREA)
        face = np.clip(255 * (face / 255.0) ** rng.uniform(0.6, 1.6) * rng.uniform(0.7, 1.1), 0, 255)
        out.append(face[:, ::-1] if i % 2 else face)
    return np.stack(out).astype(np.uint8)


def test_shipped_card_says_which_conversion_runs():
    """The card's `tflite_quantization` is what the shipped .tflite holds: float32 tensors only for
    "none", int8 weights for the quantised conversions (no TensorFlow needed)."""
    from ai_edge_litert.interpreter import Interpreter

    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    interpreter = Interpreter(model_path=str(tflite_path(DEFAULT_MODEL)))
    dtypes = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert card["tflite_quantization"] in ("none", "dynamic_range", "int8")
    assert ("int8" in dtypes) == (card["tflite_quantization"] != "none"), dtypes
    assert interpreter.get_input_details()[0]["dtype"] == np.float32, "callers always pass float32 faces"
    sizes = sum(p.stat().st_size for p in DEFAULT_MODEL.parent.iterdir() if p.is_file())
    assert sizes < 20e6, "everything in models/ stays under 20 MB"


def test_int8_conversion_of_the_shipped_model_agrees_with_float(tmp_path):
    """`export --int8`: the shipped .keras as full-integer int8 (ranges calibrated on faces; here
    astronaut crops, in `export --int8` the validation part of train), run as the pipeline runs it
    (the card's TTA, bias and temperature), against the float32 network on other crops."""
    pytest.importorskip("tensorflow", reason="converting needs TensorFlow")
    import shutil

    for suffix in (".keras", ".json"):
        shutil.copy(DEFAULT_MODEL.with_suffix(suffix), tmp_path / f"m{suffix}")
    export_tflite(tmp_path / "m.keras", representative=astronaut_crops(256, seed=1))
    card = json.loads(card_path(tmp_path / "m.keras").read_text())
    assert card["tflite_quantization"] == "int8"
    assert card[TFLITE_SHA_KEY] == file_sha256(tflite_path(tmp_path / "m.keras"))
    assert tflite_path(tmp_path / "m.keras").stat().st_size < DEFAULT_MODEL.stat().st_size / 3  # float32 weights
    x = astronaut_crops(128, seed=2)
    int8 = ExpressionClassifier(tmp_path / "m.keras", backend="tflite")
    ref = ExpressionClassifier(backend="keras")
    assert int8.backend == "tflite (m.tflite)"
    for faces_ in (x, x[:, :, ::-1]):
        p, q = int8(faces_), ref(faces_)
        assert (p.argmax(1) == q.argmax(1)).mean() >= 0.9
        assert np.abs(p - q).max() < 0.2 and np.abs(p - q).mean() < 0.02


def test_recalibrating_the_model_changes_its_job_key(tmp_path):
    """A card edit (here the temperature) changes results without touching the .keras: the jobs
    made with the old calibration must be redone, so the key has to see the card."""
    import shutil

    model = tmp_path / "m.keras"
    shutil.copy(DEFAULT_MODEL, model)
    card = {**json.loads(card_path(DEFAULT_MODEL).read_text()), "tflite_quantization": "none"}
    card_path(model).write_text(json.dumps(card))
    before = model_sha256(AnnotateOptions(model=model))
    assert ExpressionClassifier(model).sha256 == before, "the timeline's key and batch's key must agree"
    temperature = card["temperature"]
    card["temperature"] = float(temperature) * 1.1
    card_path(model).write_text(json.dumps(card))
    assert model_sha256(AnnotateOptions(model=model)) != before
    card[TFLITE_SHA_KEY] = "0" * 64  # a float32 re-conversion's record alone is no new result
    card["temperature"] = temperature
    card_path(model).write_text(json.dumps(card))
    assert model_sha256(AnnotateOptions(model=model)) == before
