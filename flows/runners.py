"""Where tasks run: threads in this process, a local Dask cluster, or an existing one."""

from __future__ import annotations

import os


def _ephemeral_api() -> dict[str, str]:
    """PREFECT_API_URL of this process's ephemeral Prefect server, if one runs. Without it each
    local Dask worker boots an ephemeral server of its own (~6 s of CPU each, measured) and
    records its task runs there, where the flow's server never sees them."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return {}  # a configured server: workers inherit the setting
    server = SubprocessASGIServer()
    return {"PREFECT_API_URL": server.api_url} if server.running and server.port else {}


def task_runner(concurrency: int = 2, dask_address: str | None = None, workers: int | None = None):
    if dask_address or workers:
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        # Each worker process gets its share of the cores for its models (fer_video.resources).
        env = {"FER_VIDEO_THREADS": str(max(1, len(os.sched_getaffinity(0)) // workers))}
        env.update(_ephemeral_api())
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "env": env})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=max(1, concurrency))
