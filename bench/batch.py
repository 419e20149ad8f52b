"""Speed-up from 1 to N workers: a folder of clips (`fer-video batch`) and one long video split
into time segments (`fer-video annotate --segments N`), through the CLI (start-up included, as a
user would run it), on one of two kinds of Dask cluster:

- `--cluster local` (default): `--workers N`, the local cluster of N processes that fer-video
  starts itself; the workers share the machine's cores (each gets cores / N threads).
- `--cluster pinned`: a cluster started beforehand (`dask scheduler`, N `dask worker`s and a real
  `prefect server` on 127.0.0.1, reached through `--dask-address` and PREFECT_API_URL, as a
  cluster of machines is), each worker held to a core of its own with one thread: N one-core
  machines. This is how the scaling shows on a machine with few cores, where one local process
  already keeps every core busy and a second one has nothing to add.

    .venv/bin/python bench/batch.py                                   # local, 1 and 2 workers
    .venv/bin/python bench/batch.py --cluster pinned --long-seconds 600   # 1 and 2 one-core workers
    .venv/bin/python bench/batch.py --workers 1,2,4,8                 # on a bigger machine

It also prints, per segment, the frames ffmpeg decodes (decode only, measured with
`read_frames` and `DecodeStats`): a segment seeks to the keyframe before its first frame, where
it used to decode from frame 0.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import time

import common
from common import OUT, table

LOOP_SOURCE_SECONDS = 60.0  # long videos are this clip looped (-stream_loop, -c copy): quick to build

ANNOTATE = ["--no-video", "--quiet"]


BIN = common.ROOT / ".venv" / "bin"


def fer_video(*args: str, env: dict | None = None) -> float:
    """Wall seconds of one `fer-video` command (run_measured raises if it fails)."""
    return common.run_measured([str(BIN / "fer-video"), *args], env=env)["wall_s"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_http(url: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


@contextlib.contextmanager
def prefect_server():
    """A real `prefect server start` on 127.0.0.1; yields the environment that points at it."""
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(OUT / "batch" / "prefect_home"), "PREFECT_LOGGING_LEVEL": "ERROR"}
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/api/health")
        yield {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def pinned_cluster(workers: int, env: dict):
    """A Dask scheduler and `workers` one-thread workers, worker k held to core k (mod the cores
    there are) with FER_VIDEO_THREADS=1; yields the scheduler's address once all have joined."""
    from distributed import Client

    cores = sorted(os.sched_getaffinity(0))
    address = f"tcp://127.0.0.1:{_free_port()}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], env=env, **quiet)]
    try:
        for k in range(workers):
            core = cores[k % len(cores)]
            procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                 "--memory-limit", "0"], env={**env, "FER_VIDEO_THREADS": "1"}, **quiet,
                preexec_fn=lambda core=core: os.sched_setaffinity(0, {core})))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def folder_of_clips(n: int, seconds: float) -> str:
    folder = OUT / "batch" / f"folder_{n}x{seconds:g}s"
    if not folder.exists():
        folder.mkdir(parents=True)
        source = common.clip(seconds, width=640, height=360, fps=30)
        for i in range(n):
            shutil.copy(source, folder / f"clip{i}.mp4")
            # Each copy must be its own job (jobs are keyed on content): a few trailing bytes
            # differ, which MP4 demuxers ignore.
            with open(folder / f"clip{i}.mp4", "ab") as f:
                f.write(b"\0" * (i + 1))
    return str(folder)


