"""Annotating folders: finding inputs, skipping finished work, claiming a job, summarising.

Plain Python; flows/batch.py runs it as Prefect tasks. The rules that make a batch safe to
re-run, to kill at any moment, and to run twice at once:

- Names come from `fer_video.outputs.output_name`, so they never depend on which other files
  exist; of two inputs with the same name, the one whose timeline is already there (else the
  first in sorted order) keeps it and the other fails with the reason.
- Outputs, temp files and locks are never inputs: the output folder is left out when it lies
  inside the folder, and so is every file `fer_video.outputs.is_output` recognises.
- A job is done when `<out>/<name>.parquet` exists and carries the job key (a hash of the
  input's bytes, the model's bytes and the settings) in its metadata. The Parquet is written
  last and atomically, so its presence means every output of that job is complete.
- Before working on a job a batch takes an exclusive `flock` on `<out>/.<name>.lock`. The
  operating system drops the lock when the process dies, `kill -9` included, so a rerun takes
  over; a second batch running at the same time sees the lock and leaves that job alone.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fer_video import interrupt
from fer_video.errors import problem_of
from fer_video.outputs import (VIDEO_SUFFIXES, check_overwrite, claim, is_output, name_note, output_name,
                               timeline_metadata)
from fer_video.video.probe import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from fer_video.jobs import AnnotateOptions

# The pipeline (OpenCV, pandas, the models) and pyarrow are imported where they are used, so
# that finding the inputs (the CLI's first check) costs nothing.

def discover(folder: str | Path, pattern: str = "*", out_dir: str | Path | None = None) -> list[Path]:
    """Videos and images under `folder` (recursively) whose name matches `pattern`, sorted.
    Left out: hidden files and folders, `out_dir` and everything in it when it lies inside
    `folder`, and any file that is one of fer-video's outputs (`is_output`), so that a run never
    annotates what an earlier run wrote."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    root = folder.resolve()
    out = Path(out_dir).resolve() if out_dir is not None else None
    found = []
    for path in folder.rglob(pattern):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
            continue
        if out is not None and out != root and path.resolve().is_relative_to(out):
            continue
        if is_output(path):
            continue
        found.append(path)
    return sorted(found)


SETTLE_SECONDS = 3.0  # an input changed more recently than this is taken to be still being written
LOOK_AGAIN_SECONDS = 0.5


def _settle_seconds() -> float:
    """SETTLE_SECONDS, or $FER_VIDEO_SETTLE_SECONDS (0: only the second look counts)."""
    import os

    return float(os.environ.get("FER_VIDEO_SETTLE_SECONDS", SETTLE_SECONDS))


def still_being_written(paths: list[Path], settle_seconds: float | None = None,
                        look_again: float = LOOK_AGAIN_SECONDS) -> dict[Path, str]:
    """Inputs that are still growing (a recorder or a copy writing them), with why: changed
    within `settle_seconds`, or a different size or time at a second look `look_again` later.
    A half-written file decodes as a short but valid video, so the batch leaves it for a later run
    instead of marking it done."""
    def look() -> dict[Path, tuple[int, int]]:
        stamps = {}
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                continue
            stamps[path] = (st.st_size, st.st_mtime_ns)
        return stamps

    settle_seconds = _settle_seconds() if settle_seconds is None else settle_seconds
    first = look()
    now = time.time_ns()
    growing = {p: f"still being written (changed {max(now - m, 0) / 1e9:.1f} s ago); a later run takes it"
               for p, (_, m) in first.items() if now - m < settle_seconds * 1e9}
    if look_again > 0 and len(growing) < len(first):
        time.sleep(look_again)
        second = look()
        growing |= {p: "still being written (it changed while the batch looked); a later run takes it"
                    for p in first if p not in growing and second.get(p) != first[p]}
    return growing


WAIT_SECONDS = 120.0  # the longest a one-off batch waits for its inputs still being written


def _wait_seconds() -> float:
    """WAIT_SECONDS, or $FER_VIDEO_WAIT_SECONDS."""
    import os

    return float(os.environ.get("FER_VIDEO_WAIT_SECONDS", WAIT_SECONDS))


