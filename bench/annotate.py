"""fer-video end to end, its pipeline without start-up, its memory, and the `fer` package beside it.

    .venv/bin/python bench/annotate.py                  # 60 s 1280x720 30 fps clip, two faces
    .venv/bin/python bench/annotate.py --memory-check   # also peak RSS for 20 s vs 60 s clips
    .venv/bin/python bench/annotate.py --seconds 3 --peer-max-frames 30 --memory-lengths 2,3

1. `fer-video annotate` as a subprocess (Prefect flow, start-up included), `--no-video` and with
   the MP4: wall seconds, frames/s (= frames / wall), peak RSS of the Python process and of it
   plus its ffmpeg children.
2. The same stages in this process after a warm-up (no Prefect, no TensorFlow start-up).
3. `--memory-check`: peak RSS for clips of different lengths (it should not grow with length).
4. The `fer` PyPI package (bench/.venv-fer, bench/peer_fer.py) with Haar and with MTCNN, on the
   first `--peer-max-frames` frames, and the speed ratios.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import common
from common import BENCH, OUT, ROOT, Timer, table

PEER_PYTHON = BENCH / ".venv-fer" / "bin" / "python"
TARGET_FPS_MP4 = 60.0  # end to end with the MP4, 2 cores
TARGET_VS_FER_HAAR = 3.0


def fer_video_exe() -> str:
    here = Path(sys.executable).parent / "fer-video"
    return str(here if here.exists() else ROOT / ".venv" / "bin" / "fer-video")


def cli_run(clip: Path, video: bool, args) -> dict:
    out = OUT / "annotate" / ("mp4" if video else "no_video") / clip.stem
    shutil.rmtree(out, ignore_errors=True)
    cmd = [fer_video_exe(), "annotate", str(clip), "--out", str(out), "--quiet", "--detector", args.detector,
           "--preset", args.preset] + ([] if video else ["--no-video"])
    run = common.run_measured(cmd)
    match = re.search(r": (\d+) frames, (\d+) face rows, (\d+) tracks", run["stdout"])
    frames = int(match.group(1)) if match else common.n_frames(args.seconds)
    return {
        "run": "CLI, MP4" if video else "CLI, --no-video", "clip_s": clip_seconds(clip),
        "frames": frames, "face_rows": int(match.group(2)) if match else None,
        "tracks": int(match.group(3)) if match else None, "wall_s": run["wall_s"],
        "fps": frames / run["wall_s"], "rss_python_mb": run["rss_main_mb"],
        "rss_with_ffmpeg_mb": run["rss_tree_mb"], "maxrss_mb": run["maxrss_mb"],
    }


def clip_seconds(clip: Path) -> float:
    return float(re.search(r"_([\d.]+)s$", clip.stem).group(1))


def in_process(clip: Path, args) -> list[dict]:
    """The pipeline's stages after a warm-up on a 1 s clip: steady-state speed, no start-up."""
    from fer_video.pipeline import AnnotateOptions, analyse, annotate, probe, render, smooth, write

    out = OUT / "annotate" / "in_process"
    shutil.rmtree(out, ignore_errors=True)
    options = AnnotateOptions(out_dir=out, detector=args.detector, preset=args.preset, progress=False)
    warm_clip = common.clip(1)
    with Timer() as warm, common.quiet_stderr():
        annotate(warm_clip, options)  # loads the model, traces it, builds the detector
    rows = [{"stage": "warm-up (1 s clip, model load)", "seconds": warm.seconds, "frames": None, "fps": None}]
    with Timer() as t:
        info = probe(clip)
    rows.append({"stage": "probe", "seconds": t.seconds})
    with Timer() as t:
        analysis = analyse(info, options)
    frames = analysis.frames_decoded
    rows.append({"stage": "analyse (decode, detect, track, crop, classify)", "seconds": t.seconds,
                 "frames": frames, "fps": frames / t.seconds})
    with Timer() as t:
        smoothed = smooth(analysis.faces, options.smoothing)
        write(smoothed, analysis, options)
    rows.append({"stage": "smooth + write Parquet", "seconds": t.seconds})
    with Timer() as t:
        render(info, smoothed, options)
    rows.append({"stage": f"render (decode, draw, x264 {args.preset}, audio)", "seconds": t.seconds,
                 "frames": frames, "fps": frames / t.seconds})
    total = sum(r["seconds"] for r in rows[1:])
    no_video = sum(r["seconds"] for r in rows[1:4])
    rows.append({"stage": "total, --no-video", "seconds": no_video, "frames": frames, "fps": frames / no_video})
    rows.append({"stage": "total, with MP4", "seconds": total, "frames": frames, "fps": frames / total})
    return rows


def ensure_peer_venv() -> bool:
    if PEER_PYTHON.exists():
        return True
    print(f"\n{PEER_PYTHON.parent.parent.relative_to(ROOT)} is missing: running bench/setup_fer_venv.sh "
          "(a few minutes, ~5 GB) ...", flush=True)
    if subprocess.run(["bash", str(BENCH / "setup_fer_venv.sh")]).returncode != 0 or not PEER_PYTHON.exists():
        print("  the peer venv could not be set up; run `bash bench/setup_fer_venv.sh` and see its output")
        return False
    return True


