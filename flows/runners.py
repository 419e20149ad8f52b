"""Where tasks run: threads in this process, a local Dask cluster, or an existing one."""

from __future__ import annotations

import os


def task_runner(concurrency: int = 2, dask_address: str | None = None, workers: int | None = None):
    if dask_address or workers:
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        # Each worker process gets its share of the cores for its models (fer_video.resources).
        # The workers inherit PREFECT_API_URL (flows/server.py), so they report to the flow's server.
        env = {"FER_VIDEO_THREADS": str(max(1, len(os.sched_getaffinity(0)) // workers))}
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "env": env})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=max(1, concurrency))
