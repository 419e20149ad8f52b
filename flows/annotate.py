"""`annotate_video`: one video or image through the pipeline, one Prefect task per stage."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from fer_video import pipeline
from fer_video.pipeline import AnnotateOptions, Result

# Stage inputs are frames and DataFrames: hashing them for Prefect's cache would cost more than
# the stage, and re-running a stage is what the user asked for.
stage = task(cache_policy=NO_CACHE)

probe = stage(name="probe")(pipeline.probe)
analyse = stage(name="analyse")(pipeline.analyse)
smooth = stage(name="smooth")(pipeline.smooth)
write_timeline = stage(name="write-timeline")(pipeline.write)
render = stage(name="render")(pipeline.render)


@flow(name="annotate-video", flow_run_name="annotate {path}", validate_parameters=False)
def annotate_video(path: str | Path, options: AnnotateOptions | None = None, name: str | None = None) -> Result:
    """As `fer_video.pipeline.annotate`: the timeline is written last, marking the job done."""
    options = options or AnnotateOptions()
    info = probe(path)
    analysis = analyse(info, options, name)
    rows = smooth(analysis.rows, options.smoothing)
    result = pipeline.summarise(info, rows, analysis)
    if info.is_image:
        result.image = render(info, rows, options, analysis.name)
    elif options.video:
        result.video = render(info, rows, options, analysis.name)
    result.timeline = write_timeline(rows, analysis, options)
    return result
