"""Raw frames into ffmpeg's pipe: written (copied into the pipe) against spliced (`FramePipe`,
vmsplice: the pipe refers to the frames' own memory), runs interleaved.

    PYTHONPATH=. .venv/bin/python bench/pipes.py [--frames 900] [--size 1280x720] [--repeats 3]

Each run makes `--frames` fresh I420 frames, as decoding and drawing do, and hands them to
`ffmpeg -f rawvideo -i pipe: -f null -` (the binary fer-video encodes with, here only reading),
through a pipe enlarged as the encoder's is. Printed: wall seconds, the writer's CPU (user and
kernel, this process's own threads) and ffmpeg's (user and kernel), medians of `--repeats`.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import time

import numpy as np

import common
from common import table
from fer_video.video.ffmpeg_binary import ffmpeg_exe
from fer_video.video.pipes import FramePipe, enlarge_pipe


def run_once(frames: int, width: int, height: int, splice: bool) -> dict:
    shape = (height * 3 // 2, width)
    sources = [np.random.default_rng(i).integers(0, 255, shape, np.uint8) for i in range(4)]
    proc = subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "rawvideo",
                             "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-i", "pipe:", "-f", "null", "-"],
                            stdin=subprocess.PIPE)
    enlarge_pipe(proc.stdin, int(np.prod(shape)))
    pipe = FramePipe(proc.stdin, int(np.prod(shape)), splice=splice)
    before, start = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
    for i in range(frames):
        pipe.write(sources[i % 4].copy())  # a fresh frame each time
    after = resource.getrusage(resource.RUSAGE_THREAD)
    pipe.close(proc)
    wall = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # cumulative: differences are taken by the caller
    return {"wall_s": wall, "writer_user_s": after.ru_utime - before.ru_utime,
            "writer_kernel_s": after.ru_stime - before.ru_stime,
            "children": (children.ru_utime, children.ru_stime), "spliced": pipe.splicing}


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=900)
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT, even sides")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    results = {"machine": common.print_machine()}
    runs: dict[bool, list[dict]] = {False: [], True: []}
    previous = resource.getrusage(resource.RUSAGE_CHILDREN)
    previous = (previous.ru_utime, previous.ru_stime)
    for _ in range(args.repeats):
        for splice in (False, True):
            run = run_once(args.frames, width, height, splice)
            run["reader_user_s"] = run["children"][0] - previous[0]
            run["reader_kernel_s"] = run["children"][1] - previous[1]
            previous = run.pop("children")
            runs[splice].append(run)
    rows = []
    for splice, done in runs.items():
        med = {k: statistics.median(r[k] for r in done) for k in done[0] if k != "spliced"}
        rows.append({"frames into the pipe": "spliced (vmsplice)" if splice else "written (copied)",
                     "used vmsplice": all(r["spliced"] for r in done), **med})
    table(rows, ["frames into the pipe", "used vmsplice", "wall_s", "writer_user_s", "writer_kernel_s",
                 "reader_user_s", "reader_kernel_s"],
          f"{args.frames} frames of {width}x{height} I420; medians of {args.repeats}")
    results["rows"] = rows
    common.emit_json(getattr(args, "json", False), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
