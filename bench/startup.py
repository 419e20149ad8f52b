"""Whole `fer-video` commands, as a user runs them: cold, fresh processes, median of N.

    .venv/bin/python bench/startup.py [--repeats 5] [--code PATH ...] [--no-server] [--json]

Times, each in a new process:
- `annotate` of a 3-frame clip (640x360, with audio, MP4 written);
- a `batch` rerun with nothing to do (its inputs annotated beforehand);
- the time to the command's first line (what it will do);
both with no Prefect server configured and with one (`prefect server start` on 127.0.0.1,
started here, reached through PREFECT_API_URL). `--code PATH` (repeatable) runs those checkouts'
code (PYTHONPATH=PATH, e.g. `--code . --code ../main` for after/before), their runs interleaved so
that both see the same background load.
If the `fer` peer venv exists (bench/setup_fer_venv.sh), also a 20 s 640x360 clip through
`fer-video annotate` (MP4 written) against the `fer` package's whole process (bench/peer_fer.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, ROOT, clip, emit_json, parser, print_machine, table

FER_VIDEO = Path(sys.executable).parent / "fer-video"


def _env(code: Path, home: Path, api_url: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(code), PREFECT_HOME=str(home), DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def timed(args: list[str], env: dict) -> tuple[float, float]:
    """(seconds to exit, seconds to the first line on stdout or stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    first = None
    for _ in iter(lambda: proc.stdout.read(1), b""):
        if first is None:
            first = time.perf_counter() - start
    code = proc.wait()
    total = time.perf_counter() - start
    if code not in (0,):
        raise SystemExit(f"{' '.join(args)} exited {code}")
    return total, first if first is not None else total


def medians(repeats: int, args: list[str], envs: list[dict], before=None) -> list[dict]:
    """Each env's figures; the runs alternate between the envs."""
    totals = [[] for _ in envs]
    firsts = [[] for _ in envs]
    for _ in range(repeats):
        for i, env in enumerate(envs):
            if before:
                before()
            total, first = timed(args, env)
            totals[i].append(total)
            firsts[i].append(first)
    return [{"median_s": round(statistics.median(t), 2), "min_s": round(min(t), 2), "max_s": round(max(t), 2),
             "first_line_s": round(statistics.median(f), 2)} for t, f in zip(totals, firsts)]


def prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**_env(ROOT, home), "PREFECT_UI_ENABLED": "false"})
    url = f"http://127.0.0.1:{port}/api"
    import urllib.request

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("prefect server did not start")


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--code", type=Path, action="append", help="checkout whose code runs (default: this one; repeatable)")
    p.add_argument("--no-server", action="store_true", help="skip the runs against a Prefect server")
    args = p.parse_args()
    codes = [c.resolve() for c in args.code or [ROOT]]
    info = print_machine()
    work = Path(tempfile.mkdtemp(prefix="fer-video-bench-startup-"))
    results: dict = {"machine": info, "codes": [str(c) for c in codes], "rows": []}
    server = None
    try:
        from fer_video.samples import make_clip

        three = make_clip(work / "in" / "three.mp4", seconds=0.12, width=640, height=360, fps=25)
        folder = work / "in"
        home = work / "home"
        home.mkdir()
        modes = [("no server configured", None)]
        if not args.no_server:
            server_home = work / "server-home"
            server_home.mkdir()
            server, url = prefect_server(server_home)
            modes.append(("Prefect server configured", url))
        for mode, url in modes:
            envs = [_env(code, home, url) for code in codes]
            out = work / f"out-{len(results['rows'])}"
            annotate = [str(FER_VIDEO), "annotate", str(three), "--out", str(out)]  # not --quiet: its first line
            for code, row in zip(codes, medians(args.repeats, annotate, envs,
                                                before=lambda: shutil.rmtree(out, ignore_errors=True))):
                results["rows"].append({"command": "annotate, 3-frame clip", "prefect": mode, "code": code.name, **row})
            batch = [str(FER_VIDEO), "batch", str(folder), "--out", str(out)]
            timed(batch, envs[0])  # does the work once
            for code, row in zip(codes, medians(args.repeats, batch, envs)):
                results["rows"].append({"command": "batch rerun, nothing to do", "prefect": mode, "code": code.name,
                                        **row})
        table(results["rows"], ["command", "prefect", "code", "median_s", "min_s", "max_s", "first_line_s"],
              title=f"whole commands, median of {args.repeats} fresh processes each")

        peer = BENCH / ".venv-fer" / "bin" / "python"
        if peer.exists():
            twenty = clip(20, 640, 360, 30)
            env = _env(codes[0], home)
            ours = medians(1, [str(FER_VIDEO), "annotate", str(twenty), "--out", str(work / "peer-out"),
                                 "--quiet"], [env])[0]["median_s"]
            started = time.perf_counter()
            subprocess.run([str(peer), str(BENCH / "peer_fer.py"), str(twenty), "--max-frames", "0"], check=True,
                           capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            theirs = time.perf_counter() - started
            results["peer"] = {"fer_video_s": ours, "fer_s": round(theirs, 2), "ratio": round(theirs / ours, 2)}
            print(f"\n20 s 640x360 clip, whole processes: fer-video (MP4 written) {ours:.2f} s, "
                  f"fer {theirs:.2f} s: {theirs / ours:.1f}x")
        else:
            print(f"\n(no {peer.relative_to(ROOT)}: bash bench/setup_fer_venv.sh builds it for the peer comparison)")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
    emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
