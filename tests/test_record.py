"""flows/record.py: with a Prefect server configured, `annotate` and `batch` run the stages
directly and record the runs in it. A real `prefect server start` on 127.0.0.1, the CLI in
subprocesses, and what the server holds read back through Prefect's own client.

Checked: the annotate-video flow run (name, parameters, state) and one task run per stage with
real, ordered start and end times; a failed input's one-line error as the Failed state's message;
Ctrl-C as Cancelled; a batch's jobs and retries (test_batch.py checks those too); an unreachable
server costs one warning line, never the work.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fer_video.samples import make_clip
from helpers import REPO, cli_command
from test_batch import PrefectServer, _env, wait_for
from test_cli import _interrupt, _one_line

pytestmark = pytest.mark.slow

SMALL = dict(width=320, height=180, fps=10)
STAGES = ["probe-0", "analyse frames 0-None", "keep-0", "persons-0", "smooth-0", "render-0", "write-timeline-0"]  # as Prefect names them


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("record-server")
    server = PrefectServer(home)
    yield server.wait()
    server.stop()


@pytest.fixture(scope="module")
def env(server, tmp_path_factory) -> dict:
    return _env(tmp_path_factory.mktemp("record-client"), server.api)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("record-inputs")
    make_clip(folder / "a.mp4", seconds=0.5, **SMALL)
    make_clip(folder / "long.mp4", seconds=40, width=640, height=360, fps=25)
    (folder / "bad.mp4").write_text("not a video\n")
    return folder


def run(*args, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*cli_command(), *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=timeout)


def client(server: PrefectServer):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(server.api)


def flow_runs(server: PrefectServer, flow: str, path_part: str) -> list:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with client(server) as c:
        runs = c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])))
    return [r for r in runs if path_part in str(r.parameters)]


def task_runs(server: PrefectServer, flow_run_id, count: int, final=("COMPLETED", "FAILED", "CANCELLED")) -> dict:
    """The flow run's task runs by name, once `count` of them have reached a final state (they
    reach the server as events, recorded a moment later by its task-run recorder)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    def settled():
        with client(server) as c:
            tasks = c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        done = [t for t in tasks if t.state_type and t.state_type.value in final]
        return {t.name: t for t in tasks} if len(done) >= count else None

    return wait_for(settled, timeout=60, interval=0.5, what="the task runs' final states")


def test_annotate_is_recorded_as_the_annotate_video_flow(server, env, inputs, tmp_path):
    out = tmp_path / "out"
    started = time.time()
    proc = run("annotate", inputs / "a.mp4", "--out", out, env=env)
    ended = time.time()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == f"fer-video: annotating 1 input -> {out}/, recorded in Prefect at {server.api}"
    assert "warning" not in proc.stderr, proc.stderr
    [flow_run] = flow_runs(server, "annotate-video", str(out))
    assert flow_run.name == f"annotate {inputs / 'a.mp4'}"
    assert flow_run.state_type.value == "COMPLETED"
    assert flow_run.parameters["path"] == str(inputs / "a.mp4")
    assert flow_run.parameters["options"]["out_dir"] == str(out) and flow_run.parameters["overwrite"] is False
    assert started - 1 < flow_run.start_time.timestamp() <= flow_run.end_time.timestamp() < ended + 1
    tasks = task_runs(server, flow_run.id, len(STAGES))
    assert sorted(tasks) == sorted(STAGES)
    order = sorted(tasks.values(), key=lambda t: t.start_time)
    assert [t.name for t in order] == STAGES  # the pipeline's order: the timeline is written last
    for task, after in zip(order, order[1:]):
        assert task.state_type.value == "COMPLETED" and task.run_count == 1
        assert task.start_time <= task.end_time <= after.start_time
        assert abs(task.total_run_time.total_seconds() - (task.end_time - task.start_time).total_seconds()) < 0.01
    with client(server) as c:
        assert [s.name for s in c.read_task_run_states(tasks["probe-0"].id)] == ["Running", "Completed"]


