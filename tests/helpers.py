"""Helpers shared by the tests: running the CLI, reading what ffmpeg says about a file, encoding
raw frames, reading timelines back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from fer_video.timeline.schema import METADATA_KEY
from fer_video.video.ffmpeg_binary import ffmpeg_exe

REPO = Path(__file__).resolve().parents[1]


def cli_command() -> list[str]:
    """The installed `fer-video` script beside this interpreter, else `python -m fer_video.cli`."""
    script = Path(sys.executable).parent / "fer-video"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fer_video.cli"]


def run_cli(*args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cli_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
        cwd=REPO, env=dict(os.environ),
    )


def ffmpeg_info(path: str | Path) -> str:
    """What `ffmpeg -i` prints about a file's streams (our ffmpeg ships no ffprobe)."""
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True, text=True, errors="replace", timeout=60,
    ).stderr


def encode_frames(path: Path, frames, width: int, height: int, fps: int | str, args: list[str]) -> Path:
    """BGR frames through a pipe into ffmpeg with the given output arguments."""
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
         "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:", *args, str(path)],
        stdin=subprocess.PIPE,
    )
    for frame in frames:
        proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0, f"ffmpeg failed to write {path}"
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *map(str, args)],
                   check=True, timeout=120)


def read_timeline(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """The timeline's rows and its metadata JSON (as a plain dict, so absent fields show)."""
    table = pq.read_table(path)
    return table.to_pandas(), json.loads(table.schema.metadata[METADATA_KEY])


def hidden_partials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*") if p.name.endswith(".part"))


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two equal-sized images: 1 is the same picture up to
    brightness and contrast."""
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


class Clip:
    """A generated input and what it was made to be."""

    def __init__(self, path: Path, width: int, height: int, fps: int, frames: int, **extra):
        self.path, self.width, self.height, self.fps, self.frames = Path(path), width, height, fps, frames
        self.__dict__.update(extra)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Clip({self.path.name}, {self.width}x{self.height}, {self.frames} frames)"


def tiny_fer_dataset(root: Path, per_class: int, split: str = "train") -> Path:
    """A FER2013-layout folder root/split/<class>/*.jpg of 48x48 faces-that-are-not-faces, a
    stripe pattern per class plus noise: training plumbing, not accuracy."""
    import cv2

    from fer_video.expression.labels import EMOTIONS

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48]
    prefix = "Training" if split == "train" else "PublicTest"
    for k, name in enumerate(EMOTIONS):
        folder = root / split / name
        folder.mkdir(parents=True)
        angle = k * np.pi / len(EMOTIONS)
        stripes = 128 + 90 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / (6 + k))
        for i in range(per_class):
            image = np.clip(stripes + rng.normal(0, 20, (48, 48)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{prefix}_{k}{i:03d}.jpg"), image)
    return root


def analyse_segmented(info, options, name=None):
    """`analyse` one segment after another and `stitch` them, as `annotate --segments` does in
    parallel: what a single pass must equal."""
    from fer_video.pipeline import analyse, plan_segments, stitch

    ranges = plan_segments(info, options)
    if len(ranges) == 1:
        return analyse(info, options, name)
    return stitch([analyse(info, options, name, first, last) for first, last in ranges], ranges)
