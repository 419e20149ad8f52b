"""Inputs made at test time, once per session: generated clips (scikit-image's astronaut face
over a textured background, see fer_video/samples.py), a still image and broken files.

Prefect runs in ephemeral mode under a PREFECT_HOME of this session's own (set before anything
imports Prefect, and inherited by the CLI subprocesses), with telemetry off.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest

_PREFECT_HOME: str | None = None


def pytest_configure(config):
    global _PREFECT_HOME
    _PREFECT_HOME = tempfile.mkdtemp(prefix="fer-video-tests-prefect-")
    os.environ["PREFECT_HOME"] = _PREFECT_HOME
    os.environ["DO_NOT_TRACK"] = "1"
    # Tests make their inputs just before a batch reads them: only a file that changes while the
    # batch looks is "still being written" (test_partial_inputs checks the time window itself).
    os.environ.setdefault("FER_VIDEO_SETTLE_SECONDS", "0")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_unconfigure(config):
    if _PREFECT_HOME:
        shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


from fer_video.samples import Actor, astronaut_face, background, make_clip, make_image, sample_frame  # noqa: E402

from helpers import Clip, encode_frames, ffmpeg  # noqa: E402

FPS = 25
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def one_actor(width: int) -> list[Actor]:
    """One face large enough for the default --min-face at small frame sizes, moving and scaling."""
    return [Actor(x=0.45, y=0.5, width=0.35 * width, dx=0.1, scale=0.1, period=3.0)]


@pytest.fixture(scope="session")
def face():
    """The astronaut's head and shoulders (scikit-image), the face pasted into synthetic frames."""
    return astronaut_face()


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def two_face_clip(clips) -> Clip:
    """640x360, 25 fps, 4 s, AAC tone: a moving, scaling face (left) and a smaller flipped one
    (right) in every frame."""
    path = make_clip(clips / "two_faces.mp4", seconds=4.0, width=640, height=360, fps=FPS)
    return Clip(path, 640, 360, FPS, 100)


@pytest.fixture(scope="session")
def cut_clip(clips) -> Clip:
    """2 s, the same face in the same place on both sides of a shot cut at 1 s (frame 25)."""
    path = make_clip(clips / "shot_cut.mp4", seconds=2.0, width=480, height=270, fps=FPS,
                     actors=one_actor(480), cut_at=1.0, audio=False)
    return Clip(path, 480, 270, FPS, 50, cut_frame=25)


@pytest.fixture(scope="session")
def faceless_clip(clips) -> Clip:
    path = make_clip(clips / "faceless.mp4", seconds=1.0, width=320, height=180, fps=FPS, actors=[])
    return Clip(path, 320, 180, FPS, 25)


@pytest.fixture(scope="session")
def silent_clip(clips) -> Clip:
    path = make_clip(clips / "silent.mp4", seconds=1.0, width=480, height=270, fps=FPS,
                     actors=one_actor(480), audio=False)
    return Clip(path, 480, 270, FPS, 25)


@pytest.fixture(scope="session")
def rotated_clip(clips) -> Clip:
    """A phone-style clip: the picture is stored turned 90 degrees (270x480, `np.rot90`, i.e.
    counter-clockwise) with display-matrix rotation so that players show it upright, 480x270.

    `-display_rotation -90` is the sign that gives upright here (checked by decoding: with +90 the
    picture comes out upside down); ffmpeg -i then says "rotation of -90.00 degrees".
    """
    width, height, frames = 480, 270, 50
    face, canvas, actors = astronaut_face(), background(width, height), one_actor(width)
    upright = [sample_frame(canvas, face, actors, i / FPS) for i in range(frames)]
    stored = encode_frames(clips / "rotated_stored.mp4", (np.rot90(f) for f in upright), height, width, FPS, X264)
    path = clips / "rotated.mp4"
    ffmpeg("-display_rotation:v:0", "-90", "-i", stored, "-c", "copy", path)
    return Clip(path, width, height, FPS, frames, stored_size=(height, width), upright=upright[::10])


def vfr_keeps(n: int) -> bool:
    """Which frames of the 25 fps source the VFR clip keeps: gaps of 40, 80 and 120 ms."""
    return n % 4 not in (1, 2) or n % 3 == 0


