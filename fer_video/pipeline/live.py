"""The annotated video drawn during the analysis, so the source is decoded once.

The analysis holds each decoded frame until its faces are final, then draws and encodes it:
final means their track is confirmed as a face (`keep`'s rule: peak score and frames seen), its
number among the kept tracks known, its classifications known to half a smoothing window past the
frame, and so its smoothed probabilities, which are computed here the way `smooth` computes them
(the same prefix sums, bit for bit). Frames are held a bounded time and memory; a frame that
reaches either bound is drawn with what is known.

What a pass drew is checked at the end against the whole video's final faces (persons included:
a person found across tracks only shows once the video is done): each frame's drawn faces are
kept as a digest, and a frame whose final faces digest differently means the video is drawn
again from the final faces, as the render stage does without this. So the MP4 is always the
whole video's drawing; decoding once is what is saved, when the check passes.

Only for what it can compute as `smooth` does: every frame analysed (stride 1), one segment,
`window` or `none` smoothing (`ema`'s exponentials and `hmm`'s backward pass are left to the
render stage).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_video.faces.record import N_EMOTIONS, Faces
from fer_video.smoothing import Smoothing

HOLD_SECONDS = 2.0  # a frame is drawn at the latest this long after it was decoded
DRAW_AHEAD = 2  # groups of frames handed to the drawing thread and not yet written, at most
GROUP_FRAMES = 4  # frames a group, at most: the analysis waits on the drawing past 8 frames
HOLD_BYTES = 256 * 2**20  # and when the frames held reach this
MIN_TRACK_FRAMES = 3  # keep.py's: a track seen in fewer analysed frames is not a face
TRACK_GAP = 1.0  # the tracker's max_gap: a track not seen for longer has ended


def can_draw_live(info, options) -> bool:
    """Whether `LiveVideo` computes what the render stage would draw, for this input and options."""
    return (options.video and not info.is_image and options.stride == 1 and options.segments == 1
            and Smoothing.parse(options.smoothing).method in ("window", "none"))


@dataclass
class _Track:
    first: int  # frame index it was first seen in
    old_id: int
    first_seen: float = 0.0  # that frame's time
    peak: float = 0.0
    frames: int = 0
    last_seen: float = 0.0
    times: list = field(default_factory=list)  # of its classified (or held) faces, in order
    probs: list = field(default_factory=list)  # their probabilities (float32), the same order
    cumulative: list = field(default_factory=lambda: [np.zeros(N_EMOTIONS)])  # prefix sums, as np.cumsum makes them
    last_probs: np.ndarray | None = None  # its last classified probabilities, held over the faces between
    count: int = 0  # its faces classified (or held) so far; `times` keeps only the recent ones

    def confirmed(self, min_score: float, min_frames: int) -> bool:
        return self.peak >= np.float32(min_score) and self.frames >= min_frames


def frame_digest(faces: Faces, persons: list[str]) -> bytes:
    """What drawing a frame's faces depends on (`fer_video.draw.draw_faces`), as a short digest."""
    h = hashlib.blake2b(digest_size=16)
    for column in (faces.track_ids.astype(np.int64), faces.boxes, faces.smoothed):
        h.update(np.ascontiguousarray(column).tobytes())
    h.update("\x00".join(persons).encode())
    return h.digest()