def wait_to_settle(paths: list[Path], say=None, limit: float | None = None) -> dict[Path, str]:
    """`still_being_written`, for a one-off batch: where inputs are still being written (a folder
    just copied in), it waits until they stop changing, `limit` seconds at most, saying so in one
    line through `say`, and returns those still being written then. A scheduled run (`serve`)
    does not wait: the next run takes them."""
    limit = _wait_seconds() if limit is None else limit
    growing = still_being_written(paths)
    if not growing or limit <= 0:
        return growing
    if say:
        names = ", ".join(p.name for p in sorted(growing)[:3]) + (", ..." if len(growing) > 3 else "")
        n = len(growing)
        say(f"waiting for {n} input{'s' if n > 1 else ''} still being written to settle "
            f"(at most {limit:g} s): {names}")
    deadline = time.monotonic() + limit
    while growing and time.monotonic() < deadline:
        if interrupt.CANCELLED.wait(LOOK_AGAIN_SECONDS):
            interrupt.check()
        growing = still_being_written(sorted(growing))
    return {p: f"still being written after the batch waited {limit:g} s for it; a later run takes it"
            for p in growing}


def plan(paths: list[Path], folder: Path, out_dir: Path) -> list[tuple[Path, str, str]]:
    """(input, output name, why it is refused or "") for each input. Names never change with the
    other files; where two inputs share one, the input whose timeline already holds it keeps it
    (so adding a file never takes over a finished one's outputs), else the first in order."""
    from collections import Counter

    names = output_names(paths, folder)
    shared = {name for name, n in Counter(names).items() if n > 1}
    owner: dict[str, Path] = {}
    for path, name in zip(paths, names):
        if name in shared and name not in owner:
            meta = timeline_metadata(Path(out_dir) / f"{name}.parquet")
            if meta is not None and Path(meta.source_path) == path.resolve():
                owner[name] = path
    for path, name in zip(paths, names):
        owner.setdefault(name, path)
    return [(p, n, "" if owner[n] == p else f"output name {n!r} is already that of {owner[n]}; rename one of them")
            for p, n in zip(paths, names)]


def output_names(paths: list[Path], folder: Path) -> list[str]:
    """`output_name` of each input (the same rule as `annotate`'s)."""
    return [output_name(p, folder) for p in paths]


def finished_key(out_dir: Path, name: str) -> str | None:
    """The job key stored in an existing timeline, or None if there is none (or it is unreadable)."""
    meta = timeline_metadata(out_dir / f"{name}.parquet")
    return meta.job_key if meta is not None else None


@dataclass
class Outcome:
    path: str
    name: str
    status: str  # done | skipped | busy | writing | failed
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
    if finished_key(options.out_dir, name) == key and _embeddings_kept(options, name):
        return Outcome(str(path), name, "skipped", "already annotated with this content, model and settings")
    with claim(options.out_dir, name) as mine:
        if not mine:
            return Outcome(str(path), name, "busy", "another batch is annotating it")
        if finished_key(options.out_dir, name) == key and _embeddings_kept(options, name):  # finished meanwhile
            return Outcome(str(path), name, "skipped", "already annotated with this content, model and settings")
        from fer_video.pipeline import annotate

        # A changed file is redone in place; another input's result is not replaced.
        check_overwrite(options.out_dir / f"{name}.parquet", path, content, key,
                        hint="remove it, or choose another --out")
        result = annotate(path, options, name=name, content_sha256=content, claimed=True)
    notes = [w.removeprefix(f"{path}: ") for w in [*result.warnings, *result.notes]]
    try:
        notes += [note] if (note := name_note(path, options.inputs_root)) else []
    except ValueError:
        pass  # a path outside the scanned folder (a caller's own name): nothing was cut by this rule
    return Outcome(str(path), name, "done", "; ".join(notes), result.frames, result.faces, time.monotonic() - started)


def annotate_folder(folder: str | Path, options: AnnotateOptions, pattern: str = "*", retries: int = 1,
                    run_jobs=None, on_outcome=None, wait: bool = False, say=None) -> list[Outcome]:
    """Every input under `folder` through `annotate_job`: what `fer-video batch` runs, directly or
    as the annotate-folder Prefect flow (flows/batch.py).

    `run_jobs(jobs, options, model_sha, retries)` runs `annotate_job` on each (path, name) and
    yields, in order, its Outcome or the exception of its last try: `in_threads(n)` here, Prefect
    tasks on the flow's task runner there. `on_outcome` hears of each outcome as it is known.

    `wait`: inputs still being written are waited for (`wait_to_settle`, its line to `say`), as
    `fer-video batch` does; else, as `serve`'s scheduled runs do, they are left to the next run.
    """
    root = Path(folder)
    options = replace(options, inputs_root=root) if options.inputs_root is None else options
    paths = discover(root, pattern, options.out_dir)
    from fer_video.jobs import model_sha256

    model_sha = model_sha256(options)
    growing = wait_to_settle(paths, say) if wait else still_being_written(paths)
    planned = plan(paths, root, options.out_dir)
    ready = [(path, name) for path, name, refused in planned if not refused and path not in growing]
    results = iter((run_jobs or in_threads())(ready, options, model_sha, retries))
    outcomes = []
    for path, name, refused in planned:
        if refused:
            result = Outcome(str(path), name, "failed", refused)
        elif path in growing:
            result = Outcome(str(path), name, "writing", growing[path])
        else:
            result = next(results)
        if isinstance(result, BaseException):
            reason = problem_of(result)
            result = Outcome(str(path), name, "failed", reason)
        outcomes.append(result)
        if on_outcome:
            on_outcome(result)
    if options.identity:
        # After every job: linking reads the whole folder's embeddings and rewrites timelines.
        for line in link_and_redraw(options.out_dir, options.people, preset=options.preset):
            if on_outcome:
                print(f"fer-video: {line}", file=sys.stderr, flush=True)
    return outcomes


