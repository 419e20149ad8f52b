"""Direct or through Prefect: whether a run goes through Prefect's flows (flows/), is recorded in
a configured server while its stages run here, or runs directly, unrecorded. This package is the
only one of fer_video that imports flows/, and only when a run needs them."""

from __future__ import annotations

from fer_video.resources import quiet_stderr


def prefect_wanted(args) -> str | None:
    """Why this run goes through Prefect's flows, or None to run the stages directly: a run
    nobody asked to record and nobody could look at (an ephemeral server) is pure cost."""
    from flows.server import configured_api_url

    if getattr(args, "dask_address", None) or getattr(args, "workers", None):
        return "prefect-dask"
    if getattr(args, "prefect", False):
        return "--prefect"
    url = configured_api_url()
    return f"server {url}" if url else None


recorders: list = []  # flows.record.Recorder of this command, closed (bounded wait) at its end


def recorder(reason: str | None):
    """With a configured server and nothing that needs Prefect's engine (--prefect, Dask), the
    stages run directly here, at once, and flows/record.py records the run in that server."""
    if not (reason or "").startswith("server "):
        return None
    from flows.record import Recorder

    recorders.append(Recorder(reason.removeprefix("server ")))
    return recorders[-1]


def close_recorders() -> None:
    while recorders:
        recorders.pop().close()


def where(reason: str | None) -> str:
    if reason is None:
        return "not recorded in Prefect (no server configured; --prefect records it)"
    if reason.startswith("server "):
        return f"recorded in Prefect at {reason.removeprefix('server ')}"
    return f"as a Prefect flow ({reason})"


def start_prefect(args, services: bool = False, warm_up=None):
    """Prefect for a flow run: the server configured, else an ephemeral one booted in a
    subprocess while this process imports the flows and warms up the models."""
    from flows.server import EphemeralServer

    server = EphemeralServer(args.verbose, services=services)
    with quiet_stderr(not args.verbose):
        server.import_prefect()
        if warm_up and server.url:
            warm_up()  # while the ephemeral server boots; with a server already up it would only delay
        server.attach()
    return server


def warm_up(options) -> None:
    """Load the model and run the detector once, so the first input does not pay for it."""
    import numpy as np

    from fer_video.faces.detectors import make_detector
    from fer_video.pipeline import load_classifier

    load_classifier(options.model)
    make_detector(options.detector)(np.zeros((64, 64, 3), np.uint8))


