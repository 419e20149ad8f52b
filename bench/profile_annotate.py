"""Where `fer-video annotate`'s CPU goes: `perf record` over the whole command, its ffmpeg children included.

    PYTHONPATH=. .venv/bin/python bench/profile_annotate.py                    # 30 s 720p two faces, with the MP4
    PYTHONPATH=. .venv/bin/python bench/profile_annotate.py --clip crowd-1080p --seconds 10
    PYTHONPATH=. .venv/bin/python bench/profile_annotate.py --py-spy PATH/TO/py-spy   # also Python's own split

Needs `perf` (linux-perf; perf_event_paranoid <= 2 is enough for one's own processes). Prints the
share of the command's CPU samples (perf's, at --frequency Hz on every thread of every process) by:
- process: fer-video's Python, the analysis decoder, the render decoder, the encoder (x264 and
  the rawvideo pipe it reads), anything else (ffprobe);
- phase: start-up, analysis, render (split at the first sample of each decoder);
- the Python process's threads (named by role where the profile shows it: LiteRT pool threads
  run only XNNPACK) and the libraries where its samples land (LiteRT, OpenCV, the interpreter,
  NumPy, the kernel: pipes, page faults, thread hand-offs).
With --py-spy, a second run under py-spy (--native, non-waiting samples only) splits the Python
threads' own work into the pipeline's functions (detector, tracker, crops, person chips, drawing).
Python 3.11 has no perf support for its frames, hence the two tools. The two runs are separate:
compare shares, not seconds, and note that py-spy's sampling slows the Python side a little.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from common import ROOT

CLIPS = {"two-720p": common.clip, "crowd-1080p": common.crowd_clip}


def fer_video_cmd(clip: Path, out: Path, extra: list[str]) -> list[str]:
    exe = Path(sys.executable).parent / "fer-video"
    return [sys.executable, str(exe), "annotate", str(clip), "--out", str(out), "--quiet", *extra]


def env() -> dict:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def parse_perf(script_output: str):
    """perf script -F pid,tid,comm,time,ip,sym,dso -> [(pid, tid, comm, time, [(sym, dso), ...])]."""
    samples, current = [], None
    head = re.compile(r"^\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+):\s*$")
    frame = re.compile(r"^\s+([0-9a-f]+) (.*) \((.*)\)\s*$")
    for line in script_output.splitlines():
        if not line.strip():
            if current:
                samples.append(current)
            current = None
            continue
        match = head.match(line)
        if match and not line.startswith("\t"):
            current = (match.group(2), match.group(3), match.group(1), float(match.group(4)), [])
        elif current is not None:
            match = frame.match(line)
            if match:
                current[4].append((match.group(2).split("+0x")[0], match.group(3).rsplit("/", 1)[-1]))
    if current:
        samples.append(current)
    return samples


LIBRARIES = [("litert", "LiteRT (XNNPACK)"), ("cv2", "OpenCV"), ("libpython", "Python interpreter"),
             ("_multiarray", "NumPy"), ("kernel", "kernel"), ("libc.so", "libc (memcpy, malloc)"),
             ("dlib", "dlib"), ("pandas", "pandas"), ("arrow", "pyarrow")]


def library(dso: str) -> str:
    return next((name for key, name in LIBRARIES if key in dso), "other")


def report(samples) -> None:
    total = len(samples)
    pct = lambda n: 100 * n / total
    by_pid = collections.defaultdict(list)
    for s in samples:
        by_pid[s[0]].append(s)
    main_pid = collections.Counter(s[0] for s in samples if s[0] == s[1] and "ffmpeg" not in s[2]).most_common(1)
    python = main_pid[0][0] if main_pid else max(by_pid, key=lambda p: len(by_pid[p]))
    roles, decoders = {python: "fer-video (Python)"}, []
    for pid, rows in by_pid.items():
        if pid == python:
            continue
        comms = {r[2] for r in rows}
        if any("libx264" in c for c in comms):
            roles[pid] = "ffmpeg: encoder (x264 ultrafast, reading raw frames from the pipe)"
        elif any(c.startswith("av:h264") for c in comms):
            decoders.append(pid)
        else:
            roles[pid] = "other (ffprobe, ...)"
    decoders.sort(key=lambda p: min(r[3] for r in by_pid[p]))
    names = ["ffmpeg: analysis decoder (H.264 -> raw frames into the pipe)",
             "ffmpeg: render decoder (the same video, decoded again)"]
    for i, pid in enumerate(decoders):
        roles[pid] = names[i] if i < len(names) else f"ffmpeg: decoder {i + 1}"
    start = min(s[3] for s in samples)
    analysis_at = min(r[3] for r in by_pid[decoders[0]]) if decoders else start
    render_at = min(r[3] for r in by_pid[decoders[1]]) if len(decoders) > 1 else float("inf")
    phase = lambda t: "start-up" if t < analysis_at else "analysis" if t < render_at else "render"

    print(f"\n{total} samples, {max(s[3] for s in samples) - start:.1f} s from first to last")
    print("\nby process")
    grouped = collections.Counter()
    for pid, rows in by_pid.items():
        grouped[roles.get(pid, "other")] += len(rows)
    for role, n in grouped.most_common():
        print(f"  {pct(n):5.1f}%  {role}")

    print("\nby phase (Python / ffmpeg)")
    phases = collections.Counter((phase(s[3]), s[0] == python) for s in samples)
    for name in ("start-up", "analysis", "render"):
        py, ff = phases[(name, True)], phases[(name, False)]
        print(f"  {name:9s} {pct(py + ff):5.1f}%  (Python {pct(py):.1f}%, ffmpeg {pct(ff):.1f}%)")

    print("\nPython process: library of each sample's innermost frame")
    libs = collections.Counter(library(s[4][0][1]) if s[4] else "?" for s in by_pid[python])
    for name, n in libs.most_common():
        print(f"  {pct(n):5.1f}%  {name}")

    print("\nPython process: threads (first..last sample, s from the start; top libraries)")
    threads = collections.defaultdict(list)
    for s in by_pid[python]:
        threads[s[1]].append(s)
    for tid, rows in sorted(threads.items(), key=lambda kv: -len(kv[1]))[:14]:
        libs = collections.Counter(library(r[4][0][1]) if r[4] else "?" for r in rows)
        pool = libs["LiteRT (XNNPACK)"] >= 0.9 * len(rows)  # XNNPACK's workers run nothing else
        label = "main thread" if tid == python else "LiteRT only (pool?)" if pool else ""
        when = f"{min(r[3] for r in rows) - start:5.1f}..{max(r[3] for r in rows) - start:5.1f}"
        top = ", ".join(f"{name} {pct(n):.1f}" for name, n in libs.most_common(3))
        print(f"  {pct(len(rows)):5.1f}%  tid {tid:>7s} {when}  {label:19s} {top}")
    print("\n  (the main thread's samples by phase: " + ", ".join(
        f"{name} {pct(sum(1 for r in threads[python] if phase(r[3]) == name)):.1f}%"
        for name in ("start-up", "analysis", "render")) + ")")


PY_SPY_IDLE = ("Condition.wait", "Event.wait", "Future.result", "_queue_SimpleQueue_get", "PyThread_acquire_lock_timed",
               "sem_wait", "pthread_cond")
PY_SPY_STAGES = [
    ("_BlazeFaceModel._invoke", "detect: LiteRT invoke (this thread's part)"),
    ("_find_and_load", "start-up: imports"), ("make_detector", "start-up: models"),
    ("load_classifier", "start-up: models"),
    ("Tracker.update", "track"), ("ShotCutDetector", "cut test"), ("fer_crops", "crop (expression crops)"),
    ("persons/", "persons: chips, embeddings"), ("faces/embed", "persons: chips, embeddings"),
    ("expression/classify", "classify (preprocessing, LiteRT invoke)"),
    ("draw_faces", "render: draw"), ("VideoWriter.write", "render: write to the encoder's pipe"),
    ("pipeline/render.py", "render: BGR <-> I420, copies"), ("video/read.py", "decode: read the pipe, I420 -> BGR"),
    ("pipeline/smooth", "smooth"), ("pipeline/write.py", "write the timeline"), ("pipeline/keep", "keep"),
    ("faces/detectors/", "detect: windows, boxes (Python, NumPy, OpenCV)"),  # last: others use its helpers
]


def py_spy_report(raw: str) -> None:
    by_thread = collections.defaultdict(collections.Counter)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or any(w in stack for w in PY_SPY_IDLE):
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        thread = re.sub(r"_\d+$", "", thread.split(" (")[0])
        if frames[-1].startswith(("read (libc", "write (libc")):
            stage = "(blocked on a pipe)"
        else:
            stage = next((name for key, name in PY_SPY_STAGES if key in stack), "other")
        by_thread[thread][stage] += int(count)
    print("\npy-spy (--native), samples that were not waiting, by thread and stage (blocked-on-pipe shown apart)")
    for thread, stages in sorted(by_thread.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(stages.values())
        if n < 20:
            continue
        print(f"  {thread}: {n} samples")
        for stage, k in stages.most_common(12):
            print(f"    {100 * k / n:5.1f}%  {stage}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", default="two-720p", choices=list(CLIPS))
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--frequency", type=int, default=499, help="perf samples per second per thread (default 499)")
    p.add_argument("--no-video", action="store_true", help="profile `--no-video` (default: with the MP4)")
    p.add_argument("--py-spy", metavar="PATH", help="also run under this py-spy (pip install py-spy)")
    args = p.parse_args()
    perf = shutil.which("perf")
    if not perf:
        print("profile_annotate: no `perf` on PATH (apt-get install linux-perf); nothing profiled")
        return 1
    common.print_machine()
    clip = CLIPS[args.clip](args.seconds)
    work = Path(tempfile.mkdtemp(prefix="fer-video-profile-"))
    try:
        cmd = fer_video_cmd(clip, work / "out", ["--no-video"] if args.no_video else [])
        data = work / "perf.data"
        print(f"load {common.load()}: perf record -F {args.frequency} -g -- fer-video annotate {clip.name} ...",
              flush=True)
        with common.Timer() as t:
            subprocess.run([perf, "record", "-q", "-F", str(args.frequency), "-g", "-o", str(data), "--", *cmd],
                           env=env(), check=True, stdout=subprocess.DEVNULL)
        print(f"  {t.seconds:.1f} s wall, load {common.load()} after")
        script = subprocess.run([perf, "script", "-i", str(data), "-F", "comm,pid,tid,time,ip,sym,dso"],
                                capture_output=True, text=True, check=True).stdout
        report(parse_perf(script))
        if args.py_spy:
            shutil.rmtree(work / "out", ignore_errors=True)
            raw = work / "py-spy.txt"
            print(f"\nload {common.load()}: py-spy record --native --threads ...", flush=True)
            subprocess.run([args.py_spy, "record", "--native", "--threads", "-r", "250", "-f", "raw", "-o", str(raw),
                            "--", *cmd], env=env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            py_spy_report(raw.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
