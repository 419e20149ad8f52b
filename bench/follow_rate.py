"""What following faces at a bounded rate (BlazeFaceDetector's `follow_rate`) costs in boxes and
labels and saves in work: the same clips analysed with every followed face located every frame
(rate 0) and at each rate, side by side.

    .venv/bin/python bench/follow_rate.py [--seconds 10] [--rates 0,15]

Clips as bench/classify_rate.py: two moving faces at 1280x720 30 fps; ten faces at 1920x1080
30 fps; shots at 640x360 30 fps where people come, go, turn and are cut between. For each: seconds
and CPU seconds of the analysis, the detector's model invokes, tracks (all, and kept), and against
rate 0 on the kept, smoothed faces matched by (frame, track): how many match, the IoU of their
boxes (mean, 5th percentile) and the share whose smoothed label is unchanged.
"""

from __future__ import annotations

import sys

import numpy as np

import common
from common import OUT
from classify_rate import rate_clips


def analysed(clip, rate: float | None, **detector_options) -> tuple[dict, dict]:
    """`clip`'s analysis with BlazeFace following at `rate` (None: as it ships) and
    `detector_options`: its figures, and each kept, smoothed face's box and probabilities by
    (frame, track)."""
    from fer_video.faces.detectors import make_detector
    from fer_video.pipeline import AnnotateOptions

    made = []

    def make(name, **options):
        detector = make_detector(name, **({} if rate is None else {"follow_rate": rate}), **detector_options, **options)
        made.append(detector)
        return detector

    options = AnnotateOptions(out_dir=OUT / "follow_rate", progress=False, persons=False)
    analysis, wall, cpu, kept, info = common.timed_analysis(clip, options, make)
    detector = made[0]
    keys = list(zip(kept.frame_index.tolist(), kept.track_ids.tolist()))
    invokes = {m: getattr(detector, f"_{m}").invokes for m in ("full", "short", "wide")}
    windows = {m: getattr(detector, f"_{m}").windows for m in ("full", "short", "wide")}
    stats = {"analyse_s": wall, "cpu_s": cpu, "invokes": sum(invokes.values()), "short": invokes["short"],
             "wide": invokes["wide"], "full": invokes["full"], "windows": sum(windows.values()),
             "short_windows": windows["short"], "faces": len(analysis.faces),
             "tracks": len(set(analysis.faces.track_ids.tolist())), "kept_tracks": len(set(kept.track_ids.tolist()))}
    if "two_faces" in str(clip):
        stats["centre_err"] = truth_error(kept, float(info.fps))
    return stats, {k: (kept.boxes[i], kept.smoothed[i]) for i, k in enumerate(keys)}


def truth_error(faces, fps: float) -> float:
    """On the two-face clip, whose faces' places are known (bench/detectors.py `patch_box`): the
    mean distance of each box centre from its face's pasted centre less that track's median
    offset, in face widths (the jitter and lag of the boxes, not the detector's fixed framing)."""
    from detectors import patch_box
    from fer_video.samples import astronaut_face, two_actors

    actors, shape = two_actors(1280), astronaut_face().shape
    centres = faces.boxes[:, :2] + faces.boxes[:, 2:] / 2
    errors = np.zeros((len(faces), 2))
    for i, index in enumerate(faces.frame_index):
        patches = np.array([patch_box(a, index / fps, shape) for a in actors], float)
        truth = patches[:, :2] + patches[:, 2:] / 2
        nearest = np.argmin(np.linalg.norm(truth - centres[i], axis=1))
        errors[i] = (centres[i] - truth[nearest]) / faces.boxes[i, 2]
    spread = []
    for track in np.unique(faces.track_ids):
        mine = errors[faces.track_ids == track]
        spread.append(np.linalg.norm(mine - np.median(mine, axis=0), axis=1))
    return float(np.concatenate(spread).mean()) if spread else float("nan")


def boxes_and_labels(reference: dict, faces: dict, matched: list) -> dict:
    """Against the reference's faces (box, smoothed probabilities by (frame, track)), the
    `matched` ones': the IoU of their boxes (mean, 5th percentile) and the share whose smoothed
    label is the same."""
    from fer_video.faces.record import box_iou

    iou = np.array([box_iou(faces[k][0][None], reference[k][0][None])[0, 0] for k in matched])
    same = np.array([faces[k][1].argmax() == reference[k][1].argmax() for k in matched])
    nan = float("nan")
    return {"iou_mean": float(iou.mean()) if len(iou) else nan,
            "iou_p5": float(np.percentile(iou, 5)) if len(iou) else nan,
            "same_label": float(same.mean()) if len(same) else nan}


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rates", default="0,15", help="locations of a followed face a second, Hz; 0 = every frame "
                                                   "(the reference)")
    p.add_argument("--clips", default="two,crowd,shots")
    p.add_argument("--unsure", type=float, default=None, help="BlazeFaceDetector.UNSURE to try (default: the class's)")
    args = p.parse_args()
    if args.unsure is not None:
        from fer_video.faces.detectors.blazeface import BlazeFaceDetector

        BlazeFaceDetector.UNSURE = args.unsure
    sys.path.insert(0, str(common.BENCH))
    common.print_machine()
    return common.rate_study(args, rate_clips(args.seconds, args.clips), analysed, boxes_and_labels,
                             "kept faces after smoothing (window:0.5), against every frame located")


if __name__ == "__main__":
    sys.exit(main())
