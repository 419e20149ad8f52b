"""Broken inputs through the CLI: each is one line on stderr naming the file and the problem, no
traceback, no outputs (not even hidden partial files), exit status 1; a good input given in the
same call is still annotated. One CLI run per session: bad, good, bad. (A missing input is a
usage error, found before any work: tests/test_cli.py.)"""

from __future__ import annotations

import pytest

from helpers import hidden_partials, read_timeline, run_cli

KINDS = ["empty", "text", "moov_cut", "faststart_cut", "mkv_cut", "audio_only"]
# What each line must say, beyond naming the file.
PROBLEM = {
    "empty": "empty",
    "text": "not a readable video",
    "moov_cut": "truncated",
    "faststart_cut": "truncated",
    "mkv_cut": "truncated",
    "audio_only": "no video stream",
}


@pytest.fixture(scope="session")
def mixed_run(bad_inputs, good_small_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_out")
    bad = [bad_inputs[k] for k in KINDS]
    inputs = [*bad[:3], good_small_clip.path, *bad[3:]]
    return run_cli("annotate", *inputs, "--out", out, "--quiet"), out


def test_mixed_call_exits_1_without_traceback(mixed_run):
    proc, _ = mixed_run
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fer-video: error: ")]
    assert len(errors) == len(KINDS), proc.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_one_line_naming_the_file(kind, mixed_run, bad_inputs):
    proc, out = mixed_run
    path = bad_inputs[kind]
    mentions = [line for line in proc.stderr.splitlines() if f"{path}:" in line]
    assert len(mentions) == 1, proc.stderr
    line = mentions[0]
    assert line.startswith(f"fer-video: error: {path}: "), line
    assert PROBLEM[kind] in line, line
    assert "KiB" not in line and "muxing overhead" not in line and "encoder" not in line, f"no reason: {line}"
    assert str(path) not in proc.stdout
    assert not (out / f"{path.stem}.parquet").exists()
    assert not (out / f"{path.stem}.mp4").exists()
    assert not [p for p in out.iterdir() if path.stem in p.name]
    assert hidden_partials(out) == []


def test_good_input_in_the_same_call_is_annotated(mixed_run, good_small_clip):
    proc, out = mixed_run
    timeline, video = out / f"{good_small_clip.path.stem}.parquet", out / f"{good_small_clip.path.stem}.mp4"
    assert timeline.exists() and video.exists()
    assert str(good_small_clip.path) in proc.stdout
    assert str(good_small_clip.path) not in proc.stderr
    rows, meta = read_timeline(timeline)
    assert meta["frame_count"] == good_small_clip.frames and len(rows) > 0
    assert sorted(p.name for p in out.iterdir()) == sorted([timeline.name, video.name])


@pytest.mark.parametrize("option, says", [(["--smoothing", "median:3"], "smoothing"),
                                          (["--stride", "0"], "stride")])
def test_bad_option_is_a_usage_error_before_any_work(option, says, good_small_clip, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("annotate", good_small_clip.path, "--out", out, *option)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fer-video: error: ") and says in lines[0], proc.stderr
    assert not out.exists()
