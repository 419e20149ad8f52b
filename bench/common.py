"""Helpers shared by the benchmark scripts: clip cache, machine info, timing, tables, JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

# Before TensorFlow, LiteRT or Prefect is imported by any script.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print the figures as JSON (after the tables)")
    return p


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gb = float("nan")
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "load_1min_at_start": round(os.getloadavg()[0], 2),  # > 0.5 here means something else ran
    }


def print_machine(info: dict | None = None) -> dict:
    info = info or machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GiB, Python {info['python']}, "
          f"load average {info['load_1min_at_start']} at start")
    if info["load_1min_at_start"] > 0.5:
        print("  note: the machine was not idle at start; figures may be low")
    return info


def clip(seconds: float, width: int = 1280, height: int = 720, fps: int = 30) -> Path:
    """The two-face sample clip (fer_video.samples.make_clip), built once and cached."""
    path = OUT / "clips" / f"two_faces_{width}x{height}_{fps}fps_{seconds:g}s.mp4"
    if not path.exists():
        from fer_video.outputs import atomic_path
        from fer_video.samples import make_clip

        print(f"building {path.relative_to(ROOT)} ...", flush=True)
        with atomic_path(path) as temp:
            make_clip(temp, seconds=seconds, width=width, height=height, fps=fps, extra_output_args=["-f", "mp4"])
    return path


def crowd_clip(seconds: float, width: int = 1920, height: int = 1080, fps: int = 30, faces: int = 10) -> Path:
    """A crowd (fer_video.samples.crowd_actors: `faces` astronaut faces in two rows), with audio,
    built once and cached."""
    path = OUT / "clips" / f"crowd{faces}_{width}x{height}_{fps}fps_{seconds:g}s.mp4"
    if not path.exists():
        from fer_video.outputs import atomic_path
        from fer_video.samples import crowd_actors, make_clip

        print(f"building {path.relative_to(ROOT)} ...", flush=True)
        with atomic_path(path) as temp:
            make_clip(temp, seconds=seconds, width=width, height=height, fps=fps,
                      actors=crowd_actors(width, faces), extra_output_args=["-f", "mp4"])
    return path


def load() -> float:
    """The 1-minute load average now."""
    return round(os.getloadavg()[0], 2)


def n_frames(seconds: float, fps: int = 30) -> int:
    return int(round(seconds * fps))


from fer_video.resources import quiet_stderr  # noqa: E402,F401  (re-exported for the scripts)


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start


def repeat_ms(fn, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of `fn()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run_measured(args: list[str], poll_s: float = 0.05, **popen) -> dict:
    """Runs a command; wall seconds, its stdout, and peak RSS in MB: `rss_main_mb` for the process
    itself and `rss_tree_mb` for it plus its children at once (ffmpeg), both sampled every
    `poll_s` with psutil; `maxrss_mb` is the kernel's exact peak over the process and each child
    it waited for (the larger of them, not their sum). Without psutil, only `maxrss_mb`.
    `cpu_s`: user + system CPU seconds of the process and the children it waited for."""
    try:
        import psutil
    except ImportError:
        psutil = None

    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    handle = psutil.Process(proc.pid) if psutil else None
    peak_main = peak_tree = 0
    # Read the pipes on threads so a chatty child cannot block on a full pipe while we poll.
    chunks = {"out": [], "err": []}
    readers = [threading.Thread(target=lambda s=s, k=k: chunks[k].append(s.read()), daemon=True)
               for s, k in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for r in readers:
        r.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if handle is None:
            time.sleep(poll_s)
            continue
        try:
            main = handle.memory_info().rss
            tree = main
            for child in handle.children(recursive=True):
                try:
                    tree += child.memory_info().rss
                except psutil.Error:
                    pass
            peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
        except psutil.Error:  # it is exiting
            pass
        time.sleep(poll_s)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    stdout = b"".join(chunks["out"]).decode(errors="replace")
    stderr = b"".join(chunks["err"]).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{stderr[-3000:]}")
    nan = float("nan")
    return {"wall_s": wall, "stdout": stdout, "stderr": stderr,
            "rss_main_mb": peak_main / 2**20 if handle else nan, "rss_tree_mb": peak_tree / 2**20 if handle else nan,
            "maxrss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def fmt(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        a = abs(value)
        return f"{value:,.0f}" if a >= 100 else f"{value:.1f}" if a >= 10 else f"{value:.2f}" if a >= 1 else f"{value:.3g}"
    return "-" if value is None else str(value)


def table(rows: list[dict], columns: list[str] | None = None, title: str | None = None) -> None:
    """Prints dicts as an aligned text table (columns: keys of the first row by default)."""
    if title:
        print(f"\n{title}")
    if not rows:
        print("  (no rows)")
        return
    columns = columns or list(rows[0])
    cells = [[fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  " + "  ".join(  # noqa: E731
        v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))
    print(line(columns))
    print("  " + "  ".join("-" * w for w in widths))
    for r in cells:
        print(line(r))


def emit_json(enabled: bool, results: dict) -> None:
    if enabled:
        print(json.dumps(results, indent=2, default=str))


def timed_analysis(clip, options, make=None):
    """`clip`'s analysis with `options`, its detector made by `make(name, **options)` where given:
    (the analysis, its seconds and CPU seconds, its kept faces smoothed, the clip's MediaInfo)."""
    from fer_video.pipeline import analyse, keep_faces, probe, smooth

    analyse_module = sys.modules["fer_video.pipeline.analyse"]  # the module: the package's `analyse` is the function
    info = probe(clip)
    shipped = analyse_module.make_detector
    if make is not None:
        analyse_module.make_detector = make
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        analysis = analyse(info, options)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        analyse_module.make_detector = shipped
    return analysis, wall, cpu, smooth(keep_faces(analysis, options)[0], options.smoothing), info


def rate_study(args, clips: dict, measure, compare, against: str) -> int:
    """The rate benches' run: the model loaded first (its load is not the analysis's), each clip
    measured at each of `args.rates` (comma-separated Hz, the first the reference) with
    `against_rates`, the rows printed as a table titled with what they are `against`, and written
    with `--json`."""
    from fer_video.pipeline import load_classifier

    load_classifier(None)
    rates = [float(r) for r in args.rates.split(",")]
    rows = against_rates(clips, rates, measure, compare)
    table(rows, None, f"{args.seconds:g} s clips; {against}")
    emit_json(args.json, {"rows": rows})
    return 0


def against_rates(clips: dict, rates: list[float], measure, compare) -> list[dict]:
    """For each clip, `measure(clip, rate)` -> (stats, {(frame, track): value}) at each rate, the
    first rate's values the reference; `compare(reference, values, matched_keys)` -> columns.
    One row per (clip, rate), printed as it comes."""
    rows = []
    for name, clip in clips.items():
        reference = None
        for rate in rates:
            stats, values = measure(clip, rate)
            if reference is None:
                reference = values
            matched = [k for k in values if k in reference]
            row = {"clip": name, "rate_hz": rate or "every frame", **stats,
                   "matched": f"{len(matched)}/{len(reference)}", **compare(reference, values, matched)}
            rows.append(row)
            print(row, flush=True)
    return rows
