"""The outputs do not change unless a change means them to: timelines row for row, annotated MP4s
and images frame for frame, against one reference made from a commit whose outputs were checked.

The models run in LiteRT/XNNPACK, which picks its float kernels by the CPU's instruction sets;
their results differ in the last bits between AVX2, AVX-512 and ARM. So the reference holds
values, not digests, and one reference serves every CPU: rows and labels must be equal, boxes,
scores and probabilities within tolerances, and every decoded frame of the MP4 (and the annotated
image) within a tolerance on a 64x36 grey thumbnail. The tolerances are several times what
`bench/pin_tolerance.py` measures between XNNPACK and TFLite's own builtin kernels (a different
set of float kernels altogether, so a wider spread than between two CPUs' XNNPACK). After a
change that is meant to alter the outputs, write the reference again with

    FER_VIDEO_WRITE_PIN=1 python -m pytest tests/test_output_pin.py
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fer_video.samples import make_clip, make_image
from fer_video.video.ffmpeg_binary import ffmpeg_exe

REFERENCE = Path(__file__).parent / "data" / "output_pin" / "reference.json"
WIDTH, HEIGHT, FPS = 480, 270, 25
THUMB = (64, 36)
# Fields of the timeline's metadata that do not depend on where the test runs.
STABLE_METADATA = ("width", "height", "fps", "frame_count", "frames_expected", "stride", "rotation", "has_audio",
                   "model_name", "detector", "smoothing", "video_id")
RUNS = {
    "default": {},
    "stride2_ema": {"stride": 2, "smoothing": "ema:0.3"},
}
# Largest differences allowed. bench/pin_tolerance.py measured, between XNNPACK and TFLite's builtin
# kernels (AMD EPYC, 2026-12-06): boxes 0.00006 px, detector scores 0.000001, probabilities
# 0.00027, thumbnails equal.
TOLERANCE = {"box": 0.01, "score": 0.0001, "probability": 0.002, "thumbnail_max": 8, "thumbnail_mean": 0.25}
BOX = ["x", "y", "w", "h"]


def timeline_values(path: Path) -> dict:
    """The timeline as lists per column (floats rounded to 1e-6), and its stable metadata."""
    import pyarrow.parquet as pq

    rows = pd.read_parquet(path).drop(columns=["source_path"]).sort_values(["frame_index", "track_id"])
    columns = {}
    for name in rows.columns:
        values = rows[name]
        if pd.api.types.is_float_dtype(values):
            columns[name] = [None if pd.isna(v) else round(float(v), 6) for v in values]
        else:
            columns[name] = [None if pd.isna(v) else (v if isinstance(v, str) else int(v)) for v in values.astype(object)]
    meta = json.loads(pq.read_schema(path).metadata[b"fer_video"])
    return {"columns": columns, "metadata": {k: meta.get(k) for k in STABLE_METADATA}}


def thumbnail(bgr_or_grey: np.ndarray) -> str:
    grey = bgr_or_grey if bgr_or_grey.ndim == 2 else cv2.cvtColor(bgr_or_grey, cv2.COLOR_BGR2GRAY)
    return base64.b64encode(cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).tobytes()).decode()


def video_thumbnails(path: Path) -> list[str]:
    """One grey thumbnail per decoded frame (the Y plane, as x264 wrote it)."""
    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path),
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    size = WIDTH * HEIGHT
    assert len(raw) % size == 0
    return [thumbnail(np.frombuffer(raw[i : i + size], np.uint8).reshape(HEIGHT, WIDTH))
            for i in range(0, len(raw), size)]


def outputs(tmp_path: Path) -> dict:
    from fer_video.pipeline import AnnotateOptions, annotate

    clip = make_clip(tmp_path / "pin.mp4", seconds=2.0, width=WIDTH, height=HEIGHT, fps=FPS, cut_at=1.0)
    image = make_image(tmp_path / "pin.png", width=WIDTH, height=HEIGHT)
    found = {}
    for run, settings in RUNS.items():
        out = tmp_path / f"out-{run}"
        result = annotate(clip, AnnotateOptions(out_dir=out, progress=False, **settings))
        found[run] = {"timeline": timeline_values(result.timeline), "video": video_thumbnails(result.video)}
    result = annotate(image, AnnotateOptions(out_dir=tmp_path / "out-image", progress=False))
    found["image"] = {"timeline": timeline_values(result.timeline), "image": [thumbnail(cv2.imread(str(result.image)))],
                      "suffix": result.image.suffix}
    return found


def _column_difference(name: str, found: list, expected: list) -> str | None:
    if len(found) != len(expected):
        return f"{len(found)} rows, the reference has {len(expected)}"
    bound = (TOLERANCE["box"] if name in BOX else TOLERANCE["score"] if name in ("det_score", "timestamp_s")
             else TOLERANCE["probability"] if name.startswith(("p_", "raw_")) or name == "confidence" else None)
    for row, (f, e) in enumerate(zip(found, expected)):
        if bound is None or f is None or e is None:
            if f != e:
                return f"row {row}: {f!r} != {e!r}"
        elif abs(f - e) > bound:
            return f"row {row}: {f!r} differs from {e!r} by more than {bound}"
    return None


def _frame_difference(found: list[str], expected: list[str]) -> str | None:
    if len(found) != len(expected):
        return f"{len(found)} frames, the reference has {len(expected)}"
    for index, (f, e) in enumerate(zip(found, expected)):
        a = np.frombuffer(base64.b64decode(f), np.uint8).astype(int)
        b = np.frombuffer(base64.b64decode(e), np.uint8).astype(int)
        diff = np.abs(a - b)
        if diff.max() > TOLERANCE["thumbnail_max"] or diff.mean() > TOLERANCE["thumbnail_mean"]:
            return f"frame {index}: thumbnail differs by up to {diff.max()} (mean {diff.mean():.3f})"
    return None


def first_difference(found: dict, expected: dict) -> str | None:
    """Where `found` first leaves the reference's tolerances, as 'run/part/column: what', or None."""
    for run, parts in expected.items():
        if run not in found:
            return f"{run}: missing"
        timeline, reference = found[run]["timeline"], parts["timeline"]
        if timeline["metadata"] != reference["metadata"]:
            return f"{run}/timeline/metadata: {timeline['metadata']} != {reference['metadata']}"
        if list(timeline["columns"]) != list(reference["columns"]):
            return f"{run}/timeline/columns: {list(timeline['columns'])} != {list(reference['columns'])}"
        for name, values in reference["columns"].items():
            diff = _column_difference(name, timeline["columns"][name], values)
            if diff:
                return f"{run}/timeline/{name}: {diff}"
        for frames in ("video", "image"):
            if frames in parts:
                diff = _frame_difference(found[run][frames], parts[frames])
                if diff:
                    return f"{run}/{frames}: {diff}"
        if found[run].get("suffix") != parts.get("suffix"):
            return f"{run}/suffix: {found[run].get('suffix')} != {parts.get('suffix')}"
    return None


