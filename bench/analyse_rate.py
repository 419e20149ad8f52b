"""What analysing about HZ frames a second (`--analyse-rate`) costs in boxes and labels and saves
in work: the same clips analysed frame by frame (rate 0) and at each rate, side by side.

    .venv/bin/python bench/analyse_rate.py [--seconds 10] [--rates 0,15]

Clips as bench/classify_rate.py: two moving faces at 1280x720 30 fps; ten faces at 1920x1080
30 fps; shots at 640x360 30 fps where three people come, go, turn and are cut between; one shot
where a hand covers the astronaut's mouth for the middle third. For each: seconds and CPU seconds
of the analysis, frames the detector saw, faces (rows) and kept tracks; on the two-face clip the
boxes' distance from where the faces really are (`follow_rate.truth_error`, face widths); the
boxes' jitter (mean |second difference| of each track's box centre from frame to frame, pixels);
and against rate 0 on the kept, smoothed faces matched by (frame, track): how many match, the IoU
of their boxes (mean, 5th percentile) and the share whose smoothed label is unchanged.
"""

from __future__ import annotations

import sys

import numpy as np

import common


def analysed(clip, rate: float) -> tuple[dict, dict]:
    """`clip`'s analysis at `--analyse-rate rate`: its figures, and each kept, smoothed face's box
    and probabilities by (frame, track)."""
    from fer_video.faces.detectors import make_detector
    from fer_video.pipeline import AnnotateOptions

    from follow_rate import truth_error

    seen = [0]

    def make(name, **options):
        detector = make_detector(name, **options)
        call = type(detector).__call__

        class Counted(type(detector)):
            def __call__(self, *args, **kwargs):
                seen[0] += 1
                return call(self, *args, **kwargs)

        detector.__class__ = Counted
        return detector

    options = AnnotateOptions(out_dir=common.OUT / "analyse_rate", progress=False, persons=False, analyse_rate=rate)
    analysis, wall, cpu, kept, info = common.timed_analysis(clip, options, make)
    keys = list(zip(kept.frame_index.tolist(), kept.track_ids.tolist()))
    stats = {"analyse_s": wall, "cpu_s": cpu, "detector_frames": seen[0], "faces": len(analysis.faces),
             "kept_tracks": len(set(kept.track_ids.tolist())), "jitter_px": jitter(kept)}
    if "two_faces" in str(clip):
        stats["centre_err"] = truth_error(kept, float(info.fps))
    return stats, {k: (kept.boxes[i], kept.smoothed[i]) for i, k in enumerate(keys)}


def jitter(faces) -> float:
    """Mean |second difference| of each track's box centre over consecutive frames, pixels."""
    centres = faces.boxes[:, :2] + faces.boxes[:, 2:] / 2
    parts = []
    for track in np.unique(faces.track_ids):
        rows = np.flatnonzero(faces.track_ids == track)
        rows = rows[np.argsort(faces.frame_index[rows])]
        frames = faces.frame_index[rows]
        for run in np.split(rows, np.flatnonzero(np.diff(frames) != 1) + 1):
            if len(run) > 2:
                parts.append(np.abs(np.diff(centres[run], 2, axis=0)).mean(axis=1))
    return float(np.concatenate(parts).mean()) if parts else float("nan")


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rates", default="0,15", help="analysed frames a second, Hz; 0 = every frame (the reference)")
    p.add_argument("--clips", default="two,crowd,shots,hand")
    args = p.parse_args()
    sys.path.insert(0, str(common.BENCH))
    common.print_machine()
    from classify_rate import rate_clips
    from follow_rate import boxes_and_labels

    return common.rate_study(args, rate_clips(args.seconds, args.clips), analysed, boxes_and_labels,
                             "kept faces after smoothing (window:0.5), against every frame analysed")


if __name__ == "__main__":
    sys.exit(main())