@pytest.fixture(scope="session")
def vfr_clip(clips) -> Clip:
    """3 s of a 25 fps source with frames dropped irregularly but their timestamps kept
    (`select` + `-fps_mode vfr`): frame i of the clip is at kept[i] / 25 s."""
    width, height, frames = 480, 270, 75
    face, canvas, actors = astronaut_face(), background(width, height), one_actor(width)
    source = encode_frames(clips / "vfr_source.mp4", (sample_frame(canvas, face, actors, i / FPS) for i in range(frames)),
                           width, height, FPS, X264)
    path = clips / "vfr.mp4"
    select = r"select='not(eq(mod(n\,4)\,1)+eq(mod(n\,4)\,2))+not(mod(n\,3))'"
    ffmpeg("-i", source, "-vf", select, "-fps_mode", "vfr", *X264, path)
    kept = [n for n in range(frames) if vfr_keeps(n)]
    return Clip(path, width, height, FPS, len(kept), kept=kept)


@pytest.fixture(scope="session")
def odd_clip(clips) -> Clip:
    """641x361: H.264 4:4:4 allows odd sides (the annotated MP4's yuv420p does not)."""
    path = make_clip(clips / "odd_size.mp4", seconds=1.0, width=641, height=361, fps=FPS,
                     extra_output_args=["-pix_fmt", "yuv444p"])
    return Clip(path, 641, 361, FPS, 25)


@pytest.fixture(scope="session")
def still_image(clips) -> Clip:
    """640x480 JPEG with the two faces of `two_face_clip` at t=0."""
    return Clip(make_image(clips / "still.jpg", 640, 480), 640, 480, 0, 1)


@pytest.fixture(scope="session")
def good_small_clip(clips) -> Clip:
    """A short valid clip to pass alongside bad inputs."""
    path = make_clip(clips / "good_small.mp4", seconds=1.0, width=480, height=270, fps=FPS, actors=one_actor(480))
    return Clip(path, 480, 270, FPS, 25)


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory) -> dict:
    """Broken inputs, by kind. Every one must fail with one line naming it."""
    folder = tmp_path_factory.mktemp("bad")
    work = tmp_path_factory.mktemp("bad_work")
    bad = {"missing": folder / "missing.mp4"}
    bad["empty"] = folder / "empty.mp4"
    bad["empty"].write_bytes(b"")
    bad["text"] = folder / "notes.mp4"
    bad["text"].write_text("not a video, only text in a file named .mp4\n" * 20)
    # ffmpeg's default MP4 muxing puts the index (moov) at the end: cut short, there is none.
    whole = make_clip(work / "moov_at_end.mp4", seconds=2.0, width=320, height=180, fps=FPS, actors=[])
    data = whole.read_bytes()
    bad["moov_cut"] = folder / "moov_missing.mp4"
    bad["moov_cut"].write_bytes(data[: len(data) * 6 // 10])
    # With +faststart the index comes first: half the file probes fine but holds half the frames.
    faststart = make_clip(work / "faststart.mp4", seconds=2.0, width=320, height=180, fps=FPS, actors=[],
                          extra_output_args=["-movflags", "+faststart"])
    data = faststart.read_bytes()
    bad["faststart_cut"] = folder / "half_faststart.mp4"
    bad["faststart_cut"].write_bytes(data[: len(data) // 2])
    # Matroska cut short: ffmpeg decodes the first part and ends with its summary line
    # ("video:..KiB audio:..KiB ... muxing overhead"), which is no reason to quote.
    mkv = work / "whole.mkv"
    ffmpeg("-i", faststart, "-c", "copy", mkv)
    data = mkv.read_bytes()
    bad["mkv_cut"] = folder / "cut.mkv"
    bad["mkv_cut"].write_bytes(data[: len(data) * 4 // 10])
    bad["audio_only"] = folder / "tone_only.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", bad["audio_only"])
    return bad


@pytest.fixture(scope="session")
def annotate_once(tmp_path_factory):
    """`annotate_once(clip, **options)`: `fer_video.pipeline.annotate` in this process (no Prefect,
    the model loaded once), each (input, options) run once per session; returns (Result, out_dir)."""
    from fer_video.pipeline import AnnotateOptions, annotate

    done: dict = {}

    def run(clip, **options):
        key = (str(clip), tuple(sorted(options.items())))
        if key not in done:
            out = tmp_path_factory.mktemp("annotated")
            result = annotate(os.fspath(clip), AnnotateOptions(out_dir=out, progress=False, **options))
            done[key] = (result, out)
        return done[key]

    return run
