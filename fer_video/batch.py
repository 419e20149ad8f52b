"""Annotating folders: finding inputs, skipping finished work, claiming a job, summarising.

Plain Python; flows/batch.py runs it as Prefect tasks. The rules that make a batch safe to
re-run, to kill at any moment, and to run twice at once:

- A job is done when `<out>/<name>.parquet` exists and carries the job key (a hash of the
  input's bytes, the model's bytes and the settings) in its metadata. The Parquet is written
  last and atomically, so its presence means every output of that job is complete.
- Before working on a job a batch takes an exclusive `flock` on `<out>/.<name>.lock`. The
  operating system drops the lock when the process dies, `kill -9` included, so a rerun takes
  over; a second batch running at the same time sees the lock and leaves that job alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fer_video.video.probe import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from fer_video.jobs import AnnotateOptions

# The pipeline (OpenCV, pandas, the models) and pyarrow are imported where they are used, so
# that finding the inputs (the CLI's first check) costs nothing.

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                  ".3gp", ".mts", ".m2ts", ".ts"}


def discover(folder: str | Path, pattern: str = "*") -> list[Path]:
    """Videos and images under `folder` (recursively) whose name matches `pattern`, sorted;
    hidden files and folders are skipped (our own temp files are hidden)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found = []
    for path in folder.rglob(pattern):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
            found.append(path)
    return sorted(found)


def output_name(path: Path, folder: Path) -> str:
    """`sub/dir/clip.mp4` -> `sub__dir__clip`: one flat output folder (see `output_names`)."""
    relative = path.relative_to(folder).with_suffix("")
    return "__".join(relative.parts)


def output_names(paths: list[Path], folder: Path) -> list[str]:
    """`output_name` of each input, made unique: inputs that would share a name (`a.mp4` beside
    `a.jpg`, or `sub/a.mp4` beside `sub__a.mp4`) would overwrite each other's timeline and be
    redone on every run. Those keep their extension (`a.mp4`, `a.jpg`), then if still equal get
    a hash of their relative path."""
    names = [output_name(p, folder) for p in paths]
    counts = Counter(names)
    names = [n + p.suffix if counts[n] > 1 else n for n, p in zip(names, paths)]
    counts = Counter(names)
    return [f"{n}-{hashlib.sha1(p.relative_to(folder).as_posix().encode()).hexdigest()[:8]}"
            if counts[n] > 1 else n for n, p in zip(names, paths)]


def model_sha256(options: AnnotateOptions) -> str:
    from fer_video import jobs

    return jobs.model_sha256(options)


def finished_key(out_dir: Path, name: str) -> str | None:
    """The job key stored in an existing timeline, or None if there is none (or it is unreadable)."""
    import pyarrow.parquet as pq

    from fer_video.timeline.schema import TimelineMetadata

    path = out_dir / f"{name}.parquet"
    try:
        return TimelineMetadata.from_schema(pq.read_schema(path)).job_key
    except (OSError, KeyError, TypeError, ValueError):
        return None


