"""Classifying each track at a bounded rate (`--classify-rate`): which faces are due, how the
others' probabilities are filled, and that a real clip's labels stay those of classifying every
frame while the classifier runs on fewer faces."""

from __future__ import annotations

import numpy as np
import pytest

from fer_video.expression.schedule import CHANGE, ClassifySchedule, fill_between
from fer_video.faces.record import N_EMOTIONS, N_KEYPOINTS, Faces


def frame(tracks, time, index=0) -> Faces:
    n = len(tracks)
    return Faces(np.ones((n, 4)), np.ones(n), np.zeros((n, N_KEYPOINTS, 2)), track_ids=tracks).in_frame(index, time)


def crops(n, level=100):
    return np.full((n, 48, 48), level, np.uint8)


def test_a_steady_face_at_30_fps_is_classified_every_other_frame_and_a_new_track_at_once():
    schedule = ClassifySchedule(rate=15)
    due = [schedule(frame([1], i / 30, i), crops(1))[0] for i in range(7)]
    assert due == [True, False, True, False, True, False, True]
    # A track that appears mid-way is classified in its first frame, whatever the other's turn.
    assert list(schedule(frame([1, 2], 7 / 30, 7), crops(2))) == [False, True]


def test_a_face_that_changes_is_classified_at_once_and_a_cut_starts_every_track_again():
    schedule = ClassifySchedule(rate=15)
    assert schedule(frame([1], 0.0), crops(1))[0]
    assert not schedule(frame([1], 1 / 30), crops(1, 100 + int(CHANGE)))[0]  # within the noise
    assert schedule(frame([1], 1 / 30), crops(1, 100 + int(CHANGE) + 5))[0]  # a turn, a hand, an expression
    assert not schedule(frame([1], 2 / 30), crops(1, 100 + int(CHANGE) + 5))[0]  # compared with the last classified
    schedule.reset()
    assert schedule(frame([1], 3 / 30), crops(1))[0]


def test_rate_zero_classifies_every_face():
    schedule = ClassifySchedule(rate=0)
    assert all(schedule(frame([1, 2], i / 30), crops(2)).all() for i in range(5))


def test_fill_between_holds_each_tracks_last_classified_probabilities():
    a, b = np.eye(N_EMOTIONS, dtype=np.float32)[3], np.eye(N_EMOTIONS, dtype=np.float32)[6]
    nan = np.full(N_EMOTIONS, np.nan, np.float32)
    # Two tracks interleaved, out of time order: filling must follow each track's own times.
    faces = Faces.concat([
        frame([1], 0.0).with_(probs=[a]), frame([2], 0.0).with_(probs=[b]),
        frame([1], 0.2).with_(probs=[b]), frame([1], 0.05).with_(probs=[nan]),
        frame([2], 0.1).with_(probs=[nan]), frame([2], 0.3).with_(probs=[nan]),
        frame([3], 0.1).with_(probs=[nan]), frame([3], 0.2).with_(probs=[a]),
    ])
    filled = fill_between(faces)
    np.testing.assert_array_equal(filled.probs[3], a)  # the last before it, not a blend with what comes after
    np.testing.assert_array_equal(filled.probs[4], b)
    np.testing.assert_array_equal(filled.probs[5], b)
    np.testing.assert_array_equal(filled.probs[6], a)  # none before: the first after
    np.testing.assert_array_equal(filled.probs[:3], faces.probs[:3])
    assert not np.isnan(filled.probs).any()
    classified = faces[:3]
    assert fill_between(classified) is classified  # nothing to fill


def test_a_clip_keeps_its_labels_with_fewer_faces_classified(tmp_path):
    """The real pipeline on a clip of two moving faces: at 15 Hz the classifier sees fewer faces,
    and every kept face's smoothed label is the one every-frame classification gives."""
    from fer_video.pipeline import AnnotateOptions, analyse, keep_faces, probe, smooth
    from fer_video.samples import make_clip

    info = probe(make_clip(tmp_path / "c.mp4", seconds=1.5, width=480, height=270, fps=30))
    results = {}
    for rate in (0, 15):
        # Every frame analysed: the schedule alone decides which faces are classified.
        options = AnnotateOptions(out_dir=tmp_path / "out", progress=False, persons=False, classify_rate=rate,
                                  analyse_rate=0)
        analysis = analyse(info, options)
        faces = smooth(keep_faces(analysis, options)[0], options.smoothing)
        results[rate] = (analysis, dict(zip(zip(faces.frame_index.tolist(), faces.track_ids.tolist()), faces.labels)))
    every, bounded = results[0][0], results[15][0]
    assert every.classified == len(every.faces) > 0
    assert bounded.classified <= 0.8 * len(bounded.faces)
    assert results[15][1] == results[0][1]


def test_by_default_a_steady_face_is_classified_on_every_other_analysed_frame(tmp_path):
    """As shipped (`--analyse-rate 15`, `--classify-rate 7.5`): the classifier sees about half the
    analysed faces, and every kept face's smoothed label is the one classifying every analysed
    face gives."""
    from fer_video.pipeline import AnnotateOptions, analyse, keep_faces, probe, smooth
    from fer_video.samples import make_clip

    info = probe(make_clip(tmp_path / "c.mp4", seconds=2, width=480, height=270, fps=30))
    results = {}
    for rate in (0, None):
        options = AnnotateOptions(out_dir=tmp_path / "out", progress=False, persons=False,
                                  **({} if rate is None else {"classify_rate": rate}))
        analysis = analyse(info, options)
        faces = smooth(keep_faces(analysis, options)[0], options.smoothing)
        results[rate] = (analysis, dict(zip(zip(faces.frame_index.tolist(), faces.track_ids.tolist()), faces.labels)))
    every, default = results[0][0], results[None][0]
    assert AnnotateOptions().classify_rate == AnnotateOptions().analyse_rate / 2
    assert 0 < default.classified <= 0.6 * every.classified
    assert results[None][1] == results[0][1]


def test_a_negative_rate_is_refused_in_one_line(tmp_path):
    from helpers import run_cli

    from fer_video.samples import make_clip

    clip = make_clip(tmp_path / "c.mp4", seconds=0.3, width=160, height=90, fps=10)
    done = run_cli("annotate", clip, "--out", tmp_path / "out", "--classify-rate", "-1", "--quiet")
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and "classify-rate" in done.stderr, done.stderr
