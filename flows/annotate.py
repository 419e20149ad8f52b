"""`annotate_video`: one video or image through the pipeline, one Prefect task per stage."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from fer_video import interrupt, pipeline
from fer_video.pipeline import AnnotateOptions, Result

def _task(stage: pipeline.Stage):
    """A row of pipeline.STAGE_TABLE as a task. Stage inputs are frames and a video's `Faces`:
    hashing them for Prefect's cache would cost more than the stage, and re-running a stage is what
    the user asked for. Each output is a task of its own (render: the annotated media's sink;
    write-timeline: the timeline's, last)."""
    return task(stage.run, name=stage.task, task_run_name=stage.run_name, cache_policy=NO_CACHE)


class _TaskStages(pipeline.Stages):
    """pipeline.annotate's stages as this flow's tasks; segments on the flow's task runner."""

    def analyse_segments(self, info, options, name, ranges):
        if len(ranges) == 1 and not _tasks_run_elsewhere():
            # In this thread, which Ctrl-C stops at once, drawing the video as it goes.
            return [self.analyse(info, options, name, draw=True)]
        # Segments at once on the flow's task runner: threads, or Dask workers (a single segment
        # too, so that the cluster, not this process, does the work).
        futures = [self.analyse.submit(info, options, name, first, last) for first, last in ranges]
        return results(futures)


def results(futures) -> list:
    """Each Prefect future's result, in order, the main thread waiting in slices so that a signal
    stops it (`fer_video.interrupt.wait`), on the future that each task runner's future wraps (a
    concurrent or a Dask one)."""
    for future in futures:
        interrupt.wait(future.wrapped_future)
    return [future.result() for future in futures]


STAGES = _TaskStages(wrap=_task)


def _tasks_run_elsewhere() -> bool:
    """Whether this flow run's task runner sends tasks to other processes (a Dask cluster)."""
    return not isinstance(FlowRunContext.get().task_runner, ThreadPoolTaskRunner)


@flow(name="annotate-video", flow_run_name="annotate {path}", validate_parameters=False)
def annotate_video(path: str | Path, options: AnnotateOptions | None = None, name: str | None = None,
                   overwrite: bool = False) -> Result:
    """`fer_video.pipeline.annotate`, one Prefect task per stage: the outputs' lock is held, the
    timeline is written last, marking the job done. With `options.segments` > 1 a video is
    analysed in time segments in parallel on the flow's task runner, then stitched."""
    return pipeline.annotate(path, options or AnnotateOptions(), name, stages=STAGES, overwrite=overwrite)
