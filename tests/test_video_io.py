"""Video in and out through the ffmpeg binary: probe, frame streaming, the atomic writer."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from fer_video.samples import background
from fer_video.video import DecodeStats, VideoWriter, probe, read_frames
from helpers import encode_frames, ffmpeg_info, hidden_partials


def test_probe_two_face_clip(two_face_clip):
    info = probe(two_face_clip.path)
    assert (info.width, info.height) == (640, 360)
    assert info.fps == 25 and info.rotation == 0
    assert info.duration == pytest.approx(4.0, abs=0.05)
    assert info.expected_frames == two_face_clip.frames
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.has_audio
    assert not info.is_image


def test_probe_still_image(still_image):
    info = probe(still_image.path)
    assert info.is_image and (info.width, info.height) == (640, 480)
    frames = list(read_frames(info))
    assert len(frames) == 1 and frames[0].image.shape == (480, 640, 3) and frames[0].time == 0.0


def test_probe_ntsc_rate_is_exact(tmp_path):
    path = encode_frames(tmp_path / "ntsc.mp4", [background(160, 96)] * 15, 160, 96, "30000/1001",
                         ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
    assert probe(path).fps == Fraction(30000, 1001)


def test_read_frames_streams_every_frame_with_its_time(two_face_clip):
    stats = DecodeStats()
    frames = list(read_frames(probe(two_face_clip.path), stats=stats))
    assert [f.index for f in frames] == list(range(two_face_clip.frames))
    np.testing.assert_allclose([f.time for f in frames], np.arange(two_face_clip.frames) / 25, atol=1e-3)
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8
    assert stats.decoded == two_face_clip.frames
    assert stats.skipped == 0 and stats.work == two_face_clip.frames  # a whole pass never seeks
    # Each frame is an array of its own that may be drawn on (the live video draws in place).
    assert all(f.pixels.flags.writeable and f.pixels.flags.owndata for f in frames)


def test_read_frames_with_stride(two_face_clip):
    stats = DecodeStats()
    frames = list(read_frames(probe(two_face_clip.path), stride=3, stats=stats))
    assert [f.index for f in frames] == list(range(0, two_face_clip.frames, 3))
    np.testing.assert_allclose([f.time for f in frames], [f.index / 25 for f in frames], atol=1e-3)
    assert stats.decoded == two_face_clip.frames  # strided-out frames were decoded too
    whole = {f.index: f.image for f in read_frames(probe(two_face_clip.path))}
    assert all(np.array_equal(f.image, whole[f.index]) for f in frames)


def test_video_writer_is_atomic(tmp_path):
    out = tmp_path / "written.mp4"
    frame = background(160, 96)
    with VideoWriter(out, 160, 96, Fraction(25)) as writer:
        for _ in range(10):
            writer.write(frame)
        assert not out.exists(), "the final name appears only when the file is complete"
        [partial] = hidden_partials(tmp_path)
        assert partial == writer.partial and partial.name.startswith(".written.mp4.")
    assert out.exists() and hidden_partials(tmp_path) == []
    info = probe(out)
    assert (info.width, info.height, info.fps) == (160, 96, 25) and not info.has_audio
    assert sum(1 for _ in read_frames(info)) == 10


def test_video_writer_leaves_nothing_when_the_work_fails(tmp_path):
    out = tmp_path / "failed.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, 160, 96, Fraction(25)) as writer:
            writer.write(background(160, 96))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_video_writer_refuses_a_wrong_frame_size(tmp_path):
    writer = VideoWriter(tmp_path / "x.mp4", 160, 96, Fraction(25))
    try:
        with pytest.raises(ValueError, match="shape"):
            writer.write(background(100, 96))
    finally:
        writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_video_writer_copies_the_audio(tmp_path, two_face_clip):
    out = tmp_path / "with_audio.mp4"
    source = probe(two_face_clip.path)
    with VideoWriter(out, 640, 360, source.fps, audio_from=str(two_face_clip.path),
                     audio_codec=source.audio_codec, preset="ultrafast") as writer:
        for frame in read_frames(source):
            writer.write(frame.image)
    text = ffmpeg_info(out)
    assert "Video: h264" in text and "yuv420p" in text and "Audio: aac" in text
    assert probe(out).duration == pytest.approx(source.duration, abs=0.1)


def _ffmpeg_bgr(path, width: int, height: int) -> np.ndarray:
    """The first frame as ffmpeg itself converts it to BGR."""
    import subprocess

    from fer_video.video.ffmpeg_binary import ffmpeg_exe

    data = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                           "-pix_fmt", "bgr24", "pipe:"], capture_output=True, check=True).stdout
    return np.frombuffer(data, np.uint8).reshape(height, width, 3)


def _ffmpeg_limited_i420(path, width: int, height: int) -> np.ndarray:
    """The first frame as I420 in limited range, converted by ffmpeg's scale filter."""
    import subprocess

    from fer_video.video.ffmpeg_binary import ffmpeg_exe

    data = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1", "-vf", "scale=out_range=tv",
                           "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:"], capture_output=True, check=True).stdout
    return np.frombuffer(data, np.uint8).reshape(height * 3 // 2, width)


@pytest.mark.parametrize("colour_range", ["limited", "full"])
def test_even_sized_frames_come_as_i420_and_convert_like_ffmpeg(tmp_path, colour_range):
    """Full range is what many phones record (yuvj420p): it must look the same as limited."""
    from fer_video.samples import astronaut_face

    image = background(320, 240)
    face = astronaut_face()
    image[:, 60 : 60 + face.shape[1]] = face
    pix_fmt = "yuvj420p" if colour_range == "full" else "yuv420p"
    path = encode_frames(tmp_path / f"{colour_range}.mp4", [image] * 3, 320, 240, 25,
                         ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", pix_fmt])
    assert (pix_fmt + "(pc" if colour_range == "full" else pix_fmt) in ffmpeg_info(path)
    info = probe(path)
    assert (info.pixel_format, info.full_range) == (pix_fmt, colour_range == "full")
    frame = next(iter(read_frames(info)))
    # Limited range comes as decoded; full range through swscale to limited: both as ffmpeg's
    # own range conversion gives them.
    assert np.array_equal(frame.pixels, _ffmpeg_limited_i420(path, 320, 240))
    assert frame.is_i420 and frame.pixels.shape == (240 * 3 // 2, 320)
    # OpenCV's conversion against swscale's, and against the picture encoded: the same up to
    # chroma interpolation.
    for reference in (_ffmpeg_bgr(path, 320, 240), image):
        difference = np.abs(frame.image.astype(int) - reference)
        assert difference.mean() < 2.5 and np.percentile(difference, 99) <= 12, (difference.mean(),
                                                                                 np.percentile(difference, 99))


def test_odd_sized_frames_come_as_bgr(odd_clip):
    frame = next(iter(read_frames(probe(odd_clip.path))))
    assert not frame.is_i420 and frame.pixels.shape == (361, 641, 3)
    assert np.array_equal(frame.image, _ffmpeg_bgr(odd_clip.path, 641, 361))


@pytest.mark.parametrize("clip", ["two_face_clip", "odd_clip"])
def test_a_thumbnail_is_the_frame_shrunk(clip, request):
    """From I420 planes (even sizes) or BGR (odd): what shrinking the BGR frame gives, up to the
    order of averaging and colour conversion (sharp colour edges differ most), and with the
    colours the shot-cut test counts: its histograms far closer than the cut threshold (0.5)."""
    import cv2

    from fer_video.faces.detectors.geometry import shrink

    def histogram(image):
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        return cv2.normalize(cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]), None)

    frame = next(iter(read_frames(probe(request.getfixturevalue(clip).path))))
    thumbnail, shrunk = frame.thumbnail(64, 36), shrink(frame.image, 64, 36)
    assert thumbnail.shape == (36, 64, 3) and thumbnail.dtype == np.uint8
    assert np.abs(thumbnail.astype(int) - shrunk).mean() < 3
    assert cv2.compareHist(histogram(thumbnail), histogram(shrunk), cv2.HISTCMP_BHATTACHARYYA) < 0.2


def test_video_writer_takes_i420_frames_as_decoded(tmp_path, two_face_clip):
    """I420 in, I420 out: frames passed through are re-encoded, not converted."""
    source = probe(two_face_clip.path)
    frames = [f.pixels for f in read_frames(source)][:10]
    out = tmp_path / "i420.mp4"
    with VideoWriter(out, 640, 360, source.fps, pix_fmt="yuv420p", preset="ultrafast", crf=0) as writer:
        for pixels in frames:
            writer.write(pixels)
        with pytest.raises(ValueError, match="shape"):
            writer.write(np.zeros((360, 640, 3), np.uint8))  # BGR to an I420 writer
    again = [f.pixels for f in read_frames(probe(out))]
    assert len(again) == 10
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))  # crf 0: lossless


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="reads threads' niceness from Linux's /proc")
def test_decoder_and_encoder_run_behind_the_analysis(tmp_path, rotated_clip, monkeypatch):
    """Every thread of the decoding and the encoding ffmpeg at CODEC_NICENESS below this process:
    the analysis gets the CPU first (docs/benchmarks.md). The clip is one the binary decodes
    (it turns it upright), not PyAV in this process."""
    import os
    import subprocess

    from fer_video.resources import CODEC_NICENESS

    started = []
    real_popen = subprocess.Popen

    def recording_popen(args, *a, **k):  # the real ffmpeg runs; the process is kept
        started.append((list(args), real_popen(args, *a, **k)))
        return started[-1][1]

    def niceness(proc) -> set[int]:
        return {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir(f"/proc/{proc.pid}/task")}

    source = probe(rotated_clip.path)
    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    expected = {min(19, os.getpriority(os.PRIO_PROCESS, 0) + CODEC_NICENESS)}
    frames = read_frames(source)
    first = next(iter(frames))
    [decoder] = [proc for args, proc in started if "rawvideo" in args and "libx264" not in args]
    assert niceness(decoder) == expected
    with VideoWriter(tmp_path / "out.mp4", 480, 270, source.fps, pix_fmt="yuv420p", preset="ultrafast") as writer:
        writer.write(first.pixels)
        [encoder] = [proc for args, proc in started if "libx264" in args]
        assert niceness(encoder) == expected
        assert niceness(decoder) == expected  # threads it started since too
    frames.close()


