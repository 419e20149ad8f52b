"""`annotate_video`: one video or image through the pipeline, one Prefect task per stage."""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from fer_video import outputs, pipeline
from fer_video.errors import InputError
from fer_video.pipeline import AnnotateOptions, Result

# Stage inputs are frames and DataFrames: hashing them for Prefect's cache would cost more than
# the stage, and re-running a stage is what the user asked for.
stage = task(cache_policy=NO_CACHE)

probe = stage(name="probe")(pipeline.probe)
analyse = stage(name="analyse", task_run_name="analyse frames {first}-{last}")(pipeline.analyse)
stitch = stage(name="stitch-segments")(pipeline.stitch)
smooth = stage(name="smooth")(pipeline.smooth)
write_timeline = stage(name="write-timeline")(pipeline.write)
render = stage(name="render")(pipeline.render)


def _tasks_run_elsewhere() -> bool:
    """Whether this flow run's task runner sends tasks to other processes (a Dask cluster)."""
    return not isinstance(FlowRunContext.get().task_runner, ThreadPoolTaskRunner)


@flow(name="annotate-video", flow_run_name="annotate {path}", validate_parameters=False)
def annotate_video(path: str | Path, options: AnnotateOptions | None = None, name: str | None = None,
                   overwrite: bool = False) -> Result:
    """As `fer_video.pipeline.annotate`: the timeline is written last, marking the job done.
    With `options.segments` > 1 a video is analysed in time segments in parallel, then stitched.

    The outputs' lock (the one `batch` takes) is held throughout: a second run on the same output
    is refused as busy instead of racing this one. A timeline of another input is not replaced
    unless `overwrite`."""
    options = options or AnnotateOptions()
    name = name or outputs.output_name(path)
    info = probe(path)  # first: an input that is not there or not a video leaves nothing in --out
    with outputs.claim(options.out_dir, name) as mine:
        if not mine:
            raise InputError(path, f"busy: another fer-video run is writing {options.out_dir / name}.* now")
        return _annotate_claimed(info, options, name, overwrite)


def _annotate_claimed(info, options: AnnotateOptions, name: str, overwrite: bool) -> Result:
    content = pipeline.file_sha256(info.path)
    key = pipeline.job_key(content, _model_sha256(options), options)
    timeline = pipeline.output_paths(info, options.out_dir, name)["timeline"]
    note = outputs.check_overwrite(timeline, info.path, content, key, overwrite)
    ranges = pipeline.plan_segments(info, options)
    if len(ranges) == 1 and not _tasks_run_elsewhere():
        analysis = analyse(info, options, name)  # in this thread, which Ctrl-C stops at once
    else:
        # Segments at once on the flow's task runner: threads, or Dask workers (a single segment
        # too, so that the cluster, not this process, does the work).
        futures = [analyse.submit(info, options, name, first, last) for first, last in ranges]
        parts = [f.result() for f in futures]
        analysis = parts[0] if len(parts) == 1 else stitch(parts, ranges)
    analysis.content_sha256 = content
    rows = smooth(analysis.rows, options.smoothing)
    result = pipeline.summarise(info, rows, analysis)
    if info.is_image:
        result.image = render(info, rows, options, analysis.name)
    elif options.video:
        result.video = render(info, rows, options, analysis.name)
    if note:
        print(f"fer-video: note: {note}", file=sys.stderr)
    result.timeline = write_timeline(rows, analysis, options)
    return result


def _model_sha256(options: AnnotateOptions) -> str:
    from fer_video.expression.classify import DEFAULT_MODEL

    return pipeline.file_sha256(options.model or DEFAULT_MODEL)
