"""BlazeFace following faces at a bounded rate (`BlazeFaceDetector.follow_rate`): a steady face
is located by its window once per 1/7.5 s (1/15 s here where a test says so) and predicted on its
path between; a face that stops or
turns, a new face and every face after a reset are located at once."""

from __future__ import annotations

import numpy as np
import pytest

from fer_video.faces.detectors import make_detector
from fer_video.samples import Actor, background, sample_frame

FPS, WIDTH, HEIGHT = 30, 640, 360
FACE = 100  # face width, px; its patch is about 1/0.55 of it
PATCH = FACE / 0.55


@pytest.fixture(scope="module")
def canvas():
    return background(WIDTH, HEIGHT)


def follow(detector, frames):
    """Each frame's faces, and whether its short-range window ran (the face was located)."""
    faces, located = [], []
    for i, image in enumerate(frames):
        before = detector._short.windows + detector._wide.windows
        faces.append(detector(image, i, time=i / FPS))
        located.append(detector._short.windows + detector._wide.windows > before)
    return faces, located


def frames_at(face, canvas, xs):
    return [sample_frame(canvas, face, [Actor(x=x / WIDTH, y=0.5, width=PATCH)], 0.0) for x in xs]


def centre_x(faces):
    return float(faces.boxes[0, 0] + faces.boxes[0, 2] / 2)


def test_the_detector_locates_a_steady_face_in_every_other_frame_the_pipeline_analyses(face, canvas):
    """By default a steady face is located 7.5 times a second: every other frame at the 15 frames
    a second the pipeline analyses (`--analyse-rate`), predicted between."""
    detector = make_detector("blazeface", frame_rate=15)
    assert detector.follow_rate == 7.5
    xs = [150 + 8 * i for i in range(16)]  # 120 px/s at 15 frames a second
    faces, located = [], []
    for i, image in enumerate(frames_at(face, canvas, xs)):
        before = detector._short.windows + detector._wide.windows
        faces.append(detector(image, i, time=i / 15))
        located.append(detector._short.windows + detector._wide.windows > before)
    assert all(len(f) == 1 for f in faces)
    assert all(located[i] for i in range(0, 16, 2))
    assert sum(not located[i] for i in range(3, 16, 2)) >= 5, located


def test_a_steady_face_is_located_every_other_frame_and_predicted_on_its_path(face, canvas):
    """At 15 locations a second and 30 frames a second (the mechanism at another rate)."""
    detector = make_detector("blazeface", frame_rate=FPS, follow_rate=15)
    xs = [150 + 4 * i for i in range(30)]  # 120 px/s, 1.2 face widths a second
    faces, located = follow(detector, frames_at(face, canvas, xs))
    assert all(len(f) == 1 for f in faces)
    assert located[:3] == [True] * 3  # new: its motion is measured before it is predicted
    # Located on the first frame of each 1/15 s (the even ones at 30 fps), predicted between.
    assert all(located[i] for i in range(0, 30, 2))
    predicted = [i for i in range(3, 29) if not located[i]]
    assert len(predicted) >= 10, located
    for i in predicted:  # on its path: halfway between the locations either side
        assert located[i - 1] and located[i + 1]
        middle = (centre_x(faces[i - 1]) + centre_x(faces[i + 1])) / 2
        assert abs(centre_x(faces[i]) - middle) < 0.04 * FACE, (i, centre_x(faces[i]), middle)
        # Its score and keypoints are its last location's, moved with it.
        assert faces[i].scores[0] == faces[i - 1].scores[0]
        shift = faces[i].boxes[0, :2] - faces[i - 1].boxes[0, :2]
        np.testing.assert_allclose(faces[i].keypoints[0] - faces[i - 1].keypoints[0], np.tile(shift, (6, 1)),
                                   atol=1e-3)


