"""fer-video end to end beside ffmpeg's own transcode (the I/O floor), its stages, its memory, and the `fer` package.

    python bench/annotate.py                          # 30 s 1280x720 30 fps clip, two faces, 3 repeats
    python bench/annotate.py --clip crowd-1080p       # 30 s 1920x1080 30 fps clip, ten faces
    python bench/annotate.py --seconds 10 --repeats 2 --no-peer --memory-check --memory-lengths 10,30
    python bench/annotate.py --seconds 3 --peer-max-frames 30 --memory-lengths 2,3

(Run it with the checkout's code first on the path: `PYTHONPATH=. .venv/bin/python bench/annotate.py`;
the `fer-video` commands it starts get this checkout on PYTHONPATH too.)

1. `fer-video annotate` as a subprocess (start-up included), `--no-video` and with the MP4, each
   run right after a run of the floor: ffmpeg (the binary fer-video uses) decoding the same clip
   and re-encoding it, libx264 `-preset ultrafast`, audio copied. Floor, fer-video, floor,
   fer-video, ... `--repeats` times; medians of wall seconds, CPU seconds (user + system, children
   included), frames/s, the floor's seconds, and the ratio fer-video / floor (issue 28's target:
   at most 2.5x with the MP4); the load average around each run; peak RSS.
2. The same stages in this process after a warm-up (no start-up): analyse, keep, persons, smooth,
   render, write.
3. `--memory-check`: peak RSS for clips of `--memory-lengths` seconds (it should not grow with
   length), and the ratio long / short.
4. The `fer` PyPI package (bench/.venv-fer, bench/peer_fer.py) with Haar and with MTCNN, on the
   first `--peer-max-frames` frames, and the speed ratios.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import common
from common import BENCH, OUT, ROOT, Timer, table

PEER_PYTHON = BENCH / ".venv-fer" / "bin" / "python"
TARGET_FPS_MP4 = 60.0  # end to end with the MP4, 2 cores (the 720p clip; before issue 28)
TARGET_FLOOR_RATIO = 2.5  # issue 28: the whole command with the MP4 / ffmpeg's own transcode
TARGET_VS_FER_HAAR = 3.0
CLIPS = {  # --clip: (description, builder(seconds))
    "two-720p": ("1280x720, 30 fps, two faces, audio", lambda seconds: common.clip(seconds)),
    "crowd-1080p": ("1920x1080, 30 fps, ten faces, audio", lambda seconds: common.crowd_clip(seconds)),
}


def cli_env() -> dict:
    """The environment of the commands: this checkout's code first on the path, so `fer-video`
    (an editable install's console script) runs it and not another checkout's."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def fer_video_exe() -> str:
    here = Path(sys.executable).parent / "fer-video"
    return str(here if here.exists() else ROOT / ".venv" / "bin" / "fer-video")


def cli_run(clip: Path, video: bool, args) -> dict:
    out = OUT / "annotate" / ("mp4" if video else "no_video") / clip.stem
    shutil.rmtree(out, ignore_errors=True)
    cmd = [fer_video_exe(), "annotate", str(clip), "--out", str(out), "--quiet", "--detector", args.detector,
           "--preset", args.preset] + ([] if video else ["--no-video"])
    before = common.load()
    run = common.run_measured(cmd, env=cli_env())
    match = re.search(r": (\d+) frames, (\d+) face rows, (\d+) tracks", run["stdout"])
    frames = int(match.group(1)) if match else common.n_frames(clip_seconds(clip))
    return {
        "run": "CLI, MP4" if video else "CLI, --no-video", "clip_s": clip_seconds(clip),
        "frames": frames, "face_rows": int(match.group(2)) if match else None,
        "tracks": int(match.group(3)) if match else None, "wall_s": run["wall_s"], "cpu_s": run["cpu_s"],
        "fps": frames / run["wall_s"], "rss_python_mb": run["rss_main_mb"],
        "rss_with_ffmpeg_mb": run["rss_tree_mb"], "maxrss_mb": run["maxrss_mb"],
        "load": (before, common.load()),
    }


def floor_run(clip: Path) -> dict:
    """The I/O floor: ffmpeg (the binary fer-video uses) decoding `clip` and re-encoding it with
    libx264 `-preset ultrafast` (crf 23 and yuv420p, as fer-video writes), audio copied."""
    from fer_video.video.ffmpeg_binary import ffmpeg_exe, ffmpeg_path

    out = OUT / "annotate" / "floor" / f"{clip.stem}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", ffmpeg_path(clip),
           "-map", "0:v:0", "-map", "0:a?", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23",
           "-pix_fmt", "yuv420p", "-c:a", "copy", "-movflags", "+faststart", ffmpeg_path(out)]
    before = common.load()
    run = common.run_measured(cmd)
    return {"wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "rss_mb": run["rss_main_mb"],
            "load": (before, common.load())}


