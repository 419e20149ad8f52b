"""`annotate_folder`: every video and image under a folder, a few at a time, skipping finished
work; `serve_folder`: the same on a schedule, as a Prefect deployment."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from fer_video import batch
from fer_video.jobs import MIN_SCORE, AnnotateOptions  # not the pipeline: a batch with nothing to do never loads it
from flows.runners import task_runner

annotate_job = task(name="annotate-job", cache_policy=NO_CACHE, task_run_name="annotate {name}")(batch.annotate_job)


@flow(name="annotate-folder", validate_parameters=False)
def annotate_folder(
    folder: str,
    out: str = "fer-video-out",
    pattern: str = "*",
    retries: int = 1,
    stride: int = 1,
    detector: str = "blazeface",
    min_face: int = 40,
    smoothing: str = "window:0.5",
    model: str | None = None,
    video: bool = True,
    preset: str = "ultrafast",
    min_score: float = MIN_SCORE,
    quiet: bool = False,
    persons: bool = True,
    identity: bool = False,
    people: str | None = None,
    wait: bool = False,
) -> list[batch.Outcome]:
    """Plain parameters only, so a deployment can store them. Concurrency comes from the task
    runner the caller picks (threads here, or a Dask cluster). `wait`: for inputs still being
    written, as `fer-video batch` does; `serve`'s scheduled runs leave them to the next run."""
    options = AnnotateOptions(out_dir=Path(out), stride=stride, detector=detector, min_face=min_face,
                              smoothing=smoothing, model=Path(model) if model else None, video=video,
                              preset=preset, min_score=min_score, progress=False,
                              inputs_root=Path(folder), persons=persons, identity=identity,
                              people=Path(people) if people else None)
    return batch.annotate_folder(folder, options, pattern, retries, run_jobs=_as_tasks,
                                 on_outcome=None if quiet else batch.print_outcome,
                                 wait=wait, say=None if quiet else batch.say)


def _as_tasks(jobs, options, model_sha, retries):
    """Each job a task run, with Prefect's retries, on the flow's task runner."""
    job = annotate_job.with_options(retries=retries, retry_delay_seconds=1)
    futures = [job.submit(path, name, options, model_sha) for path, name in jobs]
    for future in futures:
        yield future.result(raise_on_failure=False)


def folder_flow(concurrency: int = 2, dask_address: str | None = None, workers: int | None = None):
    """annotate_folder with a task runner: a Dask cluster (an existing one at `dask_address`, or
    a local one of `workers` processes) or `concurrency` threads in this process."""
    return annotate_folder.with_options(task_runner=task_runner(concurrency, dask_address, workers))


def serve_folder(name: str, parameters: dict, interval=None, cron: str | None = None, concurrency: int = 2,
                 dask_address: str | None = None, workers: int | None = None, on_ready=None) -> None:
    """annotate_folder as a deployment on a schedule, served by a Prefect Runner in this process
    until stopped: a first run at once, then one per interval or cron tick. `on_ready()` is called
    once the deployment and its first run exist."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.runner import Runner

    runner = Runner(name=name, pause_on_shutdown=False)
    deployment_id = runner.add_flow(folder_flow(concurrency, dask_address, workers), name=name,
                                    interval=interval, cron=cron, parameters=parameters)
    with get_client(sync_client=True) as client:  # the first run now, not one interval from now
        client.create_flow_run_from_deployment(deployment_id)
    if on_ready:
        on_ready()
    asyncio.run(runner.start())
