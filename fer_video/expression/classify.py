"""Batched expression classification with calibrated probabilities, as the pipeline runs it."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import threading
from pathlib import Path

import numpy as np

from fer_video.expression.preprocess import to_model_input
from fer_video.jobs import DEFAULT_MODEL, file_sha256, fingerprint
# The model card and its .tflite record are written by the export; checking them imports no TensorFlow.
from fer_video.expression.card import card_path, fresh_tflite
from fer_video.faces.record import Faces
from fer_video.resources import model_threads, new_interpreter

log = logging.getLogger(__name__)

# Faces per model invoke (twice as many images with flip TTA). On 2 cores XNNPACK runs this model
# at 3,180 images/s with 64 per invoke and 3,020 with 512 (the pipeline's 256 faces, flipped), and
# 64 images need 9 MB of activations where 512 need 75 MB.
DEFAULT_BATCH = 32


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def model_card_path(model_path: Path) -> Path:
    """The JSON beside a model: its classes, temperature and metrics."""
    return card_path(model_path)


class _LiteRT:
    """logits(x): (n, 48, 48, 1) float32 -> (n, 7) through a LiteRT interpreter (XNNPACK).

    An interpreter's batch size is fixed, and the model costs the same per face at 8 faces an
    invoke as at 64 (`bench/classifier.py --invokes`), so a batch is never padded: it runs as
    invokes of the sizes it breaks into, a multiple of 16 (at most `max_images`) and then 8, 4, 2
    and 1 for the rest. Ten faces run as 8 and 2, not as 16 of which six are zeros. There are a
    handful of interpreters per process at most (1, 2, 4, 8, 16, 32, 48, 64), and rows are
    independent, so how a batch is split does not change any row's logits."""

    def __init__(self, content: bytes, threads: int, max_images: int):
        self.content, self.threads = content, threads
        self.max_images = max_images
        self._interpreters: dict[int, tuple] = {}

    def _interpreter(self, size: int):
        if size not in self._interpreters:
            interpreter, index = new_interpreter([size, 48, 48, 1], model_content=self.content,
                                                 num_threads=self.threads)
            self._interpreters[size] = (interpreter, index, interpreter.get_output_details()[0]["index"])
        return self._interpreters[size]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = [self._invoke(x[start : start + size]) for start, size in _pieces(len(x), self.max_images)]
        if not out:
            return np.zeros((0, 7), np.float32)
        return np.concatenate(out) if len(out) > 1 else out[0]

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        interpreter, index, output = self._interpreter(len(x))
        interpreter.set_tensor(index, np.ascontiguousarray(x))
        interpreter.invoke()
        return interpreter.get_tensor(output)


def _pieces(n: int, max_images: int) -> list[tuple[int, int]]:
    """(start, size) of the invokes `n` images run as (`_LiteRT`): all at once from `max_images`
    on, else a multiple of 16, then the powers of two the rest is made of, largest first."""
    if n >= max_images:
        return [(0, n)]
    sizes = [n // 16 * 16] if n >= 16 else []
    sizes += [bit for bit in (8, 4, 2, 1) if n % 16 & bit]
    return list(zip(itertools.accumulate(sizes[:-1], initial=0), sizes))


class _Keras:
    """The same logits through Keras/TensorFlow (`backend="keras"`): the reference the TFLite
    model is checked against (tests, bench/classifier.py, `fer-video evaluate`)."""

    def __init__(self, path: Path, threads: int):
        import keras
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # TensorFlow already ran something in this process; it keeps its pool
        model = keras.models.load_model(path, compile=False)
        self._fn = tf.function(
            lambda x: model(x, training=False), reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, 48, 48, 1], tf.float32)],
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._fn(x).numpy()