@contextlib.contextmanager
def claim(out_dir: Path, name: str) -> Iterator[bool]:
    """Yields True while this process holds the job's lock, False if another process has it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir / f".{name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        # Leftovers of a killed run of this job: nobody else can be writing them now.
        for suffix in [".parquet", ".mp4", ".annotated.mp4", *(f".annotated{s}" for s in IMAGE_SUFFIXES)]:
            (out_dir / f".{name}{suffix}.part").unlink(missing_ok=True)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass
class Outcome:
    path: str
    name: str
    status: str  # done | skipped | busy | failed
    reason: str = ""
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0


def annotate_job(path: Path, name: str, options: AnnotateOptions, model_sha: str) -> Outcome:
    """One input of a batch: skip if finished with the same key, else claim it and annotate."""
    from fer_video.jobs import file_sha256, job_key
    started = time.monotonic()
    content = file_sha256(path)
    key = job_key(content, model_sha, options)
    if finished_key(options.out_dir, name) == key:
        return Outcome(str(path), name, "skipped", "already annotated with this content, model and settings")
    with claim(options.out_dir, name) as mine:
        if not mine:
            return Outcome(str(path), name, "busy", "another batch is annotating it")
        if finished_key(options.out_dir, name) == key:  # finished while we waited for the lock
            return Outcome(str(path), name, "skipped", "already annotated with this content, model and settings")
        from fer_video.pipeline import annotate

        result = annotate(path, options, name=name, content_sha256=content)
    return Outcome(str(path), name, "done", "", result.frames, result.faces, time.monotonic() - started)


def annotate_folder(folder: str | Path, options: AnnotateOptions, pattern: str = "*", retries: int = 1,
                    run_jobs=None, on_outcome=None) -> list[Outcome]:
    """Every input under `folder` through `annotate_job`: what `fer-video batch` runs, directly or
    as the annotate-folder Prefect flow (flows/batch.py).

    `run_jobs(jobs, options, model_sha, retries)` runs `annotate_job` on each (path, name) and
    yields, in order, its Outcome or the exception of its last try: `in_threads(n)` here, Prefect
    tasks on the flow's task runner there. `on_outcome` hears of each outcome as it is known.
    """
    root = Path(folder)
    paths = discover(root, pattern)
    model_sha = model_sha256(options)
    jobs = list(zip(paths, output_names(paths, root)))
    outcomes = []
    for (path, name), result in zip(jobs, (run_jobs or in_threads())(jobs, options, model_sha, retries)):
        if isinstance(result, BaseException):
            reason = getattr(result, "problem", None) or f"{type(result).__name__}: {result}"
            result = Outcome(str(path), name, "failed", reason)
        outcomes.append(result)
        if on_outcome:
            on_outcome(result)
    return outcomes


def in_threads(concurrency: int = 2, retry_delay: float = 1.0):
    """`run_jobs` for `annotate_folder`: `concurrency` jobs at a time in this process's threads,
    each failed job tried again up to `retries` times."""

    def attempt(path, name, options, model_sha, retries):
        from fer_video import interrupt

        for tries_left in range(retries, -1, -1):
            try:
                return annotate_job(path, name, options, model_sha)
            except Exception as error:  # noqa: BLE001 - reported as the job's outcome
                if not tries_left:
                    return error
                if interrupt.CANCELLED.wait(retry_delay):
                    interrupt.check()

    def run_jobs(jobs, options, model_sha, retries):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="job") as pool:
            futures = [pool.submit(attempt, path, name, options, model_sha, retries) for path, name in jobs]
            for future in futures:
                yield future.result()

    return run_jobs


def outcome_line(o: Outcome) -> str:
    """One line per input as it finishes: `batch` and every run of `serve` print these."""
    if o.status == "done":
        frames = f"{o.frames} frame" + ("" if o.frames == 1 else "s")
        return f"{o.path}: done, {frames}, {o.faces} face rows in {o.seconds:.1f} s"
    return f"{o.path}: {o.status}" + (f" ({o.reason})" if o.reason else "")


def print_outcome(o: Outcome) -> None:
    import sys

    print(f"fer-video: {outcome_line(o)}", file=sys.stderr, flush=True)


def format_summary(outcomes: list[Outcome]) -> str:
    """An aligned table, then one line of totals."""
    header = ("status", "input", "frames", "faces", "seconds", "reason")
    rows = [(o.status, o.path, str(o.frames), str(o.faces), f"{o.seconds:.1f}", o.reason) for o in outcomes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "busy", "failed")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(outcomes)} inputs")
    return "\n".join(lines)


__all__ = ["Outcome", "annotate_folder", "annotate_job", "claim", "discover", "format_summary", "in_threads",
           "model_sha256", "outcome_line", "output_name", "output_names", "print_outcome"]
