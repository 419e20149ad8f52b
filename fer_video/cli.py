"""`fer-video`: the command line.

Every command turns a bad input into one line on stderr naming the file and the problem and a
non-zero exit status; `--verbose` shows tracebacks and Prefect's own logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from fer_video.resources import quiet_stderr
from flows.server import EphemeralServer

EXIT_FAILED = 1  # some inputs failed
EXIT_USAGE = 2


def _environment(verbose: bool) -> None:
    """Settings that must be in place before TensorFlow or Prefect is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if not verbose else "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect waits 20 s for its ephemeral server; a first run (database migrations) on a busy
    # machine takes longer and the whole batch failed with "Timed out while attempting to connect".
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not verbose:
        # Failed runs are reported by us in one line; Prefect would add a traceback per task.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # read by Dask's worker processes too
        logging.getLogger("distributed").setLevel(logging.ERROR)
        # Stopping `serve` cancels Prefect's open connections; asyncio logs each as an error.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def _warm_up(model: Path | None, detector: str) -> None:
    """Load the model and run the detector once, so the first input does not pay for it."""
    from fer_video.faces.detect import make_detector
    from fer_video.pipeline import load_classifier

    load_classifier(model)
    make_detector(detector)(np.zeros((64, 64, 3), np.uint8))


def _fail(message: str) -> None:
    print(f"fer-video: error: {message}", file=sys.stderr)


def _annotate_options(args):
    from fer_video.pipeline import AnnotateOptions

    return AnnotateOptions(
        out_dir=Path(args.out), stride=args.stride, detector=args.detector, min_face=args.min_face,
        smoothing=args.smoothing, model=Path(args.model) if args.model else None,
        video=not args.no_video, preset=args.preset, progress=not args.quiet and args.segments == 1,
        segments=args.segments,
    )


def cmd_annotate(args) -> int:
    options = _annotate_options(args)
    server = EphemeralServer(args.verbose)  # boots while the pipeline is imported and the models load
    with quiet_stderr(not args.verbose):
        from flows.annotate import annotate_video
        from flows.runners import task_runner

        _warm_up(options.model, options.detector)
        server.attach()
    flow = annotate_video.with_options(task_runner=task_runner(args.segments, args.dask_address, args.workers))
    failed = 0
    for path in args.inputs:
        state = flow(path, options, return_state=True)
        outcome = state.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failed += 1
            _report_failure(path, outcome, args.verbose)
            continue
        outputs = ", ".join(str(p) for p in (outcome.timeline, outcome.video, outcome.image) if p)
        print(f"{path}: {outcome.frames} frames, {outcome.faces} face rows, "
              f"{outcome.tracks} tracks -> {outputs}")
    if failed:
        print(f"fer-video: {failed} of {len(args.inputs)} inputs failed", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def _report_failure(path, error: BaseException, verbose: bool) -> None:
    from fer_video.errors import InputError

    if isinstance(error, InputError):
        _fail(str(error))
    else:
        _fail(f"{path}: {type(error).__name__}: {error}" + ("" if verbose else " (--verbose for details)"))
    if verbose:
        import traceback

        traceback.print_exception(error)


def cmd_demo(args) -> int:
    from fer_video.samples import make_clip

    out = Path(args.out)
    clip = make_clip(out / "sample" / "sample.mp4", seconds=args.seconds, width=1280, height=720, fps=30)
    print(f"made a {args.seconds:g} s sample clip with two faces and a tone: {clip}")
    args.inputs = [str(clip)]
    args.stride, args.detector, args.min_face, args.smoothing = 1, "blazeface", 40, "window:0.5"
    args.model, args.no_video, args.preset = None, False, "ultrafast"
    args.segments, args.workers, args.dask_address = 1, None, None
    return cmd_annotate(args)


def cmd_train(args) -> int:
    from fer_video.expression.train import TrainConfig, train

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(run_dir / "train.log"), logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         seed=args.seed, patience=args.patience, limit=args.limit, crop=args.crop,
                         widths=tuple(int(w) for w in args.widths.split(",")))
    # TensorFlow's x86 wheels leave oneDNN off on CPUs it does not recognise (AMD EPYC here):
    # with it on, training runs 1.6x faster on 2 cores (MODEL_CARD.md).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    with quiet_stderr(not args.verbose):
        import tensorflow  # noqa: F401
    summary = train(args.dataset, run_dir, config)
    if args.export:
        import shutil

        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        shutil.copy(run_dir / "model.keras", export / "fer_vgg.keras")
        shutil.copy(run_dir / "model.json", export / "fer_vgg.json")
        from fer_video.expression.export import export_tflite
        export_tflite(export / "fer_vgg.keras")  # fer_vgg.tflite; its source's sha256 in fer_vgg.json
        print(f"exported to {export / 'fer_vgg.keras'}")
    print(f"validation accuracy {summary['validation']['accuracy']:.4f}; model: {run_dir / 'model.keras'}")
    return 0


