"""The tracker and the shot-cut detector on synthetic boxes and frames."""

from __future__ import annotations

import numpy as np
import pytest

from fer_video.faces.record import N_KEYPOINTS, Faces
from fer_video.faces.track import ShotCutDetector, Tracker
from fer_video.samples import Actor, astronaut_face, background, sample_frame

FPS = 25


def faces(boxes) -> Faces:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Faces(boxes, np.ones(len(boxes)), np.full((len(boxes), N_KEYPOINTS, 2), np.nan))


@pytest.mark.parametrize("offset", [10, 15, 30])
def test_two_faces_crossing_close_keep_their_ids(offset):
    """Face A moves right, face B left, `offset` px apart vertically (60 px faces, so their boxes
    overlap heavily where they cross); detector order alternates and boxes jitter."""
    rng = np.random.default_rng(offset)
    tracker = Tracker()
    ids_a, ids_b = [], []
    for i in range(50):
        a = [100 + 8 * i, 100, 60, 60]
        b = [500 - 8 * i, 100 + offset, 60, 60]
        boxes = np.array([a, b], float) + rng.normal(0, 1.5, (2, 4))
        order = [1, 0] if i % 2 else [0, 1]
        tracked = tracker.update(faces(boxes[order]), i / FPS)
        ids = dict(zip(order, tracked.track_ids.tolist()))
        ids_a.append(ids[0])
        ids_b.append(ids[1])
    assert set(ids_a) == {ids_a[0]} and set(ids_b) == {ids_b[0]} and ids_a[0] != ids_b[0]


def test_face_missing_for_a_few_frames_keeps_its_id():
    tracker = Tracker()
    seen = []
    for i in range(40):
        box = [100 + 3 * i, 80, 70, 70]
        missing = 10 <= i < 18  # 0.32 s without a detection
        tracked = tracker.update(faces([] if missing else [box]), i / FPS)
        if not missing:
            seen.append(int(tracked.track_ids[0]))
    assert set(seen) == {seen[0]}


def test_face_gone_longer_than_max_gap_gets_a_new_id():
    tracker = Tracker(max_gap=1.0)
    first = tracker.update(faces([[100, 80, 70, 70]]), 0.0).track_ids[0]
    tracker.update(faces([]), 0.5)
    again = tracker.update(faces([[100, 80, 70, 70]]), 1.6).track_ids[0]
    assert again != first


def test_new_face_gets_a_new_id_and_the_old_keeps_its_own():
    tracker = Tracker()
    a = tracker.update(faces([[100, 80, 70, 70]]), 0.0).track_ids[0]
    tracked = tracker.update(faces([[101, 80, 70, 70], [400, 90, 60, 60]]), 0.04)
    assert tracked.track_ids[0] == a
    assert tracked.track_ids[1] not in (a, -1)


def test_reset_gives_new_ids_that_stay_unique():
    tracker = Tracker()
    before = tracker.update(faces([[100, 80, 70, 70], [300, 80, 70, 70]]), 0.0).track_ids
    tracker.reset()
    after = tracker.update(faces([[100, 80, 70, 70], [300, 80, 70, 70]]), 0.04).track_ids
    assert set(before).isdisjoint(after)
    assert len(set(after)) == 2


def test_tracker_works_in_seconds_not_frames():
    """The same motion sampled every frame or every 3rd (a stride) keeps one id."""
    for step in (1, 3):
        tracker = Tracker()
        ids = {int(tracker.update(faces([[50 + 100 * t, 80, 70, 70]]), t).track_ids[0])
               for t in np.arange(0, 2, step / FPS)}
        assert len(ids) == 1


def test_empty_frame_gives_empty_faces():
    tracked = Tracker().update(Faces.empty(), 0.0)
    assert len(tracked) == 0 and tracked.track_ids.shape == (0,)


# --- shot cuts ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenes():
    width, height = 320, 180
    face = astronaut_face()
    actors = [Actor(x=0.4, y=0.5, width=100, dx=0.1, scale=0.1, period=2.0)]
    first, second = background(width, height, seed=0), background(width, height, seed=1)[:, ::-1] // 2 + 60
    return [sample_frame(first if i < 20 else second, face, actors, i / FPS) for i in range(40)]