def test_outputs_match_the_reference(tmp_path):
    found = outputs(tmp_path)
    # The clip must exercise what is pinned: two faces, a shot cut, several tracks.
    assert len(found["default"]["timeline"]["columns"]["frame_index"]) > 50
    assert len(found["default"]["video"]) == 2 * FPS
    if os.environ.get("FER_VIDEO_WRITE_PIN"):
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_text(json.dumps(found) + "\n")
        pytest.skip(f"wrote {REFERENCE}")
    diff = first_difference(found, json.loads(REFERENCE.read_text()))
    assert diff is None, f"outputs differ from the reference at {diff}"


def test_the_comparison_finds_what_it_is_for():
    """A label changed, a box moved beyond the tolerance, a frame redrawn: each is caught; what
    another CPU's float kernels move stays within the tolerances."""
    import copy

    expected = json.loads(REFERENCE.read_text())
    assert first_difference(copy.deepcopy(expected), expected) is None
    within = copy.deepcopy(expected)
    within["default"]["timeline"]["columns"]["p_happy"][0] += TOLERANCE["probability"] / 2
    within["default"]["timeline"]["columns"]["x"][3] -= TOLERANCE["box"] / 2
    assert first_difference(within, expected) is None
    label = copy.deepcopy(expected)
    labels = label["default"]["timeline"]["columns"]["label"]
    labels[5] = "angry" if labels[5] != "angry" else "happy"
    assert first_difference(label, expected) == f"default/timeline/label: row 5: {labels[5]!r} != {expected['default']['timeline']['columns']['label'][5]!r}"
    moved = copy.deepcopy(expected)
    moved["stride2_ema"]["timeline"]["columns"]["w"][2] += 1.0
    assert first_difference(moved, expected).startswith("stride2_ema/timeline/w: row 2:")
    redrawn = copy.deepcopy(expected)
    frame = np.frombuffer(base64.b64decode(redrawn["default"]["video"][7]), np.uint8).copy()
    frame[:200] = 255 - frame[:200]
    redrawn["default"]["video"][7] = base64.b64encode(frame.tobytes()).decode()
    assert first_difference(redrawn, expected).startswith("default/video: frame 7:")
