"""`annotate_folder`: every video and image under a folder, a few at a time, skipping finished
work; `serve_folder`: the same on a schedule, as a Prefect deployment."""

from __future__ import annotations

import inspect
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from fer_video import batch
from fer_video.options import folder_flow_annotate_options, folder_flow_options  # cheap: no pipeline until a job
from flows.runners import task_runner

annotate_job = task(name="annotate-job", cache_policy=NO_CACHE, task_run_name="annotate {name}")(batch.annotate_job)


def annotate_folder(folder: str, **parameters) -> list[batch.Outcome]:
    """Plain parameters only, so a deployment can store them: `folder`, then one per option of
    `fer-video batch` that is not about where it runs (fer_video.options.folder_flow_options:
    --pattern, --retries, the pipeline's options, --quiet), with their declared defaults, and `wait`.
    Concurrency comes from the task runner the caller picks (threads here, or a Dask cluster).
    `wait`: for inputs still being written, as `fer-video batch` does; `serve`'s scheduled runs
    leave them to the next run."""
    arguments = _SIGNATURE.bind(folder, **parameters)
    arguments.apply_defaults()
    given = arguments.arguments
    options = folder_flow_annotate_options(given, progress=False, inputs_root=Path(folder))
    quiet = given["quiet"]
    return batch.annotate_folder(folder, options, given["pattern"], given["retries"], run_jobs=_as_tasks,
                                 on_outcome=None if quiet else batch.print_outcome,
                                 wait=given["wait"], say=None if quiet else batch.say)


def _signature() -> inspect.Signature:
    """annotate_folder's parameters, made from the options' declarations (Prefect reads them from
    the signature: the deployment's parameter schema, the defaults a scheduled run gets)."""
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    plain = {Path: str, int: int, float: float, bool: bool, str: str}
    parameters = [inspect.Parameter("folder", keyword, annotation=str)]
    for option in folder_flow_options():
        kind = plain.get(type(option.default), str) if option.default is not None else str | None
        parameters.append(inspect.Parameter(option.parameter, keyword, default=option.parameter_default,
                                            annotation=kind))
    parameters.append(inspect.Parameter("wait", keyword, default=False, annotation=bool))
    return inspect.Signature(parameters, return_annotation=list[batch.Outcome])


_SIGNATURE = _signature()
annotate_folder.__signature__ = _SIGNATURE
# Under the function's own name, so that a deployment's entrypoint (flows/batch.py:annotate_folder)
# finds the flow.
annotate_folder = flow(name="annotate-folder", validate_parameters=False)(annotate_folder)


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
