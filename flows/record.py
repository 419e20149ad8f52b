"""Recording a run that fer-video runs directly in the Prefect server the user configured.

`fer-video annotate` and `batch` with a configured server (PREFECT_API_URL, .env, prefect.toml,
the active profile) run the same stages as without one, in this process, at once, and this
module records them in that server as the `annotate-video` / `annotate-folder` flows would: one
flow run per input (per folder) with the flow's name, run name and parameters, and a task run for
each stage or job, with its real start and end times and its final state (Completed; Failed with
the one-line error; Cancelled on Ctrl-C / SIGTERM; AwaitingRetry / Retrying for `--retries`).

Why not Prefect's engine or its Python client: `import prefect` alone costs 2.5-4 s of CPU here
(more than a short clip's whole work), and a subprocess that imports it beside the work still
adds that to the command on 2 busy cores. Prefect's client is a wrapper around the server's REST
API (https://docs.prefect.io/v3/api-ref/rest-api/server/), which the standard library reaches in
milliseconds, so a thread here sends what the client would:

- `POST /flows/` (create or read the flow by name), `POST /flow_runs/` (Running), then
  `POST /flow_runs/{id}/set_state` (the final state), as the flow engine does (it goes through
  Pending first): the server orchestrates the flow run and stamps its times as the calls arrive,
  while it runs;
- task runs as Prefect 3's task engine reports them, client-side: `prefect.task-run.<State>`
  events (`POST /events`), each with the time it happened; the server's task-run recorder
  service turns them into task runs and task-run states.

Requests go out from a background thread while the work goes on; the command waits for the last
ones at its end (at most `CLOSE_TIMEOUT` s, `INTERRUPT_TIMEOUT` s after Ctrl-C). If the server
cannot be reached, one warning line and the work goes on unrecorded. Nothing here imports Prefect.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import inspect
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

from fer_video.errors import one_line  # light (no NumPy): every failure reads as the CLI says it

REQUEST_TIMEOUT = 5.0  # seconds per request
CLOSE_TIMEOUT = 10.0  # seconds the command waits at its end for what is still to be sent
INTERRUPT_TIMEOUT = 0.6  # the same after Ctrl-C (fer_video.interrupt cuts everything at 1 s)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _jsonable(value):
    """Parameters as Prefect's encoder would store them: dataclasses as dicts, paths as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _auth_header() -> dict[str, str]:
    """Prefect's own credentials from the environment: an API key (Cloud) or the basic-auth
    string of a self-hosted server."""
    if key := os.environ.get("PREFECT_API_KEY"):
        return {"Authorization": f"Bearer {key}"}
    if auth := os.environ.get("PREFECT_API_AUTH_STRING"):
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    return {}


class Unreachable(Exception):
    pass


