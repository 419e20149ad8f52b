"""flows/server.py: the ephemeral Prefect server every command boots first.

Real uvicorn and Prefect server processes; each test checks what the server is for: flow runs
land in it, child processes inherit it, it goes away with its owner, and a server the user
configured always wins.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from flows.server import EphemeralServer

REPO = Path(__file__).resolve().parents[1]


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_flow_runs_are_recorded_by_it_and_it_stops_with_its_owner(monkeypatch):
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    server = EphemeralServer()
    try:
        server.attach()
        assert os.environ["PREFECT_API_URL"] == server.url  # what Dask workers and run processes inherit
        assert PREFECT_API_URL.value() == server.url

        @flow(name="ephemeral-server-check")
        def check(x: int) -> int:
            return x + 1

        assert check(41) == 42
        runs = httpx.post(f"{server.url}/flow_runs/filter", timeout=10,
                          json={"flows": {"name": {"any_": ["ephemeral-server-check"]}}}).json()
        assert [r["state_type"] for r in runs] == ["COMPLETED"]
    finally:
        server.stop()
    assert "PREFECT_API_URL" not in os.environ
    assert PREFECT_API_URL.value() is None
    assert not _answers(server.url)


def test_a_server_in_the_environment_wins(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    server = EphemeralServer()
    assert server.url is None
    server.attach()
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"


def test_a_server_in_the_prefect_profile_wins(tmp_path):
    """A profile's PREFECT_API_URL is found without importing Prefect, so no ephemeral server is
    launched at all, and the profile's URL is used."""
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n')
    script = textwrap.dedent("""
        from flows.server import EphemeralServer
        server = EphemeralServer()
        launched = server.url
        server.attach()
        from prefect.settings import PREFECT_API_URL
        print(launched is not None, server._proc is None, server.url, PREFECT_API_URL.value())
    """)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_PROFILES_PATH"] = str(profiles)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True", "None", "http://127.0.0.1:9/api"]


@pytest.mark.parametrize("how", ["exit", "sigterm", "sigkill"])
def test_the_server_does_not_outlive_its_command(how):
    """Whether the command ends normally or is killed, its server process goes with it."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from fer_video.cli import _environment
        _environment(False)
        from flows.server import EphemeralServer
        server = EphemeralServer()
        server.attach()
        print(server.url, server._proc.pid, flush=True)
        sys.stdin.readline()  # the test has seen the server answer: end now
        if {how!r} != "exit":
            time.sleep(60)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)
    url, pid = proc.stdout.readline().split()
    # The command waits on stdin until the server has been seen answering: an "exit" command
    # that ended at once could take its server with it before the first look (a race CI lost).
    assert _answers(url)
    proc.stdin.write("\n")
    proc.stdin.flush()
    if how != "exit":
        proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 15
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(int(pid))
    assert not _answers(url)


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except FileNotFoundError:
        return False
