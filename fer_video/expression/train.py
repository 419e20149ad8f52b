"""Training the expression classifier on a FER2013-layout folder, resumable from checkpoints.

A run directory holds everything a run needs to continue after an interruption: the decoded
dataset cache, Keras' BackupAndRestore state (model, optimiser, epoch), the best checkpoint and
the per-epoch history. Running the same command again resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fer_video.expression.calibration import expected_calibration_error, fit_temperature, softmax
from fer_video.expression.data import load_folder, resolve_split, stratified_split
from fer_video.expression.labels import EMOTIONS
from fer_video.expression.preprocess import to_model_input

log = logging.getLogger("fer_video.train")


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    val_fraction: float = 0.1
    patience: int = 15
    seed: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.4
    augment: bool = True
    limit: int | None = None  # use only the first N training images (tests, quick trials)


def _augmenter(seed: int):
    import keras
    from keras import layers

    # Mild, face-preserving changes: FER2013 faces are centred and upright, so large rotations or
    # crops would teach the model faces it never meets in the pipeline.
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
            layers.RandomRotation(0.05, fill_mode="nearest", seed=seed + 2),
            layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 3),
            layers.RandomContrast(0.3, seed=seed + 4),
            layers.RandomBrightness(0.2, value_range=(0.0, 1.0), seed=seed + 5),
        ],
        name="augment",
    )


def _load_cached(dataset_dir: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    if cache.exists():
        with np.load(cache) as data:
            return data["faces"], data["labels"]
    faces, labels, _ = load_folder(resolve_split(dataset_dir, "train"))
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, faces=faces, labels=labels)
    tmp.replace(cache)
    return faces, labels


def _best_so_far(history_csv: Path) -> float | None:
    if not history_csv.exists():
        return None
    with history_csv.open() as f:
        values = [float(row["val_accuracy"]) for row in csv.DictReader(f) if row.get("val_accuracy")]
    return max(values) if values else None


def _epoch_logger(total_epochs: int):
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log.info(
                "epoch %d/%d  %.0fs  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f",
                epoch + 1, total_epochs, time.monotonic() - self.started,
                logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                logs.get("val_loss", float("nan")), logs.get("val_accuracy", float("nan")),
            )

    return EpochLog()


def train(dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig) -> dict:
    """Train (or resume) in run_dir; returns the summary also written to run_dir/model.json."""
    import keras
    import tensorflow as tf

    from fer_video.expression.export import export_tflite
    from fer_video.expression.model import build_model
    from fer_video.versioning import code_version

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    faces, labels = _load_cached(Path(dataset_dir), run_dir / "train_cache.npz")
    if config.limit:
        faces, labels = faces[: config.limit], labels[: config.limit]
    train_idx, val_idx = stratified_split(labels, config.val_fraction, config.seed)
    x = to_model_input(faces)
    x_train, y_train, x_val, y_val = x[train_idx], labels[train_idx], x[val_idx], labels[val_idx]
    log.info("data: %d train, %d validation images from %s", len(y_train), len(y_val), dataset_dir)

    augment = _augmenter(config.seed) if config.augment else None
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(y_train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
    )
    if augment is not None:
        train_ds = train_ds.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=1)
    train_ds = train_ds.prefetch(2)
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(256)

    steps = int(np.ceil(len(y_train) / config.batch_size)) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps, warmup_target=config.learning_rate, warmup_steps=steps // 30
    )
    model = build_model(config.widths, config.dropout)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    one_hot = lambda a, b: (a, tf.one_hot(b, len(EMOTIONS)))  # noqa: E731
    history_csv = run_dir / "history.csv"
    best_path = run_dir / "best.keras"
    callbacks = [
        # Kept after a finished run too, so a later run with more --epochs continues from it.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(best_path), monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=_best_so_far(history_csv),
        ),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        _epoch_logger(config.epochs),
    ]
    started = time.monotonic()
    model.fit(
        train_ds.map(one_hot), validation_data=val_ds.map(one_hot),
        epochs=config.epochs, callbacks=callbacks, verbose=0,
    )
    train_seconds = time.monotonic() - started

    best = keras.models.load_model(best_path) if best_path.exists() else model
    val_logits = best.predict(x_val, batch_size=256, verbose=0)
    temperature = fit_temperature(val_logits, y_val)
    summary = {
        "name": "fer_vgg",
        "classes": list(EMOTIONS),
        "temperature": temperature,
        "validation": {
            "images": int(len(y_val)),
            "accuracy": float((val_logits.argmax(1) == y_val).mean()),
            "ece_before": expected_calibration_error(softmax(val_logits), y_val),
            "ece_after": expected_calibration_error(softmax(val_logits, temperature), y_val),
        },
        "data": {"dataset": str(dataset_dir), "train_images": int(len(y_train))},
        "config": asdict(config),
        "params": int(best.count_params()),
        "train_seconds_this_session": round(train_seconds, 1),
        "code_version": code_version(),
    }
    # The shipped file holds the network alone: no optimiser state, a third of the size.
    export = build_model(config.widths, config.dropout)
    export.set_weights(best.get_weights())
    tmp = run_dir / "model.tmp.keras"
    export.save(tmp)
    tmp.replace(run_dir / "model.keras")
    (run_dir / "model.json").write_text(json.dumps(summary, indent=2) + "\n")
    # model.tflite, what the pipeline runs; model.json records the sha256 of the .keras it came from.
    export_tflite(run_dir / "model.keras")
    summary = json.loads((run_dir / "model.json").read_text())
    log.info("done: validation accuracy %.4f, temperature %.3f", summary["validation"]["accuracy"], temperature)
    return summary
