"""The annotate pipeline's stages as plain functions; flows/ wires them into Prefect tasks.

    probe -> analyse (decode, detect, track, crop, classify) -> smooth -> render -> write timeline

Analysis streams: one frame is held at a time, and only the small per-face records are kept.
Rendering decodes the video a second time, so the annotated video can show smoothed labels
(a centred window or HMM needs the future) without holding frames in memory.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from fer_video import __version__, identity, interrupt
from fer_video.errors import InputError
from fer_video.expression.labels import EMOTIONS
from fer_video.faces.align import FER_CROP, fer_crops
from fer_video.faces.detect import make_detector
from fer_video.faces.record import Faces
from fer_video.faces.track import ShotCutDetector, Tracker
from fer_video.jobs import AnnotateOptions, file_sha256, job_key, model_sha256  # defined there to be cheap to import
from fer_video.outputs import IMAGE_WRITERS, atomic_path, check_overwrite, claim, output_name
from fer_video.outputs import output_paths as _output_paths
from fer_video.render import draw_faces
from fer_video.smoothing import Smoothing
from fer_video.timeline.schema import RAW, SMOOTH, TimelineMetadata
from fer_video.timeline.write import write_timeline
from fer_video.video import DecodeStats, MediaInfo, VideoWriter, probe, read_frames
from fer_video.video.read import frame_layout

__all__ = ["AnnotateOptions", "Analysis", "Result", "analyse", "analyse_segmented", "annotate", "load_classifier",
           "metadata", "output_paths", "plan_segments", "probe", "render", "smooth", "Stages", "stitch", "summarise",
           "write"]

CLASSIFY_BATCH = 256  # faces per classifier call, gathered across frames
MIN_TRACK_FRAMES = 3  # a video's track seen in fewer analysed frames is a flicker, not a face


@dataclass
class Analysis:
    info: MediaInfo
    name: str  # output name and video_id: `fer_video.outputs.output_name` unless the caller chose another
    rows: pd.DataFrame  # one row per (analysed frame, face), raw probabilities filled
    frames_decoded: int
    detector: str
    model_name: str = ""
    model_version: str = ""
    model_sha256: str = ""
    content_sha256: str = ""  # of the source; hashed when the timeline is written if not known
    frames_expected: int | None = None  # what the container says the video holds
    warnings: list[str] = field(default_factory=list)  # one line each, naming the file
    # Who is who (fer_video.identity): the best aligned face chips per track, gathered while the
    # frames were in memory; None when person linking is off.
    face_chips: pd.DataFrame | None = None
    embeddings: pd.DataFrame | None = None  # of the kept tracks, after `identity.persons_in_video`


@dataclass
class Result:
    source: str
    timeline: Path | None = None
    video: Path | None = None
    image: Path | None = None
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    warnings: list[str] = field(default_factory=list)


_models: dict = {}


def load_classifier(model: Path | None):
    """One classifier per model path per process: loading Keras costs seconds."""
    from fer_video.expression.classify import ExpressionClassifier

    key = str(model or "")
    if key not in _models:
        _models[key] = ExpressionClassifier(model)
    return _models[key]


def analyse(info: MediaInfo, options: AnnotateOptions, name: str | None = None,
            first: int = 0, last: int | None = None) -> Analysis:
    """Decode, detect, track, crop and classify every `stride`-th frame (of frames `first` to
    `last` only, for one segment of a video)."""
    detector = make_detector(options.detector, min_face=options.min_face, min_score=min(0.5, options.min_score),
                             frame_rate=float(info.fps) / options.stride if not info.is_image else None)
    classifier = load_classifier(options.model)
    tracker, cuts = Tracker(), ShotCutDetector()
    chips = identity.chip_gatherer(options)
    geometry = FER_CROP[detector.name]
    stats = DecodeStats()
    columns: dict[str, list] = {k: [] for k in ("frame_index", "timestamp_s", "boxes", "scores", "tracks", "probs")}
    pending: list[tuple[int, float, Faces, np.ndarray]] = []

    def classify_pending():
        if not pending:
            return
        crops = np.concatenate([c for *_, c in pending])
        probs = classifier(crops)
        start = 0
        for index, time, faces, c in pending:
            columns["frame_index"].append(np.full(len(faces), index, np.int64))
            columns["timestamp_s"].append(np.full(len(faces), time, np.float64))
            columns["boxes"].append(faces.boxes)
            columns["scores"].append(faces.scores)
            columns["tracks"].append(faces.track_ids)
            columns["probs"].append(probs[start : start + len(faces)])
            start += len(faces)
        pending.clear()

    span = (last + 1 if last is not None else (info.expected_frames or 0)) - first
    expected = max(span, 0) // options.stride or None
    bar = tqdm(total=expected, unit="frame", desc=f"analyse {Path(info.path).name}",
               disable=not options.progress, leave=False, dynamic_ncols=True)
    n_pending = 0
    before = _stamp(info.path)
    with bar:
        for frame in read_frames(info, options.stride, stats, first, last):
            interrupt.check()
            if cuts(frame.image):
                tracker.reset()
                detector.reset()
            faces = tracker.update(detector(frame.image, frame.index // options.stride), frame.time)
            if chips is not None and len(faces):
                chips.add(frame.image, faces, frame.time)  # while the frame is in memory
            if len(faces):
                pending.append((frame.index, frame.time, faces, fer_crops(frame.image, faces, geometry)))
                n_pending += len(faces)
                if n_pending >= CLASSIFY_BATCH:
                    classify_pending()
                    n_pending = 0
            bar.update(1)
    classify_pending()
    name = name or output_name(info.path)
    rows = _rows_frame(info, name, columns)
    warnings = [f"{info.path}: {stats.short}"] if stats.short else []
    if not info.is_image and _stamp(info.path) != before:
        warnings.append(f"{info.path}: changed while it was read (still being written?): the timeline may "
                        "not cover all of it")
    return Analysis(info, name, rows, stats.decoded, detector.name, classifier.name, classifier.version,
                    classifier.sha256, frames_expected=stats.expected, warnings=warnings,
                    face_chips=chips.table() if chips is not None else None)


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _rows_frame(info: MediaInfo, name: str, columns: dict[str, list]) -> pd.DataFrame:
    def cat(key, shape, dtype):
        parts = columns[key]
        return np.concatenate(parts) if parts else np.zeros(shape, dtype)

    boxes = cat("boxes", (0, 4), np.float32)
    probs = cat("probs", (0, len(EMOTIONS)), np.float32)
    rows = pd.DataFrame({
        "video_id": name,
        "source_path": str(Path(info.path).resolve()),
        "frame_index": cat("frame_index", (0,), np.int64),
        "timestamp_s": cat("timestamp_s", (0,), np.float64),
        "track_id": cat("tracks", (0,), np.int64).astype(np.int32),
        "x": boxes[:, 0], "y": boxes[:, 1], "w": boxes[:, 2], "h": boxes[:, 3],
        "det_score": cat("scores", (0,), np.float32),
    })
    for i, name in enumerate(RAW):
        rows[name] = probs[:, i]
    return rows


OVERLAP_SECONDS = 1.0  # segments overlap by this much, so tracks can be matched across the seam


def plan_segments(info: MediaInfo, options: AnnotateOptions) -> list[tuple[int, int | None]]:
    """(first, last) frame ranges: `options.segments` equal parts, each but the first starting
    OVERLAP_SECONDS early; all starts on the stride grid, so frames analysed are those of one pass."""
    total = info.expected_frames or 0
    n = max(1, min(options.segments, total // max(1, round(float(info.fps) * 2 * OVERLAP_SECONDS)) or 1))
    if info.is_image or n == 1:
        return [(0, None)]
    stride = options.stride
    overlap = -(-round(float(info.fps) * OVERLAP_SECONDS) // stride) * stride
    bounds = [round(k * total / n) // stride * stride for k in range(n)]
    ranges = []
    for k, start in enumerate(bounds):
        last = bounds[k + 1] - 1 if k + 1 < n else None
        ranges.append((max(0, start - overlap) if k else 0, last))
    return ranges


def stitch(parts: list[Analysis], ranges: list[tuple[int, int | None]]) -> Analysis:
    """Join segment analyses into one, as a single pass would have made it.

    Each segment's tracker started afresh, so its track ids are its own. In the overlap both
    segments saw the same frames: a later segment's track takes the id of the earlier track
    whose boxes it overlaps (IoU > 0.5) in most of those frames; tracks that are new get the next
    ids in order of appearance. The overlap's rows are kept from the earlier segment, whose
    tracker was already warm there.
    """
    from scipy.optimize import linear_sum_assignment

    from fer_video.faces.record import box_iou

    joined = parts[0].rows
    chips = [parts[0].face_chips]
    for part, (first, _), (_, prev_last) in zip(parts[1:], ranges[1:], ranges[:-1]):
        rows = part.rows
        boundary = prev_last + 1
        previous = joined[(joined["frame_index"] >= first) & (joined["frame_index"] < boundary)]
        seam = rows[rows["frame_index"] < boundary]
        old_ids = np.sort(previous["track_id"].unique())
        new_ids = np.sort(rows["track_id"].unique())
        votes = np.zeros((len(new_ids), len(old_ids)))
        for frame_index, here in seam.groupby("frame_index"):
            there = previous[previous["frame_index"] == frame_index]
            if len(there) == 0:
                continue
            iou = box_iou(here[["x", "y", "w", "h"]].to_numpy(), there[["x", "y", "w", "h"]].to_numpy())
            for i, j in zip(*np.nonzero(iou > 0.5)):
                votes[np.searchsorted(new_ids, here["track_id"].iat[i]),
                      np.searchsorted(old_ids, there["track_id"].iat[j])] += 1
        mapping = {}
        if votes.size:
            for r, c in zip(*linear_sum_assignment(-votes)):
                seen_in_seam = (seam["track_id"] == new_ids[r]).sum()
                if votes[r, c] > 0 and votes[r, c] >= 0.5 * seen_in_seam:
                    mapping[new_ids[r]] = old_ids[c]
        rows = rows[rows["frame_index"] >= boundary]
        next_id = int(joined["track_id"].max()) + 1 if len(joined) else 1
        # In order of appearance; ties go by the segment's own ids, which the tracker gave left
        # to right, as a single pass would.
        for track in rows.sort_values(["frame_index", "track_id"])["track_id"].unique():
            if track not in mapping:
                mapping[track] = next_id
                next_id += 1
        rows = rows.assign(track_id=rows["track_id"].map(mapping).astype(np.int32))
        joined = pd.concat([joined, rows], ignore_index=True)
        chips.append(identity.renumber_chips(part.face_chips, mapping))
    last = parts[-1]
    return Analysis(last.info, last.name, joined.reset_index(drop=True), last.frames_decoded, last.detector,
                    last.model_name, last.model_version, last.model_sha256, frames_expected=last.frames_expected,
                    warnings=list(dict.fromkeys(w for p in parts for w in p.warnings)),
                    face_chips=identity.join_chips(chips))


def analyse_segmented(info: MediaInfo, options: AnnotateOptions, name: str | None = None) -> Analysis:
    """`analyse` one segment after another and stitch them (flows/ runs segments in parallel)."""
    ranges = plan_segments(info, options)
    if len(ranges) == 1:
        return analyse(info, options, name)
    return stitch([analyse(info, options, name, first, last) for first, last in ranges], ranges)


def drop_false_tracks(rows: pd.DataFrame, min_score: float, min_frames: int) -> pd.DataFrame:
    """Rows of the tracks whose peak detector score reaches `min_score` and that are seen in at
    least `min_frames` analysed frames; ids renumbered 1, 2, ... in order of appearance."""
    if not len(rows):
        return rows
    tracks = rows.groupby("track_id").agg(peak=("det_score", "max"), frames=("frame_index", "nunique"),
                                          first=("frame_index", "min"))
    kept = tracks[(tracks.peak >= np.float32(min_score)) & (tracks.frames >= min_frames)]
    order = kept.sort_values(["first"], kind="stable").index
    mapping = {old: new for new, old in enumerate(order, start=1)}
    rows = rows[rows["track_id"].isin(mapping)]
    return rows.assign(track_id=rows["track_id"].map(mapping).astype(np.int32)).reset_index(drop=True)


def keep_faces(analysis: Analysis, options: AnnotateOptions) -> pd.DataFrame:
    """`analysis.rows` without the tracks that are not faces (see MIN_SCORE, MIN_TRACK_FRAMES).
    BlazeFace's scores only: Haar's are on another scale. An image's face has one frame."""
    if analysis.detector != "blazeface":
        return analysis.rows
    analysed = -(-analysis.frames_decoded // options.stride)
    min_frames = 1 if analysis.info.is_image else max(1, min(MIN_TRACK_FRAMES, analysed))
    return drop_false_tracks(analysis.rows, options.min_score, min_frames)


def smooth(rows: pd.DataFrame, smoothing: str) -> pd.DataFrame:
    """Adds p_<emotion> (smoothed per track over time), label and confidence."""
    smoother = Smoothing.parse(smoothing)
    rows = rows.sort_values(["frame_index", "track_id"], kind="stable").reset_index(drop=True)
    smoothed = np.zeros((len(rows), len(EMOTIONS)), np.float32)
    raw = rows[RAW].to_numpy(np.float64)
    times = rows["timestamp_s"].to_numpy()
    for _, index in rows.groupby("track_id", sort=False).indices.items():
        smoothed[index] = smoother(raw[index], times[index])
    for i, name in enumerate(SMOOTH):
        rows[name] = smoothed[:, i]
    best = smoothed.argmax(axis=1) if len(rows) else np.zeros(0, int)
    rows["label"] = pd.Categorical.from_codes(best, categories=list(EMOTIONS))
    rows["confidence"] = smoothed[np.arange(len(rows)), best]
    return rows


def metadata(analysis: Analysis, options: AnnotateOptions) -> TimelineMetadata:
    info = analysis.info
    content_sha256 = analysis.content_sha256 or file_sha256(info.path)
    return TimelineMetadata(
        source_path=str(Path(info.path).resolve()), width=info.width, height=info.height,
        fps=float(info.fps), duration_s=info.duration, frame_count=analysis.frames_decoded,
        frames_expected=analysis.frames_expected,
        stride=options.stride, rotation=info.rotation, has_audio=info.has_audio,
        model_name=analysis.model_name, model_version=analysis.model_version,
        detector=analysis.detector, smoothing=str(Smoothing.parse(options.smoothing)),
        software_version=__version__,
        content_sha256=content_sha256,
        job_key=job_key(content_sha256, analysis.model_sha256, options),
        video_id=analysis.name,
    )


def output_paths(info: MediaInfo, out_dir: Path, name: str | None = None,
                 inputs_root: Path | None = None) -> dict[str, Path]:
    """Where `info`'s outputs go: the one rule, `fer_video.outputs.output_paths`."""
    return _output_paths(info.path, out_dir, name or output_name(info.path), info.is_image, inputs_root,
                         image_codec=info.video_codec)


def write(rows: pd.DataFrame, analysis: Analysis, options: AnnotateOptions) -> Path:
    path = output_paths(analysis.info, options.out_dir, analysis.name)["timeline"]
    if options.identity:  # before the timeline, whose presence marks the whole job done
        identity.write_embeddings(analysis.embeddings, options.out_dir, analysis.name)
    return write_timeline(rows, metadata(analysis, options), path)


def render(info: MediaInfo, rows: pd.DataFrame, options: AnnotateOptions, name: str | None = None) -> Path:
    """The annotated video (or image): every source frame, with the faces of the latest analysed
    frame within the stride drawn on it."""
    path = output_paths(info, options.out_dir, name, options.inputs_root)["media"]
    labels = identity.person_labels(rows)
    labels = pd.Series(labels, index=rows.index) if labels is not None else None
    by_frame = {
        index: (group[["x", "y", "w", "h"]].to_numpy(), group["track_id"].to_numpy(), group[SMOOTH].to_numpy(),
                labels.loc[group.index].tolist() if labels is not None else None)
        for index, group in rows.groupby("frame_index", sort=False)
    }
    if info.is_image:
        image = next(iter(read_frames(info))).image.copy()
        if 0 in by_frame:
            draw_faces(image, *by_frame[0])
        return _write_image(image, path)
    total = info.expected_frames
    bar = tqdm(total=total, unit="frame", desc=f"render {Path(info.path).name}",
               disable=not options.progress, leave=False, dynamic_ncols=True)
    pix_fmt, _ = frame_layout(info.width, info.height)
    frames = read_frames(info)
    first = next(frames)  # its time is where the video starts on the source's clock
    # VideoWriter renames its own `.<name>.part` to the unique temp name, which is then renamed
    # into place: two runs rendering the same output never share a file.
    with atomic_path(path) as temp:
        writer = VideoWriter(temp, info.width, info.height, info.fps, audio_from=info.path if info.has_audio else None,
                             audio_codec=info.audio_codec, preset=options.preset, pix_fmt=pix_fmt, start=first.time)
        with bar, writer, interrupt.in_flight(writer.partial), interrupt.in_flight(temp):
            for frame in itertools.chain([first], frames):
                interrupt.check()
                faces = by_frame.get(frame.index - frame.index % options.stride)
                if faces is None:
                    writer.write(frame.pixels)  # untouched, in the layout it was decoded in
                else:
                    # OpenCV draws in BGR; frames go out in the layout they came in.
                    image = frame.image.copy() if not frame.is_i420 else frame.image  # a fresh array when converted
                    draw_faces(image, *faces)
                    writer.write(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420) if frame.is_i420 else image)
                bar.update(1)
    return path


