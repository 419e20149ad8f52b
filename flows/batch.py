"""`annotate_folder`: every video and image under a folder, a few at a time, skipping finished
work; `serve_folder`: the same on a schedule, as a Prefect deployment."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from fer_video import batch
from fer_video.pipeline import AnnotateOptions
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
    identity: bool = False,
    people: str | None = None,
) -> list[batch.Outcome]:
    """Plain parameters only, so a deployment can store them. Concurrency comes from the task
    runner the caller picks (threads here, or a Dask cluster)."""
    options = AnnotateOptions(out_dir=Path(out), stride=stride, detector=detector, min_face=min_face,
                              smoothing=smoothing, model=Path(model) if model else None, video=video,
                              preset=preset, progress=False, identity=identity,
                              people=Path(people) if people else None)
    root = Path(folder)
    paths = batch.discover(root, pattern)
    model_sha = batch.model_sha256(options)
    job = annotate_job.with_options(retries=retries, retry_delay_seconds=1)
    futures = [(p, name, job.submit(p, name, options, model_sha))
               for p, name in zip(paths, batch.output_names(paths, root))]
    outcomes = []
    for path, name, future in futures:
        result = future.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            reason = getattr(result, "problem", None) or f"{type(result).__name__}: {result}"
            outcomes.append(batch.Outcome(str(path), name, "failed", reason))
        else:
            outcomes.append(result)
    if identity:
        # After every job: linking reads all the folder's embeddings and rewrites timelines.
        link_persons(out, people)
    return outcomes


@task(name="link-persons", cache_policy=NO_CACHE)
def link_persons(out: str, people: str | None = None):
    from fer_video.identity import link_folder

    return link_folder(out, people)


def folder_flow(concurrency: int = 2, dask_address: str | None = None, workers: int | None = None):
    """annotate_folder with a task runner: a Dask cluster (an existing one at `dask_address`, or
    a local one of `workers` processes) or `concurrency` threads in this process."""
    return annotate_folder.with_options(task_runner=task_runner(concurrency, dask_address, workers))
