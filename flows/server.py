"""Prefect's ephemeral API server, started first by a command that runs a Prefect flow without
a configured server (`configured_api_url()` says whether there is one, without importing Prefect).

Left to itself, Prefect boots its ephemeral server (a uvicorn subprocess, about 3 s here) at the
first flow run, after this process has imported the server's own modules (about 2 s) only to
launch it: some 6 s before any work starts. Launched first, from a socket this process has
already bound, the server boots on one core while this process imports the pipeline and loads
the models on the other.

It is the server Prefect's ephemeral mode runs (the same app factory and ephemeral flags, so no
UI and no background services, the same database under PREFECT_HOME). Prefect is then pointed at
it through PREFECT_API_URL, so Dask workers and the run processes of `serve` inherit it too.
`serve` asks for the background services as well (and the UI), as `prefect server start` runs
them: without the scheduler service a deployment's schedule never makes a run.
A server configured by the user (PREFECT_API_URL in the environment or the active Prefect
profile) always wins, and so does a profile that turns ephemeral mode off.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time

# What Prefect's SubprocessASGIServer sets for its uvicorn process (prefect/server/api/server.py).
_EPHEMERAL_FLAGS = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
# What `prefect server start` runs: the app with its services (scheduler, late runs, ...) and UI.
_WITH_SERVICES_FLAGS = {"PREFECT__SERVER_FINAL": "1"}


def _die_with_parent() -> None:
    """In the server process: ask Linux to terminate it when this command dies, however it dies
    (exit hooks do not run on SIGTERM or kill -9)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def configured_api_url() -> str | None:
    """The Prefect API the user configured, found as Prefect would find it but without importing
    it (about 3 s): PREFECT_API_URL in the environment, a `.env`, `prefect.toml` or
    `pyproject.toml` ([tool.prefect]) in the working directory, or the active profile
    (PREFECT_PROFILE, else `active` in PREFECT_PROFILES_PATH or PREFECT_HOME/profiles.toml,
    else Prefect's own default profiles). None: no server configured."""
    import tomllib
    from pathlib import Path

    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]

    def toml(path: Path) -> dict:
        try:
            return tomllib.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    try:
        for line in Path(".env").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip().removeprefix("export ").strip() == "PREFECT_API_URL" and value.strip():
                return value.strip().strip("\"'")
    except (OSError, UnicodeDecodeError):
        pass
    for table in (toml(Path("prefect.toml")), toml(Path("pyproject.toml")).get("tool", {}).get("prefect", {})):
        url = table.get("api", {}).get("url") if isinstance(table.get("api"), dict) else None
        if url:
            return str(url)
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles_path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    profiles = toml(profiles_path) if profiles_path.is_file() else {}
    if not profiles:
        import importlib.util

        spec = importlib.util.find_spec("prefect")
        if spec and spec.submodule_search_locations:
            profiles = toml(Path(list(spec.submodule_search_locations)[0]) / "settings" / "profiles.toml")
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    url = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


class EphemeralServer:
    """`server = EphemeralServer()` first thing; `server.attach()` once Prefect may be imported
    and before the first flow run. Stopped when the process exits. `services=True` also runs
    Prefect's background services and UI (for schedules)."""

    def __init__(self, verbose: bool = False, services: bool = False):
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None
        self._attached = False
        if configured_api_url():
            return  # the user's server (environment, .env, prefect.toml or profile) is the one
        # uvicorn serves the socket bound here (--fd): no search for a free port, and no race
        # with another command starting its own server at the same moment.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        self._log = None if verbose else tempfile.TemporaryFile()
        command = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
                   "--fd", str(listener.fileno()), "--log-level", "info" if verbose else "error", "--lifespan", "on"]
        try:
            flags = _WITH_SERVICES_FLAGS if services else _EPHEMERAL_FLAGS
            self._proc = subprocess.Popen(command, pass_fds=(listener.fileno(),), env={**os.environ, **flags},
                                          stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                          # Its own session: Ctrl-C reaches the command's process
                                          # group, not the server, which must outlive the flow run
                                          # long enough to record it as crashed; the command
                                          # stops it (and it dies with the command, kill -9 too).
                                          start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            listener.close()  # the server holds its own copy
        self.url = f"http://127.0.0.1:{port}/api"
        atexit.register(self.stop)  # registered before Prefect's own exit hooks, so it runs after them

    @staticmethod
    def import_prefect() -> None:
        """Prefect's own import (about 3 s), done while the server boots rather than after."""
        import prefect  # noqa: F401

    def attach(self) -> None:
        """Wait until the server answers and point this process's Prefect settings and the
        environment (for child processes) at it, unless Prefect is configured otherwise."""
        if self._proc is None:
            return
        from prefect.context import refresh_global_settings_context
        from prefect.settings import (PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED,
                                      PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)

        if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
            self.stop()  # the profile names a server, or forbids ephemeral ones: Prefect's choice stands
            self.url = None  # not the server in use
            return
        self._wait(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        os.environ["PREFECT_API_URL"] = self.url
        refresh_global_settings_context()
        self._attached = True

    def _wait(self, timeout: float) -> None:
        import urllib.request  # here: its import (0.02 s) is not every command's

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Prefect's ephemeral server exited with code {self._proc.returncode}"
                                   f"{self._output()}")
            try:
                # The socket already listens, so this waits for the app rather than being refused.
                with urllib.request.urlopen(f"{self.url}/health", timeout=max(0.1, deadline - time.monotonic())):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Prefect's ephemeral server did not answer within {timeout:g} s{self._output()}")

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return f": {lines[-1]}" if lines else ""

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._attached:
            from prefect.context import refresh_global_settings_context

            if os.environ.get("PREFECT_API_URL") == self.url:
                del os.environ["PREFECT_API_URL"]
            refresh_global_settings_context()
            self._attached = False
