"""Batched expression classification with calibrated probabilities, as the pipeline runs it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from fer_video.expression.calibration import softmax
from fer_video.expression.preprocess import match_training_sharpness, to_model_input
from fer_video.resources import model_threads

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL = MODELS_DIR / "fer_vgg.keras"


def model_card_path(model_path: Path) -> Path:
    """The JSON beside a model: its classes, temperature and metrics."""
    return model_path.with_suffix(".json")


class ExpressionClassifier:
    """`classifier(faces)`: (N, 48, 48) uint8 grey crops -> (N, 7) calibrated probabilities.

    Faces are run in fixed-size batches through one traced function, so the per-call overhead
    of `model.predict` is paid once per batch, not once per face. With `flip`, each face is also
    classified mirrored and the logits averaged (test-time augmentation).
    """

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 256, flip: bool = True):
        import keras
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(model_threads())
        except RuntimeError:
            pass  # TensorFlow already ran something in this process; it keeps its pool

        self.path = Path(model_path) if model_path else DEFAULT_MODEL
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no expression model (train one with `fer-video train`)")
        card = model_card_path(self.path)
        self.card = json.loads(card.read_text()) if card.exists() else {}
        self.temperature = float(self.card.get("temperature", 1.0))
        self.blur_sigma = float(self.card.get("input_blur_sigma", 0.0))
        self.name = self.card.get("name", self.path.stem)
        self.version = self.card.get("code_version", "unknown")
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.batch_size = batch_size
        self.flip = flip
        model = keras.models.load_model(self.path, compile=False)
        self._logits = tf.function(
            lambda x: model(x, training=False), reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, 48, 48, 1], tf.float32)],
        )

    def logits(self, faces: np.ndarray) -> np.ndarray:
        x = to_model_input(match_training_sharpness(np.asarray(faces), self.blur_sigma))
        out = np.empty((len(x), 7), np.float32)
        for start in range(0, len(x), self.batch_size):
            chunk = x[start : start + self.batch_size]
            logits = self._logits(chunk).numpy()
            if self.flip:
                logits = (logits + self._logits(chunk[:, :, ::-1]).numpy()) / 2
            out[start : start + len(chunk)] = logits
        return out

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        if len(faces) == 0:
            return np.zeros((0, 7), np.float32)
        return softmax(self.logits(faces), self.temperature).astype(np.float32)