class LiveVideo:
    """`push(frame, faces)` each analysed frame with its tracked faces (not yet classified), in
    order; `classified(faces)` each classified batch, in frame order; `finish()` at the end of the
    video. `sink` is the video sink the frames go to (closed by `close`, given up by `discard`)."""

    def __init__(self, sink, options, filters_tracks: bool = True):
        self.sink = sink
        # keep.py's rule, for a detector whose scores are confidences; another's tracks are all
        # kept, under their own ids.
        self.filters_tracks = filters_tracks
        self.min_score = options.min_score if filters_tracks else -np.inf
        self.min_frames = MIN_TRACK_FRAMES if filters_tracks else 1
        self.pushed = 0
        # With person linking, two tracks that never share a frame may turn out to be one person,
        # whose label the whole video decides: once such a pair is confirmed, the render stage
        # will most likely draw the video again, and drawing it here as well would be wasted.
        self.persons = bool(getattr(options, "persons", True) or getattr(options, "identity", False))
        self.gave_up = False
        smoothing = Smoothing.parse(options.smoothing)
        self.half = smoothing.seconds / 2 if smoothing.method == "window" else None
        self.tracks: dict[int, _Track] = {}  # the tracks of the frames still to draw, and a little before
        self.number: dict[int, int] = {}  # old id -> its number among the confirmed tracks (keep.py's renumbering)
        self._confirmed: list[tuple[int, int]] = []  # (first frame, old id) of every confirmed track, sorted
        self._open: dict[int, _Track] = {}  # tracks seen, not (yet) confirmed
        self._forgotten_end = np.inf  # the earliest last sighting of a confirmed track since forgotten
        self.held: deque = deque()  # (frame, faces) not yet drawn
        self.held_bytes = 0
        self.classified_until = -np.inf  # every face up to this time is classified
        self.now = -np.inf  # the time of the latest frame pushed
        self.digests: dict[int, bytes] = {}  # frame index -> digest of what was drawn, for frames with faces
        self.frames = 0  # frames written
        self.forced = 0  # frames drawn at a bound, before all was known (the digests then tell whether it was right)
        # Drawing, the colour conversions and the write to the encoder's pipe run in a thread of
        # their own (OpenCV and the pipe release the GIL), beside the analysis; one thread keeps
        # the frames in order.
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="draw")
        self._drawing: deque = deque()

    # --- fed by the analysis ---

    def push(self, frame, faces: Faces) -> None:
        if self.gave_up:
            return
        for track, score in zip(faces.track_ids.tolist(), faces.scores.tolist()):
            state = self.tracks.get(track)
            if state is None:
                state = self.tracks[track] = self._open[track] = _Track(first=frame.index, old_id=track,
                                                                         first_seen=frame.time)
            was = state.confirmed(self.min_score, self.min_frames)
            state.peak = max(state.peak, score)
            state.frames += 1
            state.last_seen = frame.time
            if not was and state.confirmed(self.min_score, self.min_frames):
                if self.persons and (self._forgotten_end < state.first_seen or any(
                        t.last_seen < state.first_seen for t in self.tracks.values()
                        if t is not state and t.confirmed(self.min_score, self.min_frames))):
                    self.give_up()
                    return
                self._confirm(state)
        frame.__dict__.pop("image", None)  # held frames keep only their decoded planes: drawing works on them
        self.pushed += 1
        self.held.append((frame, faces))
        self.held_bytes += frame.pixels.nbytes
        self.now = frame.time
        self._drain(end=False)
        if self.pushed % 32 == 0:
            self._forget()

    def _confirm(self, track: _Track) -> None:
        self._open.pop(track.old_id, None)
        bisect.insort(self._confirmed, (track.first, track.old_id))
        self.number = {old: n for n, (_, old) in enumerate(self._confirmed, start=1)}

    def _forget(self) -> None:
        """What no frame still to draw needs: the faces before the oldest held frame's window,
        tracks gone for longer than a frame is held, open tracks that can no longer matter. Memory
        stays flat in the video's length."""
        oldest = self.held[0][0].time if self.held else self.now
        needed = oldest - (self.half or 0.0) - 1.0
        for old, track in list(self.tracks.items()):
            if track.last_seen < oldest - HOLD_SECONDS - 1.0:
                if track.confirmed(self.min_score, self.min_frames):
                    self._forgotten_end = min(self._forgotten_end, track.last_seen)
                del self.tracks[old]
                self._open.pop(old, None)
                continue
            k = bisect.bisect_left(track.times, needed)
            if k > 1:  # one kept before the window: `none` smoothing reads a face's own entry
                k -= 1
                del track.times[:k], track.probs[:k], track.cumulative[:k]

    def give_up(self) -> None:
        """Stop drawing: the video drawn so far is discarded, the render stage draws it."""
        self.gave_up = True
        self.held.clear()
        self.held_bytes = 0
        self.discard()

    def classified(self, faces: Faces) -> None:
        """A classified batch (faces not due for the classifier have NaN probabilities)."""
        if self.gave_up:
            return
        for track, time, probs in zip(faces.track_ids.tolist(), faces.timestamp_s.tolist(), faces.probs):
            state = self.tracks.get(track)
            if state is None:
                self.forced += 1  # a face classified after its track was forgotten: the check will say
                continue
            if not np.isnan(probs[0]):
                state.last_probs = probs
            held = state.last_probs if state.last_probs is not None else probs  # first faces: the schedule classifies them
            state.count += 1
            state.times.append(time)
            state.probs.append(held)
            state.cumulative.append(state.cumulative[-1] + held.astype(np.float64))
        if len(faces):
            self.classified_until = max(self.classified_until, float(faces.timestamp_s.max()))

    def finish(self) -> None:
        """The end of the video: every held frame drawn, with everything known (a video of fewer
        analysed frames than MIN_TRACK_FRAMES asks only as many, as keep.py does)."""
        if self.gave_up:
            return
        self.classified_until = self.now = np.inf
        self.min_frames = min(self.min_frames, max(1, self.pushed))
        for track in list(self._open.values()):
            if track.confirmed(self.min_score, self.min_frames):
                self._confirm(track)
        self._drain(end=True)

    # --- drawing ---

    def _drain(self, end: bool) -> None:
        # Frames turn final in runs (each classified batch finishes a stretch of them): a run goes
        # to the drawing thread in groups of GROUP_FRAMES, not a hand-over per frame, and the
        # analysis waits once DRAW_AHEAD groups are pending, so frames drawn late are not joined
        # by more decoded ones.
        run = deque()
        while self.held:
            frame, faces = self.held[0]
            ready = end or self._final(frame, faces)
            if not ready and self.now - frame.time < HOLD_SECONDS and self.held_bytes < HOLD_BYTES:
                break
            if not ready:
                self.forced += 1
            self.held.popleft()
            self.held_bytes -= frame.pixels.nbytes
            run.append((self._shown(frame, faces), frame))
        while run:
            group = [run.popleft() for _ in range(min(GROUP_FRAMES, len(run)))]
            self._drawing.append(self._pool.submit(self._append, group))
            while len(self._drawing) > DRAW_AHEAD:
                self._drawing.popleft().result()  # raises here what drawing or writing raised

    def _final(self, frame, faces: Faces) -> bool:
        horizon = frame.time + (self.half or 0.0)
        if self.classified_until < horizon or self.now < horizon:
            return False
        # A track not confirmed yet, on this frame or seen before it, could yet be (and take a lower
        # number) until it has ended; one that ended unconfirmed was a flicker, not drawn.
        return not any(t.first <= frame.index and self.now - t.last_seen <= TRACK_GAP
                       for t in self._open.values())

    def _shown(self, frame, faces: Faces) -> Faces:
        """The frame's faces as drawn (kept tracks, numbered, smoothed), its digest noted."""
        kept = [i for i, t in enumerate(faces.track_ids.tolist())
                if self.tracks[t].confirmed(self.min_score, self.min_frames)]
        shown = self._numbered(faces[np.array(kept, dtype=np.int64)], frame)
        self.frames += 1
        if len(shown):
            self.digests[frame.index] = frame_digest(shown, [""] * len(shown))
        return shown

    def _append(self, run: list) -> None:
        for shown, frame in run:
            self.sink.append(shown, frame)

    def _numbered(self, faces: Faces, frame) -> Faces:
        """The faces as the render stage has them: ids in order of appearance among the kept
        tracks (their own where keep.py keeps every track), in id order, their smoothed
        probabilities."""
        if not len(faces):
            return faces
        if self.filters_tracks:
            ids = np.array([self.number[t] for t in faces.track_ids.tolist()], np.int64)
        else:
            ids = faces.track_ids
        smoothed = np.stack([self._smoothed(self.tracks[t], frame.time) for t in faces.track_ids.tolist()])
        order = np.argsort(ids, kind="stable")
        return faces.with_(track_ids=ids, smoothed=smoothed)[order]

    def _smoothed(self, track: _Track, time: float) -> np.ndarray:
        """`fer_video.smoothing.centred_window` at `time` from the track's prefix sums (or the
        raw probabilities for `none`), in float32 as `smooth` stores them."""
        times, cumulative = track.times, track.cumulative
        if self.half is None or track.count < 2:
            return track.probs[bisect.bisect_left(times, time)].astype(np.float32)
        lo = bisect.bisect_left(times, time - self.half)
        hi = bisect.bisect_right(times, time + self.half)
        return ((cumulative[hi] - cumulative[lo]) / (hi - lo)).astype(np.float32)

    # --- the end ---

    def matches(self, faces: Faces, persons: list[str]) -> bool:
        """Whether what was drawn is what the whole video's final `faces` (smoothed, with the
        person labels `persons`, one per face) would draw."""
        from fer_video.sinks import by_frame

        if self.gave_up:
            return False
        labels = dict(zip(range(len(faces)), persons))
        index = np.arange(len(faces))
        final = {}
        for frame_index, shown in by_frame(faces.with_(data={"row": index})).items():
            final[frame_index] = frame_digest(shown, [labels[int(i)] for i in shown.data["row"]])
        return final == self.digests

    def close(self) -> Path:
        try:
            while self._drawing:
                self._drawing.popleft().result()
        except BaseException:
            self.discard()
            raise
        self._pool.shutdown()
        return self.sink.close()

    def discard(self) -> None:
        """Give the video up, leaving no file; safe to call again."""
        for future in self._drawing:
            future.cancel()
        self._pool.shutdown(wait=True)
        self._drawing.clear()
        self.sink.discard()
