"""The model card beside a model (models/fer_vgg.json) and whether the .tflite beside it is the
conversion of this very .keras: what the pipeline reads before it classifies. Converting is
`fer_video.expression.training.export`'s."""

from __future__ import annotations

from pathlib import Path

from fer_video.jobs import file_sha256

TFLITE_KERAS_SHA_KEY = "tflite_from_keras_sha256"
TFLITE_SHA_KEY = "tflite_sha256"


def tflite_path(keras_path: str | Path) -> Path:
    """models/fer_vgg.keras -> models/fer_vgg.tflite"""
    return Path(keras_path).with_suffix(".tflite")


def card_path(keras_path: str | Path) -> Path:
    """The JSON beside a model: its classes, temperature, metrics and conversion record."""
    return Path(keras_path).with_suffix(".json")


def fresh_tflite(keras_path: str | Path, card: dict, keras_sha256: str | None = None) -> tuple[Path | None, str]:
    """(the .tflite beside keras_path, "") when the card says it was converted from this very
    .keras and the .tflite is the file then written; else (None, why not)."""
    path = tflite_path(keras_path)
    if not path.exists():
        return None, f"no {path.name} beside {Path(keras_path).name}"
    keras_sha256 = keras_sha256 or file_sha256(keras_path)
    recorded = card.get(TFLITE_KERAS_SHA_KEY)
    if recorded != keras_sha256:
        return None, (f"{path.name} is stale: converted from a .keras with sha256 {str(recorded)[:12]}..., "
                      f"but {Path(keras_path).name} has {keras_sha256[:12]}...")
    if card.get(TFLITE_SHA_KEY) not in (None, file_sha256(path)):
        return None, f"{path.name} is not the file recorded in the model card (sha256 differs)"
    return path, ""
