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

import pyarrow.parquet as pq

from fer_video.expression.classify import DEFAULT_MODEL
from fer_video.pipeline import AnnotateOptions, annotate, file_sha256, job_key
from fer_video.timeline.schema import TimelineMetadata
from fer_video.video.probe import IMAGE_SUFFIXES

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
    return file_sha256(options.model or DEFAULT_MODEL)


def finished_key(out_dir: Path, name: str) -> str | None:
    """The job key stored in an existing timeline, or None if there is none (or it is unreadable)."""
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
    started = time.monotonic()
    content = file_sha256(path)
    key = job_key(content, model_sha, options)
    if finished_key(options.out_dir, name) == key and _embeddings_kept(options, name):
        return Outcome(str(path), name, "skipped", "already annotated with this content, model and settings")
    with claim(options.out_dir, name) as mine:
        if not mine:
            return Outcome(str(path), name, "busy", "another batch is annotating it")
        if finished_key(options.out_dir, name) == key and _embeddings_kept(options, name):  # finished meanwhile
            return Outcome(str(path), name, "skipped", "already annotated with this content, model and settings")
        result = annotate(path, options, name=name, content_sha256=content)
    return Outcome(str(path), name, "done", "", result.frames, result.faces, time.monotonic() - started)


def _embeddings_kept(options: AnnotateOptions, name: str) -> bool:
    """With --identity a job is also unfinished when its embeddings were deleted."""
    from fer_video.identity import embeddings_path

    return not options.identity or embeddings_path(options.out_dir, name).exists()


def format_summary(outcomes: list[Outcome]) -> str:
    """An aligned table, then one line of totals."""
    header = ("status", "input", "frames", "faces", "seconds", "reason")
    rows = [(o.status, o.path, str(o.frames), str(o.faces), f"{o.seconds:.1f}", o.reason) for o in outcomes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "busy", "failed")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(outcomes)} inputs")
    return "\n".join(lines)


__all__ = ["Outcome", "annotate_job", "claim", "discover", "format_summary", "model_sha256",
           "output_name", "output_names"]
