"""Where `fer-video annotate`'s CPU goes, thread by thread, read from /proc (no profiler needed).

    PYTHONPATH=. .venv/bin/python bench/thread_cpu.py [--clip two-720p|crowd-1080p] [--seconds 30]
        [--repeats 3] [--code OTHER_CHECKOUT]

Runs the command (with the MP4) and reads the user and system CPU time of every thread of it and
of its ffmpeg children from /proc every 20 ms; a thread's last reading is its total. Python's
threads are named to the kernel for the run (bench/thread_names/sitecustomize.py), so the table
shows the pipeline's own (prefetch: decoding ahead; scan_0: the detector's scans; classify_0: the
classifier; draw_0: drawing and writing to the encoder; import-later: pandas and pyarrow), with
the LiteRT pool threads a thread starts under its name. ffmpeg's threads are named by ffmpeg
(dec0:0:h264 the decoder, enc0:0:libx264 the encoder, mux0/dmx0:rawvideo the pipes' ends, fc0 the
filter graph). Medians over `--repeats` runs. System time is mostly the pipes' copies.
"""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import BENCH, ROOT, table

CLIPS = {"two-720p": common.clip, "crowd-1080p": common.crowd_clip}
TICK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in f.read().split():
                    found += _descendants(int(child))
    except OSError:
        pass
    return found


def _role(pid: int, root: int) -> str:
    """fer-video, or which ffmpeg: the one running x264 encodes, the one writing raw frames decodes."""
    if pid == root:
        return "fer-video"
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if b"libx264" in args:
        return "ffmpeg encoder"
    return "ffmpeg decoder" if b"rawvideo" in args else "ffmpeg"


def run_once(clip: Path, code: Path) -> tuple[float, dict[str, tuple[float, float]]]:
    """Wall seconds, and (user, system) CPU seconds by process role and thread name."""
    with tempfile.TemporaryDirectory(prefix="thread_cpu_") as out, tempfile.TemporaryFile() as stderr_file:
        wall, last, returncode = _watch(clip, code, Path(out), stderr_file)
        if returncode:
            stderr_file.seek(0)
            raise SystemExit(f"fer-video failed: {stderr_file.read().decode(errors='replace').strip()}")
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for role, name, user, system in last.values():
        key = f"{role}: {name}" if role != "fer-video" or name != "fer-video" else "fer-video: main (and its pools)"
        totals[key][0] += user
        totals[key][1] += system
    return wall, {k: (u, s) for k, (u, s) in totals.items()}


def _watch(clip: Path, code: Path, out: Path, stderr_file) -> tuple[float, dict, int]:
    """Run the command into `out`, its standard error to `stderr_file`, reading /proc while
    it runs: wall seconds, each thread's last (role, name, user, system), the exit status."""
    exe = Path(sys.executable).parent / "fer-video"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH / "thread_names"), str(code)])}
    start = time.perf_counter()
    proc = subprocess.Popen([str(exe), "annotate", str(clip), "--out", str(out), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr_file)
    last: dict[tuple[int, int], tuple[str, str, float, float]] = {}
    roles: dict[int, str] = {}
    while proc.poll() is None:
        for pid in _descendants(proc.pid):
            roles.setdefault(pid, _role(pid, proc.pid))
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                    name = stat[stat.index("(") + 1 : stat.rindex(")")]
                    fields = stat[stat.rindex(")") + 2 :].split()
                    last[(pid, int(tid))] = (roles[pid], name, int(fields[11]) / TICK, int(fields[12]) / TICK)
            except (OSError, ValueError):
                pass  # a thread or process that ended between the listing and the read
        time.sleep(0.02)
    return time.perf_counter() - start, last, proc.returncode


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--clip", default="two-720p", choices=list(CLIPS))
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--code", type=Path, default=ROOT, help="the checkout whose fer_video runs (default: this one)")
    args = p.parse_args()
    results = {"machine": common.print_machine()}
    clip = CLIPS[args.clip](args.seconds)
    runs = [run_once(clip, args.code) for _ in range(args.repeats)]
    names = sorted({k for _, totals in runs for k in totals})
    rows = []
    for name in names:
        user = statistics.median(t.get(name, (0.0, 0.0))[0] for _, t in runs)
        system = statistics.median(t.get(name, (0.0, 0.0))[1] for _, t in runs)
        if user + system >= 0.02:
            rows.append({"thread": name, "cpu_s": user + system, "user_s": user, "system_s": system})
    rows.sort(key=lambda r: -r["cpu_s"])
    total = sum(r["cpu_s"] for r in rows)
    for r in rows:
        r["share"] = f"{r['cpu_s'] / total:.0%}"
    wall = statistics.median(w for w, _ in runs)
    table(rows, ["thread", "cpu_s", "user_s", "system_s", "share"],
          f"{clip.name} with the MP4, code {args.code}: {wall:.2f} s wall, {total:.2f} s CPU "
          f"({sum(r['system_s'] for r in rows):.2f} in the kernel); medians of {args.repeats}")
    results.update(clip=str(clip), wall_s=wall, cpu_s=total, rows=rows)
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
