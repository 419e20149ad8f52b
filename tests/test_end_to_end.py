"""`fer-video annotate` end to end, as a user runs it: the CLI in a subprocess, the Prefect flow in
ephemeral mode, real ffmpeg, BlazeFace, the expression model, Parquet and MP4 out.

Three runs per session: the two-face clip with default options, the same clip with --stride 3,
and a short clip with --no-video.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fer_video.expression.labels import EMOTIONS
from fer_video.timeline.schema import RAW, SCHEMA, SMOOTH, TimelineMetadata
from fer_video.video import probe, read_frames
from helpers import ffmpeg_info, hidden_partials, read_timeline, run_cli


class Run:
    def __init__(self, proc, out: Path, clip):
        self.proc, self.out, self.clip = proc, out, clip
        self.timeline = out / f"{clip.path.stem}.parquet"
        self.video = out / f"{clip.path.stem}.mp4"

    def check_ok(self):
        assert self.proc.returncode == 0, self.proc.stderr
        assert "Traceback" not in self.proc.stderr


@pytest.fixture(scope="session")
def default_run(two_face_clip, tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("e2e_default")
    return Run(run_cli("annotate", two_face_clip.path, "--out", out, "--quiet"), out, two_face_clip)


@pytest.fixture(scope="session")
def stride_run(two_face_clip, tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("e2e_stride")
    return Run(run_cli("annotate", two_face_clip.path, "--out", out, "--stride", "3", "--quiet"), out, two_face_clip)


@pytest.fixture(scope="session")
def no_video_run(good_small_clip, tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("e2e_no_video")
    return Run(run_cli("annotate", good_small_clip.path, "--out", out, "--no-video", "--quiet"), out, good_small_clip)


@pytest.fixture(scope="session")
def default_rows(default_run):
    default_run.check_ok()
    return read_timeline(default_run.timeline)


def test_annotate_exits_0_and_reports_outputs(default_run):
    default_run.check_ok()
    assert default_run.timeline.exists() and default_run.video.exists()
    line = default_run.proc.stdout.strip().splitlines()[-1]
    assert str(default_run.timeline) in line and str(default_run.video) in line
    assert hidden_partials(default_run.out) == []


def test_each_face_found_in_95_percent_of_frames_with_one_stable_id(default_rows, two_face_clip):
    rows, _ = default_rows
    frames = two_face_clip.frames
    centre_x = rows.x + rows.w / 2
    left, right = rows[centre_x < two_face_clip.width / 2], rows[centre_x >= two_face_clip.width / 2]
    # The scene has exactly two faces: one on the left, one on the right.
    assert left.frame_index.nunique() >= 0.95 * frames
    assert right.frame_index.nunique() >= 0.95 * frames
    assert rows.track_id.nunique() == 2, rows.groupby("track_id").size().to_dict()
    for track, group in rows.groupby("track_id"):
        assert group.frame_index.nunique() >= 0.95 * frames, f"track {track}"
        sides = (group.x + group.w / 2 < two_face_clip.width / 2).unique()
        assert len(sides) == 1, f"track {track} jumped between the two faces"
    assert not rows.duplicated(["frame_index", "track_id"]).any()


def test_parquet_schema_and_row_count(default_run, default_rows):
    schema = pq.read_schema(default_run.timeline)
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in SCHEMA]
    rows, _ = default_rows
    reported = re.search(r"(\d+) face rows", default_run.proc.stdout)
    assert reported and len(rows) == int(reported.group(1))
    # One row per (frame, face): the per-frame counts add up to the rows.
    assert rows.groupby("frame_index").size().sum() == len(rows)
    assert (rows.video_id == default_run.clip.path.stem).all()
    assert (rows.source_path == str(default_run.clip.path.resolve())).all()


def test_timeline_metadata(default_run, default_rows, two_face_clip):
    _, meta = default_rows
    expected_keys = set(TimelineMetadata.__dataclass_fields__)
    assert expected_keys <= set(meta)
    assert meta["width"] == two_face_clip.width and meta["height"] == two_face_clip.height
    assert meta["fps"] == pytest.approx(two_face_clip.fps)
    assert meta["frame_count"] == two_face_clip.frames
    assert meta["duration_s"] == pytest.approx(two_face_clip.frames / two_face_clip.fps, abs=0.05)
    assert meta["stride"] == 1 and meta["rotation"] == 0 and meta["has_audio"] is True
    assert meta["detector"] == "blazeface" and meta["smoothing"] == "window:0.5"
    assert meta["source_path"] == str(two_face_clip.path.resolve())
    assert TimelineMetadata.from_schema(pq.read_schema(default_run.timeline)).frame_count == two_face_clip.frames


def test_probabilities_labels_and_times(default_rows, two_face_clip):
    rows, _ = default_rows
    for columns in (RAW, SMOOTH):
        p = rows[columns].to_numpy(np.float64)
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
        np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-4)
    p = rows[SMOOTH].to_numpy()
    assert (rows.label.astype(str).to_numpy() == np.array(EMOTIONS)[p.argmax(axis=1)]).all()
    np.testing.assert_allclose(rows.confidence, p.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(rows.timestamp_s, rows.frame_index / two_face_clip.fps, atol=1e-3)
    assert (rows.det_score > 0.4).all() and (rows.det_score <= 1).all()
    assert ((rows.w > 20) & (rows.h > 20)).all()


def test_annotated_mp4_is_h264_yuv420p_with_audio_and_every_frame(default_run, two_face_clip):
    text = ffmpeg_info(default_run.video)
    assert re.search(r"Video: h264\b", text), text
    assert "yuv420p" in text
    assert "Audio:" in text
    info = probe(default_run.video)
    assert (info.width, info.height) == (two_face_clip.width, two_face_clip.height)
    assert info.fps == two_face_clip.fps
    assert info.has_audio
    frames = list(read_frames(info))
    assert len(frames) == two_face_clip.frames
    np.testing.assert_allclose([f.time for f in frames], np.arange(len(frames)) / two_face_clip.fps, atol=1e-3)



def test_annotated_mp4_shows_the_source_with_drawings_at_the_faces(default_run, default_rows, two_face_clip):
    annotated = next(iter(read_frames(probe(default_run.video)))).image.astype(int)
    source = next(iter(read_frames(probe(two_face_clip.path)))).image.astype(int)
    difference = np.abs(annotated - source).mean(axis=2)
    rows, _ = default_rows
    near_faces = np.zeros(difference.shape, bool)
    for x, y, w, h in rows.loc[rows.frame_index == 0, ["x", "y", "w", "h"]].to_numpy().astype(int):
        near_faces[max(y - 25, 0) : y + h + 40, max(x - 5, 0) : x + w + 80] = True  # box, label, bar
    assert difference[~near_faces].mean() < 4, "away from the faces it is the source picture"
    assert difference[near_faces].mean() > 2 * difference[~near_faces].mean() + 2, "boxes and labels drawn"


def test_no_video_writes_the_timeline_only(no_video_run):
    no_video_run.check_ok()
    assert no_video_run.timeline.exists()
    assert not no_video_run.video.exists()
    assert not list(no_video_run.out.glob("*.mp4"))
    assert hidden_partials(no_video_run.out) == []
    rows, meta = read_timeline(no_video_run.timeline)
    assert len(rows) > 0 and meta["frame_count"] == no_video_run.clip.frames


def test_stride_analyses_every_third_frame_and_renders_every_frame(stride_run, two_face_clip):
    stride_run.check_ok()
    rows, meta = read_timeline(stride_run.timeline)
    assert (rows.frame_index % 3 == 0).all()
    # Both faces are in every analysed frame.
    assert set(rows.frame_index) == set(range(0, two_face_clip.frames, 3))
    assert rows.track_id.nunique() == 2
    assert meta["stride"] == 3 and meta["frame_count"] == two_face_clip.frames
    np.testing.assert_allclose(rows.timestamp_s, rows.frame_index / two_face_clip.fps, atol=1e-3)
    info = probe(stride_run.video)
    assert (info.width, info.height) == (two_face_clip.width, two_face_clip.height)
    assert sum(1 for _ in read_frames(info)) == two_face_clip.frames


def test_ctrl_c_stops_a_run_at_once_and_leaves_no_output(tmp_path):
    """SIGINT in the middle of the analysis: exit 130 with one line, promptly (the analysis runs
    in the flow's own thread, not a pool thread that would run on to the end), nothing written."""
    import os
    import signal
    import subprocess
    import time

    from fer_video.samples import make_clip
    from helpers import REPO, cli_command

    clip = make_clip(tmp_path / "long.mp4", seconds=90, width=640, height=360, fps=25)
    out = tmp_path / "out"
    proc = subprocess.Popen([*cli_command(), "annotate", str(clip), "--out", str(out)], cwd=REPO,
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    while "analyse long.mp4" not in seen:  # tqdm's bar: the analysis has started
        char = proc.stderr.read(1)
        assert char, f"the run ended before its analysis started: {seen}"
        seen += char
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    stdout, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 5, "finishing the analysis of the 90 s clip takes longer"
    assert proc.returncode == 130, stderr
    lines = [line for line in (seen + stderr).replace("\r", "\n").splitlines()
             if line.strip() and "analyse long.mp4" not in line and not line.startswith("fer-video: annotating")]
    assert lines == ["fer-video: error: interrupted"], lines
    assert not out.exists() or [p.name for p in out.iterdir()] == []