def cmd_evaluate(args) -> int:
    import json

    from fer_video.expression.data import resolve_split
    from fer_video.expression.evaluate import evaluate, format_report, write_report

    folder = resolve_split(args.dataset, args.split)
    with quiet_stderr(not args.verbose):
        import tensorflow  # noqa: F401
    report = evaluate(args.model, folder, flip=not args.no_flip)
    files = write_report(report, args.out)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        print(f"\nwrote {files['json']} and {files['png']}")
    return 0


def _folder_parameters(args) -> dict:
    return dict(folder=str(Path(args.folder).resolve()), out=str(Path(args.out).resolve()),
                pattern=args.pattern, retries=args.retries, stride=args.stride, detector=args.detector,
                min_face=args.min_face, smoothing=args.smoothing,
                model=str(Path(args.model).resolve()) if args.model else None,
                video=not args.no_video, preset=args.preset, **_identity_parameters(args))


def _identity_parameters(args) -> dict:
    """Only when asked for, so that a deployment's stored parameters stay as they were."""
    if getattr(args, "people", None) and not args.identity:
        raise ValueError("--people needs --identity (it stores face embeddings; see README 'Who is who')")
    if not getattr(args, "identity", False):
        return {}
    return dict(identity=True, people=str(Path(args.people).resolve()) if args.people else None)


def cmd_link(args) -> int:
    from fer_video.identity import THRESHOLD, identity_dir, link_folder

    if not any(identity_dir(args.out_dir).glob("*.embeddings.parquet")):
        raise ValueError(f"{args.out_dir}: no stored face embeddings; run `fer-video batch ... --identity` first")
    registry = link_folder(args.out_dir, args.people, args.threshold if args.threshold is not None else THRESHOLD,
                           fresh=args.fresh)
    persons = registry.drop_duplicates("person_id")
    named = persons["person"].notna().sum()
    print(f"{args.out_dir}: {len(registry)} tracks in {registry['video_id'].nunique()} videos -> "
          f"{len(persons)} persons ({named} named)")
    return 0


def cmd_batch(args) -> int:
    from fer_video.batch import discover, format_summary
    from fer_video.smoothing import Smoothing

    Smoothing.parse(args.smoothing)
    discover(args.folder, args.pattern)  # a missing folder fails here, in one line
    server = EphemeralServer(args.verbose)
    with quiet_stderr(not args.verbose):
        from flows.batch import folder_flow

        _warm_up(Path(args.model) if args.model else None, args.detector)
        server.attach()
    flow = folder_flow(args.concurrency, args.dask_address, args.workers)
    state = flow(**_folder_parameters(args), return_state=True)
    outcomes = state.result(raise_on_failure=False)
    if isinstance(outcomes, BaseException):
        raise outcomes
    print(format_summary(outcomes))
    return EXIT_FAILED if any(o.status == "failed" for o in outcomes) else 0


