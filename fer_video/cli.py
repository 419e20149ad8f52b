"""`fer-video`: the command line.

Start-up is the point of this module: it imports nothing heavy until the arguments are checked
(each mistake is one line, exit 2, within a second), and Prefect only when a run is to be
recorded in it (a server is configured, or --prefect, --workers, --dask-address, `serve`).
Otherwise the same pipeline functions the flows call run directly in this process.

Every command turns a bad input into one line on stderr naming the file and the problem and a
non-zero exit status; `--verbose` shows tracebacks and Prefect's own logs. Ctrl-C and SIGTERM stop
a command within about a second, exit 130 / 143 (fer_video/interrupt.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from fer_video import interrupt
from fer_video.resources import quiet_stderr
from fer_video.options import (FOLDER, LINK, ORCHESTRATION, OUTPUT, PIPELINE, Parser, UsageError, add_options,
                               check_folder_inputs, check_inputs, check_out, check_people, check_schedule,
                               check_settings, parse_duration)

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


def _fail(message: str) -> None:
    print(f"fer-video: error: {message}", file=sys.stderr, flush=True)


def _say(args, message: str) -> None:
    """What the command is about to do: its first line, on stderr (stdout keeps the results)."""
    if not args.quiet:
        print(f"fer-video: {message}", file=sys.stderr, flush=True)


def _dir(path: str) -> str:
    return path.rstrip("/") + "/"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- Direct or through Prefect ------------------------------------------------------------------

def _prefect_wanted(args) -> str | None:
    """Why this run goes through Prefect's flows, or None to run the stages directly: a run
    nobody asked to record and nobody could look at (an ephemeral server) is pure cost."""
    from flows.server import configured_api_url

    if getattr(args, "dask_address", None) or getattr(args, "workers", None):
        return "prefect-dask"
    if getattr(args, "prefect", False):
        return "--prefect"
    url = configured_api_url()
    return f"server {url}" if url else None


_recorders: list = []  # flows.record.Recorder of this command, closed (bounded wait) at its end


def _recorder(reason: str | None):
    """With a configured server and nothing that needs Prefect's engine (--prefect, Dask), the
    stages run directly here, at once, and flows/record.py records the run in that server."""
    if not (reason or "").startswith("server "):
        return None
    from flows.record import Recorder

    _recorders.append(Recorder(reason.removeprefix("server ")))
    return _recorders[-1]


def _close_recorders() -> None:
    while _recorders:
        _recorders.pop().close()


def _where(reason: str | None) -> str:
    if reason is None:
        return "not recorded in Prefect (no server configured; --prefect records it)"
    if reason.startswith("server "):
        return f"recorded in Prefect at {reason.removeprefix('server ')}"
    return f"as a Prefect flow ({reason})"


def _start_prefect(args, services: bool = False, warm_up=None):
    """Prefect for a flow run: the server configured, else an ephemeral one booted in a
    subprocess while this process imports the flows and warms up the models."""
    from flows.server import EphemeralServer

    server = EphemeralServer(args.verbose, services=services)
    with quiet_stderr(not args.verbose):
        server.import_prefect()
        if warm_up and server.url:
            warm_up()  # while the ephemeral server boots; with a server already up it would only delay
        server.attach()
    return server


def _warm_up(options) -> None:
    """Load the model and run the detector once, so the first input does not pay for it."""
    import numpy as np

    from fer_video.faces.detectors import make_detector
    from fer_video.pipeline import load_classifier

    load_classifier(options.model)
    make_detector(options.detector)(np.zeros((64, 64, 3), np.uint8))


# --- Commands -------------------------------------------------------------------------------------

def _annotate_options(args, progress: bool | None = None):
    from fer_video.jobs import AnnotateOptions

    segments = getattr(args, "segments", 1)
    return AnnotateOptions(
        out_dir=Path(args.out), stride=args.stride, detector=args.detector, min_face=args.min_face,
        smoothing=args.smoothing, model=Path(args.model) if args.model else None,
        video=not args.no_video, preset=args.preset,
        progress=(not args.quiet and segments == 1) if progress is None else progress, segments=segments,
        min_score=args.min_score, persons=not args.no_persons, identity=args.identity,
        people=Path(args.people).resolve() if args.people else None,
    )


def cmd_annotate(args) -> int:
    check_inputs(args.inputs)
    check_settings(args)
    check_out(args.out)
    return _annotate(args, args.inputs)


def _annotate(args, inputs: list[str]) -> int:
    prefect = _prefect_wanted(args)
    recorder = _recorder(prefect)  # first: its thread creates the flow run while the pipeline loads
    _say(args, f"annotating {_plural(len(inputs), 'input')} -> {_dir(args.out)}, {_where(prefect)}")
    options = _annotate_options(args)
    if recorder:
        from flows import record

        def run(path, name):
            return record.annotate(recorder, path, options, name, overwrite=getattr(args, "overwrite", False))
    elif prefect:
        _start_prefect(args, warm_up=lambda: _warm_up(options))
        from flows.annotate import annotate_video
        from flows.runners import task_runner

        flow = annotate_video.with_options(task_runner=task_runner(args.segments, args.dask_address, args.workers))

        def run(path, name):
            state = flow(path, options, name=name, overwrite=getattr(args, "overwrite", False), return_state=True)
            outcome = state.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
    else:
        from fer_video.pipeline import annotate as run_direct

        def run(path, name):
            return run_direct(path, options, name, overwrite=getattr(args, "overwrite", False))
    from fer_video.outputs import name_note, output_name

    failed = 0
    named: dict[str, str] = {}  # output name -> the input of this call that has it
    for path in inputs:
        name = output_name(path)
        if name in named:  # never let a later input of the same call overwrite an earlier one's outputs
            failed += 1
            _fail(f"{path}: output name {name!r} is already that of {named[name]} in this call; "
                  "annotate it with another --out")
            continue
        named[name] = path
        try:
            outcome = run(path, name)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - one input's failure, reported in one line
            failed += 1
            _report_failure(path, error, args.verbose)
            continue
        outputs = ", ".join(str(p) for p in (outcome.timeline, outcome.video, outcome.image) if p)
        note = name_note(path)
        print(f"{path}: {outcome.frames} frames, {outcome.faces} face rows, "
              f"{_plural(outcome.tracks, 'track')} -> {outputs}" + (f" ({note})" if note else ""), flush=True)
        for warning in outcome.warnings:
            print(f"fer-video: warning: {warning}", file=sys.stderr)
        for line in outcome.notes:
            print(f"fer-video: note: {line}", file=sys.stderr)
    _link_after(args, options)
    if failed:
        print(f"fer-video: {failed} of {len(inputs)} inputs failed", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def _report_failure(path, error: BaseException, verbose: bool) -> None:
    from fer_video.errors import InputError, one_line

    hint = "" if verbose or isinstance(error, InputError) else " (--verbose for details)"
    _fail(one_line(error, path) + hint)
    if verbose:
        import traceback

        traceback.print_exception(error)


def cmd_demo(args) -> int:
    check_settings(args)
    check_out(args.out)
    from fer_video.samples import make_clip

    out = Path(args.out)
    clip = make_clip(out / "sample" / "sample.mp4", seconds=args.seconds, width=1280, height=720, fps=30)
    print(f"made a {args.seconds:g} s sample clip with two faces and a tone: {clip}")
    return _annotate(args, [str(clip)])


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


def _folder_parameters(args) -> dict:
    return dict(folder=str(Path(args.folder).resolve()), out=str(Path(args.out).resolve()),
                pattern=args.pattern, retries=args.retries, stride=args.stride, detector=args.detector,
                min_face=args.min_face, smoothing=args.smoothing,
                model=str(Path(args.model).resolve()) if args.model else None,
                video=not args.no_video, preset=args.preset, min_score=args.min_score, quiet=args.quiet,
                **_identity_parameters(args))


def _identity_parameters(args) -> dict:
    """Only when asked for, so that a deployment's stored parameters stay as they were."""
    if args.no_persons:
        return dict(persons=False)
    if not args.identity:
        return {}
    return dict(identity=True, people=str(Path(args.people).resolve()) if args.people else None)


