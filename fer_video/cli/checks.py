"""The checks made before any work starts: each mistake is one line `fer-video: error: ...`
and exit status 2, within a second, before a model or a server starts (nothing heavy imported)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fer_video.cli.common import UsageError


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
        import zipfile

        if not zipfile.is_zipfile(model):  # what TensorFlow would say only after seconds of loading
            raise UsageError(f"--model {args.model}: not a .keras model (a .keras file is a zip archive)")
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