def test_shot_cut_detector_flags_the_cut_and_only_the_cut(scenes):
    detector = ShotCutDetector()
    flags = [detector(frame) for frame in scenes]
    assert np.flatnonzero(flags).tolist() == [20]


def test_shot_cut_detector_flags_the_same_cut_in_thumbnails_of_decoded_planes(scenes):
    """The pipeline tests a thumbnail made from the I420 planes as decoded, not the BGR frame."""
    import cv2

    from fer_video.video.read import Frame

    detector = ShotCutDetector()
    frames = [Frame(i, i / FPS, cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)) for i, image in enumerate(scenes)]
    flags = [detector(frame.thumbnail(*ShotCutDetector.SIZE)) for frame in frames]
    assert np.flatnonzero(flags).tolist() == [20]


def test_the_cut_tests_thumbnail_of_every_4th_row_sees_what_the_whole_frame_shows():
    """The thumbnail reads a quarter of a 720p frame's rows: from frame to frame within a shot its
    histograms move as the whole frame's do (within 0.05, where the threshold is 0.5), and the
    cut is flagged on the same frame."""
    import cv2

    from fer_video.video.read import Frame

    face = astronaut_face()
    actors = [Actor(x=0.35, y=0.5, width=200, dx=0.1, scale=0.1, period=1.0), Actor(x=0.7, y=0.45, width=160)]
    first, second = background(1280, 720, seed=0), background(1280, 720, seed=1)[:, ::-1] // 2 + 60
    frames = [Frame(i, i / FPS, cv2.cvtColor(sample_frame(first if i < 20 else second, face, actors, i / FPS),
                                             cv2.COLOR_BGR2YUV_I420)) for i in range(40)]

    def distances(row_step):
        detector, found = ShotCutDetector(), []
        for frame in frames:
            detector(frame.thumbnail(*ShotCutDetector.SIZE, row_step=row_step))
            found.append(detector._previous)
        return np.array([cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA) for a, b in zip(found, found[1:])])

    rows, whole = distances(4), distances(1)
    assert np.flatnonzero(rows > 0.5).tolist() == np.flatnonzero(whole > 0.5).tolist() == [19]  # frame 20
    assert np.abs(rows - whole).max() < 0.05


def test_shot_cut_detector_ignores_a_repeated_frame_and_a_brightness_drift(scenes):
    detector = ShotCutDetector()
    frame = scenes[0]
    assert not detector(frame)
    assert not detector(frame)
    for gain in np.linspace(1.0, 0.8, 10):  # a slow fade
        assert not detector(np.clip(frame * gain, 0, 255).astype(np.uint8))


def test_a_face_the_check_calls_someone_else_ends_its_track():
    """The `same_face` check (appearance) is asked for every face given to a track; where it says
    no, the track ends there and the face starts a new one, though the box barely moved."""
    asked = []

    def same_face(track, image, box, time):
        asked.append((track.id, time))
        return time < 0.5  # from 0.5 s on, another person stands where the face was

    tracker = Tracker(same_face=same_face)
    image = np.zeros((240, 320, 3), np.uint8)
    ids = [int(tracker.update(faces([[100 + t, 80, 60, 60]]), t / 10, image).track_ids[0]) for t in range(8)]
    assert ids == [1, 1, 1, 1, 1, 2, 3, 4]  # the check says no to every later face here
    assert asked[0] == (1, 0.0)  # the first face of a track is shown to the check too
    assert int(tracker.update(faces([[108, 80, 60, 60]]), 0.8).track_ids[0]) == 4  # no image: no check, followed


def test_a_faces_template_in_a_frame_is_made_once_and_a_new_frame_gets_its_own():
    """The detector and the appearance check both ask for it: the second gets the first's."""
    from fer_video.faces.template import grey_template

    frame = sample_frame(background(320, 180, seed=2), astronaut_face(), [Actor(x=0.5, y=0.5, width=90)], 0.0)
    box = np.array([115, 45, 90, 90], np.float32)
    first = grey_template(frame, box)
    assert grey_template(frame, box.astype(np.float64)) is first and not first.flags.writeable
    assert np.isclose(float(np.linalg.norm(first)), 1.0, atol=1e-3)
    darker = frame // 2  # a new frame: its own template, not the last one's
    assert grey_template(darker, box) is not first
    assert grey_template(darker, box + 1) is not grey_template(darker, box)
