"""`fer-video batch | serve | link`: a folder of inputs, once or on a schedule, and its persons."""

from __future__ import annotations

from pathlib import Path

from fer_video.cli import engine
from fer_video.cli.annotate import options_of
from fer_video.cli.checks import check_folder_inputs, check_out, check_people, check_schedule, check_settings
from fer_video.cli.common import EXIT_FAILED, UsageError, add, folder_name, plural, say
from fer_video.options import (FOLDER, ORCHESTRATION, OUTPUT, PREFECT, VERBOSE, folder_flow_options, pipeline_option,
                               pipeline_options)


def folder_parameters(folder: str, args) -> dict:
    """`batch`'s and `serve`'s arguments as the annotate-folder flow's parameters (flows/batch.py)."""
    parameters = {"folder": str(Path(folder).resolve())}
    for o in folder_flow_options():
        value = o.to_parameter(args)
        if not (o.omit_default and value == o.parameter_default):
            parameters[o.parameter] = value
    return parameters


def cmd_batch(args) -> int:
    check_settings(args)
    found = check_folder_inputs(args.folder, args.pattern, empty_ok=False)
    check_out(args.out)
    prefect = engine.prefect_wanted(args)
    recorder = engine.recorder(prefect)
    say(args, f"{plural(found, 'input')} under {folder_name(args.folder)} -> {folder_name(args.out)}, "
        f"{args.concurrency} at a time, {engine.where(prefect)}")
    from fer_video import batch

    if recorder:
        from flows import record

        outcomes = record.annotate_folder(recorder, folder_parameters(args.folder, args),
                                          options_of(args, progress=False), args.concurrency,
                                          on_outcome=None if args.quiet else batch.print_outcome, wait=True)
    elif prefect:
        engine.start_prefect(args, warm_up=lambda: engine.warm_up(options_of(args, progress=False)))
        from flows.batch import folder_flow

        flow = folder_flow(args.concurrency, args.dask_address, args.workers)
        outcomes = flow(**folder_parameters(args.folder, args), wait=True, return_state=True).result(
            raise_on_failure=False)
        if isinstance(outcomes, BaseException):
            raise outcomes
    else:
        # A one-off run waits for inputs still being written (a folder just copied in); `serve`
        # leaves them to its next run.
        outcomes = batch.annotate_folder(Path(args.folder).resolve(), options_of(args, progress=False),
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
    say(args, f"serving {folder_name(args.folder)} ({plural(found, 'input')} now) -> {folder_name(args.out)}, {when}; "
        "starting Prefect")
    server = engine.start_prefect(args, services=True)  # its scheduler service makes the scheduled runs
    from flows.batch import serve_folder

    where = f"; runs in Prefect's UI at {server.url.removesuffix('/api')}" if server.url else ""
    serve_folder(name, folder_parameters(args.folder, args), interval=interval, cron=args.cron,
                 concurrency=args.concurrency, dask_address=args.dask_address, workers=args.workers,
                 on_ready=lambda: print(f"serving deployment 'annotate-folder/{name}' ({when}){where}; Ctrl-C stops",
                                        flush=True))
    return 0


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


def register(sub) -> None:
    folder_pipeline = [o for o in pipeline_options() if o.folder]
    p = sub.add_parser("batch", help="annotate every video and image under a folder, skipping finished ones",
                       description="Annotate every video and image under FOLDER: one already annotated with the "
                       "same content, model and settings is skipped; a failure is reported and the rest go on. "
                       "Runs directly; recorded as a run of the annotate-folder Prefect flow when a Prefect server "
                       "is configured. --prefect / --workers / --dask-address run it in Prefect's flow engine.")
    p.add_argument("folder", help="folder of videos and images (searched recursively)")
    add(p, *FOLDER, *folder_pipeline, *OUTPUT, *ORCHESTRATION)
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
    add(p, *FOLDER, *folder_pipeline, *OUTPUT, *(o for o in ORCHESTRATION if o is not PREFECT))  # always Prefect
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("link", help="link persons across an output folder again (needs a batch run with --identity)",
                       description="Match the tracks of every timeline in OUT_DIR to folder-wide persons from the "
                       "embeddings a `batch --identity` stored in OUT_DIR/.identity/, without re-analysing video, "
                       "and rewrite the timelines' person_id and person columns. Incremental: persons found "
                       "before keep their ids; new videos' tracks join them or become new persons.")
    p.add_argument("out_dir", help="output folder of a batch run with --identity")
    add(p, pipeline_option("people"))
    p.add_argument("--threshold", type=float, metavar="D",
                   help="largest embedding distance between two tracks of one person (default: 0.4, chosen for "
                        "precision; see docs/identity.md)")
    p.add_argument("--fresh", action="store_true", help="forget the persons found before and link from scratch")
    add(p, VERBOSE)
    p.set_defaults(func=cmd_link)
