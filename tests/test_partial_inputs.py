"""Completeness decided from what the container says: an MP4 cut at 99% is annotated with a
one-line warning (frames read vs the sample table's count), variable-frame-rate MKV and WebM
(whose nominal rate is not their average) are accepted with every frame analysed, and `batch`
waits for a file just copied in, but leaves one that is still growing after its wait for a later
run, as `serve`'s scheduled runs do at once. Real ffmpeg and the real CLI."""

from __future__ import annotations

import os
import re
import threading
import time

import pytest

from conftest import FPS, X264, one_actor
from fer_video.pipeline import AnnotateOptions, annotate
from fer_video.samples import make_clip
from helpers import ffmpeg, ffmpeg_info, read_timeline, run_cli


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory, vfr_clip):
    folder = tmp_path_factory.mktemp("partial")
    whole = make_clip(folder / "whole.mp4", seconds=4.0, width=320, height=180, fps=FPS, actors=[],
                      extra_output_args=["-movflags", "+faststart"])
    data = whole.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: len(data) * 99 // 100])
    # Two names: a video's output name is its stem, and one call refuses a second input of one name.
    mkv, webm = folder / "vfr_mkv.mkv", folder / "vfr_webm.webm"
    # Encoded as a recorder writes them (a stream copy of the MP4 would carry its average rate).
    ffmpeg("-i", vfr_clip.path, "-fps_mode", "passthrough", *X264, mkv)
    ffmpeg("-i", vfr_clip.path, "-fps_mode", "passthrough", "-c:v", "libvpx", "-deadline", "realtime",
           "-cpu-used", "8", "-b:v", "1M", webm)
    out = folder / "out"
    proc = run_cli("annotate", cut, mkv, webm, "--out", out, "--quiet", "--no-video")
    return dict(proc=proc, out=out, cut=cut, mkv=mkv, webm=webm, frames=4 * FPS)


def test_vfr_containers_claim_a_nominal_rate(partial_run, vfr_clip):
    """Why duration x rate cannot say how many frames these hold."""
    for path in (partial_run["mkv"], partial_run["webm"]):
        assert f"{FPS} fps" in ffmpeg_info(path)
    assert vfr_clip.frames < 0.9 * 3 * FPS


def test_cut_at_99_percent_is_annotated_with_a_warning(partial_run):
    proc = partial_run["proc"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "cut.mp4" in line]
    assert len(warnings) == 1, proc.stderr
    m = re.fullmatch(rf"fer-video: warning: {re.escape(str(partial_run['cut']))}: ends early .*: "
                     rf"decoded (\d+) of (\d+) frames.*", warnings[0])
    assert m, warnings[0]
    decoded, expected = int(m.group(1)), int(m.group(2))
    assert expected == partial_run["frames"] and 0.9 * expected < decoded < expected
    _, meta = read_timeline(partial_run["out"] / "cut.parquet")
    assert (meta["frame_count"], meta["frames_expected"]) == (decoded, expected)


def test_vfr_mkv_and_webm_are_accepted(partial_run):
    proc = partial_run["proc"]
    assert proc.returncode == 0 and "vfr_mkv.mkv" not in proc.stderr and "vfr_webm.webm" not in proc.stderr, proc.stderr
    assert len(re.findall(r"vfr_(mkv\.mkv|webm\.webm): \d+ frames", proc.stdout)) == 2, proc.stdout


@pytest.mark.parametrize("kind", ["mkv", "webm"])
def test_vfr_container_every_frame_in_the_timeline(kind, partial_run, vfr_clip, tmp_path):
    result = annotate(str(partial_run[kind]), AnnotateOptions(out_dir=tmp_path, video=False, progress=False))
    assert result.warnings == []
    rows, meta = read_timeline(result.timeline)
    assert meta["frame_count"] == vfr_clip.frames
    assert sorted(rows.frame_index.unique()) == list(range(vfr_clip.frames)), "the face in every frame"
    expected_times = [k / FPS for k in vfr_clip.kept]
    assert rows.groupby("frame_index").timestamp_s.first().tolist() == pytest.approx(expected_times, abs=2e-3)


