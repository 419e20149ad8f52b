"""Time from the frames' own timestamps (issue 26, item 2): time on screen, first and last seen and
the seconds of each emotion come from each analysed frame's display time, so they hold at a
variable frame rate, where frames x stride / fps does not.

The clips are written here with known truth: the sample face's frames, timed by `setpts` in a
1/600 s time base (exact for 50, 30 and 12.5 frames/s) and passed through unchanged."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_video.samples import Actor, astronaut_face, background, sample_frame
from fer_video.video.ffmpeg_binary import ffmpeg_exe, ffmpeg_path

WIDTH, HEIGHT = 480, 270
TICKS = 600  # time base 1/600 s


def frame_times(parts: list[tuple[int, float]]) -> tuple[list[Fraction], Fraction]:
    """Each frame's time, and the end, for `parts` of (frames, frames per second) in turn."""
    t, times = Fraction(0), []
    for n, fps in parts:
        step = 1 / Fraction(fps)
        times += [t + k * step for k in range(n)]
        t += n * step
    return times, t


def _setpts(parts: list[tuple[int, float]]) -> str:
    """A setpts expression giving frame N its time in `parts`, in ticks of 1/600 s."""
    expr, first, start = None, 0, Fraction(0)
    for n, fps in parts:
        tick = TICKS / Fraction(fps)
        assert tick.denominator == 1 and (start * TICKS).denominator == 1
        here = f"({int(start * TICKS)}+(N-{first})*{int(tick)})"
        expr = here if expr is None else f"if(gte(N,{first}),{here},{expr})"
        first, start = first + n, start + n / Fraction(fps)
    return f"settb=1/{TICKS},setpts='{expr}'"


def write_clip(path: Path, frames: list[np.ndarray], parts: list[tuple[int, float]] | None = None,
               fps: float = 25) -> Path:
    """An H.264 MP4 of `frames`: at `fps` constant, or timed by `parts` (a variable rate)."""
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
            "-s", f"{WIDTH}x{HEIGHT}", "-framerate", str(fps), "-i", "pipe:"]
    if parts is not None:
        assert sum(n for n, _ in parts) == len(frames)
        args += ["-vf", _setpts(parts), "-fps_mode", "passthrough", "-enc_time_base:v", f"1/{TICKS}",
                 "-video_track_timescale", str(TICKS)]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", ffmpeg_path(path)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE)
    for frame in frames:
        proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return path


# 30 frames/s for 1 s, 12.5 for 2 s, 30 for 1 s: 85 frames in 4 s, 21.25 frames/s on average.
PARTS = [(30, 30), (25, 12.5), (30, 30)]
SHOWN = (0.5, 3.5)  # the face is in the frames from 0.5 s to before 3.5 s: on screen for 3 s


@pytest.fixture(scope="module")
def vfr_run(tmp_path_factory):
    from fer_video.pipeline import AnnotateOptions, annotate

    folder = tmp_path_factory.mktemp("vfr")
    times, end = frame_times(PARTS)
    face, canvas = astronaut_face(), background(WIDTH, HEIGHT)
    actor = Actor(x=0.5, y=0.5, width=110)
    frames = [sample_frame(canvas, face, [actor] if SHOWN[0] <= t < SHOWN[1] else [], float(t)) for t in times]
    clip = write_clip(folder / "vfr.mp4", frames, PARTS)
    result = annotate(clip, AnnotateOptions(out_dir=folder / "out", progress=False, video=False))
    return clip, result.timeline, [float(t) for t in times], float(end)


def test_the_decoder_gives_each_frame_its_own_timestamp(vfr_run):
    from fer_video.video import probe, read_frames

    clip, _, times, _ = vfr_run
    decoded = [f.time for f in read_frames(probe(clip))]
    np.testing.assert_allclose(decoded, times, atol=1e-6)
    assert 20 < float(probe(clip).fps) < 22.5  # about the average: no one frame step fits


