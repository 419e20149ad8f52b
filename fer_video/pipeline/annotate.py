"""The whole pipeline for one input, in stage order:

    probe -> analyse (analyse.py; segments.py for --segments) -> keep (keep.py)
          -> persons (fer_video.persons.stage) -> smooth (smooth.py)
          -> the sinks (fer_video.sinks): render the annotated media (render.py), then write the
             timeline (write.py), last

Every stage takes and returns `Faces`; render and write are sinks that take them.

`Stages` says how the stages run: plain calls here; flows/annotate.py passes the same functions
as Prefect tasks and maps segments over its task runner, so orchestration is written once.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_video import interrupt
from fer_video.errors import InputError
from fer_video.faces.record import Faces
from fer_video.jobs import AnnotateOptions, file_sha256, job_key, model_sha256
from fer_video.outputs import check_overwrite, claim, output_name, outputs_of
from fer_video.persons.stage import persons_in_video
from fer_video.pipeline.analyse import Analysis, analyse
from fer_video.pipeline.keep import keep_faces
from fer_video.pipeline.render import render
from fer_video.pipeline.segments import plan_segments, stitch
from fer_video.pipeline.smooth import smooth
from fer_video.pipeline.write import write
from fer_video.video import MediaInfo, probe


@dataclass
class Result:
    source: str
    timeline: Path | None = None
    video: Path | None = None
    image: Path | None = None
    csv: Path | None = None  # with --format csv
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run did besides writing: a file it removed


@dataclass(frozen=True)
class Stage:
    """One row of STAGE_TABLE: `Stages`' attribute, the Prefect task's name (the flow's and the
    recorder's), the function, and the task run's name pattern if it has its own."""

    attribute: str
    task: str
    run: Callable
    run_name: str | None = None


# The stages `annotate` calls, in order: the one list the direct runner (`Stages()`), the Prefect
# flow (flows/annotate.py) and the recorder (flows/record.py) all read.
STAGE_TABLE = (
    Stage("probe", "probe", probe),
    Stage("analyse", "analyse", analyse, "analyse frames {first}-{last}"),
    Stage("stitch", "stitch-segments", stitch),
    Stage("keep", "keep", keep_faces),
    Stage("persons", "persons", persons_in_video),
    Stage("smooth", "smooth", smooth),
    Stage("render", "render", render),
    Stage("write", "write-timeline", write),
)


class Stages:
    """How `annotate` runs its stages: each STAGE_TABLE function, as it is or as `wrap(stage)`
    makes it (flows/annotate.py wraps each in a Prefect task; flows/record.py in a recorded task
    run). Here a video's time segments (`--segments`) run in threads; the flow maps them over its
    task runner (threads or Dask)."""

    def __init__(self, wrap: Callable[[Stage], Callable] | None = None):
        for stage in STAGE_TABLE:
            setattr(self, stage.attribute, wrap(stage) if wrap else stage.run)

    def analyse_segments(self, info: MediaInfo, options: AnnotateOptions, name: str | None,
                         ranges: list[tuple[int, int | None]]) -> list[Analysis]:
        if len(ranges) == 1:  # in this thread, which Ctrl-C stops at once, drawing the video as it goes
            return [self.analyse(info, options, name, draw=True)]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(ranges), thread_name_prefix="segment") as pool:
            futures = [pool.submit(self.analyse, info, options, name, first, last) for first, last in ranges]
            return [interrupt.result(f) for f in futures]  # a signal must reach this, the main thread


def annotate(path: str | Path, options: AnnotateOptions, name: str | None = None,
             content_sha256: str = "", stages: Stages | None = None, overwrite: bool = False,
             claimed: bool = False) -> Result:
    """The whole pipeline for one input: what `fer-video annotate` runs, directly or as the
    annotate-video Prefect flow (flows/annotate.py, which passes its tasks as `stages`).

    The outputs' lock (the one `batch` takes) is held throughout: a second run on the same output
    is refused as busy instead of racing this one; `claimed`: the caller (a batch job) holds it
    and has checked what it replaces. A timeline of another input is not replaced unless
    `overwrite`. The timeline is written last: a Parquet file with its job key is the mark of a
    finished job.
    """
    import_later_stages()
    stages = stages or Stages()
    info = stages.probe(path)  # first: an input that is not there or not a video leaves nothing in --out
    name = name or output_name(info.path)
    if claimed:
        return _annotate_claimed(info, options, name, content_sha256, stages, None)
    with claim(options.out_dir, name) as mine:
        if not mine:
            raise InputError(info.path, f"busy: another fer-video run is writing {options.out_dir / name}.* now")
        timeline = outputs_of(info, options.out_dir, name, options.inputs_root).timeline
        if content_sha256 or timeline.exists():  # what it replaces depends on what the input is
            content_sha256 = content_sha256 or file_sha256(info.path)
            key = job_key(content_sha256, model_sha256(options), options)
            note = check_overwrite(timeline, info.path, content_sha256, key, overwrite)
            return _annotate_claimed(info, options, name, content_sha256, stages, note)
        # Nothing to replace: the input is hashed (for the timeline's metadata) beside the
        # analysis, not before it (a second on a large file, on the core the analysis leaves).
        return _annotate_claimed(info, options, name, _hashed_beside(info.path), stages, None)


# What the stages after the analysis need and the analysis does not (pandas alone takes 0.2 s;
# pyarrow, which its Parquet module brings, 0.03 s).
LATER_MODULES = ("pandas", "pyarrow.parquet")


def import_later_stages(modules: tuple[str, ...] = LATER_MODULES) -> threading.Thread | None:
    """Import `modules` in a thread of their own, so the analysis starts without waiting for
    them. Loaded beside it they still take CPU the analysis wants, but less of its time than
    before its first frame (docs/benchmarks.md, 2026-12-07 17:55). A stage that needs one before
    it is loaded waits for it at its import. None when all are loaded already (the next input of
    a batch)."""
    if all(name in sys.modules for name in modules):
        return None

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the stage that imports it reports the failure itself
                pass

    thread = threading.Thread(target=load, name="import-later", daemon=True)
    thread.start()
    return thread


def _hashed_beside(path: str) -> Future:
    """`file_sha256(path)`, computed in a thread of its own (hashlib lets go of the GIL)."""
    done: Future = Future()

    def run() -> None:
        try:
            done.set_result(file_sha256(path))
        except BaseException as error:  # noqa: BLE001 - raised where the hash is waited for
            done.set_exception(error)

    threading.Thread(target=run, name="hash-input", daemon=True).start()
    return done


def _annotate_claimed(info: MediaInfo, options: AnnotateOptions, name: str, content_sha256: str | Future,
                      stages: Stages, note: str | None) -> Result:
    ranges = plan_segments(info, options)
    parts = stages.analyse_segments(info, options, name, ranges)
    if isinstance(content_sha256, Future):
        content_sha256 = interrupt.result(content_sha256)
    analysis = parts[0] if len(parts) == 1 else stages.stitch(parts, ranges)
    analysis.content_sha256 = content_sha256
    try:
        kept, ids = stages.keep(analysis, options)
        kept, analysis.embeddings = stages.persons(kept, analysis.face_chips, ids, options)
        faces = stages.smooth(kept, options.smoothing)
    except BaseException:
        if analysis.live is not None:
            analysis.live.discard()  # the video drawn during the analysis: its temp file goes
        raise
    result = result_of(info, faces, analysis)
    if options.video:  # the sinks: the annotated media first, the timeline last
        media = stages.render(info, faces, options, analysis.name, live=analysis.live)
        if info.is_image:
            result.image = media
        else:
            result.video = media
    else:
        # Before the timeline, which marks the job done: a run killed in between leaves the old
        # timeline without its media, and is redone, never the new one beside a stale drawing.
        result.notes += remove_stale_media(options.out_dir, analysis.name)
    if options.format != "csv":  # before the timeline too, for the same reason
        result.notes += remove_stale_csv(options.out_dir, analysis.name)
    if note:
        print(f"fer-video: note: {note}", file=sys.stderr)
    result.timeline = stages.write(faces, analysis, options)
    if options.format == "csv":
        result.csv = result.timeline.with_suffix(".csv")
    return result


def remove_stale_media(out_dir: Path, name: str) -> list[str]:
    """With --no-video: the annotated video or image an earlier run drew for `name`, removed, one
    line each. It shows the earlier timeline's faces and labels, not the new one's, so left beside
    the new timeline it would be taken for its drawing. Only beside a fer-video timeline of that
    name (one this run is replacing): a file that merely has such a name is never touched."""
    from fer_video.outputs import media_names, timeline_metadata

    out_dir = Path(out_dir)
    if timeline_metadata(out_dir / f"{name}.parquet") is None:
        return []
    notes = []
    for filename in media_names(name):
        media = out_dir / filename
        if media.is_file():
            media.unlink()
            notes.append(f"{media}: removed, an earlier run's drawing that would not match the new timeline "
                         "(--no-video draws none)")
    return notes


def remove_stale_csv(out_dir: Path, name: str) -> list[str]:
    """Without --format csv: the `<name>.csv` an earlier run wrote beside `name`'s timeline,
    removed, one line: it holds the earlier timeline's rows, not the new one's. Only beside a
    fer-video timeline of that name, as `remove_stale_media`."""
    from fer_video.outputs import timeline_metadata

    csv = Path(out_dir) / f"{name}.csv"
    if not csv.is_file() or timeline_metadata(Path(out_dir) / f"{name}.parquet") is None:
        return []
    csv.unlink()
    return [f"{csv}: removed, an earlier run's CSV of the timeline that would not match the new one "
            "(--format csv writes it)"]


def result_of(info: MediaInfo, faces: Faces, analysis: Analysis) -> Result:
    return Result(
        source=info.path, frames=analysis.frames_decoded, faces=len(faces),
        tracks=len(np.unique(faces.track_ids)), warnings=list(analysis.warnings),
    )