def _write_image(image: np.ndarray, path: Path) -> Path:
    ok, data = cv2.imencode(path.suffix if path.suffix.lower() in IMAGE_WRITERS else ".png", image)
    if not ok:
        raise RuntimeError(f"{path}: could not encode the annotated image")
    with atomic_path(path) as temp, interrupt.in_flight(temp):
        temp.write_bytes(data.tobytes())
    return path


class Stages:
    """How `annotate` runs its stages. Here: plain calls in this thread, a video's time segments
    (`--segments`) in threads. flows/annotate.py passes the same functions as Prefect tasks and
    maps the segments over the flow's task runner (threads or Dask)."""

    def __init__(self, **stages):
        self.probe, self.analyse, self.stitch = probe, analyse, stitch
        self.smooth, self.render, self.write = smooth, render, write
        self.__dict__.update(stages)

    def analyse_segments(self, info: MediaInfo, options: AnnotateOptions, name: str | None,
                         ranges: list[tuple[int, int | None]]) -> list[Analysis]:
        if len(ranges) == 1:
            return [self.analyse(info, options, name)]  # in this thread, which Ctrl-C stops at once
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(ranges), thread_name_prefix="segment") as pool:
            futures = [pool.submit(self.analyse, info, options, name, first, last) for first, last in ranges]
            return [f.result() for f in futures]


