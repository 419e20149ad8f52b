"""The command line's options, each declared once, and the checks made before any work starts.

Importing this module costs nothing (no numpy, no Prefect): every mistake is reported within a
second, as one line `fer-video: error: ...` and exit status 2, before a model or a server starts.
Each table row is `(flags, argparse keywords)`; a new pipeline option is one more row in
PIPELINE (and a field of `fer_video.pipeline.AnnotateOptions`, whose defaults these must equal:
tests/test_cli.py checks).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from fer_video.faces.detectors import DETECTORS  # cheap: no numpy, the backends load when made
from fer_video.jobs import MIN_SCORE  # cheap: no numpy

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class UsageError(Exception):
    """A mistake in the command line: one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """No abbreviations (`summary --out x` must not quietly mean --output), and argparse's own
    errors as one line like ours rather than a usage dump."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        command = self.prog.removeprefix("fer-video").strip()
        hint = f" (fer-video {command} --help)" if command else " (fer-video --help)"
        print(f"fer-video: error: {message}{hint}", file=sys.stderr)
        sys.exit(2)


def in_range(low: int, high: int | None = None):
    """argparse `type`: an integer from `low` to `high` (inclusive)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            limits = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {limits}")
        return value

    parse.__name__ = "integer"
    return parse


def score(text: str) -> float:
    """argparse `type`: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range: must be between 0 and 1")
    return value


# What a pipeline run does: annotate, demo, batch and serve take these, with these defaults.
PIPELINE = [
    (("--out",), dict(default="fer-video-out", metavar="DIR",
                      help="output folder: <stem>.parquet, <stem>.mp4 (default: %(default)s)")),
    (("--stride",), dict(type=in_range(1), default=1, metavar="N",
                         help="analyse every Nth frame; the MP4 keeps every frame (default: %(default)s)")),
    # The registry itself, not a copy of its names: a detector registered later is a choice too.
    (("--detector",), dict(choices=DETECTORS, default="blazeface",
                           help="face detector: %(choices)s (default: %(default)s; see README)")),
    (("--min-face",), dict(type=in_range(16, 4096), default=40, metavar="PX",
                           help="smallest face width to find, source pixels, 16-4096 (default: %(default)s)")),
    (("--min-score",), dict(type=score, default=MIN_SCORE, metavar="S",
                            help="keep a face track only if BlazeFace's confidence reaches this in one of its "
                                 "frames (default: %(default)s; measured: real faces 0.76 and up; partly covered "
                                 "by a hand 0.59 and up in photos, their clips' tracks peaking at 0.74 and up; "
                                 "simple cartoon heads 0.52-0.53, drawn heads 0.52-0.88)")),
    (("--smoothing",), dict(default="window:0.5", metavar="SPEC",
                            help="none | ema[:TAU] | window[:SECONDS] | hmm[:SECONDS] (default: %(default)s)")),
    (("--model",), dict(metavar="PATH", help="expression model .keras (default: models/fer_vgg.keras)")),
    (("--no-video",), dict(action="store_true", help="write the timeline only, no annotated MP4")),
    (("--preset",), dict(choices=PRESETS, default="ultrafast", metavar="PRESET",
                         help=f"x264 preset of the MP4: {', '.join(PRESETS)} (default: %(default)s; veryfast: "
                              "files about 5x smaller, render about 25%% slower)")),
    # Who is who (README "Who is who"): face embeddings are biometric data.
    (("--no-persons",), dict(action="store_true",
                             help="no face embeddings at all: every track is its own person_id (default: tracks "
                                  "of one person within a video share one, embeddings in memory only)")),
    (("--identity",), dict(action="store_true",
                           help="store face embeddings (biometric data) in OUT/.identity/ and give the same "
                                "person one person_id across all the output folder's videos")),
]
PEOPLE = (("--people",), dict(metavar="DIR", help="with --identity: reference photos, one sub-folder per name "
                                                  "(DIR/<name>/*.jpg); matched persons get that name"))
PIPELINE.append(PEOPLE)
# `fer-video link`: linking the persons of an output folder again, without analysis.
LINK = [
    PEOPLE,
    (("--threshold",), dict(type=float, metavar="D",
                            help="largest embedding distance between two tracks of one person (default: 0.4, chosen for "
                                 "precision; see docs/identity.md)")),
    (("--fresh",), dict(action="store_true", help="forget the persons found before and link from scratch")),
]
OUTPUT = [
    (("--quiet",), dict(action="store_true", help="no progress bars or progress lines")),
    (("--verbose",), dict(action="store_true", help="show tracebacks and Prefect's logs")),
]
# Where the work runs and whether Prefect records it.
ORCHESTRATION = [
    (("--prefect",), dict(action="store_true",
                          help="run in Prefect's flow engine: in the server configured, else an ephemeral one "
                               "(see README: when runs are recorded)")),
    (("--workers",), dict(type=in_range(1, 256), metavar="N",
                          help="run the work on a local Dask cluster of N processes (a Prefect flow)")),
    (("--dask-address",), dict(metavar="tcp://HOST:PORT",
                               help="run the work on this Dask scheduler (a Prefect flow)")),
]
SEGMENTS = (("--segments",), dict(type=in_range(1, 64), default=1, metavar="N",
                                  help="analyse a long video as N time segments at once, stitched into "
                                       "one timeline (default: %(default)s)"))
# batch and serve: which inputs, how many at a time.
FOLDER = [
    (("--pattern",), dict(default="*", metavar="GLOB", help="only file names matching this glob (default: %(default)s)")),
    (("--concurrency",), dict(type=in_range(1, 64), default=2, metavar="N",
                              help="inputs at a time in this process (default: %(default)s)")),
    (("--retries",), dict(type=in_range(0, 10), default=1, metavar="N",
                          help="retries of a failed input (default: %(default)s)")),
]


def add_options(parser: argparse.ArgumentParser, *tables, segments: bool = False, prefect: bool = True) -> None:
    for table in tables:
        for flags, kwargs in table:
            if flags == ("--prefect",) and not prefect:
                continue
            parser.add_argument(*flags, **kwargs)
            if flags == ("--workers",) and segments:
                parser.add_argument(*SEGMENTS[0], **SEGMENTS[1])


def defaults() -> dict:
    """Option name -> default, for every option in the tables."""
    return {flags[0].lstrip("-").replace("-", "_"): kwargs.get("default", False if kwargs.get("action") else None)
            for table in (PIPELINE, OUTPUT, ORCHESTRATION, FOLDER, [SEGMENTS], LINK) for flags, kwargs in table}


# --- Checks made before any work ------------------------------------------------------------------

def check_inputs(inputs: list[str]) -> None:
    """Each input of `annotate` is an existing regular file."""
    for text in inputs:
        path = Path(text)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise UsageError(f"{text}: no such file") from None
        except OSError as error:
            raise UsageError(f"{text}: cannot read ({error.strerror})") from None
        if stat.S_ISDIR(mode):
            raise UsageError(f"{text}: is a folder, not a video or image (fer-video batch {text} annotates a folder)")
        if stat.S_ISFIFO(mode):
            raise UsageError(f"{text}: is a named pipe (FIFO), not a file: fer-video needs a file it can read twice")
        if not stat.S_ISREG(mode):
            raise UsageError(f"{text}: not a regular file")
        if not os.access(path, os.R_OK):
            raise UsageError(f"{text}: cannot read (permission denied)")


def check_folder_inputs(folder: str, pattern: str, empty_ok: bool) -> int:
    """FOLDER of `batch`/`serve` is a folder with inputs matching --pattern; how many."""
    path = Path(folder)
    if not path.exists():
        raise UsageError(f"{folder}: no such folder")
    if not path.is_dir():
        raise UsageError(f"{folder}: is a file, not a folder (fer-video annotate {folder} annotates a file)")
    from fer_video.batch import discover

    found = len(discover(path, pattern))
    if not found and not (empty_ok and pattern == "*"):
        which = f" matching --pattern {pattern!r}" if pattern != "*" else ""
        raise UsageError(f"{folder}: no videos or images{which} (searched recursively)")
    return found


def check_out(out: str) -> None:
    """The output folder is a folder, or can be made, and can be written (tried, not guessed:
    the permission bits say nothing of read-only mounts or of root). Creates nothing."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is a file, not a folder")
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".fer-video-check-"):
            pass
    except OSError as error:
        where = "" if existing == path else f" ({existing} is not writable)"
        raise UsageError(f"--out {out}: cannot write there{where}: {error.strerror or error}") from None


