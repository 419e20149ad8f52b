"""`fer-video batch` and `fer-video serve` end to end: real ffmpeg, real Prefect (ephemeral and a
real `prefect server`), real Dask, the CLI in subprocesses.

What is checked: finished work is skipped on a rerun and redone when the input, the model or a
setting changes; a broken input fails alone, after `1 + retries` attempts (counted by the Prefect
API); a batch killed with SIGKILL leaves no half-written output and a rerun finishes the rest; two
batches at once share the work; a Dask cluster gives the same timelines as threads; runs are
recorded by a Prefect server and `serve` runs the flow on a schedule.

Each CLI run costs ~15-30 s here (TensorFlow and Prefect start-up), so the inputs are tiny and
the runs are shared where a test only reads what a run left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fer_video.samples import make_clip, make_image
from fer_video.timeline.schema import TimelineMetadata
from fer_video.video import probe, read_frames

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(width=320, height=180, fps=10)
RUN_TIMEOUT = 420
STATUSES = {"done", "skipped", "busy", "failed"}


# ---------------------------------------------------------------------------------------------
# Running the CLI


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "fer-video"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fer_video.cli"]


def _env(prefect_home: Path, api_url: str | None = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(prefect_home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


def _batch_args(folder: Path, out: Path, *args) -> list[str]:
    return [*_cli(), "batch", str(folder), "--out", str(out), *map(str, args)]


def run_batch(folder: Path, out: Path, *args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(_batch_args(folder, out, *args), capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=RUN_TIMEOUT)


def summary(proc: subprocess.CompletedProcess | tuple[int, str, str], folder: Path) -> dict[str, tuple[str, str]]:
    """The summary table as {input relative to folder: (status, reason)}; checks its totals line."""
    stdout = proc.stdout if hasattr(proc, "stdout") else proc[1]
    lines = stdout.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.split()[:2] == ["status", "input"]]
    assert starts, f"no summary table in stdout:\n{stdout}\nstderr:\n{getattr(proc, 'stderr', '')}"
    rows, totals = lines[starts[-1] + 1 : -1], lines[-1]
    table = {}
    for line in rows:
        cells = re.split(r"\s{2,}", line, maxsplit=5)
        status, path = cells[0], cells[1]
        assert status in STATUSES, line
        reason = cells[5] if len(cells) > 5 else ""
        table[Path(path).relative_to(folder.resolve()).as_posix()] = (status, reason)
    counts = {s: sum(v[0] == s for v in table.values()) for s in ("done", "skipped", "busy", "failed")}
    assert totals == ", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(table)} inputs"
    return table


def statuses(table: dict) -> dict[str, str]:
    return {k: v[0] for k, v in table.items()}


# ---------------------------------------------------------------------------------------------
# Looking at outputs


def visible(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if not p.name.startswith(".")}


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".part"))


def meta(parquet: Path) -> TimelineMetadata:
    return TimelineMetadata.from_schema(pq.read_schema(parquet))


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def frames_in(path: Path) -> int:
    """Decodes the whole file; read_frames raises InputError on a truncated or broken one."""
    return sum(1 for _ in read_frames(probe(path)))


def check_complete(out: Path, sources: dict[str, Path]) -> None:
    """Every visible output is whole: each Parquet reads in full and names its source's content;
    each MP4 decodes to as many frames as its source; a timeline's MP4 exists (it is written
    before the timeline). `sources` maps output names to inputs."""
    for parquet in out.glob("*.parquet"):
        name = parquet.stem
        assert name in sources, f"unexpected timeline {parquet.name}"
        table = pq.read_table(parquet)
        info = meta(parquet)
        assert info.job_key and info.content_sha256
        assert set(table.column("video_id").to_pylist()) <= {name}
        if probe(sources[name]).is_image:
            continue
        assert (out / f"{name}.mp4").exists(), f"{parquet.name} without its video"
    for mp4 in out.glob("*.mp4"):
        assert mp4.stem in sources, f"unexpected video {mp4.name}"
        assert frames_in(mp4) == frames_in(sources[mp4.stem]), f"{mp4.name} is not complete"


# ---------------------------------------------------------------------------------------------
# Prefect server and its REST API


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrefectServer:
    """`prefect server start` on a free port with its own PREFECT_HOME; started at once, waited
    for on first use, stopped (SIGINT, then SIGKILL of its process group) at the end."""

    def __init__(self, home: Path):
        self.home = home
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.ready = False
        self._start()

    def _start(self) -> None:
        self.port = _free_port()
        self.log = open(self.home / f"server-{self.port}.log", "w+")
        prefect = Path(sys.executable).parent / "prefect"
        self.proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home,
            env=_env(self.home, PREFECT_UI_ENABLED="false"),
        )

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait(self, timeout: float = 240) -> "PrefectServer":
        deadline = time.monotonic() + timeout
        while not self.ready:
            if self.proc.poll() is not None:  # e.g. someone took the port first: try another
                self.log.seek(0)
                text = self.log.read()
                assert "already in use" in text and time.monotonic() < deadline, text
                self._start()
                continue
            try:
                # our process must be alive *and* answering: not some other server on the port
                self.ready = httpx.get(f"{self.api}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                pass
            if not self.ready:
                assert time.monotonic() < deadline, "prefect server did not start"
                time.sleep(0.5)
        return self

    def post(self, path: str, body: dict) -> list | dict:
        response = httpx.post(f"{self.api}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def get(self, path: str, **params) -> list | dict:
        response = httpx.get(f"{self.api}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def flow_runs(self, **flow_run_filter) -> list[dict]:
        return self.post("/flow_runs/filter", {"flows": {"name": {"any_": ["annotate-folder"]}},
                                               "flow_runs": flow_run_filter, "limit": 200})

    def task_runs(self, flow_run_id: str) -> list[dict]:
        return self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200})

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            _stop_group(self.proc, grace=20)
        self.log.close()


def _stop_group(proc: subprocess.Popen, grace: float) -> int:
    """SIGINT to the process group, then SIGKILL if it has not exited within `grace` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=30)
    except ProcessLookupError:
        return proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group