def test_batch_waits_for_a_file_just_copied_in_then_annotates_it(good_small_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_VIDEO_SETTLE_SECONDS", "1.5")  # conftest sets 0 for other tests
    folder = tmp_path / "in"
    folder.mkdir()
    copied = folder / "copied.mp4"
    copied.write_bytes(good_small_clip.path.read_bytes())  # its time is now: a copy just made
    started = time.time()
    proc = run_cli("batch", folder, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    waits = [line for line in proc.stderr.splitlines() if "waiting" in line]
    assert waits == ["fer-video: waiting for 1 input still being written to settle (at most 120 s): copied.mp4"], \
        proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "1 done, 0 skipped, 0 busy, 0 failed of 1 inputs", proc.stdout
    rows, meta = read_timeline(tmp_path / "out" / "copied.parquet")
    assert meta["frame_count"] == good_small_clip.frames and len(rows)
    assert (tmp_path / "out" / "copied.mp4").exists()
    assert time.time() - started >= 1.5  # it did wait for the file to be 1.5 s old


def test_a_scheduled_run_leaves_a_file_just_copied_in_to_the_next_run(good_small_clip, tmp_path, monkeypatch):
    """What `serve`'s runs do (annotate_folder without `wait`; Prefect's part is tested in test_batch)."""
    from fer_video.batch import annotate_folder

    monkeypatch.setenv("FER_VIDEO_SETTLE_SECONDS", "3")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "copied.mp4").write_bytes(good_small_clip.path.read_bytes())
    said = []
    outcomes = annotate_folder(folder, AnnotateOptions(out_dir=tmp_path / "out", progress=False), say=said.append)
    assert [(o.status, o.reason.split(" (")[0]) for o in outcomes] == [("writing", "still being written")]
    assert said == [] and not (tmp_path / "out" / "copied.parquet").exists()


def test_batch_leaves_a_file_still_growing_after_its_wait_for_later(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_VIDEO_SETTLE_SECONDS", "3")  # the default (conftest sets 0 for other tests)
    monkeypatch.setenv("FER_VIDEO_WAIT_SECONDS", "2")  # a recording: it would grow through any wait
    folder = tmp_path / "in"
    done = make_clip(folder / "done.mp4", seconds=1.0, width=320, height=180, fps=FPS, actors=one_actor(320))
    settled = time.time() - 60  # finished a minute ago: the batch (no start-up to wait for) must take it
    os.utime(done, (settled, settled))
    recording = make_clip(tmp_path / "recording.mkv", seconds=2.0, width=320, height=180, fps=FPS,
                          actors=one_actor(320)).read_bytes()
    growing = folder / "recording.mkv"
    growing.write_bytes(recording[: len(recording) // 2])
    stop = threading.Event()

    def keep_writing():  # a recorder: a few bytes every 0.1 s for as long as the batch runs
        rest = recording[len(recording) // 2 :]
        with open(growing, "ab") as f:
            while not stop.wait(0.1):
                chunk, rest = (rest[:256], rest[256:]) if rest else (b"\0" * 256, b"")
                f.write(chunk)
                f.flush()

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        proc = run_cli("batch", folder, "--out", tmp_path / "out")
    finally:
        stop.set()
        writer.join()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "recording.mkv" in line)
    assert line.split()[0] == "writing" and "still being written after the batch waited 2 s" in line, proc.stdout
    assert "fer-video: waiting for 1 input still being written to settle (at most 2 s): recording.mkv" in proc.stderr
    assert next(line for line in proc.stdout.splitlines() if "done.mp4" in line).split()[0] == "done"
    assert proc.stdout.strip().splitlines()[-1] == "1 done, 0 skipped, 0 busy, 1 writing, 0 failed of 2 inputs"
    assert not (tmp_path / "out" / "recording.parquet").exists()
    assert (tmp_path / "out" / "done.parquet").exists()


def test_a_settled_folder_has_nothing_being_written(tmp_path):
    import os
    import time

    from fer_video.batch import still_being_written

    old, new = tmp_path / "old.mp4", tmp_path / "new.mp4"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    past = time.time() - 60
    os.utime(old, (past, past))
    assert set(still_being_written([old, new], settle_seconds=3.0, look_again=0)) == {new}
    os.utime(new, (past, past))
    assert still_being_written([old, new], settle_seconds=3.0, look_again=0.1) == {}