def test_decoder_and_encoder_run_on_codec_threads(tmp_path, two_face_clip, rotated_clip, monkeypatch):
    """Each ffmpeg runs its codec on `codec_threads()` (half the cores): beside the analysis, frame
    threads on every core cost CPU without making the command faster (docs/benchmarks.md). The
    decoder is the binary's for a clip it turns upright."""
    import subprocess

    from fer_video.resources import codec_threads

    started = []
    real_popen = subprocess.Popen

    def recording_popen(args, *a, **k):  # the real ffmpeg runs; its command line is kept
        started.append(list(args))
        return real_popen(args, *a, **k)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    list(read_frames(probe(rotated_clip.path)))
    source = probe(two_face_clip.path)
    frames = [f.pixels for f in read_frames(source)][:5]
    with VideoWriter(tmp_path / "out.mp4", 640, 360, source.fps, pix_fmt="yuv420p", preset="ultrafast",
                     audio_from=two_face_clip.path, audio_codec="aac") as writer:
        for pixels in frames:
            writer.write(pixels)
    [decoder] = [args for args in started if "rawvideo" in args and "pipe:" in args and "libx264" not in args]
    [encoder] = [args for args in started if "libx264" in args]
    threads = str(codec_threads())
    # The decoder's -threads comes before its input; the encoder's after every input (an output option).
    assert decoder[decoder.index("-threads") + 1] == threads and decoder.index("-threads") < decoder.index("-i")
    last_input = max(i for i, arg in enumerate(encoder) if arg == "-i")
    assert encoder[encoder.index("-threads") + 1] == threads and encoder.index("-threads") > last_input
    assert len(list(read_frames(probe(tmp_path / "out.mp4")))) == 5


