"""Labels drawn at any frame size: readable at 640x360, inside the frame, no wider than their
face's box (shorter wordings first), and clear of each other in a crowd."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_video.draw import draw_faces, draw_faces_i420, layout_labels
from fer_video.faces.record import N_EMOTIONS, N_KEYPOINTS, Faces


def faces_at(boxes, label: int = 3) -> Faces:
    n = len(boxes)
    probs = np.full((n, N_EMOTIONS), 0.02, np.float32)
    probs[:, label] = 0.88
    return Faces(np.array(boxes, np.float32), np.full(n, 0.9), np.zeros((n, N_KEYPOINTS, 2)),
                 track_ids=np.arange(1, n + 1), probs=probs)


def crowd(width: int, height: int, n: int = 10) -> Faces:
    """n faces side by side in two rows, close together, as in an audience."""
    w = width // (n // 2 + 1)
    return faces_at([[10 + (i % (n // 2)) * (w + 4), 20 + (i // (n // 2)) * (w + 10), w, w] for i in range(n)])


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (1920, 1080), (360, 640)])
def test_labels_in_a_crowd_are_inside_the_frame_and_clear_of_each_other(size):
    width, height = size
    faces = crowd(width, height)
    persons = [f"person_{i}" for i in range(len(faces))]
    labels = layout_labels(faces, persons, width, height, faces.probs)
    for label in labels:
        x0, y0, x1, y1 = label.rect
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (label.text, label.rect)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert not overlap(a.rect, b.rect), (a.text, a.rect, b.text, b.rect)


def test_text_is_readable_at_640x360_and_scales_with_the_frame():
    heights = {}
    for width, height in ((640, 360), (1280, 720), (1920, 1080)):
        image = np.zeros((height, width, 3), np.uint8)
        box = [width // 3, height // 3, width // 5, width // 5]
        draw_faces(image, faces_at([box]))
        label = layout_labels(faces_at([box]), None, width, height, faces_at([box]).probs)[0]
        heights[width] = label.rect[3] - label.rect[1]
        # the text itself: black pixels inside the label's filled rectangle
        x0, y0, x1, y1 = label.rect
        ink = np.argwhere(image[y0:y1, x0:x1].sum(axis=2) < 60)
        assert np.ptp(ink[:, 0]) + 1 >= 11, (width, "text under 11 px tall")
    assert heights[640] >= 14 and heights[1280] > heights[640] and heights[1920] > 1.4 * heights[1280]


def test_a_lone_face_gets_its_whole_label_and_a_crowded_one_a_shorter_one():
    lone = faces_at([[300, 300, 60, 60]])
    label = layout_labels(lone, ["person_12"], 1280, 720, lone.probs)[0]
    assert label.text == "#1 person_12 happy 88%"  # wider than the box, covering nothing
    # Hemmed in by neighbours 4 px to either side and rows above and below: the middle face's
    # label shortens to its least (track id and emotion) instead of its whole wording.
    grid = faces_at([[100 + 64 * c, 100 + 94 * r, 60, 60] for r in range(3) for c in range(3)])
    labels = layout_labels(grid, ["person_12"] * 9, 1280, 720, grid.probs)
    assert labels[4].text == "#5 happy"
    # A face with room on one side: its whole label, clear of every other face's box.
    assert labels[0].text == "#1 person_12 happy 88%"
    for j, box in enumerate(grid.boxes[1:], start=1):
        x, y, w, h = (int(v) for v in box)
        assert not overlap(labels[0].rect, (x, y, x + w, y + h)), j


def test_a_face_at_the_frame_edge_keeps_its_label_inside():
    faces = faces_at([[1200, 0, 80, 80], [-20, 650, 90, 70]])
    for label in layout_labels(faces, ["Ada Lovelace", ""], 1280, 720, faces.probs):
        x0, y0, x1, y1 = label.rect
        assert 0 <= x0 and x1 <= 1280 and 0 <= y0 and y1 <= 720
    image = np.zeros((720, 1280, 3), np.uint8)
    draw_faces(image, faces)
    assert cv2.countNonZero(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)) > 0


@pytest.mark.parametrize("size", [(1280, 720), (642, 362), (100, 60)])
def test_drawing_on_i420_frames_gives_the_bytes_of_drawing_the_whole_frame_in_bgr(size):
    """The annotated video draws only the parts of an I420 frame where faces are; the frame must
    come out byte for byte as converting all of it to BGR, drawing and converting back would
    make it: faces anywhere, cut by the frame's edges, overlapping, with person labels."""
    from fer_video.samples import background

    width, height = size
    i420 = cv2.cvtColor(background(width, height), cv2.COLOR_BGR2YUV_I420)
    rng = np.random.default_rng(width)
    for _ in range(60):
        n = int(rng.integers(1, 6))
        side = rng.uniform(8, 0.6 * min(width, height), n)
        boxes = np.stack([rng.uniform(-0.2 * width, width, n), rng.uniform(-0.2 * height, height, n), side,
                          side * rng.uniform(0.9, 1.1, n)], axis=1)
        probs = rng.dirichlet(np.ones(N_EMOTIONS), n).astype(np.float32)
        faces = faces_at(boxes).with_(probs=probs, smoothed=probs)
        persons = ["" if rng.random() < 0.5 else f"person_{i}" for i in range(n)]
        whole = draw_faces(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420), faces, persons)
        expected = cv2.cvtColor(whole, cv2.COLOR_BGR2YUV_I420)
        drawn = draw_faces_i420(i420, faces, persons)
        assert np.array_equal(drawn, expected), np.argwhere(drawn != expected)[:5]
        assert not np.array_equal(drawn, i420)
        own = i420.copy()  # drawn on its own pixels (the live video's frames): the same bytes
        assert draw_faces_i420(own, faces, persons, in_place=True) is own
        assert np.array_equal(own, expected)


