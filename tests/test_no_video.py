"""`--no-video` is the timeline only, for videos and stills alike, and never leaves an earlier
run's drawing beside a new timeline it does not match: the real CLI on real clips."""

from __future__ import annotations

import shutil

from helpers import hidden_partials, read_timeline, run_cli


def _names(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_no_video_after_a_drawn_run_removes_the_earlier_mp4_and_says_so(silent_clip, tmp_path):
    out = tmp_path / "out"
    drawn = run_cli("annotate", silent_clip.path, "--out", out, "--quiet")
    assert drawn.returncode == 0, drawn.stderr
    assert _names(out) == {"silent.mp4", "silent.parquet"}
    again = run_cli("annotate", silent_clip.path, "--out", out, "--no-video", "--quiet")
    assert again.returncode == 0, again.stderr
    assert _names(out) == {"silent.parquet"}
    removed = [line for line in again.stderr.splitlines() if "removed" in line]
    assert removed == [f"fer-video: note: {out / 'silent.mp4'}: removed, an earlier run's drawing that would not "
                       "match the new timeline (--no-video draws none)"], again.stderr
    rows, meta = read_timeline(out / "silent.parquet")
    assert len(rows) and meta["frame_count"] == silent_clip.frames
    assert not hidden_partials(out)


def test_a_batch_with_no_video_removes_the_earlier_drawings_and_says_so(silent_clip, still_image, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(silent_clip.path, folder / "clip.mp4")
    shutil.copyfile(still_image.path, folder / "photo.jpg")
    out = tmp_path / "out"
    drawn = run_cli("batch", folder, "--out", out, "--quiet")
    assert drawn.returncode == 0, drawn.stderr
    assert _names(out) == {"clip.mp4", "clip.parquet", "photo.jpg.annotated.jpg", "photo.jpg.parquet"}
    again = run_cli("batch", folder, "--out", out, "--no-video", "--quiet")
    assert again.returncode == 0, again.stderr
    assert _names(out) == {"clip.parquet", "photo.jpg.parquet"}
    assert "2 done" in again.stdout
    assert again.stdout.count("removed, an earlier run's drawing") == 2, again.stdout


def test_no_video_draws_no_annotated_image_for_a_still(still_image, tmp_path):
    out = tmp_path / "out"
    done = run_cli("annotate", still_image.path, "--out", out, "--no-video", "--quiet")
    assert done.returncode == 0, done.stderr
    assert _names(out) == {"still.jpg.parquet"}
    assert done.stdout.rstrip().endswith(f"-> {out / 'still.jpg.parquet'}"), done.stdout
    rows, _ = read_timeline(out / "still.jpg.parquet")
    assert len(rows) == 2  # the still's two faces


def test_no_video_leaves_a_file_that_only_has_a_drawings_name(silent_clip, tmp_path):
    """No fer-video timeline beside it, so nothing says that fer-video drew it: it stays."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "silent.annotated.png").write_bytes(b"someone else's picture")
    done = run_cli("annotate", silent_clip.path, "--out", out, "--no-video", "--quiet")
    assert done.returncode == 0, done.stderr
    assert _names(out) == {"silent.annotated.png", "silent.parquet"}
    assert "removed" not in done.stderr
