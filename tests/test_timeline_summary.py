"""Summaries of timelines written with hand-set probabilities: label changes at known frames,
a stride, a face that leaves and comes back, ties, a video with no faces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fer_video.expression.labels import EMOTIONS
from fer_video.timeline import TimelineMetadata, load
from fer_video.timeline.schema import RAW, SMOOTH
from fer_video.timeline.write import write_timeline


def write(folder, video: str, tracks: dict[int, list[tuple[int, int, str]]], fps: float = 25.0,
          stride: int = 1, frame_count: int = 250):
    """A timeline whose track `t` shows `emotion` (p 0.7, the rest 0.05) in frames a, a+stride, ...
    below b, for each (a, b, emotion) of tracks[t]; p rises by 0.001 per frame so peaks are known."""
    rows = []
    for track, segments in tracks.items():
        for a, b, emotion in segments:
            for frame in range(a, b, stride):
                p = np.full(len(EMOTIONS), 0.05)
                p[EMOTIONS.index(emotion)] = 0.7 + 0.001 * frame
                rows.append({"video_id": video, "source_path": f"/clips/{video}.mp4", "frame_index": frame,
                             "timestamp_s": frame / fps, "track_id": track, "x": 1.0, "y": 2.0, "w": 50.0,
                             "h": 60.0, "det_score": 0.9, **dict(zip(RAW, p)), **dict(zip(SMOOTH, p)),
                             "label": emotion, "confidence": p.max()})
    columns = ["video_id", "source_path", "frame_index", "timestamp_s", "track_id", "x", "y", "w", "h",
               "det_score", *RAW, *SMOOTH, "label", "confidence"]
    frame = pd.DataFrame(rows, columns=columns)
    meta = TimelineMetadata(source_path=f"/clips/{video}.mp4", width=640, height=360, fps=fps,
                            duration_s=frame_count / fps, frame_count=frame_count, stride=stride, rotation=0,
                            has_audio=False, model_name="hand", model_version="1", detector="none",
                            smoothing="none", software_version="test")
    return write_timeline(frame, meta, folder / f"{video}.parquet")


@pytest.fixture
def folder(tmp_path):
    # meeting: 25 fps. Track 1: neutral 0-99, happy 100-174, neutral 175-249 (changes at 4 s, 7 s).
    # Track 3: surprise 50-119, gone 120-149, sad 150-249.
    write(tmp_path, "meeting", {1: [(0, 100, "neutral"), (100, 175, "happy"), (175, 250, "neutral")],
                                3: [(50, 120, "surprise"), (150, 250, "sad")]})
    # talk: 30 fps, every 3rd frame analysed. Track 2: happy 0-59 (20 rows), angry 60-119 (20 rows).
    write(tmp_path, "talk", {2: [(0, 60, "happy"), (60, 120, "angry")]}, fps=30, stride=3, frame_count=120)
    write(tmp_path, "empty", {}, frame_count=50)  # no face at all
    return tmp_path


def test_summary_per_track(folder):
    from fer_video.timeline.summary import summary

    table = summary(folder).set_index(["video_id", "track_id"])
    assert list(table.index) == [("meeting", 1), ("meeting", 3), ("talk", 2)]
    one, three, talk = (table.loc[k] for k in table.index)

    assert (one["frames"], one["time_on_screen_s"], one["first_s"], one["last_s"]) == (250, 10.0, 0.0, 9.96)
    assert (one["dominant"], one["changes"]) == ("neutral", 2)
    assert (one["share_neutral"], one["share_happy"], one["share_sad"]) == (0.7, 0.3, 0.0)
    assert (one["peak_happy_s"], one["peak_happy_p"]) == (174 / 25, pytest.approx(0.874))
    assert one["peak_neutral_s"] == 249 / 25

    # Left at frame 120 and came back at 150: only the frames seen count, the change across the gap too.
    assert (three["frames"], three["time_on_screen_s"]) == (170, 170 / 25)
    assert (three["first_s"], three["last_s"], three["changes"], three["dominant"]) == (2.0, 9.96, 1, "sad")
    assert three["share_surprise"] == pytest.approx(70 / 170)

    # Stride 3 at 30 fps: each analysed frame stands for 0.1 s. 40 rows -> 4 s. 20 / 20 is a tie,
    # broken by the summed probability: angry's frames come later, so their p is higher.
    assert (talk["frames"], talk["time_on_screen_s"], talk["last_s"]) == (40, pytest.approx(4.0), 117 / 30)
    assert (talk["share_happy"], talk["share_angry"], talk["dominant"], talk["changes"]) == (0.5, 0.5, "angry", 1)


def test_summary_per_video(folder):
    from fer_video.timeline.summary import summary

    table = summary(folder, by="video").set_index("video_id")
    assert list(table.index) == ["empty", "meeting", "talk"]
    assert table.loc["meeting", ["duration_s", "tracks", "frames", "time_on_screen_s", "changes"]].tolist() \
        == [10.0, 2, 250, 10.0, 3]
    assert table.loc["meeting", "share_sad"] == pytest.approx(100 / 420)
    assert table.loc["meeting", "peak_sad_track"] == 3 and table.loc["meeting", "peak_happy_track"] == 1
    assert table.loc["empty", ["duration_s", "tracks", "frames", "time_on_screen_s"]].tolist() == [2.0, 0, 0, 0.0]
    assert pd.isna(table.loc["empty", "dominant"])
    assert table.loc["talk", "time_on_screen_s"] == pytest.approx(4.0)


def test_summary_of_a_time_window_and_filters(folder):
    from fer_video.timeline.summary import summary

    window = summary(folder, video="meeting", track=1, start=3.0, end=8.0).iloc[0]
    assert (window["frames"], window["time_on_screen_s"], window["changes"]) == (125, 5.0, 2)
    assert window["share_happy"] == pytest.approx(75 / 125)
    with pytest.raises(ValueError, match="no video 'nope'"):
        summary(folder, video="nope")


def test_load_reads_every_timeline_and_ignores_hidden_files(folder):
    (folder / ".meeting.parquet.part").write_bytes(b"PAR1 half written")
    (folder / ".old.parquet").write_bytes(b"not even parquet")
    (folder / "meeting.mp4").write_bytes(b"not parquet either")
    rows = load(folder)
    assert len(rows) == 250 + 170 + 40
    assert rows.groupby("video_id").size().to_dict() == {"meeting": 420, "talk": 40}
    assert rows[["video_id", "frame_index", "track_id"]].equals(
        rows.sort_values(["video_id", "frame_index", "track_id"])[["video_id", "frame_index", "track_id"]])
    assert len(load(folder, label="happy")) == 75 + 20
    assert len(load(folder, start=4.0, end=4.04)) == 2  # frame 100 of tracks 1 and 3 (4.0 <= t < 4.04)


def test_query_over_hand_made_timelines(folder):
    from fer_video.timeline.query import query

    got = query(folder, """
        SELECT video_id, track_id, count(*) * any_value(frame_step_s) AS seconds
        FROM timeline JOIN videos USING (video_id) WHERE label = 'happy' GROUP BY ALL ORDER BY ALL""")
    assert got.values.tolist() == [["meeting", 1, pytest.approx(3.0)], ["talk", 2, pytest.approx(2.0)]]
    assert query(folder, "SELECT count(*) AS n FROM videos")["n"][0] == 3
    with pytest.raises(ValueError, match="^SQL error: Catalog Error: Table with name timelines does not exist"):
        query(folder, "SELECT * FROM timelines")
    with pytest.raises(ValueError, match="empty SQL"):
        query(folder, "  ")


def test_format_table_aligns_columns():
    from fer_video.timeline.query import format_table

    text = format_table(pd.DataFrame({"name": ["a", "long name"], "n": [1, 12345], "x": [0.5, 1 / 3],
                                      "gone": [None, np.nan]}))
    assert text.splitlines() == [
        "name           n       x  gone",
        "---------  -----  ------  ----",
        "a              1     0.5",
        "long name  12345  0.3333",
        "(2 rows)",
    ]


def test_plots_of_a_video_without_faces(folder):
    from PIL import Image

    from fer_video.timeline.plot import plot_video, shares_size_px, timeline_size_px

    paths = plot_video(folder, "empty")
    with Image.open(paths["timeline"]) as image:
        assert image.size == timeline_size_px(0) == timeline_size_px(1)
    with Image.open(paths["shares"]) as image:
        assert image.size == shares_size_px(0)
    paths = plot_video(folder, "talk", dpi=80)
    with Image.open(paths["timeline"]) as image:
        assert image.size == timeline_size_px(1, dpi=80) == (960, 320)