def check_settings(args) -> None:
    """Options whose values argparse cannot check: the smoothing spec, the model file."""
    from fer_video.smoothing import Smoothing

    try:
        Smoothing.parse(args.smoothing)
    except ValueError as error:
        raise UsageError(f"--smoothing: {error}") from None
    if args.model:
        model = Path(args.model)
        if not model.is_file():
            raise UsageError(f"--model {args.model}: no such file")
    check_people(args)


def check_people(args) -> None:
    """--people is a folder, and only with --identity (names need the stored embeddings); neither
    goes with --no-persons."""
    if getattr(args, "identity", False) and getattr(args, "no_persons", False):
        raise UsageError("--identity and --no-persons: linking across videos needs face embeddings")
    people = getattr(args, "people", None)
    if people is None:
        return
    if getattr(args, "identity", True) is False:
        raise UsageError("--people needs --identity (it stores face embeddings; see README 'Who is who')")
    if getattr(args, "no_persons", False):
        raise UsageError("--people and --no-persons: names need face embeddings")
    if not Path(people).is_dir():
        raise UsageError(f"--people {people}: no such folder (one sub-folder of photos per name)")


def parse_duration(text: str, flag: str = "--every") -> float:
    """'90' or '90s', '10m', '1.5h', '1d' -> seconds; a UsageError naming `flag` otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise UsageError(f"{flag} {text!r}: use a number of seconds or e.g. 30s, 10m, 1h") from None
    if not seconds > 0 or seconds == float("inf"):
        raise UsageError(f"{flag} {text!r}: must be a positive duration")
    return seconds


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))
_CRON_NAMES = {3: "jan feb mar apr may jun jul aug sep oct nov dec", 4: "sun mon tue wed thu fri sat"}
_CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def check_cron(spec: str) -> None:
    """A standard five-field cron expression (numbers, *, ranges, lists, steps, month and day
    names) or an @alias; checked here rather than by Prefect's pydantic models."""
    fields = spec.split()
    if len(fields) == 1 and fields[0].lower() in _CRON_ALIASES:
        return
    if len(fields) != 5:
        raise UsageError(f"--cron {spec!r}: needs 5 fields (minute hour day-of-month month day-of-week), "
                         f"got {len(fields)}")
    for position, (field, (what, low, high)) in enumerate(zip(fields, _CRON_FIELDS)):
        names = {n: i + (1 if position == 3 else 0) for i, n in enumerate(_CRON_NAMES.get(position, "").split())}

        def number(text: str) -> int:
            if text.lower() in names:
                return names[text.lower()]
            if not text.isdigit() or not low <= int(text) <= high:
                raise UsageError(f"--cron {spec!r}: {what} {text!r} is not in {low}-{high}")
            return int(text)

        for part in field.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                raise UsageError(f"--cron {spec!r}: {what} step {step!r} must be a positive number")
            if base == "*":
                continue
            first, dash, last = base.partition("-")
            if not first or (dash and not last):
                raise UsageError(f"--cron {spec!r}: {what} {part!r} is not a number, range or *")
            if dash and number(first) > number(last):
                raise UsageError(f"--cron {spec!r}: {what} range {base!r} runs backwards")
            number(first)


def check_schedule(every: str | None, cron: str | None) -> float | None:
    """`serve`'s schedule: the interval in seconds, or None for a (checked) cron schedule."""
    if every is not None:
        return parse_duration(every)
    check_cron(cron)
    return None
