"""fer-video's whole command against the `fer` package's whole process, on one real-face clip.

    .venv/bin/python bench/peer_ratio.py [--seconds 20 --width 640 --height 360 --fps 24] [--repeats 3] [--json]
    .venv/bin/python bench/peer_ratio.py --clip bench/out/clips/two_faces_1280x720_30fps_10s.mp4   # bench/annotate.py's clip

The clip is fer_video.samples' two faces (scikit-image's astronaut, one of them mirrored) over a
textured background, with a tone. Each repeat runs, back to back so that both see the same load:
- `fer-video annotate CLIP --out DIR --quiet` (timeline and annotated MP4), a fresh process;
- `bench/.venv-fer/bin/python bench/peer_fer.py CLIP --max-frames 0`: importing fer, building
  FER(), and `detect_emotions` on every frame (its README's way), a fresh process.
Prints the medians, the load average around each pair, and the ratio fer / fer-video.
Needs bench/.venv-fer (bash bench/setup_fer_venv.sh).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, ROOT, emit_json, parser, print_machine

FER_VIDEO = Path(sys.executable).parent / "fer-video"
PEER = BENCH / ".venv-fer" / "bin" / "python"


def timed(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return seconds


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--code", type=Path, default=ROOT, help="checkout whose code fer-video runs (default: this one)")
    p.add_argument("--clip", type=Path, help="an existing video to run both on, e.g. bench/annotate.py's "
                   "bench/out/clips/two_faces_1280x720_30fps_30s.mp4 (default: a generated one of --seconds, --width, ...)")
    args = p.parse_args()
    if not PEER.exists():
        raise SystemExit(f"no {PEER}: bash bench/setup_fer_venv.sh builds it")
    info = print_machine()
    work = Path(tempfile.mkdtemp(prefix="fer-video-bench-peer-"))
    try:
        from fer_video.samples import make_clip

        if args.clip is not None:
            from fer_video.video import probe

            clip, info_clip = args.clip.resolve(), probe(args.clip)
            args.seconds, args.width, args.height = info_clip.duration, info_clip.width, info_clip.height
            args.fps = float(info_clip.fps)
        else:
            clip = make_clip(work / "clip.mp4", seconds=args.seconds, width=args.width, height=args.height,
                             fps=args.fps)
        ours_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        ours_env.update(PYTHONPATH=str(args.code.resolve()), PREFECT_HOME=str(work / "prefect"))
        peer_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        ours, theirs, loads = [], [], []
        for _ in range(args.repeats):
            load = os.getloadavg()[0]
            shutil.rmtree(work / "out", ignore_errors=True)
            ours.append(timed([str(FER_VIDEO), "annotate", str(clip), "--out", str(work / "out"), "--quiet"], ours_env))
            theirs.append(timed([str(PEER), str(BENCH / "peer_fer.py"), str(clip), "--max-frames", "0"], peer_env))
            loads.append((round(load, 2), round(os.getloadavg()[0], 2)))
            print(f"  fer-video {ours[-1]:.2f} s, fer {theirs[-1]:.2f} s, load {loads[-1][0]} -> {loads[-1][1]}",
                  flush=True)
        a, b = statistics.median(ours), statistics.median(theirs)
        frames = round(args.seconds * args.fps)
        print(f"{args.seconds:g} s {args.width}x{args.height} clip ({frames} frames), whole processes, median of "
              f"{args.repeats}: fer-video (timeline + MP4) {a:.2f} s, fer {b:.2f} s: fer-video is {b / a:.1f}x faster")
        emit_json(args.json, {"machine": info, "clip": {"seconds": args.seconds, "width": args.width,
                                                         "height": args.height, "fps": args.fps},
                              "fer_video_s": ours, "fer_s": theirs, "load": loads,
                              "fer_video_median_s": round(a, 2), "fer_median_s": round(b, 2), "ratio": round(b / a, 2)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