def wait_for(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Module fixtures


@pytest.fixture(scope="module")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="fer-video-test-batch-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _server_boot(workdir):
    """Starts the Prefect server when the module starts, so that it boots (database migrations:
    ~30 s on a busy machine) while the ephemeral-mode tests run."""
    home = workdir / "server-home"
    home.mkdir()
    server = PrefectServer(home)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prefect_server(_server_boot) -> PrefectServer:
    return _server_boot.wait()


@pytest.fixture(scope="module")
def ephemeral_env(workdir) -> dict:
    """Ephemeral mode (no PREFECT_API_URL): each CLI run starts its own temporary server on a
    shared PREFECT_HOME, as a user without a server would."""
    home = workdir / "ephemeral-home"
    home.mkdir()
    return _env(home)


@pytest.fixture(scope="module")
def server_env(workdir, prefect_server) -> dict:
    home = workdir / "client-home"
    home.mkdir(exist_ok=True)
    return _env(home, prefect_server.api)


@pytest.fixture(scope="module")
def inputs(workdir) -> Path:
    """The pristine inputs: two clips (one in a subfolder), a still whose name stem collides with
    a clip's (`a.jpg` beside `a.mp4`) and a text file named .mp4. Tests copy this folder."""
    folder = workdir / "inputs"
    make_clip(folder / "a.mp4", seconds=1.0, **SMALL)
    make_clip(folder / "sub" / "b.mp4", seconds=1.5, **SMALL)
    make_image(folder / "a.jpg", width=320, height=240)
    (folder / "bad.mp4").write_text("not a video, only text in a file named .mp4\n")
    return folder


GOOD = ["a.jpg", "a.mp4", "sub/b.mp4"]


def copy_inputs(inputs: Path, to: Path) -> Path:
    shutil.copytree(inputs, to)
    return to


def names_of(folder: Path) -> dict[str, Path]:
    """Output name -> input, as the flow names them."""
    from fer_video.batch import discover, output_names

    paths = discover(folder.resolve())
    return dict(zip(output_names(paths, folder.resolve()), paths))


@pytest.fixture(scope="module")
def first_batch(workdir, inputs, server_env, prefect_server):
    """One batch over a copy of `inputs` (against the Prefect server, `--retries 2`), and what it
    left: the summary and the timelines read at once (test_skip... changes them later)."""
    folder = copy_inputs(inputs, workdir / "first" / "in")
    out = workdir / "first" / "out"
    proc = run_batch(folder, out, "--retries", 2, env=server_env)
    timelines = {p.stem: (pq.read_table(p).to_pandas(), meta(p)) for p in out.glob("*.parquet")}
    return dict(folder=folder, out=out, proc=proc, timelines=timelines)


# ---------------------------------------------------------------------------------------------
# Tests, ephemeral-mode ones first (the server boots meanwhile)


def test_kill_9_then_resume(workdir, ephemeral_env):
    """SIGKILL to the whole batch (Python, ffmpeg children, the ephemeral server) once its first
    timeline exists: what is visible is whole; a rerun skips what was finished and does the rest."""
    folder, out = workdir / "kill" / "in", workdir / "kill" / "out"
    for i, seconds in enumerate([3.0, 3.5, 4.0, 3.0]):
        make_clip(folder / f"c{i}.mp4", seconds=seconds, **SMALL)
    sources = names_of(folder)
    proc = subprocess.Popen(_batch_args(folder, out, "--concurrency", 1), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ephemeral_env, cwd=REPO, start_new_session=True)
    try:
        def first_timeline():
            return proc.poll() is not None or (out.exists() and any(out.glob("*.parquet")))

        wait_for(first_timeline, timeout=RUN_TIMEOUT, interval=0.05, what="the first timeline")
        assert proc.poll() is None, f"batch ended before it could be killed:\n{proc.communicate()}"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # the whole group is gone: no orphaned ffmpeg or ephemeral server still writing
    wait_for(lambda: _group_gone(proc.pid), timeout=30, interval=0.2, what="the killed process group to end")

    finished = {p.stem for p in out.glob("*.parquet")}
    assert finished and finished < set(sources), finished
    check_complete(out, sources)

    rerun = run_batch(folder, out, "--concurrency", 1, env=ephemeral_env)
    assert rerun.returncode == 0, rerun.stderr
    table = statuses(summary(rerun, folder))
    assert {n for n in sources if table[sources[n].relative_to(folder.resolve()).as_posix()] == "skipped"} == finished
    assert {n for n in sources if table[sources[n].relative_to(folder.resolve()).as_posix()] == "done"} == \
        set(sources) - finished
    assert visible(out) == {f"{n}{ext}" for n in sources for ext in (".parquet", ".mp4")}
    assert leftovers(out) == []
    check_complete(out, sources)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_two_batches_at_once(workdir, ephemeral_env):
    """Two batches on the same folder and output at the same moment (ephemeral mode, one
    PREFECT_HOME): each input is annotated by exactly one of them."""
    folder, out = workdir / "twice" / "in", workdir / "twice" / "out"
    # enough work (~15-20 s) that the later of the two starts (startup jitter: seconds) while the
    # other is still at it; then they leapfrog: each reports the other's current job busy
    for i, seconds in enumerate([2.0, 2.5, 3.0, 2.0, 2.5, 3.0]):
        make_clip(folder / f"d{i}.mp4", seconds=seconds, **SMALL)
    sources = names_of(folder)
    procs = [subprocess.Popen(_batch_args(folder, out, "--concurrency", 1), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ephemeral_env, cwd=REPO,
                              start_new_session=True) for _ in range(2)]
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
            results.append((proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    for code, stdout, stderr in results:
        assert code == 0, f"exit {code}\n{stdout}\n{stderr}"
    tables = [statuses(summary(r, folder)) for r in results]
    print("two batches at once:", tables)
    for source in sources.values():
        key = source.relative_to(folder.resolve()).as_posix()
        seen = sorted(t[key] for t in tables)
        assert seen.count("done") == 1 and set(seen) - {"done"} <= {"skipped", "busy"}, (key, seen)
    assert visible(out) == {f"{n}{ext}" for n in sources for ext in (".parquet", ".mp4")}
    assert leftovers(out) == []
    check_complete(out, sources)


def test_skip_on_rerun_and_redo_on_change(first_batch, server_env):
    folder, out, first = first_batch["folder"], first_batch["out"], first_batch["proc"]
    sources = names_of(folder)
    assert len(sources) == 4  # `a.mp4` and `a.jpg` must not share a timeline

    # first run: the good ones done, the text file failed with its reason, exit status 1
    assert first.returncode == 1, first.stderr
    table = summary(first, folder)
    assert statuses(table) == {**{k: "done" for k in GOOD}, "bad.mp4": "failed"}
    assert "not a readable video or image" in table["bad.mp4"][1]
    by_input = {s.relative_to(folder.resolve()).as_posix(): n for n, s in sources.items()}
    assert not [p for p in out.iterdir() if p.name.startswith(by_input["bad.mp4"])], "outputs of the bad input"
    timelines = {by_input[k] for k in GOOD}
    assert {p.stem for p in out.glob("*.parquet")} == timelines
    for name in timelines:
        assert Path(meta(out / f"{name}.parquet").source_path) == sources[name]
    assert (out / f"{by_input['sub/b.mp4']}.parquet").name == "sub__b.parquet"
    assert leftovers(out) == []
    check_complete(out, sources)
    outputs = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    before = {p.name: stamp(p) for p in outputs}

    # second run: everything good is skipped and not touched
    second = run_batch(folder, out, env=server_env)
    assert second.returncode == 1
    assert statuses(summary(second, folder)) == {**{k: "skipped" for k in GOOD}, "bad.mp4": "failed"}
    assert {p.name: stamp(p) for p in outputs} == before
    assert visible(out) == set(before)

    # one clip's content changes: only it is redone
    make_clip(folder / "sub" / "b.mp4", seconds=2.0, **SMALL)
    third = run_batch(folder, out, env=server_env)
    assert statuses(summary(third, folder)) == {"a.jpg": "skipped", "a.mp4": "skipped", "sub/b.mp4": "done",
                                                "bad.mp4": "failed"}
    changed = {f"{by_input['sub/b.mp4']}.parquet", f"{by_input['sub/b.mp4']}.mp4"}
    for name, st in before.items():
        assert (stamp(out / name) == st) == (name not in changed), name
    b = meta(out / "sub__b.parquet")
    assert b.frame_count == 20 and b.job_key != first_batch["timelines"]["sub__b"][1].job_key
    assert frames_in(out / "sub__b.mp4") == 20

    # a setting changes: everything is redone, with the new setting recorded
    fourth = run_batch(folder, out, "--smoothing", "ema:0.3", env=server_env)
    assert statuses(summary(fourth, folder)) == {**{k: "done" for k in GOOD}, "bad.mp4": "failed"}
    for name in timelines:
        assert meta(out / f"{name}.parquet").smoothing.startswith("ema")
    assert visible(out) == set(before)
    assert leftovers(out) == []
    check_complete(out, sources)


def _flow_run_of(server: PrefectServer, folder: Path) -> dict:
    """The flow run of `first_batch`: the only one with `--retries 2` (its folder is run again)."""
    runs = [r for r in server.flow_runs() if r["parameters"].get("folder") == str(folder.resolve())
            and r["parameters"].get("retries") == 2]
    assert len(runs) == 1, [(r["name"], r["parameters"]) for r in runs]
    return runs[0]


def test_retries_attempt_a_broken_input_1_plus_retries_times(first_batch, prefect_server):
    """`--retries 2`: the text file named .mp4 is tried three times; the good inputs once."""
    run = _flow_run_of(prefect_server, first_batch["folder"])

    def settled():  # task runs reach the server as events, a moment after the flow ends
        tasks = prefect_server.task_runs(run["id"])
        done = len(tasks) == 4 and all(t["state_type"] in ("COMPLETED", "FAILED") for t in tasks)
        return tasks if done else None

    tasks = {t["name"]: t for t in wait_for(settled, timeout=60, what="the task runs' final states")}
    assert set(tasks) == {"annotate a.jpg", "annotate a", "annotate sub__b", "annotate bad"}, set(tasks)
    bad = tasks.pop("annotate bad")
    assert bad["state_type"] == "FAILED" and bad["run_count"] == 3
    states = prefect_server.get("/task_run_states/", task_run_id=bad["id"])
    assert sum(s["type"] == "RUNNING" for s in states) == 3
    assert sum(s["name"] == "AwaitingRetry" for s in states) == 2
    for task in tasks.values():
        assert task["state_type"] == "COMPLETED" and task["run_count"] == 1, task


def test_dask_cluster_gives_the_same_timelines_as_threads(workdir, inputs, first_batch, server_env):
    """`--workers 2` (a local Dask cluster of two processes) on the same inputs: the same rows,
    job keys and failures as the thread run of `first_batch`."""
    folder = copy_inputs(inputs, workdir / "dask" / "in")
    out = workdir / "dask" / "out"
    proc = run_batch(folder, out, "--workers", 2, env=server_env)
    assert proc.returncode == 1, proc.stderr
    table = summary(proc, folder)
    threads = summary(first_batch["proc"], first_batch["folder"])
    assert statuses(table) == statuses(threads)
    assert table["bad.mp4"][1] == threads["bad.mp4"][1]
    assert {p.stem for p in out.glob("*.parquet")} == set(first_batch["timelines"])
    for name, (expected, expected_meta) in first_batch["timelines"].items():
        got = pq.read_table(out / f"{name}.parquet").to_pandas()
        assert len(got) and list(got.columns) == list(expected.columns)
        pd.testing.assert_frame_equal(got.drop(columns="source_path"), expected.drop(columns="source_path"),
                                      check_exact=False, rtol=1e-5, atol=1e-6)
        assert got["track_id"].tolist() == expected["track_id"].tolist()
        assert got["label"].astype(str).tolist() == expected["label"].astype(str).tolist()
        assert meta(out / f"{name}.parquet").job_key == expected_meta.job_key
    assert leftovers(out) == []
    check_complete(out, names_of(folder))


def test_runs_are_recorded_by_a_prefect_server(first_batch, prefect_server):
    run = _flow_run_of(prefect_server, first_batch["folder"])
    assert run["state_type"] == "COMPLETED", run["state_type"]
    assert run["parameters"]["out"] == str(first_batch["out"].resolve())
    assert len(prefect_server.task_runs(run["id"])) == 4


def test_serve_runs_the_flow_on_a_schedule(workdir, inputs, prefect_server, server_env):
    """`fer-video serve --every 5s` against the server: a scheduled run of the deployment
    completes and annotates the folder; SIGINT stops the server process."""
    folder = workdir / "serve" / "in"
    folder.mkdir(parents=True)
    shutil.copy(inputs / "a.mp4", folder / "a.mp4")
    out = workdir / "serve" / "out"
    # Each scheduled run is a new process that loads TensorFlow; with runs every 5 s and Prefect's
    # default of 5 at once, a busy 2-core machine thrashes. Two at a time still overlap runs.
    env = {**server_env, "PREFECT_RUNNER_POLL_FREQUENCY": "3", "PREFECT_RUNNER_PROCESS_LIMIT": "2"}
    proc = subprocess.Popen([*_cli(), "serve", str(folder), "--out", str(out), "--every", "5s", "--no-video",
                             "--name", "batch-test-serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                            start_new_session=True)
    try:
        deployment = wait_for(lambda: proc.poll() is None and _deployment(prefect_server, "batch-test-serve"),
                              timeout=120, what="the deployment")

        def completed():
            assert proc.poll() is None, proc.communicate()[0]
            runs = prefect_server.flow_runs(deployment_id={"any_": [deployment["id"]]})
            return [r for r in runs if r["state_type"] == "COMPLETED"] and (out / "a.parquet").exists() and runs

        try:
            runs = wait_for(completed, timeout=240, interval=2, what="a completed scheduled run")
        except AssertionError as error:
            runs = prefect_server.flow_runs(deployment_id={"any_": [deployment["id"]]})
            error.args += ([(r["name"], r["state_name"]) for r in runs],)
            raise
        assert all(r["parameters"]["out"] == str(out.resolve()) for r in runs)
        assert not [r for r in runs if r["state_type"] == "FAILED"], [r["state_name"] for r in runs]
    finally:
        code = _stop_group(proc, grace=30) if proc.poll() is None else proc.returncode
        output = proc.communicate(timeout=30)[0]
        print(output)
    assert code in (0, 130, -signal.SIGINT), f"serve exit {code}:\n{output}"
    assert "serving deployment 'annotate-folder/batch-test-serve'" in output
    assert visible(out) == {"a.parquet"} and leftovers(out) == []
    assert meta(out / "a.parquet").job_key


def test_serve_without_a_server_runs_the_schedule(workdir, inputs, ephemeral_env):
    """No PREFECT_API_URL: `serve` starts a server of its own with Prefect's scheduler service
    (an ephemeral server has none, so no scheduled run would ever start), says where its UI is,
    annotates the folder, and stops on SIGINT without a traceback."""
    folder = workdir / "serve-ephemeral" / "in"
    folder.mkdir(parents=True)
    shutil.copy(inputs / "a.mp4", folder / "a.mp4")
    out = workdir / "serve-ephemeral" / "out"
    env = {**ephemeral_env, "PREFECT_RUNNER_POLL_FREQUENCY": "3", "PREFECT_RUNNER_PROCESS_LIMIT": "2"}
    proc = subprocess.Popen([*_cli(), "serve", str(folder), "--out", str(out), "--every", "5s", "--no-video"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                            start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is None and (out / "a.parquet").exists(), timeout=240, interval=2,
                 what="a scheduled run's timeline")
        # To serve alone, as `kill -INT` or a service manager would stop it (Ctrl-C in a terminal
        # also interrupts the run processes Prefect has started, which may print their own traceback).
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            code = _stop_group(proc, grace=30)
        output = proc.communicate(timeout=30)[0]
        print(output)
    assert code in (0, 130, -signal.SIGINT), f"serve exit {code}:\n{output}"
    ui = re.search(r"runs in Prefect's UI at (http://127\.0\.0\.1:\d+)", output)
    assert ui, output
    assert "Traceback" not in output
    assert not _answers(ui.group(1) + "/api/health"), "the server outlived serve"
    assert visible(out) == {"a.parquet"} and leftovers(out) == []


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _deployment(server: PrefectServer, name: str) -> dict | None:
    found = server.post("/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
    return found[0] if found else None


def test_serve_refuses_a_bad_setting_at_once(workdir, inputs, ephemeral_env):
    """A bad --smoothing stops `serve` before it serves, rather than failing every scheduled run."""
    proc = subprocess.run([*_cli(), "serve", str(inputs), "--out", str(workdir / "never"), "--every", "5s",
                           "--smoothing", "bogus"], capture_output=True, text=True, env=ephemeral_env, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "bogus" in proc.stderr and "serving" not in proc.stdout
    assert not (workdir / "never").exists()


def test_local_dask_workers_split_the_cores():
    """Each worker of a local cluster gets its share of the cores for its models; the Prefect
    server they report to comes through the environment they inherit (tests/test_server.py)."""
    from flows.runners import task_runner

    env = task_runner(workers=2).cluster_kwargs["env"]
    assert env == {"FER_VIDEO_THREADS": str(max(1, len(os.sched_getaffinity(0)) // 2))}


def test_annotate_is_recorded_when_a_server_is_configured(workdir, inputs, prefect_server, server_env):
    """With PREFECT_API_URL set, `annotate` runs the annotate-video flow in that server (and says
    so first); without one it runs directly and says it is not recorded (tests/test_cli.py)."""
    out = workdir / "recorded" / "out"
    proc = subprocess.run([*_cli(), "annotate", str(inputs / "a.mp4"), "--out", str(out), "--no-video"],
                          capture_output=True, text=True, env=server_env, cwd=REPO, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == (f"fer-video: annotating 1 input -> {out}/, recorded in Prefect at "
                                           f"{prefect_server.api}")
    runs = prefect_server.post("/flow_runs/filter", {"flows": {"name": {"any_": ["annotate-video"]}}, "limit": 50})
    mine = [r for r in runs if r["parameters"].get("options", {}) and str(out) in str(r["parameters"])]
    assert [r["state_type"] for r in mine] == ["COMPLETED"], [(r["name"], r["parameters"]) for r in runs]
