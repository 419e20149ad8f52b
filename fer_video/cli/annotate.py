"""`fer-video annotate | demo`: inputs one after another, directly or through Prefect."""

from __future__ import annotations

import sys
from pathlib import Path

from fer_video.cli import engine
from fer_video.cli.checks import check_inputs, check_out, check_settings
from fer_video.cli.common import EXIT_FAILED, add, fail, folder_name, plural, say
from fer_video.options import ORCHESTRATION, OUTPUT, pipeline_options


def options_of(args, progress: bool | None = None):
    """The run's AnnotateOptions: every pipeline option the command has, and progress bars unless
    --quiet or segments (whose bars would interleave)."""
    from fer_video.jobs import AnnotateOptions

    if progress is None:
        progress = not args.quiet and getattr(args, "segments", 1) == 1
    values = {o.name: o.from_args(args) for o in pipeline_options() if hasattr(args, o.dest)}
    return AnnotateOptions(**values, progress=progress)


def cmd_annotate(args) -> int:
    check_inputs(args.inputs)
    check_settings(args)
    check_out(args.out)
    return annotate(args, args.inputs)


def annotate(args, inputs: list[str]) -> int:
    prefect = engine.prefect_wanted(args)
    recorder = engine.recorder(prefect)  # first: its thread creates the flow run while the pipeline loads
    say(args, f"annotating {plural(len(inputs), 'input')} -> {folder_name(args.out)}, {engine.where(prefect)}")
    options = options_of(args)
    if recorder:
        from flows import record

        def run(path, name):
            return record.annotate(recorder, path, options, name, overwrite=getattr(args, "overwrite", False))
    elif prefect:
        engine.start_prefect(args, warm_up=lambda: engine.warm_up(options))
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
            fail(f"{path}: output name {name!r} is already that of {named[name]} in this call; "
                 "annotate it with another --out")
            continue
        named[name] = path
        try:
            outcome = run(path, name)
        except KeyboardInterrupt:
            raise
        except Exception as error:
            failed += 1
            report_failure(path, error, args.verbose)
            continue
        outputs = ", ".join(str(p) for p in (outcome.timeline, outcome.csv, outcome.video, outcome.image) if p)
        note = name_note(path)
        print(f"{path}: {outcome.frames} frames, {outcome.faces} face rows, "
              f"{plural(outcome.tracks, 'track')} -> {outputs}" + (f" ({note})" if note else ""), flush=True)
        for warning in outcome.warnings:
            print(f"fer-video: warning: {warning}", file=sys.stderr)
        for line in outcome.notes:
            print(f"fer-video: note: {line}", file=sys.stderr)
    _link_after(args, options)
    if failed:
        print(f"fer-video: {failed} of {len(inputs)} inputs failed", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def report_failure(path, error: BaseException, verbose: bool) -> None:
    from fer_video.errors import InputError, one_line

    hint = "" if verbose or isinstance(error, InputError) else " (--verbose for details)"
    fail(one_line(error, path) + hint)
    if verbose:
        import traceback

        traceback.print_exception(error)


def _link_after(args, options) -> None:
    """With --identity, after the inputs are done: link the output folder's persons."""
    if not options.identity:
        return
    from fer_video.batch import link_and_redraw

    for line in link_and_redraw(options.out_dir, options.people, preset=options.preset):
        say(args, line)


def cmd_demo(args) -> int:
    check_settings(args)
    check_out(args.out)
    from fer_video.samples import make_clip

    out = Path(args.out)
    clip = make_clip(out / "sample" / "sample.mp4", seconds=args.seconds, width=1280, height=720, fps=30)
    print(f"made a {args.seconds:g} s sample clip with two faces and a tone: {clip}")
    return annotate(args, [str(clip)])


def add_per_input_pipeline(p) -> None:
    """What annotate and demo take: the pipeline's options, output, orchestration, then the
    options of one input's run (--segments)."""
    add(p, *(o for o in pipeline_options() if o.folder), *OUTPUT, *ORCHESTRATION,
        *(o for o in pipeline_options() if not o.folder))


def register(sub) -> None:
    p = sub.add_parser("annotate", help="annotate videos or images: Parquet timeline + annotated MP4",
                       description="Annotate each input: <out>/<name>.parquet and <out>/<name>.mp4 (or an "
                       "annotated image); <name> is a video's stem, an image's file name (README: Output names). "
                       "Runs directly; recorded as a run of the annotate-video Prefect flow when a Prefect server "
                       "is configured. --prefect / --workers / --dask-address run it in Prefect's flow engine.")
    p.add_argument("inputs", nargs="+", help="video or image files")
    add_per_input_pipeline(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a timeline in --out that was made from another input (default: refuse)")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("demo", help="make a sample clip and annotate it (no input needed)",
                       description="Make a sample clip with two faces and a tone under <out>/sample/, "
                       "then annotate it as `annotate` would.")
    p.add_argument("--seconds", type=float, default=6.0, help="length of the sample clip (default: %(default)s)")
    add_per_input_pipeline(p)
    p.set_defaults(func=cmd_demo)
