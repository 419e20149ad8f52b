"""Training the expression classifier on a FER2013-layout folder, resumable from checkpoints.

A run directory holds everything a run needs to continue after an interruption: the decoded
dataset cache, Keras' BackupAndRestore state (model, optimiser, epoch), the best checkpoint and
the per-epoch history. Running the same command again resumes where it stopped; a different
--epochs on resume stretches or shortens the learning-rate schedule from where it is.

The recipe (MODEL_CARD.md says why and what it measured): random crops of `crop` px with small
rotations and zooms, flips, gamma and random erasing, all prepared in numpy/OpenCV off the
training thread; SGD with Nesterov momentum and a warm-up then cosine schedule; label smoothing;
a loss weighted by class frequency^-0.5 so disgust (1.5% of faces) is learned at all.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_video.expression.training.calibration import expected_calibration_error, fit_temperature, softmax
from fer_video.expression.training.data import load_folder, resolve_split, stratified_split
from fer_video.expression.training.votes import Votes, read_votes, relative_to_root, targets
from fer_video.expression.labels import EMOTIONS
from fer_video.expression.preprocess import FACE_SIZE

log = logging.getLogger("fer_video.train")


@dataclass
class TrainConfig:
    epochs: int = 35
    batch_size: int = 128
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    class_weight_power: float = 0.5  # loss weight of a class ~ (its share of faces) ** -power
    val_fraction: float = 0.1
    patience: int = 0  # early-stopping patience in epochs; 0: none (the cosine schedule ends the run)
    seed: int = 1
    widths: tuple[int, ...] = (24, 48, 96, 192)
    dropout: float = 0.3
    crop: int = 40
    augment: bool = True
    erase_probability: float = 0.5
    tta: str = "none"  # test-time augmentation the pipeline runs: "none" or "flip" (MODEL_CARD.md: speed)
    recall_floor: float = 0.5  # per-class validation recall the logit bias aims for; 0: no bias
    floor_cost: float = 3.0  # errors a face missing from a class's recall floor counts as
    limit: int | None = None  # use only the first N training images (tests, quick trials)
    # Distillation: trained networks (run folders' best.keras or model.keras) whose averaged,
    # softened predictions on each augmented batch the network also learns from.
    teachers: tuple[str, ...] = ()
    distill_weight: float = 0.7  # share of the loss from the teachers (the rest: the labels)
    distill_temperature: float = 4.0
    # "mixed_bfloat16": bf16 compute, float32 weights; 1.6-2.2x the images/s of float32 on a CPU
    # with AMX/AVX512-BF16 (MODEL_CARD.md). The exported model is float32 either way.
    precision: str = "float32"
    init_from: str | None = None  # a trained network whose weights start a new run (fine-tuning)
    # FER+ votes (votes.py): a CSV of ten crowd votes per face; the target is then the faces'
    # vote distribution, blended with FER2013's label by `label_weight` and sharpened by `sharpen`.
    votes: str | None = None
    label_weight: float = 0.3
    sharpen: float = 1.0
    extra: dict = field(default_factory=dict)


def augment_batch(faces: np.ndarray, crop: int, rng: np.random.Generator,
                  erase_probability: float = 0.5) -> np.ndarray:
    """(n, 48, 48) uint8 faces -> (n, crop, crop, 1) float32 in [0, 1], each a random view:
    zoom 0.85-1.15, rotation up to 12 degrees, shift up to 4 px, mirror half the time, gamma
    0.7-1.4, and a random rectangle of noise (2-20% of the face) with `erase_probability`.

    The affine parameters are drawn for the whole batch at once; OpenCV applies each face's
    (about 5 us a face, off the training thread: nothing beside a 0.5 s training step)."""
    n = len(faces)
    scale = rng.uniform(0.85, 1.15, n)
    angle = rng.uniform(-12, 12, n)
    shift = rng.uniform(-4, 4, (n, 2))
    flip = rng.random(n) < 0.5
    out = np.empty((n, crop, crop), np.float32)
    centre = (FACE_SIZE - 1) / 2
    for i in range(n):
        m = cv2.getRotationMatrix2D((centre, centre), angle[i], scale[i])
        m[:, 2] += shift[i] - (FACE_SIZE - crop) / 2  # centre the crop window in the face
        if flip[i]:
            m[0] = -m[0]
            m[0, 2] += crop - 1
        out[i] = cv2.warpAffine(faces[i], m, (crop, crop), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)
    out *= 1.0 / 255.0
    gamma = np.exp(rng.uniform(np.log(0.7), np.log(1.4), n)).astype(np.float32)
    np.power(out, gamma[:, None, None], out=out)
    erase = rng.random(n) < erase_probability
    if erase.any():
        area = rng.uniform(0.02, 0.2, n) * crop * crop
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3), n))
        h = np.clip(np.sqrt(area * aspect), 1, crop).astype(int)
        w = np.clip(np.sqrt(area / aspect), 1, crop).astype(int)
        top = (rng.random(n) * (crop - h + 1)).astype(int)
        left = (rng.random(n) * (crop - w + 1)).astype(int)
        yy = np.arange(crop)[None, :, None]
        xx = np.arange(crop)[None, None, :]
        mask = ((yy >= top[:, None, None]) & (yy < (top + h)[:, None, None])
                & (xx >= left[:, None, None]) & (xx < (left + w)[:, None, None]) & erase[:, None, None])
        out[mask] = rng.random(int(mask.sum()), dtype=np.float32)
    return out[..., None]


def centre_crop(faces: np.ndarray, crop: int) -> np.ndarray:
    """(n, 48, 48) uint8 -> (n, crop, crop, 1) float32 in [0, 1]: what the shipped model sees."""
    m = (FACE_SIZE - crop) // 2
    return (faces[:, m : m + crop, m : m + crop, None].astype(np.float32)) * np.float32(1 / 255)


def class_weights(labels: np.ndarray, power: float) -> np.ndarray:
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    share = np.maximum(counts, 1) / counts.sum()
    weights = share ** -power
    return (weights / (weights * share).sum()).astype(np.float32)  # mean weight over faces: 1


def _batches(faces, labels, target, config: TrainConfig, teachers=None, first_epoch: int = 0):
    """A keras PyDataset of augmented (x, y, weight) batches, reshuffled every epoch. y is the
    face's `target` row, followed by the teachers' soft targets on the same views when distilling. Each batch's order and augmentation follow
    from (seed, epoch, batch), so a run resumed at `first_epoch` sees what it would have seen."""
    import keras

    weights = class_weights(labels, config.class_weight_power)

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False, max_queue_size=8)
            self.epoch = first_epoch
            self.order = np.random.default_rng([config.seed, first_epoch]).permutation(len(labels))

        def __len__(self):
            return math.ceil(len(labels) / config.batch_size)

        def __getitem__(self, index):
            take = self.order[index * config.batch_size : (index + 1) * config.batch_size]
            rng = np.random.default_rng([config.seed, self.epoch, index])
            if config.augment:
                x = augment_batch(faces[take], config.crop, rng, config.erase_probability)
            else:
                x = centre_crop(faces[take], config.crop)
            y = target[take]
            if teachers is not None:
                y = np.concatenate([y, teachers.soft_targets(x)], axis=1)
            return x, y, weights[labels[take]]

        def on_epoch_end(self):
            self.epoch += 1
            self.order = np.random.default_rng([config.seed, self.epoch]).permutation(len(labels))

    return Batches()


def load_network(path: str, crop: int, role: str):
    """The training network of a run's best.keras (crop x crop input), or the network inside the
    wrapped model the pipeline runs (model.keras, fer_vgg.keras: 48 x 48 input)."""
    import keras

    model = keras.models.load_model(path, compile=False)
    if model.input_shape[1] != crop:
        inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        if not inner or inner[0].input_shape[1] != crop:
            raise ValueError(f"{path}: {role} must see {crop} px faces, as the trained network does")
        model = inner[0]
    return model


class Teachers:
    """Trained networks whose mean logits, divided by the distillation temperature and
    softmaxed, are the soft targets a distilled network learns besides the labels (Hinton et al.,
    2015). Each may be a run's training network (best.keras: crop x crop input) or the wrapped
    model the pipeline runs (model.keras: 48 x 48 input), whose network is taken out."""

    def __init__(self, paths: tuple[str, ...], crop: int, temperature: float):
        self.paths, self.temperature = list(paths), float(temperature)
        self.networks = [load_network(path, crop, "a teacher") for path in self.paths]

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.mean([np.asarray(net(x, training=False)) for net in self.networks], axis=0)

    def soft_targets(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x), self.temperature).astype(np.float32)


def distillation_loss(config: TrainConfig):
    """The loss for y = [one-hot label | teachers' soft targets]: (1 - w) x the label's
    cross-entropy (smoothed) + w x T^2 x the cross-entropy of the network's logits / T against
    the soft targets (T^2 keeps the two parts' gradients on one scale)."""
    import keras
    from keras import ops

    n, w, t = len(EMOTIONS), config.distill_weight, config.distill_temperature
    hard = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing,
                                                reduction=None)

    def loss(y, logits):
        soft = -ops.sum(y[:, n:] * ops.log_softmax(logits / t, axis=-1), axis=-1) * (t * t)
        return (1 - w) * hard(y[:, :n], logits) + w * soft

    return loss


def label_accuracy(y, logits):
    """Accuracy against the labels, the first columns of y (the rest may be soft targets)."""
    from keras import ops

    truth = ops.argmax(y[:, : len(EMOTIONS)], axis=-1)
    return ops.cast(ops.equal(truth, ops.argmax(logits, axis=-1)), "float32")


def _load_cached(dataset_dir: Path, cache: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The training faces, their FER2013 labels and their paths relative to the dataset root,
    decoded once per run folder (train_cache.npz: a copy of the dataset, never committed)."""
    if cache.exists():
        with np.load(cache) as data:
            if "paths" in data:
                return data["faces"], data["labels"], data["paths"].tolist()
    folder = resolve_split(dataset_dir, "train")
    faces, labels, paths = load_folder(folder)
    relative = relative_to_root(paths, dataset_dir)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, faces=faces, labels=labels, paths=np.array(relative))
    tmp.replace(cache)
    return faces, labels, relative


def _best_so_far(history_csv: Path) -> float | None:
    if not history_csv.exists():
        return None
    with history_csv.open() as f:
        values = [float(row["val_accuracy"]) for row in csv.DictReader(f) if row.get("val_accuracy")]
    return max(values) if values else None


def _epoch_logger(total_epochs: int, images: int):
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            seconds = time.monotonic() - self.started
            lr = self.model.optimizer.learning_rate
            log.info(
                "epoch %d/%d  %.0fs (%.0f images/s)  lr %.4f  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f",
                epoch + 1, total_epochs, seconds, images / max(seconds, 1e-9), float(np.asarray(lr)),
                logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                logs.get("val_loss", float("nan")), logs.get("val_accuracy", float("nan")),
            )

    return EpochLog()


def train(dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig,
          time_limit: float | None = None) -> dict:
    """Train (or resume) in run_dir; returns the summary also written to run_dir/model.json.
    With `time_limit` (seconds), the run stops after the last epoch that fits in it, its state
    saved in run_dir/backup; the summary then says {"stopped": True, ...} and nothing is exported."""
    import keras

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    cv2.setNumThreads(1)  # augmentation runs beside TensorFlow's two compute threads

    faces, labels, paths = _load_cached(Path(dataset_dir), run_dir / "train_cache.npz")
    if config.limit:
        faces, labels, paths = faces[: config.limit], labels[: config.limit], paths[: config.limit]
    # The split is drawn over every face before any is left out, so a votes run holds out the
    # same validation faces as a labels run of the same seed (and as a network it starts from).
    train_idx, val_idx = stratified_split(labels, config.val_fraction, config.seed)
    target, votes = np.eye(len(EMOTIONS), dtype=np.float32)[labels], None
    if config.votes:
        votes, found = read_votes(config.votes, paths)
        keep = found & votes.usable()
        log.info("votes: %d of %d faces have usable FER+ votes (%s)", keep.sum(), len(keep), config.votes)
        train_idx, val_idx = train_idx[keep[train_idx]], val_idx[keep[val_idx]]
        target = targets(votes, labels, config.label_weight, config.sharpen)
    f_train, y_train, f_val, y_val = faces[train_idx], labels[train_idx], faces[val_idx], labels[val_idx]
    log.info("data: %d train, %d validation images from %s", len(y_train), len(y_val), dataset_dir)

    teachers = Teachers(config.teachers, config.crop, config.distill_temperature) if config.teachers else None
    if teachers is not None:
        log.info("distilling from %s (weight %.2f, temperature %.1f)", ", ".join(config.teachers),
                 config.distill_weight, config.distill_temperature)
    done_epochs = _epochs_done(run_dir / "backup")
    batches = _batches(f_train, y_train, target[train_idx], config, teachers, done_epochs)
    x_val = centre_crop(f_val, config.crop)
    y_val_target = target[val_idx]
    if teachers is not None:
        y_val_target = np.concatenate([y_val_target, teachers.soft_targets(x_val)], axis=1)
    steps = len(batches) * config.epochs
    warmup = min(int(len(batches) * config.warmup_epochs), steps // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(steps - warmup, 1), warmup_target=config.learning_rate, warmup_steps=warmup
    )
    keras.mixed_precision.set_global_policy(config.precision)
    stopper = _time_limit(time_limit)
    try:
        model = _compiled_network(config, schedule, teachers is not None)
        history_csv = run_dir / "history.csv"
        started = time.monotonic()
        model.fit(batches, validation_data=(x_val, y_val_target), epochs=config.epochs,
                  callbacks=[*_callbacks(run_dir, config, history_csv, len(y_train)), stopper], verbose=0)
        train_seconds = time.monotonic() - started
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if stopper.stopped_after is not None and stopper.stopped_after < config.epochs:
        log.info("stopped at the time limit after epoch %d of %d; its state is in %s: the same command "
                 "continues it", stopper.stopped_after, config.epochs, run_dir / "backup")
        return {"stopped": True, "epoch": stopper.stopped_after, "epochs": config.epochs,
                "train_seconds_this_session": round(train_seconds, 1)}
    # The last epoch, at the end of the cosine schedule, is the model; best.keras (the best
    # validation epoch) is kept beside it for comparison.
    val_votes = None if votes is None else Votes(votes.counts[val_idx])
    return finish(run_dir, model, f_val, y_val, config, dataset_dir, len(y_train), train_seconds, val_votes)


def _epochs_done(backup_dir: Path) -> int:
    """Epochs a run folder's BackupAndRestore state has finished (0 for a new run)."""
    try:
        return int(json.loads((backup_dir / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _time_limit(seconds: float | None):
    """A Keras callback that ends training after the epoch past which another would not fit in
    `seconds` (judged by the slowest epoch so far). BackupAndRestore, earlier in the callback
    list, has saved that epoch's state by then; `stopped_after` says which epoch that was."""
    import keras

    class TimeLimit(keras.callbacks.Callback):
        stopped_after: int | None = None
        slowest = 0.0
        started = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            now = time.monotonic()
            self.slowest = max(self.slowest, now - self.epoch_started)
            if seconds is not None and now - self.started + self.slowest > seconds:
                self.stopped_after = epoch + 1
                self.model.stop_training = True

    return TimeLimit()


def _compiled_network(config: TrainConfig, schedule, distilling: bool):
    import keras

    from fer_video.expression.training.model import build_network

    model = build_network(config.widths, config.dropout, config.crop)
    if config.init_from:
        # A resumed run's BackupAndRestore state replaces these weights at its first epoch.
        model.set_weights(load_network(config.init_from, config.crop, "the starting network").get_weights())
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True,
                                       weight_decay=config.weight_decay),
        loss=distillation_loss(config) if distilling else
        keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")] if distilling
        else ["accuracy"],
    )
    return model


def _callbacks(run_dir: Path, config: TrainConfig, history_csv: Path, images: int) -> list:
    import keras

    callbacks = [
        # Kept after a finished run too, so a later run with more --epochs continues from it.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.keras"), monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=_best_so_far(history_csv),
        ),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        _epoch_logger(config.epochs, images),
    ]
    if config.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience))
    return callbacks