def _link_after(args, options) -> None:
    """With --identity, after the inputs are done: link the output folder's persons."""
    if not options.identity:
        return
    from fer_video.batch import link_and_redraw

    for line in link_and_redraw(options.out_dir, options.people, preset=options.preset):
        _say(args, line)


def cmd_link(args) -> int:
    from fer_video.persons.store import identity_dir

    folder = Path(args.out_dir)
    if not folder.is_dir():
        raise UsageError(f"{args.out_dir}: no such folder")
    if not any(identity_dir(folder).glob("*.embeddings.parquet")):
        raise UsageError(f"{args.out_dir}: no stored face embeddings; run `fer-video batch ... --identity` first")
    check_people(args)
    from fer_video.batch import link_and_redraw

    for line in link_and_redraw(folder, args.people, args.threshold, fresh=args.fresh):
        print(line, flush=True)
    return 0


def cmd_batch(args) -> int:
    check_settings(args)
    found = check_folder_inputs(args.folder, args.pattern, empty_ok=False)
    check_out(args.out)
    prefect = _prefect_wanted(args)
    recorder = _recorder(prefect)
    _say(args, f"{_plural(found, 'input')} under {_dir(args.folder)} -> {_dir(args.out)}, {args.concurrency} at a time, "
         f"{_where(prefect)}")
    from fer_video import batch

    if recorder:
        from flows import record

        outcomes = record.annotate_folder(recorder, _folder_parameters(args), _annotate_options(args, progress=False),
                                          args.concurrency, on_outcome=None if args.quiet else batch.print_outcome,
                                          wait=True)
    elif prefect:
        _start_prefect(args, warm_up=lambda: _warm_up(_annotate_options(args, progress=False)))
        from flows.batch import folder_flow

        flow = folder_flow(args.concurrency, args.dask_address, args.workers)
        outcomes = flow(**_folder_parameters(args), wait=True, return_state=True).result(raise_on_failure=False)
        if isinstance(outcomes, BaseException):
            raise outcomes
    else:
        # A one-off run waits for inputs still being written (a folder just copied in); `serve`
        # leaves them to its next run.
        outcomes = batch.annotate_folder(Path(args.folder).resolve(), _annotate_options(args, progress=False),
                                         args.pattern, args.retries, run_jobs=batch.in_threads(args.concurrency),
                                         on_outcome=None if args.quiet else batch.print_outcome,
                                         wait=True, say=None if args.quiet else batch.say)
    print(batch.format_outcomes(outcomes), flush=True)
    return EXIT_FAILED if any(o.status == "failed" for o in outcomes) else 0


