"""Plots of a video whose name the figures' font cannot draw (CJK): the PNGs are written and
nothing is printed but their names (matplotlib warned once per missing glyph)."""

from __future__ import annotations

import shutil

from helpers import run_cli


def test_a_cjk_file_name_plots_without_glyph_warnings(good_small_clip, tmp_path):
    clip = tmp_path / "会议记录.mp4"
    shutil.copy(good_small_clip.path, clip)
    out = tmp_path / "out"
    annotated = run_cli("annotate", clip, "--out", out, "--no-video", "--quiet")
    assert annotated.returncode == 0, annotated.stderr
    plotted = run_cli("plot", out)
    assert plotted.returncode == 0, plotted.stderr
    assert "Glyph" not in plotted.stderr and "Warning" not in plotted.stderr, plotted.stderr
    assert (out / "会议记录.timeline.png").stat().st_size > 10_000


def test_undrawable_characters_become_question_marks():
    from fer_video.timeline.plot import _drawable

    assert _drawable("会议 talk é") == "?? talk é"
