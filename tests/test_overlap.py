"""The work that overlaps on 2 cores: frames decoded ahead in a thread (`prefetch`), faces
classified in a worker thread while the next frames are detected (`_Batches`), and pipes to and
from ffmpeg that hold a few frames. Each must give what the serial code gave, in order, and stop
cleanly."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

from fer_video.faces.record import N_EMOTIONS, Faces
from fer_video.pipeline.analyse import _Batches
from fer_video.video import probe, read_frames
from fer_video.video.ffmpeg_binary import ffmpeg_exe
from fer_video.video.pipes import FRAMES_AHEAD, enlarge_pipe
from fer_video.video.prefetch import prefetch


def test_prefetch_gives_every_item_in_order():
    assert list(prefetch(lambda: iter(range(1000)))) == list(range(1000))


def test_prefetch_raises_the_producers_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("truncated")

    seen = []
    with pytest.raises(ValueError, match="truncated"):
        for item in prefetch(items):
            seen.append(item)
    assert seen == [1, 2]


def test_prefetch_runs_at_most_a_few_items_ahead():
    made = []

    def items():
        for i in range(100):
            made.append(i)
            yield i

    stream = prefetch(items, ahead=3)
    assert next(stream) == 0
    time.sleep(0.3)  # time for the producer to run ahead as far as it may
    assert len(made) <= 1 + 3 + 1  # the one taken, the queue's 3, and one waiting to be put
    stream.close()


def test_prefetch_starts_producing_before_the_first_item_is_asked_for():
    """The analysis loads its models while ffmpeg starts: decoding must not wait for `next`."""
    started = threading.Event()

    def items():
        started.set()
        yield 1

    stream = prefetch(items)
    assert started.wait(5)
    assert list(stream) == [1]


def test_a_prefetch_dropped_unused_stops_its_producer():
    stopped = threading.Event()

    def items():
        try:
            for i in range(10**9):
                yield i
        finally:
            stopped.set()

    stream = prefetch(items)
    del stream
    assert stopped.wait(5)


def test_a_consumer_that_stops_early_closes_the_producer_in_its_thread():
    closed_in = []

    def items():
        try:
            for i in range(10**9):
                yield i
        finally:
            closed_in.append(threading.current_thread().name)

    for item in prefetch(items):
        if item == 5:
            break
    # The generator was closed (its finally ran) by the producer thread, not left running.
    deadline = time.monotonic() + 5
    while not closed_in and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed_in == ["prefetch"]


def test_prefetched_frames_are_those_read_frames_gives(two_face_clip):
    info = probe(two_face_clip)
    plain = [(f.index, f.time, f.pixels.tobytes()) for f in read_frames(info, stride=2)]
    ahead = [(f.index, f.time, f.pixels.tobytes()) for f in prefetch(lambda: read_frames(info, stride=2))]
    assert plain == ahead and len(plain) > 10


def _ffmpeg_children() -> list[int]:
    import os

    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"ffmpeg" in command and fields[0] != "Z":
            pids.append(int(pid))
    return pids


def test_stopping_early_ends_the_decoder_and_its_thread(rotated_clip):
    info = probe(rotated_clip)  # decoded by the ffmpeg binary, which turns it upright
    frames = prefetch(lambda: read_frames(info))
    next(frames)
    assert _ffmpeg_children()
    frames.close()
    assert not any(t.name == "prefetch" for t in threading.enumerate())
    assert not _ffmpeg_children()


def test_stopping_early_ends_the_decoding_in_this_process(two_face_clip):
    info = probe(two_face_clip)  # decoded by PyAV, in this process
    frames = prefetch(lambda: read_frames(info), behind=True)
    next(frames)
    assert not _ffmpeg_children()
    frames.close()
    assert not any(t.name == "prefetch" for t in threading.enumerate())


class _SlowClassifier:
    """Probabilities that encode each face's frame index, after a random pause: batches must
    still be kept in frame order."""

    def __init__(self, fail_on_call: int | None = None):
        self.calls = 0
        self.fail_on_call = fail_on_call
        self.rng = np.random.default_rng(0)

    def classify(self, faces: Faces, crops: np.ndarray) -> Faces:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("model failed")
        time.sleep(float(self.rng.uniform(0, 0.02)))
        probs = np.repeat(faces.frame_index[:, None].astype(np.float32), N_EMOTIONS, axis=1)
        return faces.with_(probs=probs)


def _frame_faces(index: int, n: int = 2) -> Faces:
    return Faces(np.tile([10.0, 10, 50, 50], (n, 1)), np.ones(n), np.zeros((n, 6, 2))).in_frame(index, index / 24)


def test_classified_batches_are_kept_in_frame_order():
    with _Batches(_SlowClassifier(), size=7) as batches:
        for i in range(200):
            faces = _frame_faces(i, n=1 + i % 3)
            due = np.arange(len(faces)) != i % 2  # some faces skipped: the schedule's
            batches.add(faces, np.zeros((len(faces), 48, 48), np.uint8), due)
        batches.flush()
    faces = batches.classified()
    assert len(faces) == sum(1 + i % 3 for i in range(200))
    assert (np.diff(faces.frame_index) >= 0).all()
    classified = ~np.isnan(faces.probs[:, 0])
    assert classified.sum() == batches.due_total == sum(1 + i % 3 - (i % 2 < 1 + i % 3) for i in range(200))
    assert np.array_equal(faces.probs[classified, 0], faces.frame_index[classified].astype(np.float32))


def test_a_classifier_error_is_raised_in_the_analysing_thread():
    with pytest.raises(RuntimeError, match="model failed"):
        with _Batches(_SlowClassifier(fail_on_call=2), size=4) as batches:
            for i in range(50):
                batches.add(_frame_faces(i), np.zeros((2, 48, 48), np.uint8), np.ones(2, bool))
            batches.flush()


def test_pipes_to_ffmpeg_hold_several_frames():
    frame_bytes = 640 * 360 * 3 // 2
    proc = subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-f", "rawvideo", "-i", "pipe:", "-f", "null", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        size = enlarge_pipe(proc.stdin, frame_bytes)
        with open("/proc/sys/fs/pipe-max-size") as f:
            allowed = int(f.read())
        assert size >= min(FRAMES_AHEAD * frame_bytes, allowed)
        assert size > 64 * 1024  # more than Linux's default, the point of it
    finally:
        proc.stdin.close()
        proc.kill()
        proc.wait()