class ExpressionClassifier:
    """`classifier(crops)`: (N, 48, 48) uint8 grey face crops -> (N, 7) calibrated probabilities;
    `classifier.classify(faces, crops)`: the same into `faces.probs`.

    The model runs as a TFLite model in LiteRT: the `.tflite` beside the `.keras`, made by
    fer_video/expression/training/export.py, used only while the model card records that it was
    converted from this very `.keras`. No TensorFlow is imported then (2.7 s saved per process).
    Faces run in batches of `batch_size`; with `flip`, each batch and its mirror image go through
    the model in one invoke and the two logits are averaged (test-time augmentation). `flip=None`
    (the default) does what the model card's `tta` says: the augmentation the model was evaluated
    with. Logits then get the card's per-class `logit_bias` (fitted on validation faces, so rare
    classes are not drowned by common ones) and are divided by its temperature.

    `backend`: "auto" (the above), "tflite" (the same, but a missing or stale .tflite is an
    error) or "keras" (the .keras through TensorFlow, as before the .tflite existed).

    `flip_below` (default: the card's `tta_flip_below`, else None): with flip, mirror only the
    faces whose calibrated confidence without the mirror is below this; the others keep their
    plain logits. None mirrors every face. The plain pass then runs all faces in invokes of
    2 x `batch_size` images and the mirror pass only the uncertain ones: about 1.5x the faces/s
    of full flip at 0.5 (MODEL_CARD.md).

    Invokes run on `model_threads()` threads; `on_threads(n)` gives the same classifier on `n`.
    """

    def __init__(self, model_path: str | Path | None = None, batch_size: int = DEFAULT_BATCH,
                 flip: bool | None = None, backend: str = "auto", flip_below: float | None = None):
        if backend not in ("auto", "tflite", "keras"):
            raise ValueError(f"backend must be auto, tflite or keras, not {backend!r}")
        self.path = Path(model_path) if model_path else DEFAULT_MODEL
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no expression model (train one with `fer-video train`)")
        card = model_card_path(self.path)
        self.card = json.loads(card.read_text()) if card.exists() else {}
        self.temperature = float(self.card.get("temperature", 1.0))
        self.logit_bias = np.asarray(self.card.get("logit_bias", np.zeros(7)), np.float32).reshape(7)
        self.name = self.card.get("name", self.path.stem)
        self.version = self.card.get("code_version", "unknown")
        # Of the .keras and its card, whichever engine runs it: job keys name the model and its
        # calibration, not its conversion.
        keras_sha256 = file_sha256(self.path)
        self.sha256 = fingerprint(keras_sha256, self.card)
        self.batch_size = int(batch_size)
        self.flip = self.card.get("tta", "flip") == "flip" if flip is None else bool(flip)
        if flip_below is None and flip is None:
            flip_below = self.card.get("tta_flip_below")
        self.flip_below = float(flip_below) if self.flip and flip_below is not None else None
        if self.flip and self.flip_below is None and "temperature_flip_all" in self.card:
            self.temperature = float(self.card["temperature_flip_all"])  # fitted for every face mirrored
        # One classifier serves every thread of a process (batch jobs, segments), but an
        # interpreter's input, invoke and output are one unit: two threads inside it at once
        # raise or swap each other's results.
        self._lock = threading.Lock()
        threads = model_threads()
        self._on_threads: dict[int, ExpressionClassifier] = {threads: self}  # shared with those `on_threads` made
        images = self.batch_size * (2 if self.flip else 1)
        if backend == "keras":
            self.backend = "keras"
            self._logits = _Keras(self.path, threads)
            return
        tflite, why_not = fresh_tflite(self.path, self.card, keras_sha256)
        if tflite is not None:
            self.backend = f"tflite ({tflite.name})"
            self._logits = _LiteRT(tflite.read_bytes(), threads, images)
            return
        if backend == "tflite":
            raise FileNotFoundError(f"{why_not}; write it with `python -m fer_video.expression.training.export {self.path}`")
        # A user-trained model without a (fresh) .tflite: convert it here, in memory, rather than
        # run it through Keras. The conversion imports TensorFlow (seconds, once per process) but
        # then the model runs on the same engine, with the same numerics and speed, as the shipped
        # one; nothing is written beside the user's model (its folder may be read-only, and
        # parallel workers would race). A stale .tflite is never run: it was made from other weights.
        from fer_video.expression.training.export import convert

        log.warning("%s: converting %s to TFLite in memory (`python -m fer_video.expression.training.export %s` "
                    "writes it once)", why_not, self.path.name, self.path)
        self.backend = "tflite (converted in memory)"
        self._logits = _LiteRT(convert(self.path), threads, images)

    def _run(self, x: np.ndarray, per_invoke: int) -> np.ndarray:
        out = np.empty((len(x), 7), np.float32)
        for start in range(0, len(x), per_invoke):
            with self._lock:
                out[start : start + per_invoke] = self._logits(x[start : start + per_invoke])
        return out

    def on_threads(self, threads: int) -> "ExpressionClassifier":
        """This classifier with its invokes on `threads` threads (`model_threads(beside_encoder)`
        chooses per input): the same model, calibration and lock, interpreters of its own, made
        once per thread count. The Keras backend keeps TensorFlow's own pool."""
        if not isinstance(self._logits, _LiteRT) or threads == self._logits.threads:
            return self
        if threads not in self._on_threads:
            view = copy.copy(self)
            view._logits = _LiteRT(self._logits.content, threads, self._logits.max_images)
            self._on_threads[threads] = view
        return self._on_threads[threads]

    def logits(self, crops: np.ndarray) -> np.ndarray:
        x = to_model_input(np.asarray(crops))
        if self.flip_below is not None:
            # Plain pass for all, mirror pass for the uncertain; as many images per invoke as
            # a full-flip batch, so the same interpreters serve.
            out = self._run(x, 2 * self.batch_size)
            confidence = softmax(out + self.logit_bias, self.temperature).max(axis=1)
            redo = np.flatnonzero(confidence < self.flip_below)
            if len(redo):
                out[redo] = (out[redo] + self._run(x[redo, :, ::-1], 2 * self.batch_size)) / 2
            return out + self.logit_bias
        out = np.empty((len(x), 7), np.float32)
        for start in range(0, len(x), self.batch_size):
            chunk = x[start : start + self.batch_size]
            n = len(chunk)
            batch = np.concatenate([chunk, chunk[:, :, ::-1]]) if self.flip else chunk
            with self._lock:
                logits = self._logits(batch)
            out[start : start + n] = (logits[:n] + logits[n:]) / 2 if self.flip else logits
        return out + self.logit_bias

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 7), np.float32)
        return softmax(self.logits(crops), self.temperature).astype(np.float32)

    def classify(self, faces: Faces, crops: np.ndarray) -> Faces:
        """`faces` with `probs` filled from their crops (row i is face i's crop)."""
        return faces.with_(probs=self(crops))
