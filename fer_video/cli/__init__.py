"""`fer-video`: the command line, `main` here and a module per group of commands (annotate.py:
annotate, demo; batch.py: batch, serve, link; train.py: train, evaluate; timeline.py: query,
summary, plot, report). Their options come from one declaration (fer_video/options.py; the
pipeline's are AnnotateOptions' fields); engine.py decides between the direct path and Prefect,
and this package is the only one in fer_video that imports flows/.

Start-up is the point of this package: it imports nothing heavy until the arguments are checked
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

from fer_video import interrupt
from fer_video.cli import annotate, batch, engine, timeline, train
from fer_video.cli.common import EXIT_FAILED, EXIT_USAGE, Parser, UsageError, fail


def _environment(verbose: bool) -> None:
    """Settings that must be in place before TensorFlow or Prefect is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if not verbose else "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # NumPy's OpenBLAS would keep a thread per core that spins after the BLAS calls it shares
    # out; the pipeline's arrays are small and its cores are busy with frames: 3-4% less CPU on
    # the 30 s 720p bench clip (bench/env_ab.py, 8 rounds, twice). Read when NumPy is imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fer-video",
                    description="Facial-expression timelines (Parquet) and annotated videos from recorded video.")
    parser.add_argument("--version", action="version", version=f"fer-video {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    # In the order `fer-video --help` lists them.
    for commands in (annotate, train, batch, timeline):
        commands.register(sub)
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
        # The pool threads clean up; with runs to record, their Cancelled states need time too.
        interrupt.wait_for_threads(time.monotonic() + interrupt.GRACE * (0.3 if engine.recorders else 0.7))
        engine.close_recorders()  # the runs' Cancelled states, sent within the grace period
        interrupt.hard_exit()
    except UsageError as error:
        fail(str(error))
        return EXIT_USAGE
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
        if getattr(args, "verbose", False):
            raise
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - the one place that turns any failure into a line
        from fer_video.errors import one_line

        fail(one_line(error))
        if getattr(args, "verbose", False):
            raise
        return EXIT_FAILED
    finally:
        interrupt.quiet_shutdown()  # a signal now must not raise inside exit hooks
        engine.close_recorders()


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
