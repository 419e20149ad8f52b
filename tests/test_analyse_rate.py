"""Analysing about 15 frames a second (`--analyse-rate`): which frames are analysed, how the faces
of the frames between are made, and that a real clip keeps every frame's rows and labels while
the detector sees half its frames."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from fer_video.faces.between import analysis_step, faces_between
from fer_video.faces.record import N_KEYPOINTS, Faces


@pytest.mark.parametrize("fps, rate, step", [(30, 15, 2), (29.97, 15, 2), (60, 15, 4), (25, 15, 2), (24, 15, 2),
                                             (10, 15, 1), (30, 0, 1), (0, 15, 1), (float("nan"), 15, 1)])
def test_analysis_step(fps, rate, step):
    assert analysis_step(fps, rate) == step


def faces(tracks, boxes, time, index) -> Faces:
    n = len(tracks)
    points = np.arange(n * N_KEYPOINTS * 2, dtype=np.float32).reshape(n, N_KEYPOINTS, 2)
    return Faces(boxes, np.linspace(0.6, 0.9, n), points + np.asarray(boxes, np.float32)[:, None, :2],
                 track_ids=tracks, probs=np.full((n, 7), 1 / 7)).in_frame(index, time)


def test_faces_between_are_the_tracks_of_both_frames_interpolated_in_time():
    before = faces([3, 1, 2], [[0, 0, 10, 10], [100, 0, 20, 20], [50, 50, 8, 8]], time=1.0, index=10)
    after = faces([1, 4, 3], [[110, 10, 30, 30], [0, 90, 9, 9], [40, 20, 10, 10]], time=1.2, index=12)
    middle = faces_between(before, after, time=1.05)
    # Track 2 ends and track 4 begins between the two frames: neither is here. Before's order.
    assert middle.track_ids.tolist() == [3, 1]
    np.testing.assert_allclose(middle.boxes, [[10, 5, 10, 10], [102.5, 2.5, 22.5, 22.5]], atol=1e-4)
    np.testing.assert_allclose(middle.scores, 0.75 * before.scores[[0, 1]] + 0.25 * after.scores[[2, 0]], atol=1e-6)
    np.testing.assert_allclose(middle.keypoints, 0.75 * before.keypoints[[0, 1]] + 0.25 * after.keypoints[[2, 0]],
                               atol=1e-4)
    assert np.isnan(middle.probs).all()  # the classifier did not see it: fill_between holds the track's last
    assert (middle.frame_index == -1).all()  # the caller stamps it with its frame


def test_no_faces_between_an_empty_frame_and_another():
    one = faces([1], [[0, 0, 10, 10]], time=0.0, index=0)
    assert len(faces_between(Faces.empty().in_frame(1, 0.1), one, 0.05)) == 0
    assert len(faces_between(one, Faces.empty().in_frame(2, 0.1), 0.05)) == 0


def test_a_clip_keeps_every_frames_rows_and_labels_with_half_its_frames_analysed(tmp_path, monkeypatch):
    """The real pipeline on a 30 fps clip of two moving faces: at 15 Hz the detector sees every
    other frame (and the last), every frame still has both faces, at boxes close to those of
    analysing every frame, and the same labels."""
    from fer_video.faces import detectors
    from fer_video.faces.record import box_iou
    from fer_video.pipeline import AnnotateOptions, analyse, keep_faces, probe, smooth
    from fer_video.samples import make_clip

    seen = []
    make = detectors.make_detector

    def counting(*args, **kwargs):
        detector = make(*args, **kwargs)
        call = detector.__call__

        class Counted:
            def __getattr__(self, name):
                return getattr(detector, name)

            def __call__(self, image, position=None, *rest, **options):
                seen.append(position)
                return call(image, position, *rest, **options)

        return Counted()

    info = probe(make_clip(tmp_path / "c.mp4", seconds=2.0, width=480, height=270, fps=30))
    monkeypatch.setattr(importlib.import_module("fer_video.pipeline.analyse"), "make_detector", counting)
    results = {}
    for rate in (0, 15):
        seen.clear()
        options = AnnotateOptions(out_dir=tmp_path / "out", progress=False, persons=False, analyse_rate=rate)
        analysis = analyse(info, options)
        kept = smooth(keep_faces(analysis, options)[0], options.smoothing)
        results[rate] = (list(seen), {(int(f), int(t)): (box, label) for f, t, box, label in
                                      zip(kept.frame_index, kept.track_ids, kept.boxes, kept.labels)})
    every, bounded = results[0], results[15]
    assert every[0] == list(range(60))
    assert bounded[0] == list(range(0, 60, 2)) + [59]
    assert set(bounded[1]) == set(every[1]) and len(every[1]) == 120  # two faces in every frame
    ious = [box_iou(every[1][key][0][None], bounded[1][key][0][None])[0, 0] for key in every[1]]
    assert np.mean(ious) > 0.9 and min(ious) > 0.7, (np.mean(ious), min(ious))
    assert [label for _, label in bounded[1].values()] == [every[1][key][1] for key in bounded[1]]


def test_the_frames_either_side_of_a_shot_cut_are_analysed(cut_clip, tmp_path, monkeypatch):
    """No face is interpolated across a cut: the last frame before it and the first after it are
    analysed, whatever the step, and each shot keeps its own track."""
    from fer_video.pipeline import AnnotateOptions, analyse, probe

    analysed = []
    stage = importlib.import_module("fer_video.pipeline.analyse")  # the module; the package's `analyse` is the function
    fer_crops = stage.fer_crops
    monkeypatch.setattr(stage, "fer_crops", lambda image, faces, geometry: (
        analysed.append(int(faces.frame_index[0])), fer_crops(image, faces, geometry))[1])
    options = AnnotateOptions(out_dir=tmp_path / "out", progress=False, persons=False, analyse_rate=3.5)
    analysis = analyse(probe(cut_clip.path), options)  # 25 fps: every 7th frame
    cut = cut_clip.cut_frame  # 25: neither it nor the frame before is on the grid of 7
    assert set(analysed) == {0, 7, 14, 21, cut - 1, cut, 28, 35, 42, 49}, sorted(set(analysed))
    rows = analysis.faces
    assert set(rows.track_ids[rows.frame_index < cut]).isdisjoint(rows.track_ids[rows.frame_index >= cut])
    assert set(rows.frame_index.tolist()) == set(range(cut_clip.frames))  # the face in every frame


def test_a_negative_rate_is_refused_in_one_line(tmp_path):
    from helpers import run_cli

    from fer_video.samples import make_clip

    clip = make_clip(tmp_path / "c.mp4", seconds=0.3, width=160, height=90, fps=10)
    done = run_cli("annotate", clip, "--out", tmp_path / "out", "--analyse-rate", "-1", "--quiet")
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and "analyse-rate" in done.stderr, done.stderr