class Recorder:
    """One per command: a thread that sends the records to `api_url` in order. `flow_run()` for
    each flow run; `close()` at the end (waits, bounded, for the rest to be sent)."""

    def __init__(self, api_url: str, warn=None):
        self.url = api_url.rstrip("/")
        self._warn = warn or (lambda message: print(f"fer-video: warning: {message}", file=sys.stderr, flush=True))
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", **_auth_header()}
        self._queue: queue.Queue = queue.Queue()
        self._flows: dict[str, str] = {}  # flow name -> id
        self._failed: str | None = None
        self._thread = threading.Thread(target=self._loop, name="prefect-recorder", daemon=True)
        self._thread.start()

    # --- in the command's threads ---

    def flow_run(self, flow: str, name: str, parameters: dict) -> "FlowRun":
        run = FlowRun(self, flow, name, _jsonable(parameters))
        self._queue.put(("flow_run", run))
        return run

    def close(self, timeout: float | None = None) -> bool:
        """Wait until everything is sent (or `timeout` s pass); True if all of it was recorded."""
        from fer_video import interrupt

        if timeout is None:
            timeout = INTERRUPT_TIMEOUT if interrupt.interrupted() else CLOSE_TIMEOUT
        self._queue.put(("stop", None))
        self._thread.join(timeout)
        if self._thread.is_alive() and self._failed is None:
            self._failed = f"gave up after {timeout:g} s"
            self._warn(f"the Prefect server at {self.url} is slow: gave up recording this run after {timeout:g} s")
        return self._failed is None

    @property
    def ok(self) -> bool:
        return self._failed is None

    # --- in the recorder's thread ---

    def _request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace").strip().replace("\n", " ")[:200]
            raise Unreachable(f"{method} {path}: HTTP {error.code} {detail}") from None
        except (OSError, ValueError) as error:  # refused, timed out, bad URL
            reason = getattr(error, "reason", error)
            raise Unreachable(f"{reason}") from None
        return json.loads(text) if text else None

    def _loop(self) -> None:
        carried = None
        while True:
            kind, item = carried or self._queue.get()
            carried = None
            if kind == "stop":
                return
            if self._failed is not None:
                continue  # nothing more is sent once the server failed us
            try:
                if kind == "flow_run":
                    self._create(item)
                elif kind == "state" and item[0].id:
                    run, state = item
                    self._request("POST", f"/flow_runs/{run.id}/set_state", {"state": state, "force": False})
                elif kind == "event":
                    events = [self._event(*item)]
                    while True:  # whatever else is waiting goes in the same request
                        try:
                            carried = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if carried[0] != "event":
                            break
                        events.append(self._event(*carried[1]))
                        carried = None
                    events = [e for e in events if e is not None]
                    if events:
                        self._request("POST", "/events", events)
            except Unreachable as error:
                self._failed = str(error)
                self._warn(f"could not record this run in Prefect at {self.url} ({error}); the work goes on")

    def _create(self, run: "FlowRun") -> None:
        flow_id = self._flows.get(run.flow)
        if flow_id is None:
            flow_id = self._flows[run.flow] = self._request("POST", "/flows/", {"name": run.flow})["id"]
        created = self._request("POST", "/flow_runs/", {
            "flow_id": flow_id, "name": run.name, "parameters": run.parameters,
            # Running from the start (one request, not Pending then Running): the server stamps
            # the state, and so the run's start time, when the request arrives.
            "state": {"type": "RUNNING", "name": "Running"}, "tags": [], "context": {},
        })
        run.id = created["id"]

    def _event(self, run: "FlowRun", event: dict):
        """The event, with the flow run it belongs to (known only here, once it is created)."""
        if not run.id:
            return None
        event["related"] = [
            {"prefect.resource.id": f"prefect.flow-run.{run.id}", "prefect.resource.role": "flow-run",
             "prefect.resource.name": run.name},
            {"prefect.resource.id": f"prefect.flow.{self._flows[run.flow]}", "prefect.resource.role": "flow",
             "prefect.resource.name": run.flow},
        ]
        return event


@dataclasses.dataclass(eq=False)
class TaskRun:
    id: str
    name: str
    task_key: str
    dynamic_key: str
    retries: int = 0
    expected: datetime.datetime = dataclasses.field(default_factory=_now)
    run_count: int = 0
    started: datetime.datetime | None = None
    ended: datetime.datetime | None = None
    run_time: float = 0.0
    last: tuple[str, str] | None = None
    last_event: str | None = None
    resumed: float | None = None  # time.monotonic() of the latest Running