def test_segments_are_task_runs_of_their_own(server, env, tmp_path):
    clip = make_clip(tmp_path / "seg.mp4", seconds=4.0, **SMALL)
    out = tmp_path / "out"
    proc = run("annotate", clip, "--out", out, "--segments", 2, "--no-video", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    [flow_run] = flow_runs(server, "annotate-video", str(out))
    tasks = task_runs(server, flow_run.id, 6)
    assert {"analyse frames 0-19", "analyse frames 10-None", "stitch-segments-0"} <= set(tasks), set(tasks)
    assert all(t.state_type.value == "COMPLETED" for t in tasks.values())


def test_a_failed_input_is_a_failed_run_with_the_one_line_error(server, env, inputs, tmp_path):
    out = tmp_path / "out"
    proc = run("annotate", inputs / "bad.mp4", "--out", out, env=env)
    assert proc.returncode == 1
    error = proc.stderr.splitlines()[1].removeprefix("fer-video: error: ")
    [flow_run] = flow_runs(server, "annotate-video", str(out))
    assert flow_run.state_type.value == "FAILED" and flow_run.state.message == error
    tasks = task_runs(server, flow_run.id, 1)
    assert list(tasks) == ["probe-0"] and tasks["probe-0"].state_type.value == "FAILED"
    assert tasks["probe-0"].state.message == error


def test_ctrl_c_is_a_cancelled_run(server, env, inputs, tmp_path):
    out = tmp_path / "out"
    exit_code, took, stderr = _interrupt(["annotate", inputs / "long.mp4", "--out", out], signal.SIGINT, True,
                                         lambda seen: "analyse long.mp4" in seen, env=env)
    assert exit_code == 130 and took < 2, (exit_code, took, stderr)
    _one_line(stderr)
    [flow_run] = wait_for(lambda: [r for r in flow_runs(server, "annotate-video", str(out))
                                   if r.state_type.value == "CANCELLED"], timeout=30, what="the Cancelled run")
    tasks = task_runs(server, flow_run.id, 2)
    assert tasks["probe-0"].state_type.value == "COMPLETED"
    assert tasks["analyse frames 0-None"].state_type.value == "CANCELLED"


def test_a_batch_is_recorded_as_the_annotate_folder_flow_with_retries(server, env, inputs, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((inputs / "a.mp4").read_bytes())
    (folder / "bad.mp4").write_bytes((inputs / "bad.mp4").read_bytes())
    out = tmp_path / "out"
    for _ in range(2):  # the second finds nothing to do: still a run, its jobs Completed as skipped
        proc = run("batch", folder, "--out", out, "--retries", 1, env=env)
        assert proc.returncode == 1, proc.stderr
    runs = flow_runs(server, "annotate-folder", str(out))
    assert len(runs) == 2 and all(r.state_type.value == "COMPLETED" for r in runs)
    assert all(r.parameters["folder"] == str(folder.resolve()) and r.parameters["retries"] == 1 for r in runs)
    for flow_run in runs:
        tasks = task_runs(server, flow_run.id, 2)
        assert set(tasks) == {"annotate a", "annotate bad"}
        assert tasks["annotate a"].state_type.value == "COMPLETED" and tasks["annotate a"].run_count == 1
        bad = tasks["annotate bad"]
        assert bad.state_type.value == "FAILED" and bad.run_count == 2
        with client(server) as c:
            states = [s.name for s in c.read_task_run_states(bad.id)]
        assert states == ["Running", "AwaitingRetry", "Retrying", "Failed"], states


def test_an_unreachable_server_costs_one_warning_not_the_work(inputs, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = tmp_path / "out"
    proc = run("annotate", inputs / "a.mp4", "--out", out, env=_env(tmp_path / "home", f"http://127.0.0.1:{port}/api"))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("fer-video: warning:")]
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0] and "Traceback" not in proc.stderr, proc.stderr
    assert (out / "a.parquet").exists() and (out / "a.mp4").exists()
