"""`fer-video train | evaluate`: the expression model, trained and measured."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from fer_video.cli.checks import parse_duration
from fer_video.cli.common import UsageError, add
from fer_video.options import VERBOSE
from fer_video.resources import quiet_stderr


def cmd_train(args) -> int:
    from fer_video.expression.training.train import TrainConfig, train

    for teacher in args.teacher:
        if not Path(teacher).is_file():
            raise UsageError(f"{Path(teacher).resolve()}: no such teacher model")
    if args.init_from and not Path(args.init_from).is_file():
        raise UsageError(f"{Path(args.init_from).resolve()}: no such model to start from")
    if not 0 <= args.distill_weight <= 1 or args.distill_temperature <= 0:
        raise UsageError("--distill-weight must be in [0, 1] and --distill-temperature above 0")
    if args.labels and not Path(args.labels).is_file():
        raise UsageError(f"{Path(args.labels).resolve()}: no such votes CSV")
    if not 0 <= args.label_weight <= 1 or args.sharpen <= 0:
        raise UsageError("--label-weight must be in [0, 1] and --sharpen above 0")
    time_limit = parse_duration(args.time_limit, "--time-limit") if args.time_limit else None
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(run_dir / "train.log"), logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         seed=args.seed, patience=args.patience, limit=args.limit, crop=args.crop,
                         tta=args.tta, recall_floor=args.recall_floor, floor_cost=args.floor_cost,
                         widths=tuple(int(w) for w in args.widths.split(",")),
                         teachers=tuple(str(Path(t).resolve()) for t in args.teacher),
                         distill_weight=args.distill_weight, distill_temperature=args.distill_temperature,
                         precision=args.precision,
                         init_from=str(Path(args.init_from).resolve()) if args.init_from else None,
                         votes=str(Path(args.labels).resolve()) if args.labels else None,
                         label_weight=args.label_weight, sharpen=args.sharpen,
                         # Vote distributions are soft already: smoothing them too only blurs them.
                         label_smoothing=0.0 if args.labels else 0.1)
    # TensorFlow's x86 wheels leave oneDNN off on CPUs it does not recognise (AMD EPYC here):
    # with it on, training runs 1.6x faster on 2 cores (MODEL_CARD.md).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    with quiet_stderr(not args.verbose):
        import tensorflow  # noqa: F401
    summary = train(args.dataset, run_dir, config, time_limit=time_limit)
    if summary.get("stopped"):
        print(f"stopped at the time limit after epoch {summary['epoch']} of {summary['epochs']}; "
              f"run the same command to continue from {run_dir / 'backup'}")
        return 0
    if args.export:
        import shutil

        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        shutil.copy(run_dir / "model.keras", export / "fer_vgg.keras")
        shutil.copy(run_dir / "model.json", export / "fer_vgg.json")
        from fer_video.expression.training.export import export_tflite
        export_tflite(export / "fer_vgg.keras")  # fer_vgg.tflite; its source's sha256 in fer_vgg.json
        print(f"exported to {export / 'fer_vgg.keras'}")
    print(f"validation accuracy {summary['validation']['accuracy']:.4f}; model: {run_dir / 'model.keras'}")
    return 0


def cmd_evaluate(args) -> int:
    import json

    from fer_video.expression.training.data import resolve_split
    from fer_video.expression.training.evaluate import evaluate, format_report, write_report

    folder = resolve_split(args.dataset, args.split)
    if args.labels and not Path(args.labels).is_file():
        raise UsageError(f"{Path(args.labels).resolve()}: no such votes CSV")
    flip = {"model": None, "flip": True, "none": False}[args.tta]
    train = Path(args.dataset) / "train"
    twins_of = train if train.is_dir() and folder.resolve() != train.resolve() else None
    # The pipeline's classifier: the model's .tflite in LiteRT. TensorFlow is imported only for a
    # .keras without a fresh .tflite (converted in memory); its C++ chatter is hidden then.
    with quiet_stderr(not args.verbose):
        report = evaluate(args.model, folder, flip=flip, twins_of=twins_of, votes_csv=args.labels,
                          dataset_root=args.dataset)
    files = write_report(report, args.out)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        print(f"\nwrote {files['json']} and {files['png']}")
    return 0



def register(sub) -> None:
    p = sub.add_parser("train", help="train the expression model on a FER2013-layout folder (resumable)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Trains on DATASET/train/<class>/*.jpg, holding out part of it for "
                       "validation. Run it again with the same --run-dir to resume.")
    p.add_argument("dataset", help="folder with train/<class>/ images (Kaggle FER2013 layout)")
    p.add_argument("--run-dir", default="runs/fer_vgg", help="checkpoints, log and outputs")
    p.add_argument("--epochs", type=int, default=35, help="length of the schedule")
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate")
    p.add_argument("--seed", type=int, default=1, help="random seed (split, augmentation, weights)")
    p.add_argument("--patience", type=int, default=0, help="early-stopping patience in epochs (0: none)")
    p.add_argument("--widths", default="24,48,96,192", help="conv widths per block")
    p.add_argument("--crop", type=int, default=40, help="face crop the network sees, px of 48")
    p.add_argument("--tta", choices=("none", "flip"), default="none",
                   help="test-time augmentation the exported model asks the pipeline for")
    p.add_argument("--recall-floor", type=float, default=0.5,
                   help="per-class validation recall the fitted logit bias aims for (0: no bias)")
    p.add_argument("--floor-cost", type=float, default=3.0,
                   help="errors each face missing from a class's recall floor counts as, when fitting "
                   "the bias (higher: the floor holds at more cost in accuracy)")
    p.add_argument("--limit", type=int, help="use only the first N training images (quick trials)")
    p.add_argument("--teacher", action="append", default=[], metavar="KERAS",
                   help="distil from this trained network (a run folder's best.keras or model.keras; "
                   "repeat for an ensemble, whose logits are averaged); use the teachers' --seed, so "
                   "no teacher has trained on this run's validation faces")
    p.add_argument("--distill-weight", type=float, default=0.7,
                   help="share of the loss from the teachers' soft targets (the rest from the labels)")
    p.add_argument("--distill-temperature", type=float, default=4.0, help="softening of the teachers' logits")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                   help="compute precision while training (weights stay float32, and so does the "
                   "exported model); mixed_bfloat16 pays on CPUs with AMX or AVX512-BF16")
    p.add_argument("--init-from", metavar="KERAS",
                   help="start from this trained network's weights (same --widths and --crop; e.g. "
                   "models/fer_vgg.keras) instead of random ones; keep its --seed so its validation "
                   "faces stay unseen")
    p.add_argument("--labels", metavar="VOTES_CSV",
                   help="train on FER+ crowd votes (a CSV of ten votes per image, keyed by its path "
                   "relative to DATASET): each face's target is its vote distribution over the 7 classes")
    p.add_argument("--label-weight", type=float, default=0.3,
                   help="with --labels: share of FER2013's own label blended into each target")
    p.add_argument("--sharpen", type=float, default=1.0,
                   help="with --labels: power the vote distribution is raised to (above 1: towards "
                   "the majority)")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="stop after the last epoch that fits in this long (e.g. 100m, 2h, 90s), "
                   "its state saved in RUN_DIR/backup; the same command continues it")
    p.add_argument("--export", help="copy the trained model here as fer_vgg.keras/.json (e.g. models)")
    add(p, VERBOSE)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class report and confusion matrix on a labelled folder",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("dataset", help="folder with <class>/ images, or a dataset root with --split inside")
    p.add_argument("--split", default="public_test", help="subfolder to use if present")
    p.add_argument("--model", help="model .keras (default: models/fer_vgg.keras)")
    p.add_argument("--out", default="fer-video-eval", help="where report.json and confusion_matrix.png go")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--tta", choices=("model", "flip", "none"), default="model",
                   help="test-time augmentation: the one the model card names, as the pipeline runs it, "
                        "mirrored faces averaged in, or none")
    p.add_argument("--labels", metavar="VOTES_CSV",
                   help="also score against FER+ crowd votes (a CSV of ten votes per image, keyed by its "
                   "path relative to DATASET): accuracy against the majority, macro-F1, recall, recall "
                   "on clear faces, vote share, cross-entropy")
    add(p, VERBOSE)
    p.set_defaults(func=cmd_evaluate)