def long_clip(seconds: float) -> str:
    """The two-face clip at 640x360 30 fps; beyond a minute, the 60 s one looped without re-encoding."""
    if seconds <= LOOP_SOURCE_SECONDS:
        return str(common.clip(seconds, width=640, height=360, fps=30))
    path = OUT / "clips" / f"two_faces_640x360_30fps_{seconds:g}s_looped.mp4"
    if not path.exists():
        from fer_video.video.ffmpeg_binary import ffmpeg_exe

        source = common.clip(LOOP_SOURCE_SECONDS, width=640, height=360, fps=30)
        print(f"building {path.relative_to(common.ROOT)} ...", flush=True)
        partial = path.with_name(f"partial_{path.name}")
        loops = math.ceil(seconds / LOOP_SOURCE_SECONDS) - 1
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                        "-stream_loop", str(loops), "-i", str(source), "-t", f"{seconds:g}", "-c", "copy",
                        "-f", "mp4", str(partial)], check=True)
        partial.replace(path)
    return str(path)


def segment_decoding(video: str, counts: list[int]) -> list[dict]:
    """Frames decoded per segment (decode only, no analysis), as `--segments N` plans them."""
    from fer_video.pipeline import AnnotateOptions, plan_segments
    from fer_video.video import DecodeStats, probe, read_frames

    info = probe(video)
    rows = []
    for segments in counts:
        for k, (first, last) in enumerate(plan_segments(info, AnnotateOptions(segments=segments, progress=False))):
            stats = DecodeStats()
            start = time.perf_counter()
            for _ in read_frames(info, 1, stats, first, last):
                pass
            rows.append({"segments": segments, "segment": k, "first": first, "last": last,
                         "from_frame_0": stats.decoded, "decoded": stats.work,
                         "decode_s": time.perf_counter() - start})
    return rows


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    p.add_argument("--cluster", choices=["local", "pinned"], default="local",
                   help="local: fer-video's own local cluster; pinned: one-core workers started beforehand")
    p.add_argument("--clips", type=int, default=4, help="clips in the folder (default 4)")
    p.add_argument("--clip-seconds", type=float, default=20.0)
    p.add_argument("--long-seconds", type=float, default=120.0, help="length of the long video (default 120)")
    args = p.parse_args()
    info = common.print_machine()
    counts = [int(w) for w in args.workers.split(",")]
    folder = folder_of_clips(args.clips, args.clip_seconds)
    long_video = long_clip(args.long_seconds)
    rows = []
    for workers in counts:
        out = OUT / "batch" / f"out_{args.cluster}_{workers}"
        shutil.rmtree(out, ignore_errors=True)
        with contextlib.ExitStack() as stack:
            if args.cluster == "pinned":
                env = stack.enter_context(prefect_server())
                runner = ["--dask-address", stack.enter_context(pinned_cluster(workers, env))]
            else:
                env, runner = None, ["--workers", str(workers)]
            folder_s = fer_video("batch", folder, "--out", str(out / "folder"), *runner, "--no-video", env=env)
            long_s = fer_video("annotate", long_video, "--out", str(out / "long"), "--segments", str(workers),
                               *runner, *ANNOTATE, env=env)
        rows.append({"workers": workers, "folder_s": folder_s, "long_video_s": long_s})
        print(f"  {workers} worker(s): folder {folder_s:.1f} s, long video {long_s:.1f} s", flush=True)
    base = rows[0]
    for r in rows:
        r["folder_speedup"] = base["folder_s"] / r["folder_s"]
        r["long_video_speedup"] = base["long_video_s"] / r["long_video_s"]
    table(rows, ["workers", "folder_s", "folder_speedup", "long_video_s", "long_video_speedup"],
          title=f"{args.cluster} cluster; folder: {args.clips} clips of {args.clip_seconds:g} s; long video: "
                f"{args.long_seconds:g} s; 640x360 30 fps, timelines only; wall seconds, start-up included")
    decoding = segment_decoding(long_video, counts)
    table(decoding, ["segments", "segment", "first", "last", "from_frame_0", "decoded", "decode_s"],
          title="long video, frames decoded per segment (decode only): from_frame_0 = what decoding from the "
                "start cost; decoded = from the keyframe before `first`")
    if args.json:
        print(json.dumps({"machine": info, "results": rows, "segment_decoding": decoding}, indent=2))


if __name__ == "__main__":
    main()
