"""Timeline querying on timelines made by the real pipeline from generated clips: `load` with
filters, the folder read by pandas / pyarrow / DuckDB / Polars, `fer-video query | summary | plot
| report`, and their errors.

Two folders are built once per module:
- `known`: one clip whose faces change expression at known frames. The pipeline runs whole
  (decode, BlazeFace, tracker, crops, smoothing "none", Parquet, MP4) with a stand-in classifier
  that calls a dark face sad and a bright one happy, so the expected summary is known exactly.
- `real`: two clips with known faces on screen for known frames, run with the real model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from fer_video.expression.labels import EMOTIONS
from fer_video.draw import EMOTION_COLORS_BGR
from fer_video.samples import Actor, make_clip
from fer_video.timeline import SCHEMA, load

FPS = 10
WIDTH, HEIGHT = 640, 360
DARK, BRIGHT = (0.4, 0.4, 0.4), (1.0, 1.0, 1.0)


class BrightnessClassifier:
    """Stands in for the expression model: a dark face is sad, a bright one happy."""

    name, version, sha256 = "stub-brightness", "test", "0" * 64

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        mean = crops[:, 12:36, 12:36].reshape(len(crops), -1).mean(axis=1)
        probs = np.full((len(crops), len(EMOTIONS)), 0.02, np.float32)
        probs[mean >= 120, EMOTIONS.index("happy")] = 0.88
        probs[mean < 120, EMOTIONS.index("sad")] = 0.88
        return probs

    def classify(self, faces, crops):
        return faces.with_(probs=self(crops))


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> Path:
    """change.mp4, 2 s at 10 fps. Face A (left): dark for frames 0-7, bright for 8-19.
    Face B (right): bright for frames 3-8, dark for 9-16, absent otherwise."""
    from fer_video import pipeline
    from fer_video.pipeline import model_cache

    root = tmp_path_factory.mktemp("known")
    clip = make_clip(root / "in" / "change.mp4", seconds=2.0, width=WIDTH, height=HEIGHT, fps=FPS, audio=False,
                     actors=[Actor(x=0.28, y=0.5, width=150, tint=DARK, leave=0.8),
                             Actor(x=0.28, y=0.5, width=150, tint=BRIGHT, enter=0.8),
                             Actor(x=0.72, y=0.5, width=130, flip=True, tint=BRIGHT, enter=0.3, leave=0.9),
                             Actor(x=0.72, y=0.5, width=130, flip=True, tint=DARK, enter=0.9, leave=1.7)])
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_cache, "load_classifier", lambda model, threads=None: BrightnessClassifier())
        pipeline.annotate(clip, pipeline.AnnotateOptions(out_dir=out, smoothing="none", progress=False))
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """duo.mp4 (2 s at 10 fps): face A in all 20 frames, face B in frames 5-14; solo.mp4 (1.5 s):
    one moving face in all 15 frames. Run with the real expression model."""
    from fer_video import pipeline
    from fer_video.expression.classify import DEFAULT_MODEL

    if not DEFAULT_MODEL.exists():
        pytest.skip(f"no expression model at {DEFAULT_MODEL}")
    root = tmp_path_factory.mktemp("real")
    duo = make_clip(root / "in" / "duo.mp4", seconds=2.0, width=WIDTH, height=HEIGHT, fps=FPS, audio=False,
                    actors=[Actor(x=0.28, y=0.5, width=150),
                            Actor(x=0.72, y=0.5, width=130, flip=True, enter=0.5, leave=1.5)])
    solo = make_clip(root / "in" / "solo.mp4", seconds=1.5, width=WIDTH, height=HEIGHT, fps=FPS, audio=False,
                     actors=[Actor(x=0.5, y=0.5, width=160, dx=0.05, period=3.0)])
    out = root / "out"
    for clip in (duo, solo):
        pipeline.annotate(clip, pipeline.AnnotateOptions(out_dir=out, video=False, progress=False))
    (out / ".late.parquet.part").write_bytes(b"half-written")  # as a timeline being written looks
    return out


def cli(*args: str) -> subprocess.CompletedProcess:
    """The real `fer-video` command in a fresh process."""
    return subprocess.run([sys.executable, "-m", "fer_video.cli", *args], capture_output=True, text=True,
                          timeout=120)


def by_first_seen(summary: pd.DataFrame) -> list[dict]:
    return summary.sort_values(["video_id", "first_s"]).to_dict("records")


# --- summary: known faces and known expression changes ---------------------------------------

def test_known_expression_changes_give_the_expected_summary(known):
    from fer_video.timeline.summary import summary

    a, b = by_first_seen(summary(known))
    assert (a["frames"], a["time_on_screen_s"], a["first_s"], a["last_s"]) == (20, 2.0, 0.0, pytest.approx(1.9))
    assert a["dominant"] == "happy" and a["changes"] == 1
    assert (a["share_happy"], a["share_sad"]) == (pytest.approx(0.6), pytest.approx(0.4))
    assert a["peak_sad_s"] == 0.0 and a["peak_happy_s"] == pytest.approx(0.8)
    assert a["peak_happy_p"] == pytest.approx(0.88 / (0.88 + 6 * 0.02), abs=1e-6)
    assert (b["frames"], b["time_on_screen_s"]) == (14, pytest.approx(1.4))
    assert (b["first_s"], b["last_s"]) == (pytest.approx(0.3), pytest.approx(1.6))
    assert b["dominant"] == "sad" and b["changes"] == 1
    assert b["share_sad"] == pytest.approx(8 / 14)
    assert b["peak_happy_s"] == pytest.approx(0.3) and b["peak_sad_s"] == pytest.approx(0.9)

    video = summary(known, by="video").iloc[0]
    assert (video["video_id"], video["tracks"], video["frames"], video["changes"]) == ("change", 2, 20, 2)
    assert video["time_on_screen_s"] == 2.0 and video["duration_s"] == pytest.approx(2.0)
    assert video["share_happy"] == pytest.approx((12 + 6) / 34)


def test_label_changes_found_by_sql_are_the_known_ones(known):
    from fer_video.timeline.query import query

    changes = query(known, """
        SELECT track_id, timestamp_s, previous, label FROM (
            SELECT *, lag(label) OVER (PARTITION BY video_id, track_id ORDER BY frame_index) AS previous
            FROM timeline)
        WHERE label <> previous ORDER BY timestamp_s""")
    assert [(round(t, 6), p, n) for t, p, n in changes[["timestamp_s", "previous", "label"]].itertuples(index=False)] \
        == [(0.8, "sad", "happy"), (0.9, "happy", "sad")]


def test_known_faces_time_on_screen_to_the_frame(real):
    from fer_video.timeline.summary import summary

    duo_a, duo_b, solo = by_first_seen(summary(real))
    assert (duo_a["video_id"], duo_a["frames"], duo_a["time_on_screen_s"]) == ("duo", 20, 2.0)
    assert (duo_b["video_id"], duo_b["frames"], duo_b["time_on_screen_s"]) == ("duo", 10, 1.0)
    assert (duo_b["first_s"], duo_b["last_s"]) == (pytest.approx(0.5), pytest.approx(1.4))
    assert (solo["video_id"], solo["frames"], solo["time_on_screen_s"]) == ("solo", 15, 1.5)
    for row in (duo_a, duo_b, solo):
        assert sum(row[f"share_{e}"] for e in EMOTIONS) == pytest.approx(1.0)
        assert row["dominant"] in EMOTIONS
    videos = summary(real, by="video").set_index("video_id")
    assert videos.loc["duo", ["tracks", "frames", "time_on_screen_s"]].tolist() == [2, 20, 2.0]
    assert videos.loc["solo", ["tracks", "frames", "time_on_screen_s"]].tolist() == [1, 15, 1.5]


def test_summary_matches_pandas(real):
    from fer_video.timeline.summary import summary

    rows = load(real)
    table = summary(real).set_index(["video_id", "track_id"])
    for (video, track), group in rows.groupby(["video_id", "track_id"]):
        got = table.loc[(video, track)]
        shares = group["label"].value_counts(normalize=True)
        assert got["dominant"] == shares.idxmax()
        for e in EMOTIONS:
            assert got[f"share_{e}"] == pytest.approx(shares.get(e, 0.0))
            peak = group.loc[group[f"p_{e}"].idxmax()]
            assert (got[f"peak_{e}_s"], got[f"peak_{e}_p"]) == (peak["timestamp_s"], pytest.approx(peak[f"p_{e}"]))
        labels = group.sort_values("frame_index")["label"].astype(str)
        assert got["changes"] == int((labels != labels.shift()).iloc[1:].sum())


# --- the folder as one dataset ------------------------------------------------------------------

def test_every_reader_reads_the_folder_as_one_table(real):
    import duckdb
    import polars as pl

    files = sorted(real.glob("*.parquet"))
    assert [f.name for f in files] == ["duo.parquet", "solo.parquet"]
    for f in files:
        assert pq.read_schema(f).remove_metadata().equals(SCHEMA)
    expected = load(real)
    counts = expected["label"].astype(str).value_counts().sort_index()
    assert len(expected) == 45  # 20 + 10 + 15 face rows

    by_pandas = pd.read_parquet(files)
    by_pyarrow = ds.dataset(files, format="parquet").to_table().to_pandas()
    by_duckdb = duckdb.sql(f"SELECT * FROM read_parquet('{real}/*.parquet')").df()
    by_polars = pl.read_parquet(f"{real}/*.parquet").to_pandas()
    for frame in (by_pandas, by_pyarrow, by_duckdb, by_polars):
        assert list(frame.columns) == SCHEMA.names
        assert frame["label"].astype(str).value_counts().sort_index().equals(counts)
        assert sorted(frame["video_id"].unique()) == ["duo", "solo"]
    assert pl.scan_parquet(f"{real}/*.parquet").filter(pl.col("label") == counts.index[0]).collect().height \
        == counts.iloc[0]


def test_load_pushes_filters_down(real):
    rows = load(real)
    assert isinstance(rows["label"].dtype, pd.CategoricalDtype)
    assert list(rows["label"].cat.categories) == list(EMOTIONS)
    label = rows["label"].astype(str).mode()[0]
    cases = [
        (dict(video="duo"), rows["video_id"] == "duo"),
        (dict(video=["duo", "solo"], track=2), rows["track_id"] == 2),
        (dict(start=0.5, end=1.2), (rows["timestamp_s"] >= 0.5) & (rows["timestamp_s"] < 1.2)),
        (dict(label=label), rows["label"] == label),
        (dict(video="duo", track=[1, 2], start=1.0, label=[label, "fear"]),
         (rows["video_id"] == "duo") & rows["track_id"].isin([1, 2]) & (rows["timestamp_s"] >= 1.0)
         & rows["label"].isin([label, "fear"])),
    ]
    for kwargs, mask in cases:
        got = load(real, **kwargs)
        want = rows[mask].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, obj=str(kwargs))
    assert list(load(real / "solo.parquet", columns=["frame_index", "label"]).columns) == ["frame_index", "label"]
    with pytest.raises(ValueError, match="unknown label joy"):
        load(real, label="joy")


# --- fer-video query --------------------------------------------------------------------------

def test_sql_results_match_pandas(real):
    from fer_video.timeline.query import query

    rows = load(real)
    got = query(real, "SELECT video_id, track_id, label, count(*) AS n FROM timeline GROUP BY ALL ORDER BY ALL")
    want = (rows.assign(label=rows["label"].astype(str)).groupby(["video_id", "track_id", "label"]).size()
            .rename("n").reset_index().sort_values(["video_id", "track_id", "label"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(got, want, check_dtype=False)

    got = query(real, "SELECT video_id, avg(p_happy) AS happy, max(confidence) AS top FROM timeline "
                      "GROUP BY video_id ORDER BY video_id")
    want = rows.groupby("video_id").agg(happy=("p_happy", "mean"), top=("confidence", "max")).reset_index()
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-6)

    got = query(real, "SELECT video_id, track_id, count(*) * any_value(frame_step_s) AS on_screen "
                      "FROM timeline JOIN videos USING (video_id) GROUP BY ALL ORDER BY ALL")
    assert got["on_screen"].tolist() == pytest.approx([2.0, 1.0, 1.5])


def test_query_output_formats(real, tmp_path, capsys):
    from fer_video.cli import main
    from fer_video.timeline.query import query

    sql = "SELECT video_id, frame_index, track_id, label, p_happy FROM timeline ORDER BY ALL"
    want = query(real, sql)
    assert main(["query", str(real), sql, "--format", "csv", "-o", str(tmp_path / "r.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "r.csv"), want, check_dtype=False, rtol=1e-6)
    assert main(["query", str(real), sql, "--format", "parquet", "-o", str(tmp_path / "r.parquet")]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r.parquet"), want)
    capsys.readouterr()
    assert main(["query", str(real), sql, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == len(want) and records[0]["video_id"] == want["video_id"][0]
    assert records[0]["p_happy"] == pytest.approx(want["p_happy"][0])

    assert main(["query", str(real), "SELECT video_id, count(*) AS rows FROM timeline GROUP BY 1 ORDER BY 1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["video_id", "rows"] and set(lines[1]) == {"-", " "}
    assert [line.split() for line in lines[2:]] == [["duo", "30"], ["solo", "15"], ["(2", "rows)"]]
    assert len({len(line) for line in lines[:4]}) == 1  # aligned: numbers right-justified under the header

    with pytest.raises(ValueError, match="needs --output"):
        main(["query", str(real), sql, "--format", "parquet", "--verbose"])
    with pytest.raises(ValueError, match="would be read as a timeline"):
        main(["query", str(real), sql, "--format", "parquet", "-o", str(real / "r.parquet"), "--verbose"])


def test_summary_command_formats(known, tmp_path, capsys):
    from fer_video.cli import main
    from fer_video.timeline.summary import summary

    assert main(["summary", str(known), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["track_id"], r["dominant"], r["frames"]) for r in records] == \
        [(int(t), d, int(f)) for t, d, f in summary(known)[["track_id", "dominant", "frames"]].itertuples(index=False)]
    assert main(["summary", str(known), "--by", "video", "--format", "csv", "-o", str(tmp_path / "s.csv")]) == 0
    assert pd.read_csv(tmp_path / "s.csv")["time_on_screen_s"].tolist() == [2.0]
    capsys.readouterr()
    assert main(["summary", str(known)]) == 0
    text = capsys.readouterr().out
    assert "dominant" in text and "strongest moment of each emotion" in text and "60%" in text


# --- errors: one clear line, exit 2 ---------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["query", "{real}", "SELEC * FROM timeline"], "fer-video: error: SQL error: Parser Error: syntax error"),
    (["query", "{real}", "SELECT mood FROM timeline"], "fer-video: error: SQL error: Binder Error:"),
    (["query", "{missing}", "SELECT 1"], "fer-video: error: {missing}: no such file or folder"),
    (["summary", "{empty}"], "fer-video: error: {empty}: no timelines (*.parquet) in this folder"),
    (["plot", "{real}", "--video", "trio"], "fer-video: error: no video 'trio' in {real} (videos: duo, solo)"),
])
def test_errors_are_one_clear_line(real, tmp_path, args, message):
    paths = {"real": str(real), "missing": str(tmp_path / "nowhere"), "empty": str(tmp_path)}
    result = cli(*(a.format(**paths) for a in args))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(message.format(**paths)), result.stderr
    assert result.stdout == ""


# --- plots and the report -----------------------------------------------------------------------

def _png(path: Path) -> np.ndarray:
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _pixels_of(image: np.ndarray, emotion: str, tolerance: int = 3) -> int:
    b, g, r = EMOTION_COLORS_BGR[emotion]
    return int((np.abs(image.astype(int) - [r, g, b]).max(axis=2) <= tolerance).sum())


def test_plots_are_pngs_of_the_expected_size(known, real, tmp_path, capsys):
    from fer_video.cli import main
    from fer_video.timeline.plot import shares_size_px, timeline_size_px

    assert main(["plot", str(known), "--video", "change", "--out", str(tmp_path)]) == 0
    timeline, shares = _png(tmp_path / "change.timeline.png"), _png(tmp_path / "change.shares.png")
    assert timeline.shape[1::-1] == timeline_size_px(2) and shares.shape[1::-1] == shares_size_px(2)
    # The annotated video's colours: happy and sad bands and lines, and no other emotion's band.
    assert _pixels_of(timeline, "happy") > 5000 and _pixels_of(timeline, "sad") > 5000
    assert _pixels_of(shares, "happy") > 5000 and _pixels_of(shares, "sad") > 5000

    assert main(["plot", str(known), "--video", "change", "--track", "2", "--out", str(tmp_path)]) == 0
    assert _png(tmp_path / "change.track2.timeline.png").shape[1::-1] == timeline_size_px(1)
    assert _png(tmp_path / "change.track2.shares.png").shape[1::-1] == shares_size_px(1)

    assert main(["plot", str(real), "--dpi", "50"]) == 0  # every video, beside the timelines
    printed = capsys.readouterr().out
    assert "duo.timeline.png" in printed and "solo.shares.png" in printed
    assert _png(real / "duo.timeline.png").shape[1::-1] == timeline_size_px(2, dpi=50)
    assert _png(real / "solo.timeline.png").shape[1::-1] == timeline_size_px(1, dpi=50)
    assert len(load(real)) == 45  # PNGs beside the timelines change nothing


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium to render the report in (apt-get install chromium)")
def test_report_renders_in_headless_chromium(known, tmp_path, capsys):
    from fer_video.cli import main

    assert main(["report", str(known), "--out", str(tmp_path / "report")]) == 0
    page = tmp_path / "report" / "change.report.html"
    assert str(page) in capsys.readouterr().out

    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert "<h1>change: facial expressions</h1>" in dom
    assert dom.count('<img class="plot"') == 2 and dom.count("data:image/png;base64,") == 2
    summary_rows = dom.split('<table id="summary">')[1].split("</table>")[0].count("<tr>")
    assert summary_rows == 3  # header and two faces
    video = (known / "change.mp4").resolve()
    link = dom.split('id="annotated-video" href="')[1].split('"')[0]
    assert (page.parent / link).resolve() == video and video.exists()
    assert f'<video class="media" controls="" preload="metadata" src="{link}">' in dom

    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri())
    image = _png(shot)
    assert image.shape[:2] == (2400, 1280)
    # The embedded plots were decoded and drawn: their happy and sad bands are on the page.
    assert _pixels_of(image, "happy") > 5000 and _pixels_of(image, "sad") > 5000