def test_ffmpeg_log_lines_split_across_reads_are_read_whole():
    """The decoder's log is read in whatever pieces the pipe holds: a line cut between two reads
    is still one line, and a last line without its newline is kept."""
    import os
    import queue
    import threading
    import time

    from fer_video.video.read import _collect_stderr

    log = b"".join(b"[Parsed_showinfo_0 @ 0x1] n:%4d pts:%7d pts_time:%g duration:512\n" % (n, 512 * n, n / 30)
                   for n in range(40))
    log += b"[Parsed_showinfo_0 @ 0x1] color_range:tv\n\n[h264 @ 0x2] error while decoding MB 3 4"
    read_end, write_end = os.pipe()

    def write():
        for start in range(0, len(log), 37):  # pieces that cut lines anywhere
            os.write(write_end, log[start:start + 37])
            time.sleep(0.0005)
        os.close(write_end)

    threading.Thread(target=write).start()
    timestamps, other = queue.Queue(), []
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        _collect_stderr(pipe, timestamps, other)
    found = list(iter(timestamps.get, None))
    assert [n for n, _ in found] == list(range(40))
    np.testing.assert_allclose([t for _, t in found], np.arange(40) / 30, atol=1e-5)
    assert other == [b"", b"[h264 @ 0x2] error while decoding MB 3 4"]
