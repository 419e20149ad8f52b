"""`fer-video annotate` under different environment settings, runs interleaved: wall and CPU seconds.

    PYTHONPATH=. .venv/bin/python bench/env_ab.py [--seconds 30] [--repeats 3] [--no-video] [--set threads1 FER_VIDEO_THREADS=1 ...]
    PYTHONPATH=. .venv/bin/python bench/env_ab.py --set base PYTHONPATH=/path/to/other/checkout --repeats 5

Each setting is a name and NAME=VALUE pairs added to the environment; `default` (nothing added)
always runs. Settings take turns (default, then each in order, `--repeats` rounds), so a change
in the machine's load falls on all of them alike; medians of wall seconds and CPU seconds (user +
system of fer-video and its ffmpeg children) are printed, and for each setting the median of its
ratios to the default's run of the same round and in how many rounds it was faster (on a shared
host whose speed drifts over minutes, the steadier comparison). A setting of PYTHONPATH runs
another checkout's code: two versions compared the same way. The default settings compare one
model thread (`FER_VIDEO_THREADS=1`: LiteRT's XNNPACK without its thread pool) and OpenCV on one
thread (`OPENCV_FOR_THREADS_NUM=1`) with the defaults, on the bench's 720p two-face clip with the
MP4.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import common
from common import table

DEFAULT_SETTINGS = [["threads1", "FER_VIDEO_THREADS=1"], ["opencv1", "OPENCV_FOR_THREADS_NUM=1"]]


def run(clip: Path, out: Path, extra: dict, options: list[str] = ()) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).parent / "fer-video"
    done = common.run_measured([str(exe), "annotate", str(clip), "--out", str(out), "--quiet", *options],
                               env={**os.environ, "PYTHONPATH": str(common.ROOT), **extra})
    return done["wall_s"], done["cpu_s"]


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30, help="length of the clip (default 30)")
    p.add_argument("--clip", choices=["two-720p", "crowd-1080p"], default="two-720p",
                   help="two-720p: 1280x720, two faces; crowd-1080p: 1920x1080, ten faces (default two-720p)")
    p.add_argument("--repeats", type=int, default=3, help="rounds of all settings (default 3)")
    p.add_argument("--no-video", action="store_true", help="the timeline alone, without the MP4")
    p.add_argument("--set", nargs="+", action="append", metavar=("NAME", "VAR=VALUE"),
                   help="a setting to compare with the default (repeatable)")
    args = p.parse_args()
    common.print_machine()
    settings = {"default": {}}
    for name, *pairs in args.set or DEFAULT_SETTINGS:
        settings[name] = dict(pair.split("=", 1) for pair in pairs)
    clip = common.clip(args.seconds) if args.clip == "two-720p" else common.crowd_clip(args.seconds)
    print(f"clip: {clip.relative_to(common.ROOT)}{' without the MP4' if args.no_video else ''}; settings: {settings}",
          flush=True)
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in settings}
    work = Path(tempfile.mkdtemp(prefix="fer-video-env-ab-"))
    try:
        for round_ in range(args.repeats):
            for name, extra in settings.items():
                found[name].append(run(clip, work / name, extra, ["--no-video"] if args.no_video else []))
                wall, cpu = found[name][-1]
                print(f"  {round_ + 1}/{args.repeats} {name}: {wall:.2f} s wall, {cpu:.1f} s CPU (load {common.load()})",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nmedians of {args.repeats}; against default, round by round (the host's speed drifts over minutes, "
          "so a setting is compared with the default run just before it)")
    table(summary(found), ["setting", "wall_s", "cpu_s", "runs", "wall_ratio", "cpu_ratio", "faster_rounds"])
    return 0


def summary(found: dict[str, list[tuple[float, float]]]) -> list[dict]:
    """Per setting: median wall and CPU seconds, and against the default's run of the same round:
    the median ratio of wall and of CPU seconds, and in how many rounds it was faster."""
    rows = []
    for name, runs in found.items():
        row = {"setting": name, "wall_s": statistics.median(w for w, _ in runs),
               "cpu_s": statistics.median(c for _, c in runs), "runs": len(runs)}
        if name != "default":
            pairs = list(zip(runs, found["default"]))
            row["wall_ratio"] = statistics.median(w / dw for (w, _), (dw, _) in pairs)
            row["cpu_ratio"] = statistics.median(c / dc for (_, c), (_, dc) in pairs)
            row["faster_rounds"] = f"{sum(w < dw for (w, _), (dw, _) in pairs)}/{len(pairs)}"
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
