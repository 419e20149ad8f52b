"""The whole pipeline for one input, in stage order:

    probe -> analyse (analyse.py; segments.py for --segments) -> keep (keep.py)
          -> persons (fer_video.persons.stage) -> smooth (smooth.py)
          -> render (render.py) -> write the timeline (write.py)

From analysis to smoothing every stage takes and returns `Faces`; render and write take the
timeline's rows, made from the smoothed faces by `rows_of`.

`Stages` says how the stages run: plain calls here; flows/annotate.py passes the same functions
as Prefect tasks and maps segments over its task runner, so orchestration is written once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fer_video.errors import InputError
from fer_video.expression.labels import EMOTIONS
from fer_video.faces.record import Faces, timeline_columns
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
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run did besides writing: a file it removed


class Stages:
    """How `annotate` runs its stages. Here: plain calls in this thread, a video's time segments
    (`--segments`) in threads. flows/annotate.py passes the same functions as Prefect tasks and
    maps the segments over the flow's task runner (threads or Dask)."""

    def __init__(self, **stages):
        self.probe, self.analyse, self.stitch = probe, analyse, stitch
        self.smooth, self.render, self.write = smooth, render, write
        self.__dict__.update(stages)

    def analyse_segments(self, info: MediaInfo, options: AnnotateOptions, name: str | None,
                         ranges: list[tuple[int, int | None]]) -> list[Analysis]:
        if len(ranges) == 1:
            return [self.analyse(info, options, name)]  # in this thread, which Ctrl-C stops at once
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(ranges), thread_name_prefix="segment") as pool:
            futures = [pool.submit(self.analyse, info, options, name, first, last) for first, last in ranges]
            return [f.result() for f in futures]


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
    stages = stages or Stages()
    info = stages.probe(path)  # first: an input that is not there or not a video leaves nothing in --out
    name = name or output_name(info.path)
    if claimed:
        return _annotate_claimed(info, options, name, content_sha256, stages, None)
    with claim(options.out_dir, name) as mine:
        if not mine:
            raise InputError(info.path, f"busy: another fer-video run is writing {options.out_dir / name}.* now")
        content_sha256 = content_sha256 or file_sha256(info.path)
        key = job_key(content_sha256, model_sha256(options), options)
        timeline = outputs_of(info, options.out_dir, name, options.inputs_root).timeline
        note = check_overwrite(timeline, info.path, content_sha256, key, overwrite)
        return _annotate_claimed(info, options, name, content_sha256, stages, note)


def _annotate_claimed(info: MediaInfo, options: AnnotateOptions, name: str, content_sha256: str,
                      stages: Stages, note: str | None) -> Result:
    ranges = plan_segments(info, options)
    parts = stages.analyse_segments(info, options, name, ranges)
    analysis = parts[0] if len(parts) == 1 else stages.stitch(parts, ranges)
    analysis.content_sha256 = content_sha256
    kept, ids = keep_faces(analysis, options)
    kept, analysis.embeddings = persons_in_video(kept, analysis.face_chips, ids, options)
    faces = stages.smooth(kept, options.smoothing)
    rows = rows_of(faces, analysis.name, analysis.info.path)
    result = result_of(info, rows, analysis)
    if options.video:
        media = stages.render(info, rows, options, analysis.name)
        if info.is_image:
            result.image = media
        else:
            result.video = media
    else:
        # Before the timeline, which marks the job done: a run killed in between leaves the old
        # timeline without its media, and is redone, never the new one beside a stale drawing.
        result.notes += remove_stale_media(options.out_dir, analysis.name)
    if note:
        print(f"fer-video: note: {note}", file=sys.stderr)
    result.timeline = stages.write(rows, analysis, options)
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


def rows_of(faces: Faces, video_id: str, source_path: str) -> pd.DataFrame:
    """The seam to the sinks: the smoothed `faces` as the timeline's rows DataFrame that `render`,
    `write` and `result_of` take (one row per face, in the faces' order; `video_id`,
    `source_path` (made absolute) on every row, `label` a Categorical of EMOTIONS). Goes once the
    sinks take `Faces` themselves."""
    rows = pd.DataFrame({"video_id": video_id, "source_path": str(Path(source_path).resolve()),
                         **timeline_columns(faces)})
    rows["label"] = pd.Categorical.from_codes(faces.label_ids, categories=list(EMOTIONS))
    return rows


def result_of(info: MediaInfo, rows: pd.DataFrame, analysis: Analysis) -> Result:
    return Result(
        source=info.path, frames=analysis.frames_decoded, faces=len(rows),
        tracks=int(rows["track_id"].nunique()) if len(rows) else 0, warnings=list(analysis.warnings),
    )