def finish(run_dir: Path, network, f_val: np.ndarray, y_val: np.ndarray, config: TrainConfig,
           dataset_dir, train_images: int, train_seconds: float, val_votes: Votes | None = None) -> dict:
    """Wrap the network as the pipeline runs it, fit its calibration on the validation faces
    (per-class logit bias, then temperature), write model.keras, model.json and model.tflite.

    With the faces' FER+ votes, accuracy and temperature are fitted against the crowd's majority
    (faces without one left out), and the bias's recall floor holds on the clear faces, where
    FER2013's label agrees with that majority."""
    from fer_video.expression.training.calibration import fit_logit_bias, recalls
    from fer_video.expression.training.export import export_tflite
    from fer_video.expression.training.model import build_model, build_network
    from fer_video.versioning import code_version

    # The shipped file holds the network alone: no optimiser state.
    clean = build_network(config.widths, config.dropout, config.crop)
    clean.set_weights(network.get_weights())
    model = build_model(crop=config.crop, network=clean)
    x = f_val[..., None].astype(np.float32) / 255
    plain = model.predict(x, batch_size=256, verbose=0)
    flipped = (plain + model.predict(x[:, :, ::-1], batch_size=256, verbose=0)) / 2
    logits = flipped if config.tta == "flip" else plain
    truth, floor_on, extra = y_val, None, {}
    if val_votes is not None:
        majority = val_votes.majority()
        has, clear = majority >= 0, majority == y_val
        truth, floor_on = majority[has], (logits[clear], majority[clear])
        logits, plain, flipped = logits[has], plain[has], flipped[has]
    bias = (fit_logit_bias(logits, truth, config.recall_floor, miss_cost=config.floor_cost, floor_on=floor_on)
            if config.recall_floor > 0
            else np.zeros(len(EMOTIONS)))
    temperature = fit_temperature(logits + bias, truth)
    probs = softmax(logits + bias, temperature)
    if val_votes is not None:
        extra = {"scored_against": "FER+ majority",
                 "clear_faces": int(clear.sum()),
                 "clear_recall": dict(zip(EMOTIONS, np.round(recalls(
                     (floor_on[0] + bias).argmax(1), floor_on[1], len(EMOTIONS)), 4).tolist())),
                 "fer2013_accuracy": float((probs.argmax(1) == y_val[has]).mean())}
    summary = {
        "name": "fer_vgg",
        "classes": list(EMOTIONS),
        "tta": config.tta,
        "logit_bias": [round(float(b), 4) for b in bias],
        "temperature": temperature,
        "input_size": FACE_SIZE,
        "validation": {
            "images": int(len(truth)),
            "accuracy": float((probs.argmax(1) == truth).mean()),
            "accuracy_without_bias": float((logits.argmax(1) == truth).mean()),
            "accuracy_no_tta": float((plain.argmax(1) == truth).mean()),
            "accuracy_flip_tta": float((flipped.argmax(1) == truth).mean()),
            "recall": dict(zip(EMOTIONS, np.round(recalls(probs.argmax(1), truth, len(EMOTIONS)), 4).tolist())),
            "ece_before": expected_calibration_error(softmax(logits + bias), truth),
            "ece_after": expected_calibration_error(probs, truth),
            **extra,
        },
        "data": {"dataset": str(dataset_dir), "train_images": int(train_images)},
        "config": asdict(config),
        "params": int(model.count_params()),
        "train_seconds_this_session": round(train_seconds, 1),
        "code_version": code_version(),
    }
    tmp = run_dir / "model.tmp.keras"
    model.save(tmp)
    tmp.replace(run_dir / "model.keras")
    (run_dir / "model.json").write_text(json.dumps(summary, indent=2) + "\n")
    np.savez(run_dir / "validation_logits.npz", plain=plain, flipped=flipped, labels=truth,
             **({} if val_votes is None else {"votes": val_votes.counts, "fer2013_labels": y_val}))
    # model.tflite, what the pipeline runs; model.json records the sha256 of the .keras it came from.
    export_tflite(run_dir / "model.keras")
    summary = json.loads((run_dir / "model.json").read_text())
    log.info("done: validation accuracy %.4f (TTA %s; %.4f before the logit bias), temperature %.3f",
             summary["validation"]["accuracy"], config.tta, summary["validation"]["accuracy_without_bias"],
             temperature)
    return summary
