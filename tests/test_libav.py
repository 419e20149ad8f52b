"""Decoding in this process (fer_video.video.libav, PyAV) gives what the ffmpeg binary's pipe
gives: the same frames byte for byte, with the same numbers and timestamps and the same checks of
a short file; and videos it would not pass through untouched still go to the binary."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fer_video.errors import InputError
from fer_video.video import DecodeStats, probe, read_frames
from fer_video.video import libav
from fer_video.video.read import _decode
from helpers import ffmpeg

pytest.importorskip("av", reason="PyAV is a dependency (pyproject.toml); without it every video goes to the binary")


def _by_binary(info, stride: int = 1):
    stats = DecodeStats()
    frames = [(f.index, f.time, f.pixels) for f in _decode(info, stride, stats, 0, None, None)]
    return frames, stats


def _in_process(info, stride: int = 1):
    assert libav.handles(info, 0, None)
    stats = DecodeStats()
    frames = [(f.index, f.time, f.pixels) for f in read_frames(info, stride, stats)]
    return frames, stats


def _same(a, b) -> None:
    assert [(i, t) for i, t, _ in a] == [(i, t) for i, t, _ in b]
    for (i, _, x), (_, _, y) in zip(a, b):
        assert x.shape == y.shape and x.flags.writeable and np.array_equal(x, y), f"frame {i} differs"


@pytest.mark.parametrize("stride", [1, 3])
def test_a_clip_decodes_in_process_as_the_binary_decodes_it(two_face_clip, stride):
    info = probe(two_face_clip.path)
    ours, stats = _in_process(info, stride)
    theirs, binary_stats = _by_binary(info, stride)
    _same(ours, theirs)
    assert len(ours) == -(-two_face_clip.frames // stride)
    assert dataclasses.asdict(stats) == dataclasses.asdict(binary_stats)


def test_variable_rate_timestamps_are_the_binarys(vfr_clip):
    info = probe(vfr_clip.path)
    ours, stats = _in_process(info)
    theirs, binary_stats = _by_binary(info)
    _same(ours, theirs)
    assert [t for _, t, _ in ours] == pytest.approx([k / vfr_clip.fps for k in vfr_clip.kept], abs=1e-6)
    assert stats.end == binary_stats.end


def test_a_video_that_starts_after_its_audio_keeps_its_offset(tmp_path, two_face_clip):
    late = tmp_path / "late.mp4"  # the video 0.3 s after the audio, as `write`'s tests make it
    ffmpeg("-itsoffset", "0.3", "-i", two_face_clip.path, "-i", two_face_clip.path, "-map", "0:v", "-map", "1:a",
           "-c", "copy", late)
    info = probe(late)
    ours, _ = _in_process(info)
    theirs, _ = _by_binary(info)
    _same(ours, theirs)
    assert ours[0][1] == pytest.approx(0.3, abs=0.01)


def test_a_file_cut_short_is_refused_or_warned_about_as_before(bad_inputs):
    info = probe(bad_inputs["faststart_cut"])
    assert libav.handles(info, 0, None)
    with pytest.raises(InputError, match="truncated or corrupt: decoded"):
        list(read_frames(info))


def test_what_the_binary_must_transform_or_seek_goes_to_the_binary(rotated_clip, odd_clip, two_face_clip, tmp_path):
    assert not libav.handles(probe(rotated_clip.path), 0, None)  # turned upright by ffmpeg
    assert not libav.handles(probe(odd_clip.path), 0, None)  # 4:4:4, odd sides: BGR through the pipe
    info = probe(two_face_clip.path)
    assert not libav.handles(info, 40, None) and not libav.handles(info, 0, 50)  # segments seek
    full = tmp_path / "full_range.mp4"
    ffmpeg("-i", two_face_clip.path, "-vf", "scale=out_range=pc", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuvj420p", "-an", full)
    assert not libav.handles(probe(full), 0, None)  # its range is converted by the binary


def test_timestamps_print_as_ffmpeg_prints_them():
    assert libav.time_string_value(1 / 30) == 0.0333333
    assert libav.time_string_value(898 / 30) == 29.933333
    assert libav.time_string_value(13.3) == 13.3
    assert libav.time_string_value(0.0) == 0.0


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="reads threads' niceness from Linux's /proc")
def test_decoding_in_process_runs_behind_the_analysis(two_face_clip):
    """As the ffmpeg process it replaces does: the thread that decodes ahead, at CODEC_NICENESS."""
    import os
    import threading

    from fer_video.video.prefetch import prefetch
    from fer_video.resources import CODEC_NICENESS

    info = probe(two_face_clip.path)
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    expected = min(19, mine + CODEC_NICENESS)
    frames = prefetch(lambda: (os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) for _ in read_frames(info)),
                      behind=libav.handles(info, 0, None))
    niceness = next(frames)
    frames.close()
    assert niceness == expected
    assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # that thread alone


def test_choosing_the_decoder_does_not_import_pyav(two_face_clip):
    """The analysis asks before the decoding thread starts: importing PyAV (0.1 s) is left to
    that thread, beside the models loading."""
    import subprocess
    import sys

    code = ("import sys; from fer_video.video import probe, libav; "
            f"assert libav.handles(probe({str(two_face_clip.path)!r}), 0, None); print('av' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_matroska_decodes_in_process_and_mpeg_ts_goes_to_the_binary(tmp_path, two_face_clip):
    """MPEG-TS has timestamp discontinuities, for which ffmpeg moves the start by the streams it
    uses (the video alone): left to it. Matroska's times are the binary's in process too."""
    mkv, ts = tmp_path / "copy.mkv", tmp_path / "copy.ts"
    ffmpeg("-i", two_face_clip.path, "-c", "copy", mkv)
    ffmpeg("-i", two_face_clip.path, "-c", "copy", "-f", "mpegts", ts)
    assert not libav.handles(probe(ts), 0, None)
    info = probe(mkv)
    ours, stats = _in_process(info)
    theirs, binary_stats = _by_binary(info)
    _same(ours, theirs)
    assert dataclasses.asdict(stats) == dataclasses.asdict(binary_stats)
