"""A source whose video starts after its audio (0.844 s, as in edited and phone clips) keeps that
offset in the annotated MP4, and the timeline's `timestamp_s` is the annotated MP4's clock.
Real ffmpeg: the clip is built with `-itsoffset`, offsets are read back from `ffmpeg -i`."""

from __future__ import annotations

import re

import pytest

from conftest import FPS, one_actor
from fer_video.pipeline import AnnotateOptions, annotate
from fer_video.samples import make_clip
from fer_video.video import probe, read_frames
from helpers import ffmpeg, ffmpeg_info, read_timeline

OFFSET = 0.844
FRAME = 1 / FPS


def stream_starts(path) -> dict[str, float]:
    """Start time of the first video and audio stream, as `ffmpeg -i` prints it (none: 0)."""
    starts = {}
    for line in ffmpeg_info(path).splitlines():
        m = re.search(r"Stream #\d+:\d+.*?: (Video|Audio): .*?(?:, start (-?[\d.]+))?(?: \(\w+\))*$", line.strip())
        if m and m.group(1) not in starts:
            starts[m.group(1)] = float(m.group(2) or 0)
    return starts


@pytest.fixture(scope="module")
def late_video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("late_video")
    plain = make_clip(folder / "plain.mp4", seconds=2.0, width=320, height=180, fps=FPS, actors=one_actor(320))
    path = folder / "late.mp4"
    ffmpeg("-itsoffset", OFFSET, "-i", plain, "-i", plain, "-map", "0:v", "-map", "1:a", "-c", "copy", path)
    starts = stream_starts(path)
    assert abs(starts["Video"] - OFFSET) < 1e-3 and starts["Audio"] == 0, starts
    result = annotate(str(path), AnnotateOptions(out_dir=folder / "out", progress=False))
    return path, result


def test_annotated_mp4_keeps_the_video_offset_within_a_frame(late_video):
    _, result = late_video
    starts = stream_starts(result.video)
    assert abs(starts["Video"] - OFFSET) <= FRAME, starts
    assert abs(starts["Audio"]) < 1e-3, starts


def test_timeline_times_are_the_annotated_mp4_clock(late_video):
    source, result = late_video
    rows, _ = read_timeline(result.timeline)
    times = {f.index: f.time for f in read_frames(probe(result.video))}
    assert len(times) == 2 * FPS
    assert rows.timestamp_s.min() == pytest.approx(OFFSET, abs=1e-3)  # the source's own clock
    for index, t in rows.groupby("frame_index").timestamp_s.first().items():
        assert abs(times[index] - t) <= FRAME / 2, (index, times[index], t)
    # ... which is also the source's: frame k shows at the same time in both files.
    source_times = {f.index: f.time for f in read_frames(probe(source))}
    assert all(abs(source_times[k] - times[k]) <= FRAME / 2 for k in times)
