"""Stage 1, analysis: every `stride`-th frame decoded, and about 15 of them a second
(`--analyse-rate`) with their faces detected, tracked (each gets its track id), cropped and
classified (each gets its expression); the frames between get their faces from the analysed
frames either side (`fer_video.faces.between`). All are gathered into one `Faces`.

Analysis streams: a few frames are held at a time (decoded ahead, and the detector's look-ahead:
at most 0.25 s of video and LOOKAHEAD_BYTES), and only the small per-face records are kept.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from fer_video import interrupt
from fer_video.faces.align import crop_geometry, fer_crops
from fer_video.faces.between import analysis_step, faces_between
from fer_video.faces.detectors import make_detector
from fer_video.expression.preprocess import FACE_SIZE
from fer_video.expression.schedule import ClassifySchedule, fill_between
from fer_video.faces.record import N_EMOTIONS, Faces
from fer_video.faces.track import ShotCutDetector, Tracker
from fer_video.jobs import AnnotateOptions
from fer_video.outputs import output_name
from fer_video.persons.stage import appearance_check, chip_gatherer
from fer_video.pipeline import model_cache
from fer_video.pipeline.live import can_draw_live
from fer_video.resources import model_threads
from fer_video.video import DecodeStats, MediaInfo, read_frames
from fer_video.video import libav
from fer_video.video.prefetch import prefetch

if TYPE_CHECKING:
    import pandas as pd


CLASSIFY_BATCH = 256  # faces per classifier call, gathered across frames


@dataclass
class Analysis:
    info: MediaInfo
    name: str  # output name and video_id: `fer_video.outputs.output_name` unless the caller chose another
    faces: Faces  # every analysed frame's faces, in frame order: track ids and raw probabilities filled
    frames_decoded: int
    detector: str
    model_name: str = ""
    model_version: str = ""
    model_sha256: str = ""
    content_sha256: str = ""  # of the source; hashed when the timeline is written if not known
    frames_expected: int | None = None  # what the container says the video holds
    warnings: list[str] = field(default_factory=list)  # one line each, naming the file
    # Who is who (fer_video.persons): the best aligned face chips per track, gathered while the
    # frames were in memory; None when person linking is off.
    face_chips: pd.DataFrame | None = None
    embeddings: pd.DataFrame | None = None  # of the kept tracks, after `persons_in_video`
    # Every analysed frame's timestamp, by frame index, faces or not, and when the video's last
    # frame stops showing (None for a segment before the end): what each frame's duration, and
    # so time on screen, is measured from (`timeline.durations`).
    frame_times: pd.Series | None = None
    end_s: float | None = None
    classified: int = 0  # faces the classifier ran on; the others hold their track's last answer
    live: object | None = None  # the annotated video drawn as the frames went (pipeline.live.LiveVideo), if it was


class _Batches:
    """Faces gathered across frames until there are `size` of them, then classified in one call
    (one model invoke per batch is what makes the classifier fast) and kept (`classified`).

    The classifier runs in a worker thread while this one decodes and detects the next frames:
    its invokes release the GIL, so on 2 cores the two overlap. One batch at most is in flight,
    so memory stays bounded, and batches are kept in frame order."""

    def __init__(self, classifier, size: int = CLASSIFY_BATCH, on_classified=None, seconds: float | None = None):
        """`on_classified(faces)`: called with each classified batch, in frame order, as soon as it
        is done; `seconds`: a batch also goes once its faces span this much video (the live
        drawing waits on them)."""
        from concurrent.futures import ThreadPoolExecutor

        self.classifier, self.size = classifier, size
        self.on_classified, self.seconds = on_classified, seconds
        self.done: list[Faces] = []  # the classified batches, in frame order
        self.faces: list[Faces] = []
        self.crops: list[np.ndarray] = []  # the due faces' crops
        self.due: list[np.ndarray] = []
        self.count = 0  # due faces gathered
        self.due_total = 0  # due faces, all batches
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="classify")
        self._pending = None

    def add(self, faces: Faces, crops: np.ndarray | None = None, due: np.ndarray | None = None) -> None:
        """`faces` in order; only the `due` ones' crops are classified (none without `crops`), the
        others keep NaN probabilities (`fill_between` fills them once the video is analysed)."""
        if crops is None:
            crops, due = np.empty((0, FACE_SIZE, FACE_SIZE), np.uint8), np.zeros(len(faces), bool)
        else:
            crops = crops[due]
        self.faces.append(faces)
        self.due.append(due)
        self.crops.append(crops)
        self.count += int(due.sum())
        self.due_total += int(due.sum())
        if self.count >= self.size or (self.seconds is not None and len(faces)
                                       and faces.timestamp_s[-1] - self.faces[0].timestamp_s[0] >= self.seconds):
            self._submit()
        elif self._pending is not None and self._pending.done():
            self._collect()

    def _submit(self) -> None:
        self._collect()
        if self.faces:
            self._pending = self._pool.submit(_classify_due, self.classifier, Faces.concat(self.faces),
                                              np.concatenate(self.crops), np.concatenate(self.due))
        self.faces, self.crops, self.due, self.count = [], [], [], 0

    def _collect(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.done.append(pending.result())
            if self.on_classified is not None:
                self.on_classified(self.done[-1])

    def flush(self) -> None:
        self._submit()
        self._collect()

    def classified(self) -> Faces:
        """Every face classified so far, in frame order."""
        return Faces.concat(self.done)

    def __enter__(self) -> "_Batches":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _classify_due(classifier, faces: Faces, crops: np.ndarray, due: np.ndarray) -> Faces:
    """`faces` with the `due` ones classified from `crops` (theirs, in order), NaN for the rest."""
    probs = np.full((len(faces), N_EMOTIONS), np.nan, np.float32)
    if due.any():
        probs[due] = classifier.classify(faces[due], crops).probs
    return faces.with_(probs=probs)


def analyse(info: MediaInfo, options: AnnotateOptions, name: str | None = None,
            first: int = 0, last: int | None = None, draw: bool = False) -> Analysis:
    """Decode every `stride`-th frame (of frames `first` to `last` only, for one segment of a
    video); detect, track, crop and classify every `_step`-th of those and the frames either side
    of a shot cut, and interpolate the faces of the frames between. `draw`: also draw the
    annotated video as the frames go, where `fer_video.pipeline.live` can (`Analysis.live`, which
    the render stage checks and keeps, or draws again)."""
    stats = DecodeStats()
    cuts = ShotCutDetector()
    step = _step(info, options)

    def on_grid(frame) -> bool:  # analysed whatever comes before or after it
        return (frame.index // options.stride) % step == 0

    before = _stamp(info.path)
    # Decoding starts first: ffmpeg's start and first frames (about 0.05 s) overlap with loading
    # the models.
    # Decoded in this process, the frames are decoded behind the analysis, as ffmpeg's are.
    frames = prefetch(lambda: _decoded(read_frames(info, options.stride, stats, first, last), cuts, on_grid),
                      behind=libav.handles(info, first, last))
    drawing = draw and first == 0 and last is None and can_draw_live(info, options)
    threads = model_threads(beside_encoder=drawing)  # the encoder keeps the other cores busy
    try:
        detector = make_detector(options.detector, min_face=options.min_face,
                                 min_score=min(0.5, options.min_score),
                                 frame_rate=float(info.fps) / options.stride if not info.is_image else None,
                                 threads=threads)
        classifier = model_cache.load_classifier(options.model, threads)
        tracker = Tracker(same_face=appearance_check(options))
        chips = chip_gatherer(options)
        geometry = crop_geometry(detector.name)
        live = _live_video(info, options, name, detector) if drawing else None
    except BaseException:
        frames.close()
        raise
    batches = _Batches(classifier, on_classified=live.classified if live else None,
                       seconds=LIVE_BATCH_SECONDS if live else None)
    schedule = ClassifySchedule(options.classify_rate if not info.is_image else 0)

    span = (last + 1 if last is not None else (info.expected_frames or 0)) - first
    expected = max(span, 0) // options.stride or None
    bar = tqdm(total=expected, unit="frame", desc=f"analyse {Path(info.path).name}",
               disable=not options.progress, leave=False, dynamic_ncols=True)
    held = deque()  # the frames after the one being analysed: the detector's look-ahead
    slot = getattr(detector, "slot", None)  # its scan schedule, in seconds of the frames' timestamps
    times: dict[int, float] = {}
    distance = _lookahead(detector, info)
    between = []  # the frames since the last analysed one, not analysed: their faces wait for the next one's
    analysed = Faces.empty()  # the last analysed frame's faces

    def analyse_one(frame, cut: bool, look_ahead: bool = True) -> None:
        nonlocal analysed
        if cut:
            tracker.reset()
            schedule.reset()
            detector.reset()
        ahead = None
        if look_ahead:
            later = [f for f, c in itertools.takewhile(lambda item: not item[1], held) if on_grid(f)]  # same shot
            if slot is not None:  # a scheduled scan looks at the last frame before the next one
                later = [f for f in later if slot(f.time) == slot(frame.time)]
            ahead = (later[-1].image, later[-1].index // options.stride, later[-1].time) if later else None
        faces = tracker.update(detector(frame.image, frame.index // options.stride, ahead, time=frame.time),
                               frame.time, frame.image)
        if chips is not None and len(faces):
            chips.add(frame.image, faces, frame.time)  # while the frame is in memory
        faces = faces.in_frame(frame.index, frame.time)
        for skipped in between:
            found = faces_between(analysed, faces, skipped.time).in_frame(skipped.index, skipped.time)
            if len(found):
                batches.add(found)
            if live is not None:
                live.push(skipped, found)
        between.clear()
        if len(faces):
            crops = fer_crops(frame.image, faces, geometry)
            batches.add(faces, crops, schedule(faces, crops))
        if live is not None:
            live.push(frame, faces)
        analysed = faces

    def take(frame, cut: bool) -> None:
        interrupt.check()
        times[frame.index] = frame.time
        if cut and between:  # the last frame of the shot before is analysed: no face is interpolated across a cut
            analyse_one(between.pop(), False, look_ahead=False)
        if cut or on_grid(frame):
            analyse_one(frame, cut)
        else:
            between.append(frame)
        bar.update(1)

    try:
        with bar, batches, closing(frames):
            for item in frames:
                held.append(item)
                # A frame is analysed once the frames of its scan interval are all held (the next
                # one begins), or as many as memory allows are.
                while held and (len(held) > distance or slot(held[-1][0].time) > slot(held[0][0].time)):
                    take(*held.popleft())
            while held:
                take(*held.popleft())
            if between:  # the video's (or segment's) last frame is analysed too
                analyse_one(between.pop(), False)
            batches.flush()
            if live is not None:
                live.finish()
    except BaseException:
        if live is not None:
            live.discard()
        raise
    import pandas as pd  # here, not before the first frame (`pipeline.annotate.import_later_stages`)

    name = name or output_name(info.path)
    warnings = [f"{info.path}: {stats.short}"] if stats.short else []
    if not info.is_image and _stamp(info.path) != before:
        warnings.append(f"{info.path}: changed while it was read (still being written?): the timeline may "
                        "not cover all of it")
    return Analysis(info, name, fill_between(batches.classified()), stats.decoded, detector.name, classifier.name,
                    classifier.version, classifier.sha256, frames_expected=stats.expected, warnings=warnings,
                    face_chips=chips.table() if chips is not None else None,
                    frame_times=pd.Series(times, dtype=np.float64), end_s=stats.end, classified=batches.due_total,
                    live=live)


def _decoded(frames, cuts: ShotCutDetector, on_grid):
    """Each frame with whether a shot cut comes before it, and converted to BGR if it is analysed
    (`on_grid`, or a cut): the work `prefetch` does a few frames ahead, in its thread. The cut test
    looks at a thumbnail of the decoded planes, not at the BGR frame."""
    for frame in frames:
        cut = cuts(frame.thumbnail(*cuts.SIZE))
        if cut or on_grid(frame):
            _ = frame.image  # converted here, ahead of the analysis
        yield frame, cut


def _step(info: MediaInfo, options: AnnotateOptions) -> int:
    """Every how many decoded frames one is analysed (`--analyse-rate`): every one for an image,
    and for a video in segments (each segment then analyses what a single pass does)."""
    if info.is_image or options.segments > 1:
        return 1
    return analysis_step(float(info.fps) / options.stride, options.analyse_rate)


LIVE_BATCH_SECONDS = 0.25  # with live drawing, a classifier batch goes at least this often, in video time


def _live_video(info: MediaInfo, options: AnnotateOptions, name: str | None, detector):
    """The `LiveVideo` that draws this input's annotated MP4 during its analysis."""
    from fer_video.faces.detectors import detector_spec
    from fer_video.outputs import outputs_of
    from fer_video.pipeline.live import LiveVideo
    from fer_video.sinks.video import VideoSink

    path = outputs_of(info, options.out_dir, name, options.inputs_root).media
    # Person labels: checked at the end (`LiveVideo.matches`). Each frame is drawn once its
    # analysis is done with it, so on its own pixels.
    sink = VideoSink(info, path, options, Faces.empty(), draw_in_place=True)
    return LiveVideo(sink, options, detector_spec(detector.name).score_policy.filters_tracks)


LOOKAHEAD_BYTES = 64 * 2**20  # frames held for the detector's look-ahead, at most (each as I420 and BGR)


def _lookahead(detector, info: MediaInfo) -> int:
    """How many frames after the current one the detector may look at, as memory allows (the
    frames to the end of its scan interval, in time, are held; `analyse`)."""
    if not hasattr(detector, "slot"):
        return 0
    held_bytes = max(1, info.width * info.height) * 4.5  # I420 (1.5 bytes a pixel) and BGR (3)
    return 0 if info.is_image else max(0, int(LOOKAHEAD_BYTES // held_bytes))


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns
