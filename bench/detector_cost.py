"""Where the analysis's model time goes: each BlazeFace model (full-range scans and tiles, the
short-range follow windows, the wide retries) and the expression classifier, on one clip.

    PYTHONPATH=. .venv/bin/python bench/detector_cost.py [--clip two-720p|crowd-1080p] [--seconds 30]

The analysis stage runs in this process (no MP4, no start-up) with each model's invoke wrapped:
calls, windows (faces for the classifier), the seconds inside the calls (wall, in whichever thread
calls them) and their share of the analysis's wall and CPU seconds. LiteRT's own thread pool works
inside those calls, so their CPU is about wall x the model threads at most; the rest of the
analysis is the Python, NumPy and OpenCV around the models.
"""

from __future__ import annotations

import sys
import threading
import time

import common
from common import OUT, table

CLIPS = {"two-720p": common.clip, "crowd-1080p": common.crowd_clip}


class Timed:
    """Wraps a callable; adds up its calls, items and wall seconds (thread-safe)."""

    def __init__(self, call, items):
        self.call, self.items_of = call, items
        self.calls = self.items = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.call(*args, **kwargs)
        finally:
            spent = time.perf_counter() - start
            with self._lock:
                self.calls += 1
                self.items += self.items_of(*args)
                self.seconds += spent


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--clip", choices=sorted(CLIPS), default="two-720p")
    p.add_argument("--seconds", type=float, default=30)
    args = p.parse_args()
    common.print_machine()
    from fer_video.expression.classify import ExpressionClassifier
    from fer_video.faces.detectors import make_detector
    from fer_video.pipeline import AnnotateOptions, analyse, probe

    analyse_module = sys.modules["fer_video.pipeline.analyse"]
    clip = CLIPS[args.clip](args.seconds)
    info = probe(clip)
    options = AnnotateOptions(out_dir=OUT / "detector_cost", progress=False, persons=False)
    timers: dict[str, Timed] = {}

    def make(name, **kwargs):
        detector = make_detector(name, **kwargs)
        for model in ("full", "short", "wide"):
            wrapped = getattr(detector, f"_{model}")
            timer = Timed(wrapped._invoke, lambda tensor: len(tensor))
            wrapped._invoke = timer
            timers[f"BlazeFace {model} ({wrapped.input_size} px)"] = timer
        return detector

    original_logits = ExpressionClassifier.logits
    analyse_module.make_detector = make
    # A function of (self, crops), so it binds as the method does.
    ExpressionClassifier.logits = lambda self, crops: timers["expression classifier (its TTA)"](self, crops)
    try:
        timers["expression classifier (its TTA)"] = Timed(original_logits, lambda self, crops: len(crops))
        analyse(info, options)  # warm-up: interpreters made, caches filled
        timers.clear()  # the measured run's detector adds its own
        timers["expression classifier (its TTA)"] = Timed(original_logits, lambda self, crops: len(crops))
        wall, cpu = time.perf_counter(), time.process_time()
        analysis = analyse(info, options)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        analyse_module.make_detector = make_detector
        ExpressionClassifier.logits = original_logits
    print(f"\n{clip.relative_to(common.ROOT)}: analysis {wall:.2f} s wall, {cpu:.2f} s CPU, "
          f"{analysis.frames_decoded} frames, {len(analysis.faces)} faces (load {common.load()})")
    rows = [{"model": name, "calls": t.calls, "windows_or_faces": t.items, "seconds": t.seconds,
             "ms_per_call": 1000 * t.seconds / max(t.calls, 1), "share_of_wall": t.seconds / wall,
             "share_of_cpu": t.seconds / cpu} for name, t in timers.items()]
    table(rows)
    total = sum(t.seconds for t in timers.values())
    print(f"all model calls: {total:.2f} s, {total / wall:.0%} of the analysis's wall, {total / cpu:.0%} of its CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