def test_time_on_screen_first_and_last_come_from_the_timestamps(vfr_run):
    from fer_video.timeline.summary import summary

    _, timeline, times, _ = vfr_run
    shown = [t for t in times if SHOWN[0] <= t < SHOWN[1]]
    track = summary(timeline)
    assert len(track) == 1
    row = track.iloc[0]
    assert row["frames"] == len(shown) == 55
    # Within one frame (1/30 s) of the truth, 3 s; 55 frames / 21.25 fps would be 2.59 s.
    assert row["time_on_screen_s"] == pytest.approx(SHOWN[1] - SHOWN[0], abs=1e-6)
    assert row["first_s"] == pytest.approx(shown[0], abs=1e-6)
    assert row["last_s"] == pytest.approx(shown[-1], abs=1e-6)
    video = summary(timeline, by="video").iloc[0]
    assert video["time_on_screen_s"] == pytest.approx(3.0, abs=1e-6)
    assert summary(timeline, by="person").iloc[0]["time_on_screen_s"] == pytest.approx(3.0, abs=1e-6)


def test_a_time_window_counts_each_frame_until_the_next_analysed_one(vfr_run):
    from fer_video.timeline.summary import summary

    _, timeline, _, _ = vfr_run
    # From 1 s to 3 s the clip runs at 12.5 frames/s: 25 frames of 0.08 s.
    window = summary(timeline, start=1.0, end=3.0).iloc[0]
    assert (window["frames"], window["time_on_screen_s"]) == (25, pytest.approx(2.0, abs=1e-6))
    # The last frame with the face is followed by an analysed frame without one: its end is
    # the metadata's, not the next row's.
    tail = summary(timeline, start=3.0).iloc[0]
    assert (tail["frames"], tail["time_on_screen_s"]) == (15, pytest.approx(0.5, abs=1e-6))


def test_query_seconds_are_the_summary_s(vfr_run):
    from fer_video.timeline.query import query
    from fer_video.timeline.summary import summary

    _, timeline, _, _ = vfr_run
    folder = timeline.parent
    seconds = query(folder, "SELECT track_id, sum(frame_duration_s) AS s FROM timeline GROUP BY 1")
    assert seconds["s"].tolist() == [pytest.approx(3.0, abs=1e-6)]
    by_label = query(folder, "SELECT label, sum(frame_duration_s) AS s FROM timeline GROUP BY 1")
    row = summary(folder).iloc[0]
    for label, s in zip(by_label["label"], by_label["s"]):
        assert s == pytest.approx(row[f"share_{label}"] * 3.0, abs=1e-5)
    slow = query(folder, "SELECT sum(frame_duration_s) AS s FROM timeline WHERE timestamp_s >= 1 AND timestamp_s < 3")
    assert slow["s"][0] == pytest.approx(2.0, abs=1e-6)


def test_a_constant_rate_clip_keeps_frames_times_stride_over_fps(tmp_path):
    """What the timestamps give at a constant rate is what frames x stride / fps gave."""
    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.samples import make_clip
    from fer_video.timeline import load
    from fer_video.timeline.summary import summary

    clip = make_clip(tmp_path / "cfr.mp4", seconds=2.0, width=WIDTH, height=HEIGHT, fps=30, audio=False)
    for stride in (1, 2):
        result = annotate(clip, AnnotateOptions(out_dir=tmp_path / f"out{stride}", progress=False, video=False,
                                                stride=stride))
        rows = load(result.timeline)
        table = summary(result.timeline)
        for _, row in table.iterrows():
            assert row["time_on_screen_s"] == pytest.approx(row["frames"] * stride / 30, abs=1e-6)
        assert len(table) and rows["track_id"].nunique() == len(table)


def test_a_segmented_run_records_the_same_frame_ends(vfr_run, tmp_path):
    import json

    import pyarrow.parquet as pq

    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.timeline.summary import summary

    clip, timeline, _, _ = vfr_run
    result = annotate(clip, AnnotateOptions(out_dir=tmp_path, progress=False, video=False, segments=2))

    def ends(path):
        return json.loads(pq.read_schema(path).metadata[b"fer_video"])["frame_ends"]

    assert ends(result.timeline) == ends(timeline)
    pd.testing.assert_frame_equal(summary(result.timeline)[["frames", "time_on_screen_s", "first_s", "last_s"]],
                                  summary(timeline)[["frames", "time_on_screen_s", "first_s", "last_s"]])