def cmd_serve(args) -> int:
    check_settings(args)
    interval = check_schedule(args.every, args.cron)
    found = check_folder_inputs(args.folder, args.pattern, empty_ok=True)
    check_out(args.out)
    name = args.name or f"annotate-{Path(args.folder).resolve().name}"
    when = f"every {args.every}" if args.every else f"cron {args.cron!r}"
    _say(args, f"serving {_dir(args.folder)} ({_plural(found, 'input')} now) -> {_dir(args.out)}, {when}; starting Prefect")
    server = _start_prefect(args, services=True)  # its scheduler service makes the scheduled runs
    from flows.batch import serve_folder

    where = f"; runs in Prefect's UI at {server.url.removesuffix('/api')}" if server.url else ""
    serve_folder(name, _folder_parameters(args), interval=interval, cron=args.cron, concurrency=args.concurrency,
                 dask_address=args.dask_address, workers=args.workers,
                 on_ready=lambda: print(f"serving deployment 'annotate-folder/{name}' ({when}){where}; Ctrl-C stops",
                                        flush=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fer-video",
                    description="Facial-expression timelines (Parquet) and annotated videos from recorded video.")
    parser.add_argument("--version", action="version", version=f"fer-video {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def verbose_only(p):
        p.add_argument("--verbose", action="store_true", help="show tracebacks")

    p = sub.add_parser("annotate", help="annotate videos or images: Parquet timeline + annotated MP4",
                       description="Annotate each input: <out>/<name>.parquet and <out>/<name>.mp4 (or an "
                       "annotated image); <name> is a video's stem, an image's file name (README: Output names). "
                       "Runs directly; recorded as a run of the annotate-video Prefect flow when a Prefect server "
                       "is configured. --prefect / --workers / --dask-address run it in Prefect's flow engine.")
    p.add_argument("inputs", nargs="+", help="video or image files")
    add_options(p, PIPELINE, OUTPUT, ORCHESTRATION, segments=True)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a timeline in --out that was made from another input (default: refuse)")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("demo", help="make a sample clip and annotate it (no input needed)",
                       description="Make a sample clip with two faces and a tone under <out>/sample/, "
                       "then annotate it as `annotate` would.")
    p.add_argument("--seconds", type=float, default=6.0, help="length of the sample clip (default: %(default)s)")
    add_options(p, PIPELINE, OUTPUT, ORCHESTRATION, segments=True)
    p.set_defaults(func=cmd_demo)

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
    verbose_only(p)
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
    verbose_only(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("batch", help="annotate every video and image under a folder, skipping finished ones",
                       description="Annotate every video and image under FOLDER: one already annotated with the "
                       "same content, model and settings is skipped; a failure is reported and the rest go on. "
                       "Runs directly; recorded as a run of the annotate-folder Prefect flow when a Prefect server "
                       "is configured. --prefect / --workers / --dask-address run it in Prefect's flow engine.")
    p.add_argument("folder", help="folder of videos and images (searched recursively)")
    add_options(p, FOLDER, PIPELINE, OUTPUT, ORCHESTRATION)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("serve", help="serve the folder flow as a Prefect deployment on a schedule",
                       description="Runs until stopped: a run at start, then one per schedule, each "
                       "annotating what is new in FOLDER. Uses the Prefect server configured (PREFECT_API_URL "
                       "or the active profile) or one of its own, with its UI, for as long as it serves.")
    p.add_argument("folder", help="folder of videos and images (searched recursively)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", help="interval, e.g. 30s, 10m, 1h")
    when.add_argument("--cron", help="cron schedule, e.g. '*/10 * * * *'")
    p.add_argument("--name", help="deployment name (default: annotate-<folder name>)")
    add_options(p, FOLDER, PIPELINE, OUTPUT, ORCHESTRATION, prefect=False)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("link", help="link persons across an output folder again (needs a batch run with --identity)",
                       description="Match the tracks of every timeline in OUT_DIR to folder-wide persons from the "
                       "embeddings a `batch --identity` stored in OUT_DIR/.identity/, without re-analysing video, "
                       "and rewrite the timelines' person_id and person columns. Incremental: persons found "
                       "before keep their ids; new videos' tracks join them or become new persons.")
    p.add_argument("out_dir", help="output folder of a batch run with --identity")
    add_options(p, LINK)
    verbose_only(p)
    p.set_defaults(func=cmd_link)

    from fer_video.cli_timeline import register as register_timeline_commands

    register_timeline_commands(sub)
    return parser


def _version() -> str:
    from fer_video import __version__

    return __version__


def run(argv: list[str] | None = None) -> int:
    """The command's exit status. Ctrl-C / SIGTERM end the process from here (130 / 143)."""
    interrupt.handle_signals()
    args = None
    try:
        args = build_parser().parse_args(argv)
        _environment(getattr(args, "verbose", False))
        return args.func(args)
    except KeyboardInterrupt:
        import time

        interrupt.CANCELLED.set()
        interrupt.wait_for_threads(time.monotonic() + interrupt.GRACE * (0.3 if _recorders else 0.7))  # pool threads clean up
        _close_recorders()  # the runs' Cancelled states, sent within the grace period
        interrupt.hard_exit()
    except UsageError as error:
        _fail(str(error))
        return EXIT_USAGE
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
        if getattr(args, "verbose", False):
            raise
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - the one place that turns any failure into a line
        from fer_video.errors import one_line

        _fail(one_line(error))
        if getattr(args, "verbose", False):
            raise
        return EXIT_FAILED
    finally:
        interrupt.quiet_shutdown()  # a signal now must not raise inside exit hooks
        _close_recorders()


def main(argv: list[str] | None = None) -> int:
    code = run(argv)
    if interrupt.interrupted():
        interrupt.hard_exit()
    if "prefect" not in sys.modules and argv is None:
        # Nothing left to flush to a server: skip tearing down pandas, OpenCV and the models.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
