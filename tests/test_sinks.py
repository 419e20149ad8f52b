"""The sinks' protocol (fer_video.sinks): `append` a frame's faces, `close` the file atomically,
an exception inside the `with` leaves nothing; `feed` decodes the source only for a sink that
draws, and closes the sinks in their order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fer_video.faces.record import Faces, timeline_columns
from fer_video.sinks import Sink, by_frame, feed
from fer_video.sinks.timeline import ParquetSink
from fer_video.timeline.schema import TimelineMetadata
from fer_video.timeline.write import write_timeline

FRAMES = (0, 2, 6, 8)  # analysed with a stride of 2; frame 4 has no faces


def video_faces(frames=FRAMES) -> Faces:
    """Two faces a frame: tracks 0 and 1, one person ("ada" on track 0, unnamed on track 1)."""
    rng = np.random.default_rng(27)
    parts = []
    for frame in frames:
        parts.append(Faces(
            boxes=rng.uniform(0, 100, (2, 4)), scores=rng.uniform(0.5, 1, 2), keypoints=np.full((2, 6, 2), np.nan),
            track_ids=[0, 1], probs=rng.dirichlet(np.ones(7), 2), smoothed=rng.dirichlet(np.ones(7), 2),
            person_ids=[0, 0], persons=np.array(["ada", None], object),
        ).in_frame(frame, frame / 10))
    return Faces.concat(parts)


def metadata(**changes) -> TimelineMetadata:
    fields = {"source_path": "/videos/v.mp4", "width": 320, "height": 180, "fps": 10.0, "duration_s": 1.0,
              "frame_count": 10, "stride": 2, "rotation": 0, "has_audio": False, "model_name": "m",
              "model_version": "1", "detector": "d", "smoothing": "none", "software_version": "0", "job_key": "k",
              "video_id": "v", "frame_ends": [[8, 1.0]]}
    return TimelineMetadata(**{**fields, **changes})


def rows_of(faces: Faces, meta: TimelineMetadata) -> pd.DataFrame:
    """The rows DataFrame the pipeline gave `write_timeline` before the sinks."""
    return pd.DataFrame({"video_id": meta.video_id, "source_path": meta.source_path, **timeline_columns(faces)})


@pytest.mark.parametrize("frames", [FRAMES, ()], ids=["faces", "none"])
def test_parquet_sink_fed_frame_by_frame_writes_the_file_write_timeline_wrote(frames, tmp_path):
    faces, meta = video_faces(frames), metadata()
    before = write_timeline(rows_of(faces, meta), meta, tmp_path / "before.parquet")
    with ParquetSink(tmp_path / "v.parquet", meta) as sink:
        for frame_faces in by_frame(faces).values():
            sink.append(frame_faces)
    assert (tmp_path / "v.parquet").read_bytes() == before.read_bytes()


def test_a_data_column_is_a_column_of_the_timeline(tmp_path):
    faces, meta = video_faces(), metadata()
    faces.data["speaker"] = np.arange(len(faces)) % 2 == 0
    path = feed(None, faces, [ParquetSink(tmp_path / "v.parquet", meta)], SimpleNamespace(stride=2))[0]
    table = pq.read_table(path)
    assert table.column_names[-1] == "speaker"
    assert table.column("speaker").to_pylist() == faces.data["speaker"].tolist()
    before = pq.read_table(write_timeline(rows_of(faces, meta).drop(columns="speaker"), meta, tmp_path / "b.parquet"))
    assert table.drop(["speaker"]).equals(before)


def test_an_exception_inside_the_with_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), ParquetSink(tmp_path / "v.parquet", metadata()) as sink:
        sink.append(video_faces())
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_exception_inside_the_with_leaves_no_video(tmp_path):
    from fer_video.jobs import AnnotateOptions
    from fer_video.samples import make_clip
    from fer_video.sinks.video import VideoSink
    from fer_video.video import probe, read_frames

    info = probe(make_clip(tmp_path / "in.mp4", seconds=0.5, width=320, height=180, fps=10))
    out = tmp_path / "out"
    out.mkdir()
    faces = video_faces()
    options = AnnotateOptions(out_dir=out, progress=False)
    with pytest.raises(RuntimeError, match="boom"), VideoSink(info, out / "in.mp4", options, faces) as sink:
        for frame in read_frames(info):
            sink.append(by_frame(faces).get(frame.index, faces[0:0]), frame)
            if frame.index == 2:
                assert len(list(out.iterdir())) == 1  # the writer's temp file, three frames in it
                raise RuntimeError("boom")
    assert list(out.iterdir()) == []


class Recording(Sink):
    """What a sink is given, and when it is closed or discarded."""

    def __init__(self, log: list, name: str, needs_pixels: bool = False, fail_close: bool = False):
        self.log, self.name, self.needs_pixels, self.fail_close = log, name, needs_pixels, fail_close
        self.appended: list[tuple[list[int], int | None]] = []

    def append(self, faces: Faces, frame=None) -> None:
        self.appended.append((faces.frame_index.tolist(), None if frame is None else frame.index))

    def close(self):
        self.log.append(f"close {self.name}")
        if self.fail_close:
            raise OSError("disk full")
        return self.name

    def discard(self) -> None:
        self.log.append(f"discard {self.name}")


def test_feed_does_not_decode_when_no_sink_needs_pixels(monkeypatch, tmp_path):
    import fer_video.video
    import fer_video.video.read

    def no_decoding(*args, **kwargs):
        raise AssertionError("the source was decoded")

    monkeypatch.setattr(fer_video.video.read, "read_frames", no_decoding)
    monkeypatch.setattr(fer_video.video, "read_frames", no_decoding, raising=False)
    log: list[str] = []
    recording = Recording(log, "recording")
    paths = feed(None, video_faces(), [recording, ParquetSink(tmp_path / "v.parquet", metadata())],
                 SimpleNamespace(stride=2, progress=False))
    assert paths == ["recording", tmp_path / "v.parquet"]
    assert recording.appended == [([f, f], None) for f in FRAMES]  # each frame with faces once, in order


def test_feed_decodes_for_a_sink_that_draws_and_shows_the_latest_analysed_frame(tmp_path):
    from fer_video.samples import make_clip
    from fer_video.video import probe

    info = probe(make_clip(tmp_path / "in.mp4", seconds=1.0, width=320, height=180, fps=10))
    log: list[str] = []
    drawing, counting = Recording(log, "drawing", needs_pixels=True), Recording(log, "counting")
    feed(info, video_faces(), [drawing, counting], SimpleNamespace(stride=2, progress=False))
    shown = {0: 0, 1: 0, 2: 2, 3: 2, 6: 6, 7: 6, 8: 8, 9: 8}  # frames 4 and 5: frame 4 had none
    assert drawing.appended == [([shown[i]] * 2 if i in shown else [], i) for i in range(10)]
    assert counting.appended == [([f, f], None) for f in FRAMES]
    assert log == ["close drawing", "close counting"]


def test_feed_closes_in_order_and_discards_the_rest_when_one_fails():
    log: list[str] = []
    sinks = [Recording(log, "first"), Recording(log, "second", fail_close=True), Recording(log, "timeline")]
    with pytest.raises(OSError, match="disk full"):
        feed(None, video_faces(), sinks, SimpleNamespace(stride=2))
    assert log == ["close first", "close second", "discard timeline"]


def test_an_error_while_appending_discards_every_sink(tmp_path):
    class Failing(Recording):
        def append(self, faces, frame=None):
            raise RuntimeError("boom")

    log: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        feed(None, video_faces(), [ParquetSink(tmp_path / "v.parquet", metadata()), Failing(log, "failing")],
             SimpleNamespace(stride=2))
    assert log == ["discard failing"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flush_rows", [3, 4096], ids=["in-batches", "at-close"])
def test_the_csv_sink_writes_the_parquet_sinks_table(flush_rows, monkeypatch, tmp_path):
    import fer_video.sinks.csv
    from fer_video.sinks.csv import CsvSink

    monkeypatch.setattr(fer_video.sinks.csv, "FLUSH_ROWS", flush_rows)
    faces, meta = video_faces(), metadata()
    faces.data["speaker"] = np.arange(len(faces)) % 3 == 0
    csv, parquet = feed(None, faces, [CsvSink(tmp_path / "v.csv", meta.video_id, meta.source_path),
                                      ParquetSink(tmp_path / "v.parquet", meta)], SimpleNamespace(stride=2))
    assert csv == tmp_path / "v.csv"
    timeline = pd.read_parquet(parquet)
    read = pd.read_csv(csv)
    assert list(read.columns) == list(timeline.columns) and read.columns[-1] == "speaker"
    assert read["person"].isna().tolist() == timeline["person"].isna().tolist()
    pd.testing.assert_frame_equal(read.astype(timeline.dtypes).drop(columns="person"), timeline.drop(columns="person"),
                                  check_exact=True)
    assert read["person"].dropna().tolist() == timeline["person"].dropna().tolist()


def test_a_failing_run_leaves_no_csv(tmp_path):
    from fer_video.sinks.csv import CsvSink

    with pytest.raises(RuntimeError, match="boom"), CsvSink(tmp_path / "v.csv", "v", "/videos/v.mp4") as sink:
        for frame_faces in by_frame(video_faces()).values():
            sink.append(frame_faces)
        sink._flush()  # rows are on disk, in the temp file
        assert len(list(tmp_path.iterdir())) == 1
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_csv_sink_fed_no_faces_writes_the_header(tmp_path):
    from fer_video.sinks.csv import CsvSink

    with CsvSink(tmp_path / "v.csv", "v", "/videos/v.mp4"):
        pass
    assert pd.read_csv(tmp_path / "v.csv").columns.tolist() == ["video_id", "source_path", *timeline_columns(Faces.empty())]


def test_format_csv_writes_the_timelines_rows_as_csv_and_a_later_run_without_it_removes_it(silent_clip, tmp_path):
    """The real CLI: `--format csv` puts `<name>.csv` beside the Parquet timeline, the same rows;
    a rerun without it removes that CSV, which would no longer match, and says so."""
    from helpers import hidden_partials, run_cli

    out = tmp_path / "out"
    done = run_cli("annotate", silent_clip.path, "--out", out, "--no-video", "--format", "csv", "--quiet")
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {"silent.parquet", "silent.csv"}
    assert str(out / "silent.csv") in done.stdout, done.stdout
    timeline = pd.read_parquet(out / "silent.parquet")
    csv = pd.read_csv(out / "silent.csv")
    assert list(csv.columns) == list(timeline.columns) and len(csv) == len(timeline) > 0
    for column in ("frame_index", "track_id", "person_id"):
        np.testing.assert_array_equal(csv[column], timeline[column])
    np.testing.assert_allclose(csv[["x", "p_happy", "confidence"]], timeline[["x", "p_happy", "confidence"]], rtol=1e-6)
    assert list(csv["label"]) == list(timeline["label"].astype(str))
    again = run_cli("annotate", silent_clip.path, "--out", out, "--no-video", "--quiet")
    assert again.returncode == 0, again.stderr
    assert {p.name for p in out.iterdir()} == {"silent.parquet"}
    assert f"{out / 'silent.csv'}: removed, an earlier run's CSV" in again.stderr, again.stderr
    assert not hidden_partials(out)


def test_rewriting_a_timeline_keeps_its_data_columns(tmp_path):
    """`fer-video link` rewrites a timeline from its rows (`write_timeline`): a column the
    pipeline wrote from `Faces.data` stays, values and type."""
    from fer_video.timeline.write import write_timeline

    faces, meta = video_faces(FRAMES), metadata()
    faces = faces.with_(data={"speaker": np.arange(len(faces)) % 2 == 0})
    first = ParquetSink(tmp_path / "t.parquet", meta)
    first.append(faces)
    first.close()
    rows = pq.read_table(tmp_path / "t.parquet").to_pandas()
    rows["person_id"] = rows["person_id"] + 100  # what link changes
    write_timeline(rows, meta, tmp_path / "t.parquet")
    again = pq.read_table(tmp_path / "t.parquet")
    assert again.schema.names[-1] == "speaker" and str(again.schema.field("speaker").type) == "bool"
    np.testing.assert_array_equal(again.column("speaker").to_numpy(), faces.data["speaker"])
    np.testing.assert_array_equal(again.column("person_id").to_numpy(), timeline_columns(faces)["person_id"] + 100)