def test_the_whole_frame_scan_runs_every_quarter_second_of_timestamps():
    """The detector's schedule is in seconds: at 50 frames/s and then 12.5 (an average of 25, from
    which the schedule is set), the scheduled scans fall on the first frame of each 0.24 s, not
    on every 6th frame (0.12 s, then 0.48 s)."""
    from fer_video.faces.detectors import make_detector

    detector = make_detector("blazeface", frame_rate=25)
    times = [k / 50 for k in range(50)] + [1 + k / 12.5 for k in range(25)]
    image = background(WIDTH, HEIGHT)  # no face: nothing followed, so only the schedule matters
    scheduled = [i for i, t in enumerate(times)
                 if detector._starts(t, times[i - 1] if i else None, detector.scan_seconds)]
    expected = [i for i, t in enumerate(times) if i == 0 or int(t / 0.24 + 1e-3) != int(times[i - 1] / 0.24 + 1e-3)]
    assert scheduled == expected
    assert [round(times[i], 2) for i in scheduled[:6]] == [0.0, 0.24, 0.48, 0.72, 0.96, 1.24]
    for i, t in enumerate(times):
        detector(image, i, time=t)  # runs on timestamps without a frame ahead


def test_the_same_frames_at_a_constant_and_a_retimed_rate_give_one_track_on_every_frame(tmp_path):
    """Issue 26's retimed clip (50 frames/s slowed to 12.5: the same pixels, each frame shown 4x
    as long) against the constant-rate original. The schedules run in seconds of timestamps, so
    both keep the face in one track on every frame. (The issue's clip split into 7 tracks; a
    clip made here did not reproduce that split before the change, so this guards the result.)"""
    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.timeline import load

    face, canvas = astronaut_face(), background(WIDTH, HEIGHT)
    actor = Actor(x=0.4, y=0.5, width=110, dx=0.05, scale=0.1, period=1.2)
    frames = [sample_frame(canvas, face, [actor], i / 50) for i in range(60)]
    for name, parts in (("constant", [(60, 50)]), ("retimed", [(60, 12.5)])):
        clip = write_clip(tmp_path / f"{name}.mp4", frames, parts)
        rows = load(annotate(clip, AnnotateOptions(out_dir=tmp_path / name, progress=False, video=False)).timeline)
        assert rows["track_id"].nunique() == 1, (name, rows.groupby("track_id").size().to_dict())
        assert sorted(rows["frame_index"]) == list(range(60)), name


def test_frame_ends_names_each_face_frame_whose_next_analysed_frame_has_no_row():
    """`frame_ends` by its rule, one frame at a time, on random analysed frames, face frames and
    ends: a face frame's end is the next analysed frame's time when that frame has no row, the
    video's end for the last analysed frame, and nothing otherwise."""
    from fer_video.timeline.durations import frame_ends

    rng = np.random.default_rng(0)
    for case in range(300):
        index = np.sort(rng.choice(100, rng.integers(1, 40), replace=False))
        seconds = np.sort(rng.random(len(index))) * 10
        faces = rng.choice(110, rng.integers(0, 30))
        end = [None, 5.0, 11.0][case % 3]
        if end is None and len(seconds) > 1:
            video_end = seconds[-1] + np.median(np.diff(seconds))
        else:
            video_end = end
        expected = []
        for frame in sorted(set(faces.tolist()) & set(index.tolist())):
            k = int(np.searchsorted(index, frame))
            if k + 1 < len(index):
                if index[k + 1] not in faces:
                    expected.append([frame, float(seconds[k + 1])])
            elif video_end is not None and video_end > seconds[k]:
                expected.append([frame, float(video_end)])
        times = pd.Series(seconds, index=index).sample(frac=1, random_state=case)  # any order
        assert frame_ends(faces, times, end) == expected, case