def annotate(path: str | Path, options: AnnotateOptions, name: str | None = None,
             content_sha256: str = "", stages: Stages | None = None, overwrite: bool = False,
             claimed: bool = False) -> Result:
    """The whole pipeline for one input: what `fer-video annotate` runs, directly or as the
    annotate-video Prefect flow (flows/annotate.py, which passes its tasks as `stages`).

    The outputs' lock (the one `batch` takes) is held throughout: a second run on the same output
    is refused as busy instead of racing this one; `claimed`: the caller (a batch job) holds it
    and has checked what it replaces. A timeline of another input is not replaced unless
    `overwrite`. The timeline is written last: a Parquet file with its job key is the mark of a
    finished job.
    """
    stages = stages or Stages()
    info = stages.probe(path)  # first: an input that is not there or not a video leaves nothing in --out
    name = name or output_name(info.path)
    if claimed:
        return _annotate_claimed(info, options, name, content_sha256, stages, None)
    with claim(options.out_dir, name) as mine:
        if not mine:
            raise InputError(info.path, f"busy: another fer-video run is writing {options.out_dir / name}.* now")
        content_sha256 = content_sha256 or file_sha256(info.path)
        key = job_key(content_sha256, model_sha256(options), options)
        timeline = output_paths(info, options.out_dir, name, options.inputs_root)["timeline"]
        note = check_overwrite(timeline, info.path, content_sha256, key, overwrite)
        return _annotate_claimed(info, options, name, content_sha256, stages, note)


def _annotate_claimed(info: MediaInfo, options: AnnotateOptions, name: str, content_sha256: str,
                      stages: Stages, note: str | None) -> Result:
    ranges = plan_segments(info, options)
    parts = stages.analyse_segments(info, options, name, ranges)
    analysis = parts[0] if len(parts) == 1 else stages.stitch(parts, ranges)
    analysis.content_sha256 = content_sha256
    kept = keep_faces(analysis, options)
    kept, analysis.embeddings = identity.persons_in_video(analysis.rows, kept, analysis.face_chips, options)
    rows = stages.smooth(kept, options.smoothing)
    result = summarise(info, rows, analysis)
    if options.video or info.is_image:
        media = stages.render(info, rows, options, analysis.name)
        if info.is_image:
            result.image = media
        else:
            result.video = media
    if note:
        print(f"fer-video: note: {note}", file=sys.stderr)
    result.timeline = stages.write(rows, analysis, options)
    return result


def summarise(info: MediaInfo, rows: pd.DataFrame, analysis: Analysis) -> Result:
    return Result(
        source=info.path, frames=analysis.frames_decoded, faces=len(rows),
        tracks=int(rows["track_id"].nunique()) if len(rows) else 0, warnings=list(analysis.warnings),
    )