def _drawn_directly(image, faces, persons):
    """draw_faces without the label cache: each label drawn onto the frame itself, its text
    clipped to the label's rectangle."""
    from fer_video.draw import EMOTION_COLORS_BGR, FONT, _shown
    from fer_video.expression.labels import EMOTIONS

    height, width = image.shape[:2]
    probs = _shown(faces)
    labels = layout_labels(faces, persons, width, height, probs)
    draw_faces(image, faces, persons)  # boxes and bars; the labels are drawn again below
    for p, label in zip(probs, labels):
        x0, y0, x1, y1 = label.rect
        inside = image[y0:y1, x0:x1]
        inside[:] = EMOTION_COLORS_BGR[EMOTIONS[int(np.argmax(p))]]
        cv2.putText(inside, label.text, (2, label.baseline - y0), FONT, label.font_scale, (0, 0, 0), label.thickness,
                    cv2.LINE_AA)
    return image


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (1920, 1080), (3840, 2160)])
def test_labels_drawn_once_and_reused_are_the_labels_drawn_on_the_frame(size):
    """Labels are drawn once per wording, colour and size and copied onto each frame: the frame
    is the one drawing each label on the frame itself gives, on a busy background, with faces
    whose labels overlap boxes and bars of others."""
    width, height = size
    rng = np.random.default_rng(height)
    for _ in range(10):
        n = int(rng.integers(1, 8))
        side = rng.uniform(0.03, 0.3, n) * width
        boxes = np.stack([rng.uniform(0, width * 0.9, n), rng.uniform(0, height * 0.8, n), side, side], axis=1)
        probs = rng.dirichlet(np.ones(N_EMOTIONS) * 0.3, n).astype(np.float32)
        faces = faces_at(boxes).with_(probs=probs, smoothed=probs, track_ids=rng.integers(1, 200, n))
        persons = ["" if rng.random() < 0.5 else f"person_{rng.integers(1, 99)}" for _ in range(n)]
        background = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert np.array_equal(draw_faces(background.copy(), faces, persons),
                              _drawn_directly(background.copy(), faces, persons))
