"""BlazeFace's tiles and whole-frame scans look only where the picture changed (`StillWindows`): a still background
around the people followed is not scanned again and again, a small face that walks in clear of
them is found as soon as with every tile, one that appears beside a person (where nothing else
changes) within STILL_REFRESH_SECONDS, and a change of light or a face lost makes the tiles look
again. bench/detectors.py part (d) measures the delays on many placements."""

from __future__ import annotations

import numpy as np
import pytest

from fer_video.faces.detectors.blazeface import BlazeFaceDetector, StillWindows, Window, block_means
from fer_video.samples import Actor, background, sample_frame

FPS, WIDTH, HEIGHT = 30, 1280, 720
FACE_PER_PATCH = 0.55  # the astronaut patch's face box is about this share of its width


@pytest.fixture(scope="module")
def canvas():
    return background(WIDTH, HEIGHT)


def run(detector, frames):
    """Each frame's faces, frames analysed in order at FPS."""
    return [detector(frame, i, time=i / FPS) for i, frame in enumerate(frames)]


def first_found(faces, centre, since: int) -> float | None:
    """Seconds from frame `since` to the first frame with a face centred within 15 px of `centre`."""
    for i in range(since, len(faces)):
        boxes = faces[i].boxes
        if len(boxes) and (np.hypot(*(boxes[:, :2] + boxes[:, 2:] / 2 - centre).T) < 15).any():
            return (i - since) / FPS
    return None


def test_a_still_background_around_a_moving_person_is_not_scanned_again(face, canvas):
    person = Actor(x=0.35, y=0.45, width=200 / FACE_PER_PATCH, dx=0.1, period=3.0)
    frames = [sample_frame(canvas, face, [person], i / FPS) for i in range(90)]
    still, every = BlazeFaceDetector(frame_rate=FPS), BlazeFaceDetector(frame_rate=FPS, still_windows=False)
    found_still, found_every = run(still, frames), run(every, frames)
    assert [len(f) for f in found_still] == [len(f) for f in found_every] == [1] * 90
    tiles_still, tiles_every = still._full.windows, every._full.windows
    # Every tile on the first frame, then only the tiles holding the person, every 2 s.
    assert tiles_still < 0.6 * tiles_every, (tiles_still, tiles_every)


def test_a_small_face_walking_in_clear_of_people_is_found_as_soon_as_with_every_tile(face, canvas):
    person = Actor(x=0.3, y=0.45, width=200 / FACE_PER_PATCH, dx=0.05, period=3.0)
    enter = 40  # frames: 1.33 s in, between two tile passes
    small = Actor(x=0.8, y=0.3, width=50 / FACE_PER_PATCH, enter=enter / FPS)
    frames = [sample_frame(canvas, face, [person, small], i / FPS) for i in range(enter + 30)]
    centre = np.array([0.8 * WIDTH, 0.3 * HEIGHT])
    late_still = first_found(run(BlazeFaceDetector(frame_rate=FPS), frames), centre, enter)
    late_every = first_found(run(BlazeFaceDetector(frame_rate=FPS, still_windows=False), frames), centre, enter)
    assert late_every is not None and late_every <= BlazeFaceDetector.TILE_SECONDS
    assert late_still == late_every


def test_a_small_face_beside_a_still_person_is_found_within_the_refresh(face, canvas):
    """Beside a person's head, where the followed face's own blocks are not compared, nothing
    else changes: the tile holding them is scanned again within STILL_REFRESH_SECONDS."""
    person = Actor(x=0.4, y=0.45, width=200 / FACE_PER_PATCH)
    frames = [sample_frame(canvas, face, [person], i / FPS) for i in range(3)]
    box = BlazeFaceDetector(frame_rate=FPS)(frames[0], 0, time=0.0).boxes[0]
    side = max(box[2], box[3])
    centre = np.array([box[0] + box[2] + 0.5 * side, box[1] + box[3] / 2])
    tiles = StillWindows(refresh_s=2.0)
    tiles.due(block_means(frames[0]), [Window(0, 0, WIDTH)], box[None], 0.0)
    blocks = tiles._covered(box[None], tiles.seen.shape)
    assert blocks[int(centre[1]) // StillWindows.BLOCK, int(centre[0]) // StillWindows.BLOCK]  # beside: not compared

    enter = 40
    small = Actor(x=centre[0] / WIDTH, y=centre[1] / HEIGHT, width=50 / FACE_PER_PATCH, enter=enter / FPS)
    frames = [sample_frame(canvas, face, [person, small], i / FPS) for i in range(enter + 90)]
    late_every = first_found(run(BlazeFaceDetector(frame_rate=FPS, still_windows=False), frames), centre, enter)
    late_still = first_found(run(BlazeFaceDetector(frame_rate=FPS), frames), centre, enter)
    assert late_every is not None and late_every <= BlazeFaceDetector.TILE_SECONDS
    assert late_still is not None
    assert late_still <= BlazeFaceDetector.STILL_REFRESH_SECONDS + BlazeFaceDetector.TILE_SECONDS


def test_tiles_look_again_after_a_change_of_light_or_a_lost_face(canvas):
    tiles = [Window(0, 0, 480), Window(400, 0, 480), Window(800, 240, 480)]
    still, nobody = StillWindows(refresh_s=2.0), np.zeros((0, 4))
    before, after = block_means(canvas), block_means(np.clip(canvas.astype(np.int16) + 12, 0, 255).astype(np.uint8))
    assert still.due(before, tiles, nobody, 0.0) == tiles  # never seen: all
    for t in range(1, 10):  # no one followed, nothing changes: none, however long
        assert still.due(before, tiles, nobody, t) == []
    assert still.due(after, tiles, nobody, 10.0) == tiles
    assert still.due(after, tiles, nobody, 10.5) == []
    still.forget(np.array([[1000.0, 600.0, 60.0, 60.0]]))  # a face followed there is lost
    assert still.due(after, tiles, nobody, 11.0) == [tiles[2]]
    still.reset()
    assert still.due(after, tiles, nobody, 11.5) == tiles


def test_a_window_beside_a_person_is_scanned_every_refresh(canvas):
    tiles = [Window(0, 0, 480), Window(800, 240, 480)]
    still, person = StillWindows(refresh_s=2.0), np.array([[950.0, 350.0, 120.0, 120.0]])
    blocks = block_means(canvas)
    assert still.due(blocks, tiles, person, 0.0) == tiles
    due = {t / 2: still.due(blocks, tiles, person, t / 2) for t in range(1, 12)}
    assert [t for t, d in due.items() if d] == [2.0, 4.0]
    assert all(d == [tiles[1]] for d in due.values() if d)  # the tile the person is in, only
