"""Paths reach ffmpeg as the files they name, never as options or protocols: a relative input
literally called `file:a.mp4` (which ffmpeg would read as `a.mp4` through its file protocol)
beside a different `a.mp4`, and an output folder called `-o` (which ffmpeg would parse as an
option). Real ffmpeg, in this process (the CLI's flow runs the same pipeline functions)."""

from __future__ import annotations

import pytest

from conftest import FPS, one_actor
from fer_video.pipeline import AnnotateOptions, annotate
from fer_video.samples import make_clip
from fer_video.video import probe, read_frames
from fer_video.video.index import frame_index
from helpers import ffmpeg_info, read_timeline


@pytest.fixture
def decoy_folder(tmp_path, monkeypatch):
    """In the working folder: `file:a.mp4` (480x270, 2 s, a face) and `a.mp4` (320x180, 1 s, no
    face), so reading the wrong one shows in every number."""
    make_clip(tmp_path / "file:a.mp4", seconds=2.0, width=480, height=270, fps=FPS, actors=one_actor(480))
    make_clip(tmp_path / "a.mp4", seconds=1.0, width=320, height=180, fps=FPS, actors=[])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_relative_input_named_like_a_protocol_is_read_as_that_file(decoy_folder):
    info = probe("file:a.mp4")
    assert (info.width, info.height) == (480, 270)
    assert sum(1 for _ in read_frames(info)) == 2 * FPS
    index = frame_index("file:a.mp4")
    assert index is not None and len(index) == 2 * FPS


def test_annotating_file_colon_a_mp4_annotates_that_file(decoy_folder):
    result = annotate("file:a.mp4", AnnotateOptions(out_dir="out", progress=False))
    rows, meta = read_timeline(result.timeline)
    assert (meta["width"], meta["height"], meta["frame_count"]) == (480, 270, 2 * FPS)
    assert len(rows) > 0, "the face of file:a.mp4 (a.mp4 has none)"
    assert "480x270" in ffmpeg_info(result.video)
    assert result.video.name == "file:a.mp4"


def test_an_output_folder_named_like_an_option(decoy_folder):
    result = annotate("a.mp4", AnnotateOptions(out_dir="-o", progress=False))
    assert result.video == decoy_folder.joinpath("-o", "a.mp4").relative_to(decoy_folder)
    assert (decoy_folder / "-o" / "a.mp4").is_file() and (decoy_folder / "-o" / "a.parquet").is_file()
    assert "320x180" in ffmpeg_info(decoy_folder / "-o" / "a.mp4")


def test_sample_clips_can_be_written_to_a_folder_named_like_an_option(decoy_folder):
    path = make_clip("-o/clip.mp4", seconds=0.4, width=160, height=96, fps=FPS, actors=[], audio=False)
    assert (decoy_folder / "-o" / "clip.mp4").is_file()
    assert probe(path).width == 160
