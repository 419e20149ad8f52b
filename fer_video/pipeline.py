"""The annotate pipeline's stages as plain functions; flows/ wires them into Prefect tasks.

    probe -> analyse (decode, detect, track, crop, classify) -> smooth -> render -> write timeline

Analysis streams: one frame is held at a time, and only the small per-face records are kept.
Rendering decodes the video a second time, so the annotated video can show smoothed labels
(a centred window or HMM needs the future) without holding frames in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from fer_video import __version__
from fer_video.expression.labels import EMOTIONS
from fer_video.faces.align import FER_CROP, fer_crops
from fer_video.faces.detect import make_detector
from fer_video.faces.record import Faces
from fer_video.faces.track import ShotCutDetector, Tracker
from fer_video.render import draw_faces
from fer_video.smoothing import Smoothing
from fer_video.timeline.schema import RAW, SMOOTH, TimelineMetadata
from fer_video.timeline.write import write_timeline
from fer_video.video import DecodeStats, MediaInfo, VideoWriter, probe, read_frames
from fer_video.video.read import frame_layout

__all__ = ["AnnotateOptions", "Analysis", "Result", "analyse", "analyse_segmented", "annotate", "load_classifier",
           "metadata", "output_paths", "plan_segments", "probe", "render", "smooth", "stitch", "summarise", "write"]

CLASSIFY_BATCH = 256  # faces per classifier call, gathered across frames


@dataclass
class AnnotateOptions:
    out_dir: Path = Path("fer-video-out")
    stride: int = 1
    detector: str = "blazeface"
    min_face: int = 40
    smoothing: str = "window:0.5"
    model: Path | None = None
    video: bool = True
    preset: str = "ultrafast"
    progress: bool = True
    segments: int = 1  # split a video into this many time segments, analysed in parallel
    persons: bool = True  # person_id: link a video's tracks of one person (embeddings in memory only)
    identity: bool = False  # also store the embeddings and link persons across the folder (biometric data)
    people: Path | None = None  # with identity: one sub-folder of reference photos per name

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        Smoothing.parse(self.smoothing)  # fail early on a bad spec
        if self.stride < 1:
            raise ValueError("stride must be at least 1")

    def settings(self) -> dict:
        """What, besides the input and the model, decides the result."""
        return {"stride": self.stride, "detector": self.detector, "min_face": self.min_face,
                "smoothing": str(Smoothing.parse(self.smoothing)), "video": self.video,
                "segments": self.segments, "software": __version__,
                # Only when not the default, so that job keys from before person ids still hold.
                **({"persons": False} if not self.persons else {}),
                **({"identity": True} if self.identity else {})}


@dataclass
class Analysis:
    info: MediaInfo
    name: str  # output name and video_id: the file stem unless the caller chose another
    rows: pd.DataFrame  # one row per (analysed frame, face), raw probabilities filled
    frames_decoded: int
    detector: str
    model_name: str = ""
    model_version: str = ""
    model_sha256: str = ""
    content_sha256: str = ""  # of the source; hashed when the timeline is written if not known
    # One row per face embedding (track_id, time_s, quality, embedding); empty without persons.
    embeddings: pd.DataFrame | None = None


@dataclass
class Result:
    source: str
    timeline: Path | None = None
    video: Path | None = None
    image: Path | None = None
    frames: int = 0
    faces: int = 0
    tracks: int = 0


_models: dict = {}


def load_classifier(model: Path | None):
    """One classifier per model path per process: loading Keras costs seconds."""
    from fer_video.expression.classify import ExpressionClassifier

    key = str(model or "")
    if key not in _models:
        _models[key] = ExpressionClassifier(model)
    return _models[key]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def job_key(content_sha256: str, model_sha256: str, options: AnnotateOptions) -> str:
    """Equal keys mean the same output: same bytes in, same model, same settings."""
    payload = json.dumps([content_sha256, model_sha256, options.settings()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def analyse(info: MediaInfo, options: AnnotateOptions, name: str | None = None,
            first: int = 0, last: int | None = None) -> Analysis:
    """Decode, detect, track, crop and classify every `stride`-th frame (of frames `first` to
    `last` only, for one segment of a video)."""
    detector = make_detector(options.detector, min_face=options.min_face,
                             frame_rate=float(info.fps) / options.stride if not info.is_image else None)
    classifier = load_classifier(options.model)
    tracker, cuts = Tracker(), ShotCutDetector()
    candidates = _track_candidates(options)
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
    with bar:
        for frame in read_frames(info, options.stride, stats, first, last):
            if cuts(frame.image):
                tracker.reset()
                detector.reset()
            faces = tracker.update(detector(frame.image, frame.index // options.stride), frame.time)
            if candidates is not None and len(faces):
                candidates.add(frame.image, faces, frame.time)  # while the frame is in memory
            if len(faces):
                pending.append((frame.index, frame.time, faces, fer_crops(frame.image, faces, geometry)))
                n_pending += len(faces)
                if n_pending >= CLASSIFY_BATCH:
                    classify_pending()
                    n_pending = 0
            bar.update(1)
    classify_pending()
    name = name or Path(info.path).stem
    rows = _rows_frame(info, name, columns)
    embeddings = candidates.embeddings() if candidates is not None else _no_embeddings()
    rows = _with_persons(rows, embeddings, options.persons)
    return Analysis(info, name, rows, stats.decoded, detector.name, classifier.name, classifier.version,
                    classifier.sha256, embeddings=embeddings)


def _track_candidates(options: AnnotateOptions):
    if not (options.persons or options.identity):
        return None
    from fer_video.faces.embed import TrackCandidates

    return TrackCandidates()


def _no_embeddings() -> pd.DataFrame:
    return pd.DataFrame({"track_id": np.zeros(0, np.int32), "time_s": np.zeros(0), "quality": np.zeros(0, np.float32),
                         "embedding": []})


def _with_persons(rows: pd.DataFrame, embeddings: pd.DataFrame | None, enabled: bool = True) -> pd.DataFrame:
    """person_id per row: clustered tracks (fer_video.identity), or the track id when off."""
    from fer_video.identity import assign_persons

    return assign_persons(rows, embeddings if enabled and embeddings is not None else _no_embeddings())


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
    embeddings = [parts[0].embeddings]
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
        embeddings.append(_remapped_embeddings(part.embeddings, mapping))
    last = parts[-1]
    merged = _best_embeddings(pd.concat([e for e in embeddings if e is not None and len(e)] or [_no_embeddings()],
                                        ignore_index=True))
    # Persons again over the whole video (with persons off there are no embeddings: person = track).
    joined = _with_persons(joined.reset_index(drop=True), merged)
    return Analysis(last.info, last.name, joined, last.frames_decoded, last.detector,
                    last.model_name, last.model_version, last.model_sha256, embeddings=merged)


def _remapped_embeddings(embeddings: pd.DataFrame | None, mapping: dict) -> pd.DataFrame | None:
    """A later segment's embeddings under the stitched track ids (a track that left before the
    seam's boundary has no id there and is dropped, as its rows are)."""
    if embeddings is None or not len(embeddings):
        return embeddings
    ids = embeddings["track_id"].map(mapping)
    kept = embeddings[ids.notna()]
    return kept.assign(track_id=ids[ids.notna()].astype(np.int32))