def interleaved(clip: Path, args) -> tuple[list[dict], list[dict]]:
    """`--repeats` rounds of: floor, fer-video --no-video, floor, fer-video with the MP4. Each
    fer-video run is paired with the floor run just before it. Returns one summary row per
    fer-video mode (medians) and every run."""
    runs: dict[bool, list[tuple[dict, dict]]] = {False: [], True: []}
    modes = [True] if args.mp4_only else [False, True]
    log = []
    for repeat in range(args.repeats):
        for video in modes:
            floor = floor_run(clip)
            ours = cli_run(clip, video=video, args=args)
            runs[video].append((floor, ours))
            log.append({"repeat": repeat + 1, "run": ours["run"], "floor_s": floor["wall_s"],
                        "floor_load": f"{floor['load'][0]}->{floor['load'][1]}", "wall_s": ours["wall_s"],
                        "cpu_s": ours["cpu_s"], "load": f"{ours['load'][0]}->{ours['load'][1]}",
                        "ratio": ours["wall_s"] / floor["wall_s"]})
            print(f"  {repeat + 1}/{args.repeats} floor {floor['wall_s']:.2f} s (load {floor['load'][0]} -> "
                  f"{floor['load'][1]}), {ours['run']} {ours['wall_s']:.2f} s, {ours['cpu_s']:.1f} s CPU (load "
                  f"{ours['load'][0]} -> {ours['load'][1]}): {log[-1]['ratio']:.2f}x", flush=True)
    rows = []
    for video in modes:
        pairs = runs[video]
        floors, ours = [f for f, _ in pairs], [o for _, o in pairs]
        med = statistics.median
        wall, floor = med([o["wall_s"] for o in ours]), med([f["wall_s"] for f in floors])
        ratios = [o["wall_s"] / f["wall_s"] for f, o in pairs]
        frames = ours[0]["frames"]
        rows.append({
            "run": ours[0]["run"], "frames": frames, "wall_s": wall, "fps": frames / wall,
            "cpu_s": med([o["cpu_s"] for o in ours]), "floor_s": floor, "floor_fps": frames / floor,
            "floor_cpu_s": med([f["cpu_s"] for f in floors]), "ratio": wall / floor,
            "ratio_range": f"{min(ratios):.2f}-{max(ratios):.2f}",
            "cpu_ratio": med([o["cpu_s"] for o in ours]) / med([f["cpu_s"] for f in floors]),
            "target": f"{TARGET_FLOOR_RATIO:g}x" if video else "-",
            "rss_python_mb": max(o["rss_python_mb"] for o in ours),
            "rss_with_ffmpeg_mb": max(o["rss_with_ffmpeg_mb"] for o in ours),
            "maxrss_mb": max(o["maxrss_mb"] for o in ours), "tracks": ours[0]["tracks"],
            "face_rows": ours[0]["face_rows"], "clip_s": ours[0]["clip_s"],
        })
    return rows, log


def clip_seconds(clip: Path) -> float:
    return float(re.search(r"_([\d.]+)s$", clip.stem).group(1))


class Clock(Timer):
    """Wall seconds and CPU seconds (user + system, this process's threads and the children it
    waited for, i.e. ffmpeg) of a block: `.seconds`, `.cpu`."""

    def __enter__(self):
        self._times = os.times()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        end = os.times()
        self.cpu = sum(getattr(end, k) - getattr(self._times, k)
                       for k in ("user", "system", "children_user", "children_system"))


