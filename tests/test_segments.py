"""A long video split into time segments, analysed separately and stitched, gives the timeline
of a single pass within the documented tolerance: the same rows and track ids, boxes within
2 pixels, per-frame probabilities within 0.1, labels on >= 99% of rows the same. (The detector's
window state takes a few frames after a seam to settle, and LiteRT's threaded kernels are not
bit-exact, so a face's box can differ by about a pixel there.)"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fer_video.errors import InputError
from fer_video.pipeline import AnnotateOptions, analyse, plan_segments, probe, smooth
from fer_video.timeline.rows import rows_of
from fer_video.samples import astronaut_face, background, make_clip, sample_frame, two_actors
from fer_video.video import DecodeStats, read_frames
from fer_video.video.index import FrameIndex, frame_index
from helpers import analyse_segmented, encode_frames, ffmpeg

BOX_TOLERANCE_PX = 2.0
PROBABILITY_TOLERANCE = 0.1


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    """10 s, two faces, a shot cut at 6 s (so track ids must also restart across a seam); a
    keyframe every second and B-frames, so segments seek and frames are reordered."""
    path = tmp_path_factory.mktemp("segments") / "cut.mp4"
    return probe(make_clip(path, seconds=10.0, width=480, height=270, fps=20, cut_at=6.0,
                           extra_output_args=["-g", "20", "-bf", "2"]))


def test_plan_covers_every_frame_once_on_the_stride_grid(cut_clip):
    options = AnnotateOptions(progress=False, segments=4, stride=3)
    ranges = plan_segments(cut_clip, options)
    assert len(ranges) == 4
    assert ranges[0][0] == 0 and ranges[-1][1] is None
    for (first, last), (next_first, _) in zip(ranges, ranges[1:]):
        assert first % 3 == 0 and next_first % 3 == 0
        assert next_first <= last  # overlap, so tracks can be matched across the seam
    assert plan_segments(cut_clip, AnnotateOptions(progress=False, segments=1)) == [(0, None)]


@pytest.mark.parametrize("segments,stride", [(3, 1), (4, 2)])
def test_segmented_equals_single_pass(cut_clip, segments, stride):
    options = AnnotateOptions(progress=False, segments=segments, stride=stride)
    single = rows_of(smooth(analyse(cut_clip, options).faces, options.smoothing), "cut", cut_clip.path)
    joined = rows_of(smooth(analyse_segmented(cut_clip, options).faces, options.smoothing), "cut", cut_clip.path)

    assert single["track_id"].nunique() == 4  # two faces before the cut, two new ones after
    merged = single.merge(joined, on=["frame_index", "track_id"], how="outer", suffixes=("", "_seg"),
                          indicator=True)
    assert (merged["_merge"] == "both").all(), "segmented run has other (frame, track) rows"
    boxes = merged[["x", "y", "w", "h"]].to_numpy() - merged[["x_seg", "y_seg", "w_seg", "h_seg"]].to_numpy()
    assert np.abs(boxes).max() <= BOX_TOLERANCE_PX
    raw = [c for c in single.columns if c.startswith("raw_")]
    probs = merged[raw].to_numpy() - merged[[f"{c}_seg" for c in raw]].to_numpy()
    assert np.abs(probs).max() <= PROBABILITY_TOLERANCE
    assert (np.abs(probs).max(axis=1) < 1e-6).mean() >= 0.85  # most rows are bit-identical
    assert (merged["label"].astype(str) == merged["label_seg"].astype(str)).mean() >= 0.99


# --- a segment's decoder seeks, yet yields the frames of a single pass --------------------------

GOP = 10
GOP_ARGS = ["-bf", "2", "-g", str(GOP)]
X264_GOP = ["-c:v", "libx264", "-preset", "ultrafast", *GOP_ARGS, "-pix_fmt", "yuv420p"]


@pytest.fixture(scope="module")
def seek_clips(tmp_path_factory):
    """Small clips with a keyframe every GOP frames and B-frames: constant 25 fps (MP4 with
    audio, the same in Matroska and MPEG-TS, and an MP4 cut with -c copy away from a keyframe,
    so that its edit list hides the first frames), and a variable-frame-rate MP4 (frames of a
    25 fps source dropped irregularly, timestamps kept)."""
    folder = tmp_path_factory.mktemp("seek")
    cfr = make_clip(folder / "cfr.mp4", seconds=6.0, width=320, height=180, fps=25, extra_output_args=GOP_ARGS)
    clips = {"cfr": cfr}
    for name, extra in (("mkv", []), ("ts", ["-f", "mpegts"])):
        clips[name] = folder / f"cfr.{name}"
        ffmpeg("-i", cfr, "-c", "copy", *extra, clips[name])
    clips["trimmed"] = folder / "trimmed.mp4"
    ffmpeg("-ss", "1.3", "-i", cfr, "-c", "copy", clips["trimmed"])
    face, canvas, actors = astronaut_face(), background(320, 180), two_actors(320)
    source = encode_frames(folder / "vfr_source.mp4", (sample_frame(canvas, face, actors, i / 25) for i in range(150)),
                           320, 180, 25, X264_GOP)
    clips["vfr"] = folder / "vfr.mp4"
    select = r"select='not(eq(mod(n\,4)\,1)+eq(mod(n\,4)\,2))+not(mod(n\,3))'"
    ffmpeg("-i", source, "-vf", select, "-fps_mode", "vfr", *X264_GOP, clips["vfr"])
    return {name: probe(path) for name, path in clips.items()}


def single_pass(info, stride=1):
    return [(f.index, f.time, f.image) for f in read_frames(info, stride)]


def assert_same_frames(segment, whole, first, last, stride):
    want = whole[first : None if last is None else last + 1 : stride]
    assert [(i, t) for i, t, _ in segment] == [(i, t) for i, t, _ in want]  # exactly: same indices, same times
    assert all(np.array_equal(a, b) for (*_, a), (*_, b) in zip(segment, want))


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
@pytest.mark.parametrize("stride", [1, 3])
def test_segment_yields_the_indices_and_times_of_a_single_pass(seek_clips, kind, stride):
    info = seek_clips[kind]
    whole = single_pass(info)
    n = len(whole)
    if kind == "vfr":
        assert len(np.unique(np.round(np.diff([t for _, t, _ in whole]), 3))) >= 2, "the clip is not VFR"
    index = frame_index(info.path)
    assert index is not None and len(index) == n
    keyframes = np.flatnonzero(index.keyframe)
    assert len(keyframes) >= 4
    # On a keyframe, just after one, just before one, in the middle, up to the end.
    for first, last in [(keyframes[2], keyframes[2] + 20), (keyframes[1] + 1, n // 2), (keyframes[3] - 1, None),
                        (n // 2, None), (n - 7, None), (n // 3, n // 3 + stride)]:
        first = -(-int(first) // stride) * stride  # on the stride grid, as plan_segments puts it
        stats = DecodeStats()
        segment = [(f.index, f.time, f.image) for f in read_frames(info, stride, stats, first, last)]
        assert_same_frames(segment, whole, first, last, stride)
        assert stats.skipped > 0, f"frames {first}-{last} were decoded from the start"
        assert stats.decoded == n if last is None else stats.decoded > segment[-1][0]


def test_a_late_segment_decodes_only_its_own_frames(seek_clips):
    info = seek_clips["cfr"]
    n = info.expected_frames
    stats = DecodeStats()
    frames = list(read_frames(info, 2, stats, first=n - 20))
    assert [f.index for f in frames] == list(range(n - 20, n, 2))
    assert stats.decoded == n  # the frame count as a single pass has it
    assert stats.work <= 20 + GOP  # from the keyframe before frame n - 20, not from frame 0
    whole = DecodeStats()
    list(read_frames(info, 2, whole))
    assert (whole.decoded, whole.skipped, whole.work) == (n, 0, n)


@pytest.mark.parametrize("kind,seeks", [("mkv", True), ("trimmed", True), ("ts", False)])
def test_segments_in_other_containers(seek_clips, kind, seeks):
    """Matroska seeks; an edit list's hidden leading frames are not counted; MPEG-TS (whose
    timestamps ffmpeg may rewrite when decoding) decodes from the start."""
    info = seek_clips[kind]
    whole = single_pass(info)
    assert (frame_index(info.path) is not None) == seeks
    first = len(whole) // 2
    stats = DecodeStats()
    segment = [(f.index, f.time, f.image) for f in read_frames(info, 1, stats, first, first + 15)]
    assert_same_frames(segment, whole, first, first + 15, 1)
    assert (stats.skipped > 0) == seeks


def test_a_seek_that_misses_its_frame_falls_back_to_decoding_from_the_start(seek_clips, monkeypatch, caplog):
    """As if the demuxer landed after frame `first`: the first frame decoded is not the one the
    index puts there, so nothing is yielded from that seek and the segment decodes from 0."""
    info = seek_clips["cfr"]
    whole = single_pass(info)
    first = len(whole) // 2
    late = [(float(whole[first + 3][1]) - 0.01, first + 3)]
    monkeypatch.setattr(FrameIndex, "seek_points", lambda self, first: late)
    stats = DecodeStats()
    with caplog.at_level(logging.INFO, logger="fer_video.video"):
        segment = [(f.index, f.time, f.image) for f in read_frames(info, 1, stats, first, None)]
    assert_same_frames(segment, whole, first, None, 1)
    assert stats.skipped == 0
    assert "decoded from the start" in caplog.text


def test_a_truncated_video_fails_in_its_segments_too(tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", seconds=4.0, width=320, height=180, fps=25, actors=[],
                      extra_output_args=[*GOP_ARGS, "-movflags", "+faststart"])
    data = whole.read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    info = probe(cut)
    with pytest.raises(InputError, match="truncated"):
        list(read_frames(info, 1, DecodeStats(), first=60))