def link_and_redraw(out_dir, people=None, threshold: float | None = None, fresh: bool = False,
                    preset: str = "ultrafast") -> list[str]:
    """`persons.link.link_folder`, then the annotated media whose person labels changed drawn again,
    so that each video shows the persons its timeline names. One line for the linking, then one
    per media redrawn or not redrawable."""
    from fer_video.errors import InputError
    from fer_video.persons.cluster import THRESHOLD
    from fer_video.persons.link import link_folder
    from fer_video.pipeline.render import redraw

    relabelled: list = []
    registry = link_folder(out_dir, people, THRESHOLD if threshold is None else threshold, fresh, relabelled)
    lines = [linked_line(out_dir, registry)]
    for timeline in relabelled:
        try:
            media = redraw(timeline, preset)
        except InputError as e:
            lines.append(f"{e.path}: not redrawn with the linked persons: {e.problem}")
            continue
        if media is not None:
            lines.append(f"{media}: redrawn with the linked persons")
    return lines


def linked_line(out_dir, registry) -> str:
    """What linking found, in one line."""
    def plural(n, word):
        return f"{n} {word}" + ("" if n == 1 else "s")

    persons = registry.drop_duplicates("person_id")
    named = int(persons["person"].notna().sum())
    return (f"{out_dir}: {plural(len(registry), 'track')} in {plural(registry['video_id'].nunique(), 'video')} "
            f"-> {plural(len(persons), 'person')} ({named} named)")


def in_threads(concurrency: int = 2, retry_delay: float = 1.0, job=None):
    """`run_jobs` for `annotate_folder`: `concurrency` jobs at a time in this process's threads,
    each failed job tried again up to `retries` times. `job`: `annotate_job` or a wrapper of it
    with its signature (flows/record.py records each try)."""
    job = job or annotate_job

    def attempt(path, name, options, model_sha, retries):
        for tries_left in range(retries, -1, -1):
            try:
                return job(path, name, options, model_sha)
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
                yield interrupt.result(future)  # the main thread waits here: a signal must reach it

    return run_jobs


def outcome_line(o: Outcome) -> str:
    """One line per input as it finishes: `batch` and every run of `serve` print these."""
    if o.status == "done":
        frames = f"{o.frames} frame" + ("" if o.frames == 1 else "s")
        return f"{o.path}: done, {frames}, {o.faces} face rows in {o.seconds:.1f} s" + (f" ({o.reason})" if o.reason else "")
    return f"{o.path}: {o.status}" + (f" ({o.reason})" if o.reason else "")


def say(line: str) -> None:
    """A line of what the batch is doing, on stderr."""
    print(f"fer-video: {line}", file=sys.stderr, flush=True)


def print_outcome(o: Outcome) -> None:
    import sys

    print(f"fer-video: {outcome_line(o)}", file=sys.stderr, flush=True)


def _embeddings_kept(options: AnnotateOptions, name: str) -> bool:
    """With --identity a job is also unfinished when its embeddings were deleted."""
    from fer_video.persons.store import embeddings_path

    return not options.identity or embeddings_path(options.out_dir, name).exists()


def format_outcomes(outcomes: list[Outcome]) -> str:
    """An aligned table, then one line of totals."""
    header = ("status", "input", "frames", "faces", "seconds", "reason")
    rows = [(o.status, o.path, str(o.frames), str(o.faces), f"{o.seconds:.1f}", o.reason) for o in outcomes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "busy", "writing", "failed")}
    if not counts["writing"]:
        del counts["writing"]
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(outcomes)} inputs")
    return "\n".join(lines)
