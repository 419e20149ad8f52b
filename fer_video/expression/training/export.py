"""Converting a trained .keras expression model to a LiteRT (.tflite) model for inference.

    .venv/bin/python -m fer_video.expression.training.export models/fer_vgg.keras [--dynamic-range | --int8 DATASET]

writes models/fer_vgg.tflite beside the .keras and records in its card (models/fer_vgg.json) the
sha256 of the .keras it was converted from (`tflite_from_keras_sha256`), of the .tflite itself
(`tflite_sha256`) and its quantisation (`tflite_quantization`: none, dynamic_range or int8; int8
calibrates on the validation part of DATASET/train). The shipped model is int8: 5.5x the faces/s
of float32 where XNNPACK has VNNI, at about half a point of accuracy (MODEL_CARD.md).
`ExpressionClassifier` runs the .tflite only while both sha256 still match, so an edited or
retrained .keras never runs through an old conversion.

TensorFlow is imported inside the functions that convert; reading the card and checking a
.tflite live in `fer_video.expression.card`, which the pipeline imports instead.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from fer_video.expression.card import (TFLITE_KERAS_SHA_KEY, TFLITE_SHA_KEY, card_path,  # noqa: F401
                                       fresh_tflite, tflite_path)
from fer_video.jobs import file_sha256  # the one hash of a file; tests import it from here too
from fer_video.resources import quiet_stderr

def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one."""
    from fer_video.outputs import atomic_path

    with atomic_path(path) as temp:
        temp.write_bytes(data)


def convert(model, dynamic_range: bool = False, representative=None) -> bytes:
    """A Keras model (or the path of a .keras) as a TFLite flatbuffer with a dynamic batch
    dimension (input (-1, 48, 48, 1) float32 in [0, 1], output (-1, 7) float32 logits), TFLite
    builtin ops only: LiteRT runs it with its default XNNPACK delegate and without TensorFlow.

    `TFLiteConverter.from_keras_model` (TF 2.21, Keras 3) freezes the weights and folds batch norm
    into the convolutions. `model.export(format="litert")` would also allow SELECT_TF_OPS, i.e.
    a model LiteRT alone might not run; a concrete function of `model(x)` keeps Keras 3's
    variables as resource reads (READ_VARIABLE ops, no weights in the file).

    `representative`: (n, 48, 48) uint8 faces (the validation part of train, never a test set):
    full-integer post-training quantisation, int8 weights (per channel) and int8 activations
    whose ranges are calibrated on those faces; the input and output stay float32 (a quantise
    op in, a dequantise op out), so callers do not change. `dynamic_range`: int8 weights only,
    activations quantised at run time. Float32 when neither."""
    # TensorFlow's C++ start-up (absl, oneDNN, CUDA probing) writes to the descriptors directly:
    # a command that converts a user's model, or fails to read it, says one line of its own.
    with quiet_stderr(also_stdout=True):
        import keras
        import tensorflow as tf

        if not isinstance(model, keras.Model):
            model = keras.models.load_model(model, compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if representative is not None:
        from fer_video.expression.preprocess import to_model_input

        x = to_model_input(np.asarray(representative))

        def batches():
            for start in range(0, len(x), 32):
                yield [x[start : start + 32]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = batches
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif dynamic_range:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    # It prints the SavedModel's signature and MLIR pass logs to stdout and stderr; a
    # `fer-video train --json` or a test's captured output has no use for them.
    with quiet_stderr(also_stdout=True):
        return converter.convert()


def validation_split(dataset_dir: str | Path, votes_csv: str | Path | None = None, fraction: float = 0.1,
                     seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The validation part of `dataset_dir`/train as `fer-video train` splits it (10%, stratified,
    seed 1 by default), never a test set: its faces, their FER2013 labels, and with `votes_csv`
    (FER+ votes) the crowd's majority class of each (-1 where there is no single one or no votes)."""
    from fer_video.expression.training.data import load_folder, resolve_split, stratified_split

    faces, labels, paths = load_folder(resolve_split(dataset_dir, "train"))
    _, val = stratified_split(labels, fraction, seed)
    if votes_csv is None:
        return faces[val], labels[val], None
    from fer_video.expression.training.votes import read_votes, relative_to_root

    votes, found = read_votes(votes_csv, relative_to_root([paths[i] for i in val], dataset_dir))
    return faces[val], labels[val], np.where(found, votes.majority(), -1)


def validation_faces(dataset_dir: str | Path, fraction: float = 0.1, seed: int = 1,
                     votes_csv: str | Path | None = None):
    """`validation_split`'s faces and labels: the faces an int8 conversion calibrates its ranges
    on. With `votes_csv`, the faces that have a crowd majority, labelled by it."""
    faces, labels, majority = validation_split(dataset_dir, votes_csv, fraction, seed)
    if majority is None:
        return faces, labels
    keep = majority >= 0
    return faces[keep], majority[keep]


def export_tflite(keras_path: str | Path, dynamic_range: bool = False, representative=None) -> Path:
    """Write <stem>.tflite beside keras_path and record the conversion in <stem>.json (created if
    missing, other keys kept): float32, or int8 (`representative` faces, see `convert`)."""
    keras_path = Path(keras_path)
    keras_sha256 = file_sha256(keras_path)
    data = convert(keras_path, dynamic_range, representative)
    out = tflite_path(keras_path)
    _write_atomically(out, data)
    card_file = card_path(keras_path)
    card = json.loads(card_file.read_text()) if card_file.exists() else {}
    card[TFLITE_KERAS_SHA_KEY] = keras_sha256
    card[TFLITE_SHA_KEY] = hashlib.sha256(data).hexdigest()
    card["tflite_quantization"] = "int8" if representative is not None else "dynamic_range" if dynamic_range else "none"
    _write_atomically(card_file, (json.dumps(card, indent=2) + "\n").encode())
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    dataset = None
    if "--int8" in args:
        at = args.index("--int8")
        dataset = args[at + 1] if at + 1 < len(args) else None
        del args[at : at + 2]
        if not dataset or not Path(dataset).is_dir():
            print("--int8 needs the dataset folder (its train/ gives the calibration faces)", file=sys.stderr)
            return 2
    paths = [a for a in args if a != "--dynamic-range"]
    if not paths or any(p.startswith("-") for p in paths):
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    representative = validation_faces(dataset)[0] if dataset else None
    for path in paths:
        print(f"wrote {export_tflite(path, '--dynamic-range' in args, representative)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