def peer_run(clip: Path, mtcnn: bool, max_frames: int) -> dict:
    cmd = [str(PEER_PYTHON), str(BENCH / "peer_fer.py"), str(clip), "--max-frames", str(max_frames)]
    try:
        run = common.run_measured(cmd + (["--mtcnn"] if mtcnn else []))
    except RuntimeError as error:
        print(f"  fer ({'MTCNN' if mtcnn else 'Haar'}) failed: {str(error).splitlines()[0]}")
        print("    " + "\n    ".join(str(error).splitlines()[-5:]))
        return {"run": f"fer, {'MTCNN' if mtcnn else 'Haar'}", "error": str(error)[-2000:]}
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    result.update(run=f"fer, {'MTCNN' if mtcnn else 'Haar'}", wall_s=run["wall_s"], rss_python_mb=run["rss_main_mb"])
    return result


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60, help="clip length (default 60)")
    from fer_video.faces.detectors import DETECTORS

    p.add_argument("--detector", default="blazeface", choices=list(DETECTORS))
    p.add_argument("--preset", default="ultrafast", help="x264 preset of the MP4 (default ultrafast, as shipped)")
    p.add_argument("--memory-check", action="store_true", help="peak RSS for clips of --memory-lengths")
    p.add_argument("--memory-lengths", default="20,60", help="clip seconds for --memory-check (default 20,60)")
    p.add_argument("--peer-max-frames", type=int, default=300, help="frames the fer package is timed on")
    p.add_argument("--no-peer", action="store_true", help="skip the fer package")
    args = p.parse_args()

    results: dict = {"machine": common.print_machine(), "seconds": args.seconds, "detector": args.detector}
    clip = common.clip(args.seconds)
    print(f"clip: {clip.relative_to(ROOT)} (1280x720, 30 fps, {args.seconds:g} s, two faces, audio)")

    cli = [cli_run(clip, video=False, args=args), cli_run(clip, video=True, args=args)]
    results["cli"] = cli
    table(cli, ["run", "frames", "wall_s", "fps", "rss_python_mb", "rss_with_ffmpeg_mb", "tracks"],
          "1. fer-video annotate (subprocess; wall includes the start-up: Prefect's ephemeral server, model loading)")

    stages = in_process(clip, args)
    results["in_process"] = stages
    table(stages, ["stage", "seconds", "frames", "fps"], "2. the same stages in-process, after a warm-up")

    if args.memory_check:
        memory = []
        for seconds in [float(s) for s in args.memory_lengths.split(",")]:
            run = cli[1] if seconds == args.seconds else cli_run(common.clip(seconds), video=True, args=args)
            memory.append({"clip_s": seconds, **{k: run[k] for k in
                           ("frames", "rss_python_mb", "rss_with_ffmpeg_mb", "maxrss_mb")}})
        results["memory"] = memory
        table(memory, ["clip_s", "frames", "rss_python_mb", "rss_with_ffmpeg_mb", "maxrss_mb"],
              "3. peak RSS by clip length (CLI, with MP4)")
        growth = memory[-1]["rss_python_mb"] - memory[0]["rss_python_mb"]
        print(f"  python peak grows {growth:+.0f} MB from {memory[0]['clip_s']:g} s to {memory[-1]['clip_s']:g} s "
              f"({100 * growth / memory[0]['rss_python_mb']:+.1f}%)")

    peers = []
    if not args.no_peer and ensure_peer_venv():
        for mtcnn in (False, True):
            peers.append(peer_run(clip, mtcnn, args.peer_max_frames))
        results["peer"] = peers
        table([r for r in peers if "error" not in r],
              ["run", "frames", "fps", "startup_s", "faces_found_per_frame", "peak_rss_mb"],
              f"4. the `fer` package (its own venv): fps over the first {args.peer_max_frames} frames after one "
              "warm-up frame, decode included, start-up excluded")

    e2e_video, e2e_novideo = cli[1]["fps"], cli[0]["fps"]
    steady = next(r for r in stages if r["stage"].startswith("analyse"))["fps"]
    ratios = []
    for peer in peers:
        if "error" not in peer and peer.get("fps"):
            ratios.append({"vs": peer["run"], "fer_fps": peer["fps"],
                           "e2e_no_video": e2e_novideo / peer["fps"], "steady_analyse": steady / peer["fps"]})
    results["ratios"] = ratios
    if ratios:
        table(ratios, ["vs", "fer_fps", "e2e_no_video", "steady_analyse"],
              "5. speed ratio fer-video / fer  (e2e_no_video: our CLI fps incl. start-up, --no-video; "
              "steady_analyse: our in-process analyse fps)")

    print("\ntargets")
    print(f"  end to end with the MP4 >= {TARGET_FPS_MP4:g} frames/s: {e2e_video:.1f} "
          f"({'met' if e2e_video >= TARGET_FPS_MP4 else 'NOT met'}; on a {args.seconds:g} s clip, start-up included)")
    haar = next((r for r in ratios if r["vs"] == "fer, Haar"), None)
    if haar:
        print(f"  >= {TARGET_VS_FER_HAAR:g}x the fer package with Haar: {haar['e2e_no_video']:.1f}x end to end, "
              f"{haar['steady_analyse']:.1f}x steady ({'met' if haar['e2e_no_video'] >= TARGET_VS_FER_HAAR else 'NOT met'}"
              " end to end)")
    if args.seconds < 30:
        print("  note: a short clip is dominated by start-up; use the default 60 s for the figures")
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