def _best_embeddings(embeddings: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_PER_TRACK per track, the best first: a track seen by two segments has twice."""
    from fer_video.faces.embed import MAX_PER_TRACK

    if not len(embeddings):
        return embeddings
    ordered = embeddings.sort_values(["track_id", "quality"], ascending=[True, False], kind="stable")
    return ordered.groupby("track_id", sort=True).head(MAX_PER_TRACK).reset_index(drop=True)


def analyse_segmented(info: MediaInfo, options: AnnotateOptions, name: str | None = None) -> Analysis:
    """`analyse` one segment after another and stitch them (flows/ runs segments in parallel)."""
    ranges = plan_segments(info, options)
    if len(ranges) == 1:
        return analyse(info, options, name)
    return stitch([analyse(info, options, name, first, last) for first, last in ranges], ranges)


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
        stride=options.stride, rotation=info.rotation, has_audio=info.has_audio,
        model_name=analysis.model_name, model_version=analysis.model_version,
        detector=analysis.detector, smoothing=str(Smoothing.parse(options.smoothing)),
        software_version=__version__,
        content_sha256=content_sha256,
        job_key=job_key(content_sha256, analysis.model_sha256, options),
    )


def output_paths(info: MediaInfo, out_dir: Path, name: str | None = None) -> dict[str, Path]:
    stem = name or Path(info.path).stem
    media = out_dir / (f"{stem}.annotated{Path(info.path).suffix.lower()}" if info.is_image else f"{stem}.mp4")
    if media.resolve() == Path(info.path).resolve():
        media = media.with_name(f"{stem}.annotated.mp4")
    return {"timeline": out_dir / f"{stem}.parquet", "media": media}


def write(rows: pd.DataFrame, analysis: Analysis, options: AnnotateOptions) -> Path:
    path = output_paths(analysis.info, options.out_dir, analysis.name)["timeline"]
    if options.identity and analysis.embeddings is not None:
        from fer_video.identity import write_embeddings

        write_embeddings(analysis.embeddings, options.out_dir, analysis.name)  # before the timeline: done marks all
    return write_timeline(rows, metadata(analysis, options), path)


def render(info: MediaInfo, rows: pd.DataFrame, options: AnnotateOptions, name: str | None = None) -> Path:
    """The annotated video (or image): every source frame, with the faces of the latest analysed
    frame within the stride drawn on it."""
    path = output_paths(info, options.out_dir, name)["media"]
    by_frame = {
        index: (group[["x", "y", "w", "h"]].to_numpy(), group["track_id"].to_numpy(), group[SMOOTH].to_numpy(),
                _person_labels(group))
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
    writer = VideoWriter(path, info.width, info.height, info.fps, audio_from=info.path if info.has_audio else None,
                         audio_codec=info.audio_codec, preset=options.preset, pix_fmt=pix_fmt)
    with bar, writer:
        for frame in read_frames(info):
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


def _person_labels(group: pd.DataFrame) -> list[str] | None:
    """What the video shows beside a track id: the name, else `person_<id>` when the person
    spans other tracks too (a lone track's person is itself; repeating it would be noise)."""
    if "person_id" not in group:
        return None
    from fer_video.identity import person_label

    names = group["person"] if "person" in group else [None] * len(group)
    return [person_label(p, n) if (isinstance(n, str) or p != t) else ""
            for p, n, t in zip(group["person_id"], names, group["track_id"])]


def _write_image(image: np.ndarray, path: Path) -> Path:
    ok, data = cv2.imencode(path.suffix if path.suffix in (".jpg", ".jpeg", ".png", ".bmp") else ".png", image)
    if not ok:
        raise RuntimeError(f"{path}: could not encode the annotated image")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data.tobytes())
    os.replace(partial, path)
    return path


def annotate(path: str | Path, options: AnnotateOptions, name: str | None = None,
             content_sha256: str = "") -> Result:
    """The whole pipeline for one input, without Prefect (flows/annotate.py runs the same).

    The timeline is written last: a Parquet file with its job key is the mark of a finished job.
    """
    info = probe(path)
    analysis = analyse_segmented(info, options, name)
    analysis.content_sha256 = content_sha256
    rows = smooth(analysis.rows, options.smoothing)
    result = summarise(info, rows, analysis)
    if options.video or info.is_image:
        media = render(info, rows, options, analysis.name)
        if info.is_image:
            result.image = media
        else:
            result.video = media
    result.timeline = write(rows, analysis, options)
    return result


def summarise(info: MediaInfo, rows: pd.DataFrame, analysis: Analysis) -> Result:
    return Result(
        source=info.path, frames=analysis.frames_decoded, faces=len(rows),
        tracks=int(rows["track_id"].nunique()) if len(rows) else 0,
    )

