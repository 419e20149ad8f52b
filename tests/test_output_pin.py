"""The outputs do not change when the code is reorganised: timelines equal row for row, annotated
MP4s and images decoding to the same pixels, as a reference made before the redesign of issue 12.

A reference (`tests/data/output_pin/<cpu type>.json`) holds digests, not files: one per frame of
the timeline (its rows, floats rounded to 1e-5) and one per decoded frame of the MP4. A failure
names the first frame that differs. The models run in LiteRT/XNNPACK, which picks its kernels by
the CPU's instruction sets, and their float results differ in the last bits between those (the
AMD EPYC reference failed on an AVX-512 Xeon at frame 17), so there is one reference per CPU
type (`cpu_type()`); on a type with none the test says so and skips its comparison. For a new
CPU type, or after a change that is meant to alter the outputs (then on every type you can reach),
write it with

    FER_VIDEO_WRITE_PIN=1 python -m pytest tests/test_output_pin.py
"""

from __future__ import annotations

import hashlib
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

REFERENCES = Path(__file__).parent / "data" / "output_pin"
WIDTH, HEIGHT, FPS = 480, 270, 25
# Fields of the timeline's metadata that do not depend on where the test runs.
STABLE_METADATA = ("width", "height", "fps", "frame_count", "frames_expected", "stride", "rotation", "has_audio",
                   "model_name", "detector", "smoothing", "video_id")
RUNS = {
    "default": {},
    "stride2_ema": {"stride": 2, "smoothing": "ema:0.3"},
}


def cpu_type() -> str:
    """The machine and the instruction sets XNNPACK chooses float kernels by, e.g. x86_64-avx2."""
    import platform

    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith(("flags", "Features"))).split(":", 1)[1].split())
    except (OSError, StopIteration):
        flags = set()
    isa = [f for f in ("avx2", "avx512f", "avx512_fp16", "amx_tile", "asimd", "sve") if f in flags]
    return "-".join([platform.machine(), *isa])


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def timeline_digests(path: Path) -> dict:
    rows = pd.read_parquet(path).drop(columns=["source_path"])
    rows["label"] = rows["label"].astype(str)
    floats = rows.select_dtypes("floating").columns
    rows[floats] = rows[floats].round(5)
    frames = {str(index): _digest(group.to_csv(index=False).encode())
              for index, group in rows.groupby("frame_index", sort=True)}
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(path).metadata[b"fer_video"])
    return {"columns": list(rows.columns), "rows": len(rows), "frames": frames,
            "metadata": {k: meta.get(k) for k in STABLE_METADATA}}


def video_digests(path: Path) -> list[str]:
    """One digest per decoded frame (yuv420p, as x264 wrote it): the pixels, not the container's bytes."""
    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path),
                          "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"], capture_output=True, check=True).stdout
    size = WIDTH * HEIGHT * 3 // 2
    assert len(raw) % size == 0
    return [_digest(raw[i : i + size]) for i in range(0, len(raw), size)]


def outputs(tmp_path: Path) -> dict:
    from fer_video.pipeline import AnnotateOptions, annotate

    clip = make_clip(tmp_path / "pin.mp4", seconds=2.0, width=WIDTH, height=HEIGHT, fps=FPS, cut_at=1.0)
    image = make_image(tmp_path / "pin.png", width=WIDTH, height=HEIGHT)
    found = {}
    for run, settings in RUNS.items():
        out = tmp_path / f"out-{run}"
        result = annotate(clip, AnnotateOptions(out_dir=out, progress=False, **settings))
        found[run] = {"timeline": timeline_digests(result.timeline), "video": video_digests(result.video)}
    result = annotate(image, AnnotateOptions(out_dir=tmp_path / "out-image", progress=False))
    found["image"] = {"timeline": timeline_digests(result.timeline),
                      "image": _digest(np.ascontiguousarray(cv2.imread(str(result.image))).tobytes()),
                      "suffix": result.image.suffix}
    return found


def first_difference(found, expected, where="") -> str | None:
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in expected:
            if key not in found:
                return f"{where}/{key}: missing"
            diff = first_difference(found[key], expected[key], f"{where}/{key}")
            if diff:
                return diff
        extra = set(found) - set(expected)
        return f"{where}: unexpected {sorted(extra)[:5]}" if extra else None
    if isinstance(expected, list) and isinstance(found, list) and len(found) == len(expected):
        for i, (f, e) in enumerate(zip(found, expected)):
            if f != e:
                return f"{where}[{i}]: {f!r} != {e!r}"
        return None
    return None if found == expected else f"{where}: {found!r} != {expected!r}"


def test_outputs_match_the_reference(tmp_path):
    found = outputs(tmp_path)
    # The clip must exercise what is pinned: two faces, a shot cut, several tracks.
    assert found["default"]["timeline"]["rows"] > 50
    assert len(found["default"]["video"]) == 2 * FPS
    cpu = cpu_type()
    reference = REFERENCES / f"{cpu}.json"
    if os.environ.get("FER_VIDEO_WRITE_PIN"):
        reference.parent.mkdir(exist_ok=True)
        reference.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {reference}")
    if not reference.exists():
        pytest.skip(f"no output reference for this CPU type ({cpu}; there are: "
                    f"{', '.join(sorted(p.stem for p in REFERENCES.glob('*.json')))}); "
                    "write one with FER_VIDEO_WRITE_PIN=1 from a commit whose outputs you trust")
    expected = json.loads(reference.read_text())
    diff = first_difference(found, expected)
    assert diff is None, f"outputs differ from the reference at {diff}"