@pytest.mark.parametrize("after", ["stops", "turns back"])
def test_a_face_that_stops_or_turns_back_is_located_again_at_once(face, canvas, after):
    """12 px a frame (3.6 face widths a second) for 12 frames, then still or back the way it came:
    the first location after the change finds its motion changed, and the next frame, due to be
    predicted, is located too."""
    xs = [150 + 12 * min(i, 11) - (12 * max(i - 11, 0) if after == "turns back" else 0) for i in range(24)]
    detector = make_detector("blazeface", frame_rate=FPS, follow_rate=15)
    faces, located = follow(detector, frames_at(face, canvas, xs))
    assert all(len(f) == 1 for f in faces)
    assert not located[9], located  # steady before
    assert located[12] and located[13], located  # 12: the change seen; 13: not trusted to a prediction
    for i in range(24):  # wherever it is predicted, it is near where it is
        if not located[i]:
            offset = np.median([centre_x(faces[j]) - xs[j] for j in range(24) if located[j]])
            assert abs(centre_x(faces[i]) - offset - xs[i]) < 0.1 * FACE, (i, located)


def test_a_face_is_located_at_once_after_a_reset(face, canvas):
    detector = make_detector("blazeface", frame_rate=FPS)
    xs = [150 + 4 * i for i in range(16)]
    frames = frames_at(face, canvas, xs)
    assert not all(follow(detector, frames[:11])[1])  # predicted at times
    detector.reset()
    before = detector._short.windows
    for i in (11, 12, 13):  # new again: located until its motion is measured
        detector(frames[i], i, time=i / FPS)
        assert detector._short.windows > before, i
        before = detector._short.windows


def test_a_face_that_walks_in_is_located_on_its_first_frames(face, canvas):
    """With the look-ahead (as the pipeline calls it), a face that walks in while another is
    predicted is found on the frame it appears, and located, not predicted, on the next."""
    detector = make_detector("blazeface", frame_rate=FPS)
    every = detector.scan_every
    actors = [Actor(x=0.25, y=0.5, width=PATCH), Actor(x=0.75, y=0.5, width=PATCH, enter=0.5)]
    frames = [sample_frame(canvas, face, actors, i / FPS) for i in range(30)]
    counts, windows = [], []
    for i, image in enumerate(frames):
        later = min(i + every - 1, len(frames) - 1)
        before = detector._short.windows
        counts.append(len(detector(image, i, (frames[later], later) if later > i else None, time=i / FPS)))
        windows.append(detector._short.windows - before)
    entered = next(i for i in range(30) if i / FPS >= 0.5)
    assert counts == [1] * entered + [2] * (30 - entered), counts
    assert 0 in windows[:entered], windows  # the first face is predicted at times
    assert windows[entered] >= 1 and windows[entered + 1] >= 1, windows


@pytest.mark.parametrize("gone", ["vanishes", "is covered"])
def test_a_face_that_vanishes_where_it_would_be_predicted_is_not(face, canvas, gone):
    """A steady face gone on a frame due to be predicted (cut out of the picture, or a hand over
    it): its predicted box no longer looks like it, so it is located there instead (and, gone,
    missed) rather than reported where it was."""
    detector = make_detector("blazeface", frame_rate=15)
    actor = Actor(x=0.4, y=0.5, width=PATCH)
    frames = [sample_frame(canvas, face, [actor], 0.0) for _ in range(8)]
    faces, located = [], []
    for i, image in enumerate(frames):
        before = detector._short.windows + detector._wide.windows
        faces.append(detector(image, i, time=i / 15))
        located.append(detector._short.windows + detector._wide.windows > before)
    due = next(i for i in range(3, 8) if not located[i])  # the steady face is predicted here
    assert all(len(f) == 1 for f in faces)

    detector.reset()
    box = faces[due].boxes[0]
    if gone == "vanishes":
        hidden = canvas.copy()
    else:  # a flat skin-coloured patch over the face, as a hand would be
        hidden = frames[due].copy()
        x, y, w, h = (int(v) for v in box)
        hidden[y:y + h, x:x + w] = (120, 150, 200)
    seen, where = [], []
    for i in range(due + 1):
        before = detector._short.windows + detector._wide.windows
        seen.append(detector(hidden if i == due else frames[i], i, time=i / 15))
        where.append(detector._short.windows + detector._wide.windows > before)
    assert where[due], where  # located, not predicted: the model says what is there
    if gone == "vanishes":
        assert len(seen[due]) == 0, seen[due].boxes  # not reported where it was