def parse_duration(text: str) -> float:
    """'90' or '90s', '10m', '1.5h', '1d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise ValueError(f"--every {text!r}: use a number of seconds or e.g. 30s, 10m, 1h") from None
    if seconds <= 0:
        raise ValueError(f"--every {text!r}: must be positive")
    return seconds


def cmd_serve(args) -> int:
    from fer_video.batch import discover
    from fer_video.smoothing import Smoothing

    interval = parse_duration(args.every) if args.every else None
    Smoothing.parse(args.smoothing)  # a bad spec fails here, not in every scheduled run
    discover(args.folder, args.pattern)
    server = EphemeralServer(args.verbose, services=True)  # its scheduler makes the scheduled runs
    with quiet_stderr(not args.verbose):
        from flows.batch import folder_flow

        server.attach()
    flow = folder_flow(args.concurrency, args.dask_address, args.workers)
    name = args.name or f"annotate-{Path(args.folder).resolve().name}"
    where = f"; runs in Prefect's UI at {server.url.removesuffix('/api')}" if server.url else ""
    print(f"serving deployment 'annotate-folder/{name}' "
          f"({'every ' + args.every if args.every else 'cron ' + args.cron}){where}; Ctrl-C stops", flush=True)
    _stop_within(10.0)
    flow.serve(name=name, interval=interval, cron=args.cron, parameters=_folder_parameters(args),
               print_starting_message=False)
    return 0


def _stop_within(seconds: float) -> None:
    """Ctrl-C (or SIGTERM) stops `serve`: Prefect's runner is asked to shut down as usual, but
    it waits on runs in flight, so the process exits with 130 after `seconds` regardless."""
    import signal
    import threading

    def stop(signum, frame):
        timer = threading.Timer(seconds, os._exit, args=(130,))
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer-video",
        description="Facial-expression timelines (Parquet) and annotated videos from recorded video.",
    )
    parser.add_argument("--version", action="version", version=f"fer-video {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p):
        p.add_argument("--verbose", action="store_true", help="show tracebacks and Prefect's logs")

    def annotate_args(p):
        p.add_argument("--out", default="fer-video-out", help="output folder (default: fer-video-out/)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        common(p)

    p = sub.add_parser("annotate", help="annotate videos or images: Parquet timeline + annotated MP4",
                       description="Run the annotate-video Prefect flow on each input. Writes "
                       "<out>/<stem>.parquet and <out>/<stem>.mp4 (or an annotated image).")
    p.add_argument("inputs", nargs="+", help="video or image files")
    p.add_argument("--stride", type=int, default=1, help="analyse every Nth frame (default 1)")
    p.add_argument("--detector", choices=["blazeface", "haar"], default="blazeface",
                   help="face detector (default blazeface; see README for measurements)")
    p.add_argument("--min-face", type=int, default=40, help="smallest face width to find, pixels (default 40)")
    p.add_argument("--smoothing", default="window:0.5",
                   help="none | ema[:TAU] | window[:SECONDS] | hmm[:SECONDS] (default window:0.5)")
    p.add_argument("--model", help="expression model .keras (default: models/fer_vgg.keras)")
    p.add_argument("--no-video", action="store_true", help="write the timeline only, no annotated MP4")
    p.add_argument("--preset", default="ultrafast",
                   help="x264 preset for the MP4 (default ultrafast; veryfast: files about 5x smaller, "
                        "render about 25%% slower)")
    p.add_argument("--segments", type=int, default=1,
                   help="analyse a long video as N time segments in parallel, stitched into one timeline")
    p.add_argument("--workers", type=int, help="run segments on a local Dask cluster of N processes")
    p.add_argument("--dask-address", help="run segments on this Dask scheduler (tcp://HOST:PORT)")
    annotate_args(p)
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("demo", help="make a sample clip and annotate it (no input needed)")
    p.add_argument("--seconds", type=float, default=6.0, help="length of the sample clip (default 6)")
    annotate_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train the expression model on a FER2013-layout folder (resumable)",
                       description="Trains on DATASET/train/<class>/*.jpg, holding out part of it for "
                       "validation. Run it again with the same --run-dir to resume.")
    p.add_argument("dataset", help="folder with train/<class>/ images (Kaggle FER2013 layout)")
    p.add_argument("--run-dir", default="runs/fer_vgg", help="checkpoints, log and outputs (default runs/fer_vgg)")
    p.add_argument("--epochs", type=int, default=45, help="length of the schedule (default 45)")
    p.add_argument("--batch-size", type=int, default=128, help="default 128")
    p.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate (default 0.05)")
    p.add_argument("--seed", type=int, default=1, help="default 1")
    p.add_argument("--patience", type=int, default=0, help="early-stopping patience in epochs (default 0: none)")
    p.add_argument("--widths", default="24,48,96,192", help="conv widths per block (default 24,48,96,192)")
    p.add_argument("--crop", type=int, default=40, help="face crop the network sees, px of 48 (default 40)")
    p.add_argument("--limit", type=int, help="use only the first N training images (quick trials)")
    p.add_argument("--export", help="copy the trained model here as fer_vgg.keras/.json (e.g. models)")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class report and confusion matrix on a labelled folder")
    p.add_argument("dataset", help="folder with <class>/ images, or a dataset root with --split inside")
    p.add_argument("--split", default="public_test", help="subfolder to use if present (default public_test)")
    p.add_argument("--model", help="model .keras (default: models/fer_vgg.keras)")
    p.add_argument("--out", default="fer-video-eval", help="where report.json and confusion_matrix.png go")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-flip", action="store_true", help="no mirrored test-time augmentation")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    def folder_args(p):
        p.add_argument("folder", help="folder of videos and images (searched recursively)")
        p.add_argument("--pattern", default="*", help="only file names matching this glob (default *)")
        p.add_argument("--concurrency", type=int, default=2, help="videos at a time in this process (default 2)")
        p.add_argument("--retries", type=int, default=1, help="retries of a failed video (default 1)")
        p.add_argument("--dask-address", help="run the per-video work on this Dask scheduler (tcp://HOST:PORT)")
        p.add_argument("--workers", type=int, help="start a local Dask cluster of N processes for the work")
        for flag in ("--stride", "--min-face"):
            p.add_argument(flag, type=int, default=1 if flag == "--stride" else 40)
        p.add_argument("--detector", choices=["blazeface", "haar"], default="blazeface")
        p.add_argument("--smoothing", default="window:0.5")
        p.add_argument("--model")
        p.add_argument("--no-video", action="store_true")
        p.add_argument("--preset", default="ultrafast")
        p.add_argument("--out", default="fer-video-out", help="output folder (default: fer-video-out/)")
        p.add_argument("--identity", action="store_true",
                       help="store face embeddings (biometric data) in OUT/.identity/ and give the same person "
                            "one person_id across the folder's videos (see README 'Who is who')")
        p.add_argument("--people", help="with --identity: folder of reference photos, one sub-folder per name")
        common(p)

    p = sub.add_parser("batch", help="annotate every video and image under a folder, skipping finished ones",
                       description="Runs the annotate-folder Prefect flow: a video already annotated with the "
                       "same content, model and settings is skipped; a failure is reported and the rest go on.")
    folder_args(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("serve", help="serve the folder flow as a Prefect deployment on a schedule",
                       description="Runs until stopped; each scheduled run annotates what is new in the folder. "
                       "Uses the Prefect server in PREFECT_API_URL (see README) or an ephemeral one.")
    folder_args(p)
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", help="interval, e.g. 30s, 10m, 1h")
    when.add_argument("--cron", help="cron schedule, e.g. '*/10 * * * *'")
    p.add_argument("--name", help="deployment name (default: annotate-<folder name>)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("link", help="link persons across an output folder again (needs a batch run with --identity)",
                       description="Match the tracks of every timeline in OUT_DIR to folder-wide persons from the "
                       "embeddings a `batch --identity` stored in OUT_DIR/.identity/, without re-analysing video, "
                       "and rewrite the timelines' person_id and person columns. Incremental: persons found "
                       "before keep their ids; new videos' tracks join them or become new persons.")
    p.add_argument("out_dir", help="output folder of a batch run with --identity")
    p.add_argument("--people", help="folder of reference photos, one sub-folder per name")
    p.add_argument("--threshold", type=float, help="largest embedding distance of one person (default 0.5)")
    p.add_argument("--fresh", action="store_true", help="forget the persons found before and link from scratch")
    common(p)
    p.set_defaults(func=cmd_link)

    from fer_video.cli_timeline import register as register_timeline_commands

    register_timeline_commands(sub)
    return parser


def _version() -> str:
    from fer_video import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _environment(getattr(args, "verbose", False))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
        if args.verbose:
            raise
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - the one place that turns any failure into a line
        from fer_video.errors import InputError

        _fail(str(error) if isinstance(error, InputError) else f"{type(error).__name__}: {error}")
        if args.verbose:
            raise
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