def in_process(clip: Path, args) -> list[dict]:
    """The pipeline's stages, as `fer_video.pipeline.annotate` runs them, after a warm-up on a 1 s
    clip: steady-state speed, no start-up."""
    from fer_video.persons.stage import persons_in_video
    from fer_video.pipeline import AnnotateOptions, analyse, annotate, probe, render, smooth, write
    from fer_video.pipeline.keep import keep_faces

    out = OUT / "annotate" / "in_process"
    shutil.rmtree(out, ignore_errors=True)
    options = AnnotateOptions(out_dir=out, detector=args.detector, preset=args.preset, progress=False)
    warm_clip = common.clip(1)
    with Timer() as warm, common.quiet_stderr():
        annotate(warm_clip, options)  # loads the models, traces them, builds the detector
    rows = [{"stage": "warm-up (1 s clip, model load)", "seconds": warm.seconds, "frames": None, "fps": None}]
    with Clock() as t:
        info = probe(clip)
    rows.append({"stage": "probe", "seconds": t.seconds, "cpu_s": t.cpu})
    with Clock() as t:
        analysis = analyse(info, options)
    frames = analysis.frames_decoded
    rows.append({"stage": "analyse (decode, detect, track, crop, classify)", "seconds": t.seconds,
                 "frames": frames, "fps": frames / t.seconds, "cpu_s": t.cpu})
    with Clock() as t:
        kept, ids = keep_faces(analysis, options)
        kept, analysis.embeddings = persons_in_video(kept, analysis.face_chips, ids, options)
    rows.append({"stage": "keep + persons (embeddings)", "seconds": t.seconds, "cpu_s": t.cpu})
    with Clock() as t:
        smoothed = smooth(kept, options.smoothing)
    rows.append({"stage": "smooth", "seconds": t.seconds, "cpu_s": t.cpu})
    with Clock() as t:
        render(info, smoothed, options, analysis.name)
    rows.append({"stage": f"render (decode, draw, x264 {args.preset}, audio)", "seconds": t.seconds,
                 "frames": frames, "fps": frames / t.seconds, "cpu_s": t.cpu})
    with Clock() as t:
        write(smoothed, analysis, options)
    rows.append({"stage": "write Parquet", "seconds": t.seconds, "cpu_s": t.cpu})
    total = sum(r["seconds"] for r in rows[1:])
    render_s = next(r["seconds"] for r in rows if r["stage"].startswith("render"))
    no_video = total - render_s
    rows.append({"stage": "total, --no-video", "seconds": no_video, "frames": frames, "fps": frames / no_video})
    rows.append({"stage": "total, with MP4", "seconds": total, "frames": frames, "fps": frames / total,
                 "cpu_s": sum(r.get("cpu_s") or 0 for r in rows[1:])})
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
    p.add_argument("--clip", default="two-720p", choices=list(CLIPS),
                   help="two-720p: 1280x720, two faces; crowd-1080p: 1920x1080, ten faces (default two-720p)")
    p.add_argument("--seconds", type=float, default=30, help="clip length (default 30)")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds of floor, fer-video runs interleaved (default 3); medians")
    from fer_video.faces.detectors import DETECTORS

    p.add_argument("--detector", default="blazeface", choices=list(DETECTORS))
    p.add_argument("--preset", default="ultrafast", help="x264 preset of the MP4 (default ultrafast, as shipped)")
    p.add_argument("--mp4-only", action="store_true", help="skip the --no-video runs")
    p.add_argument("--no-in-process", action="store_true", help="skip the in-process stages (section 2)")
    p.add_argument("--memory-check", action="store_true", help="peak RSS for clips of --memory-lengths")
    p.add_argument("--memory-lengths", default="20,60", help="clip seconds for --memory-check (default 20,60)")
    p.add_argument("--peer-max-frames", type=int, default=300, help="frames the fer package is timed on")
    p.add_argument("--no-peer", action="store_true", help="skip the fer package")
    args = p.parse_args()

    results: dict = {"machine": common.print_machine(), "clip": args.clip, "seconds": args.seconds,
                     "detector": args.detector, "repeats": args.repeats}
    description, build = CLIPS[args.clip]
    clip = build(args.seconds)
    print(f"clip: {clip.relative_to(ROOT)} ({description}, {args.seconds:g} s)")
    print(f"fer-video: {fer_video_exe()} with PYTHONPATH={ROOT}")

    print("\n1. interleaved runs (floor = ffmpeg decode + x264 ultrafast re-encode, audio copied)")
    cli, log = interleaved(clip, args)
    results["cli"], results["runs"] = cli, log
    table(cli, ["run", "frames", "wall_s", "fps", "floor_s", "floor_fps", "ratio", "ratio_range", "target",
                "cpu_s", "floor_cpu_s", "cpu_ratio"],
          f"1. fer-video annotate beside the floor: medians of {args.repeats}, start-up included "
          "(ratio = fer-video wall / floor wall, each run paired with the floor run before it)")
    table(cli, ["run", "rss_python_mb", "rss_with_ffmpeg_mb", "maxrss_mb", "tracks", "face_rows"],
          "   peak memory (largest of the runs) and what was found")
    mp4 = next(r for r in cli if r["run"] == "CLI, MP4")

    stages = []
    if not args.no_in_process:
        stages = in_process(clip, args)
        results["in_process"] = stages
        table(stages, ["stage", "seconds", "frames", "fps", "cpu_s"],
              "2. the same stages in-process, after a warm-up")

    if args.memory_check:
        memory = []
        for seconds in [float(s) for s in args.memory_lengths.split(",")]:
            run = cli_run(build(seconds), video=True, args=args)
            memory.append({"clip_s": seconds, **{k: run[k] for k in
                           ("frames", "wall_s", "rss_python_mb", "rss_with_ffmpeg_mb", "maxrss_mb")},
                           "load": f"{run['load'][0]}->{run['load'][1]}"})
        results["memory"] = memory
        table(memory, ["clip_s", "frames", "wall_s", "rss_python_mb", "rss_with_ffmpeg_mb", "maxrss_mb", "load"],
              "3. peak RSS by clip length (CLI, with MP4)")
        short, long = memory[0], memory[-1]
        ratios = {k: long[k] / short[k] for k in ("rss_python_mb", "rss_with_ffmpeg_mb", "maxrss_mb")}
        results["memory_ratio_long_short"] = ratios
        print(f"  peak RSS, {long['clip_s']:g} s clip / {short['clip_s']:g} s clip: Python "
              f"{ratios['rss_python_mb']:.2f}x, with ffmpeg {ratios['rss_with_ffmpeg_mb']:.2f}x, kernel maxrss "
              f"{ratios['maxrss_mb']:.2f}x (flat = about 1.0x)")

    peers = []
    if not args.no_peer and ensure_peer_venv():
        for mtcnn in (False, True):
            peers.append(peer_run(clip, mtcnn, args.peer_max_frames))
        results["peer"] = peers
        table([r for r in peers if "error" not in r],
              ["run", "frames", "fps", "startup_s", "faces_found_per_frame", "peak_rss_mb"],
              f"4. the `fer` package (its own venv): fps over the first {args.peer_max_frames} frames after one "
              "warm-up frame, decode included, start-up excluded")

    e2e_video = mp4["fps"]
    novideo = next((r for r in cli if r["run"] == "CLI, --no-video"), None)
    steady = next((r["fps"] for r in stages if r["stage"].startswith("analyse")), None)
    ratios = []
    for peer in peers:
        if "error" not in peer and peer.get("fps") and novideo:
            ratios.append({"vs": peer["run"], "fer_fps": peer["fps"], "e2e_no_video": novideo["fps"] / peer["fps"],
                           "steady_analyse": steady / peer["fps"] if steady else None})
    results["ratios"] = ratios
    if ratios:
        table(ratios, ["vs", "fer_fps", "e2e_no_video", "steady_analyse"],
              "5. speed ratio fer-video / fer  (e2e_no_video: our CLI fps incl. start-up, --no-video; "
              "steady_analyse: our in-process analyse fps)")

    print("\ntargets")
    print(f"  issue 28: the whole command with the MP4 <= {TARGET_FLOOR_RATIO:g}x ffmpeg's own transcode: "
          f"{mp4['ratio']:.2f}x (pairs {mp4['ratio_range']}; {mp4['wall_s']:.2f} s vs {mp4['floor_s']:.2f} s; "
          f"{'met' if mp4['ratio'] <= TARGET_FLOOR_RATIO else 'NOT met'})")
    if args.clip == "two-720p":
        print(f"  end to end with the MP4 >= {TARGET_FPS_MP4:g} frames/s: {e2e_video:.1f} "
              f"({'met' if e2e_video >= TARGET_FPS_MP4 else 'NOT met'}; on a {args.seconds:g} s clip, start-up included)")
    haar = next((r for r in ratios if r["vs"] == "fer, Haar"), None)
    if haar:
        print(f"  >= {TARGET_VS_FER_HAAR:g}x the fer package with Haar: {haar['e2e_no_video']:.1f}x end to end "
              f"({'met' if haar['e2e_no_video'] >= TARGET_VS_FER_HAAR else 'NOT met'})")
    if args.seconds < 30:
        print("  note: a short clip is dominated by start-up; use 30 s or more for the figures")
    print(f"  load average at the end: {common.load()}")
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