class FlowRun:
    """One flow run's records. `task(name, fn)` wraps a stage so that each call is a task run;
    used as a context manager, the flow run ends Completed, Failed or Cancelled."""

    def __init__(self, recorder: Recorder, flow: str, name: str, parameters: dict):
        self.recorder, self.flow, self.name, self.parameters = recorder, flow, name, parameters
        self.id: str | None = None  # set by the recorder's thread
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def new_task_run(self, task: str, run_name: str | None = None, retries: int = 0) -> TaskRun:
        key = f"{task}-{hashlib.sha256(f'{self.flow}.{task}'.encode()).hexdigest()[:8]}"
        with self._lock:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
        return TaskRun(str(uuid.uuid4()), run_name or f"{task}-{n}", key, str(n), retries)

    def set_task_state(self, task: TaskRun, state_type: str, state_name: str, message: str | None = None) -> None:
        """A `prefect.task-run.<state>` event as Prefect's task engine emits it, made now (the
        task run as it is at this moment) and sent by the recorder's thread."""
        at = _now()
        if state_type == "RUNNING":
            task.run_count += 1
            task.started = task.started or at
            task.resumed = time.monotonic()
        elif task.resumed is not None:
            task.run_time += time.monotonic() - task.resumed
            task.resumed = None
        if state_type in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
            task.ended = at
        previous, task.last = task.last, (state_type, state_name)
        task_run = {
            "name": task.name, "task_key": task.task_key, "dynamic_key": task.dynamic_key,
            "flow_run_run_count": 1, "run_count": task.run_count, "tags": [], "labels": {},
            "task_inputs": {}, "empirical_policy": {"retries": task.retries, "retry_delay": 1},
            "expected_start_time": task.expected.isoformat(),
            "start_time": task.started.isoformat() if task.started else None,
            "end_time": task.ended.isoformat() if task.ended else None,
            "total_run_time": round(task.run_time, 6),
        }
        event_id = str(uuid.uuid4())
        event = {
            "id": event_id,
            "occurred": at.isoformat(),
            "event": f"prefect.task-run.{state_name}",
            "resource": {
                "prefect.resource.id": f"prefect.task-run.{task.id}",
                "prefect.resource.name": task.name,
                "prefect.run-count": str(task.run_count),
                "prefect.state-message": message or "",
                "prefect.state-name": state_name,
                "prefect.state-timestamp": at.isoformat(),
                "prefect.state-type": state_type,
                "prefect.orchestration": "client",
            },
            "payload": {
                "intended": {"from": previous[0] if previous else None, "to": state_type},
                "initial_state": {"type": previous[0], "name": previous[1], "message": ""} if previous else None,
                "validated_state": {"type": state_type, "name": state_name, "message": message or "",
                                    "state_details": {}, "data": None},
                "task_run": {k: v for k, v in task_run.items() if v is not None},
            },
        }
        if task.last_event:
            event["follows"] = task.last_event
        task.last_event = event_id
        self.recorder._queue.put(("event", (self, event)))

    def task(self, name: str, fn, run_name: str | None = None):
        """`fn` whose every call is a task run named `run_name` (formatted with its arguments)."""
        signature = inspect.signature(fn) if run_name else None

        def recorded(*args, **kwargs):
            label = None
            if signature is not None:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                label = run_name.format(**bound.arguments)
            task = self.new_task_run(name, label)
            self.set_task_state(task, "RUNNING", "Running")
            with self.ends(task):
                return fn(*args, **kwargs)

        return recorded

    @contextlib.contextmanager
    def ends(self, task: TaskRun, failed_state=None):
        """The task run's final state from how the block ends. `failed_state(error)` may name
        another state than Failed for an error, e.g. AwaitingRetry."""
        try:
            yield
        except KeyboardInterrupt:
            self.set_task_state(task, "CANCELLED", "Cancelled", "interrupted")
            raise
        except BaseException as error:
            state = failed_state(error) if failed_state else None
            self.set_task_state(task, *(state or ("FAILED", "Failed")), one_line(error))
            raise
        self.set_task_state(task, "COMPLETED", "Completed")

    def set_state(self, state_type: str, state_name: str, message: str | None = None) -> None:
        state = {"type": state_type, "name": state_name}
        if message:
            state["message"] = message
        self.recorder._queue.put(("state", (self, state)))

    def __enter__(self) -> "FlowRun":
        return self

    def __exit__(self, kind, error, tb) -> None:
        if error is None:
            self.set_state("COMPLETED", "Completed")
        elif isinstance(error, KeyboardInterrupt):
            self.set_state("CANCELLED", "Cancelled", "interrupted")
        else:
            self.set_state("FAILED", "Failed", one_line(error))


# --- What the CLI runs, recorded ------------------------------------------------------------------

def annotate(recorder: Recorder, path, options, name: str | None = None, overwrite: bool = False):
    """`fer_video.pipeline.annotate`, recorded as a run of the annotate-video flow
    (flows/annotate.py: the same flow name, run name, parameters and task names)."""
    parameters = {"path": str(path), "options": options, "name": name, "overwrite": overwrite}
    with recorder.flow_run("annotate-video", f"annotate {path}", parameters) as run:
        from fer_video import pipeline

        stages = pipeline.Stages(wrap=lambda stage: run.task(stage.task, stage.run, stage.run_name))
        return pipeline.annotate(path, options, name, stages=stages, overwrite=overwrite)


def annotate_folder(recorder: Recorder, parameters: dict, options, concurrency: int, on_outcome=None,
                    wait: bool = False):
    """`fer_video.batch.annotate_folder` in threads, recorded as a run of the annotate-folder flow
    (flows/batch.py): each job a task run `annotate <name>`, its retries as Prefect's."""
    from fer_video import batch

    with recorder.flow_run("annotate-folder", f"annotate-folder {parameters['folder']}", parameters) as run:
        retries = parameters["retries"]
        tasks: dict[str, TaskRun] = {}

        def job(path, name, options, model_sha):
            task = tasks.get(name)
            if task is None:
                task = tasks[name] = run.new_task_run("annotate-job", f"annotate {name}", retries)
                run.set_task_state(task, "RUNNING", "Running")
            else:
                run.set_task_state(task, "RUNNING", "Retrying")
            retry = (lambda error: ("SCHEDULED", "AwaitingRetry")) if task.run_count <= retries else None
            with run.ends(task, failed_state=retry):
                return batch.annotate_job(path, name, options, model_sha)

        return batch.annotate_folder(parameters["folder"], options, parameters["pattern"], retries,
                                     run_jobs=batch.in_threads(concurrency, job=job), on_outcome=on_outcome,
                                     wait=wait, say=batch.say if on_outcome else None)
