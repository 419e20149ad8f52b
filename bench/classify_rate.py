"""What classifying each track at a bounded rate (`--classify-rate`) costs in labels and saves in
work: the same clips analysed with every face classified (rate 0) and at each rate, side by side.

    .venv/bin/python bench/classify_rate.py [--seconds 10] [--rates 0,15,10]

Clips: two faces at 1280x720 30 fps (moving); ten faces at 1920x1080 30 fps; shots at 640x360
30 fps where three people (astronaut, Hopper, the cameraman) come and go, turn (views of one face
cut in turn) and are cut between; and one shot at 640x360 30 fps where a hand covers the
astronaut's mouth for the middle third (a face that changes within its track). For each: faces classified, seconds and CPU seconds of the
analysis, and against rate 0, on the kept, smoothed faces matched by (frame, track): the share of
frame labels that stay the same, the mean and largest change of the smoothed probabilities.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import common
from common import OUT


def shots_clip(seconds: float):
    from fer_video.samples import Shot, astronaut_face, cameraman_face, face_views, hopper_face, make_shots_clip

    path = OUT / "clips" / f"shots_640x360_30fps_{seconds:g}s.mp4"
    if path.exists():
        return path
    views = face_views(astronaut_face())
    faces = {"astronaut": astronaut_face(), "hopper": hopper_face(), "cameraman": cameraman_face(),
             "left": views["turned left"], "right": views["turned right"], "mirrored": views["mirrored"]}
    part = seconds / 5
    shots = [Shot(part, {"astronaut": (0.3, 0.5, 0, 99), "hopper": (0.7, 0.5, 0, 99)}, scene=0),
             Shot(part, {"left": (0.3, 0.5, 0, 99), "cameraman": (0.7, 0.5, part / 2, 99)}, scene=1),
             Shot(part, {"right": (0.5, 0.5, 0, 99)}, scene=2),
             Shot(part, {"mirrored": (0.4, 0.5, 0, 99), "hopper": (0.75, 0.5, 0, part / 2)}, scene=3),
             Shot(part, {"cameraman": (0.5, 0.5, 0, 99)}, scene=4)]
    return make_shots_clip(path, shots, faces, fps=30)


def rate_clips(seconds: float, keys: str) -> dict:
    """The rate benches' clips by name, of `keys` (comma-separated): two moving faces at 720p
    (two), ten at 1080p (crowd), the shots (shots) and the hand over a mouth (hand)."""
    makers = {"two": ("two faces 720p", common.clip), "crowd": ("ten faces 1080p", common.crowd_clip),
              "shots": ("shots, turns, cuts 360p", shots_clip), "hand": ("hand over mouth 360p", hand_clip)}
    return {makers[key][0]: makers[key][1](seconds) for key in keys.split(",")}


def hand_clip(seconds: float):
    """One shot, no cut: the astronaut, then a hand over her mouth for a third of the clip, then
    the hand gone, the face in one place: a face that changes within its track."""
    from fer_video.samples import Shot, astronaut_face, hand_over, make_shots_clip

    path = OUT / "clips" / f"hand_640x360_30fps_{seconds:g}s.mp4"
    if path.exists():
        return path
    face = astronaut_face()
    faces = {"before": face, "hand": hand_over(face, "astronaut", "mouth", 0.3), "after": face}
    third = seconds / 3
    shot = Shot(seconds, {"before": (0.5, 0.5, 0, third), "hand": (0.5, 0.5, third, 2 * third),
                          "after": (0.5, 0.5, 2 * third, 99)}, scene=5)
    return make_shots_clip(path, [shot], faces, fps=30)


def labelled(clip, rate: float) -> tuple[dict, dict]:
    from fer_video.pipeline import AnnotateOptions, analyse, keep_faces, probe, smooth

    options = AnnotateOptions(out_dir=OUT / "classify_rate", progress=False, persons=False, classify_rate=rate)
    info = probe(clip)
    wall, cpu = time.perf_counter(), time.process_time()
    analysis = analyse(info, options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    faces = smooth(keep_faces(analysis, options)[0], options.smoothing)
    keys = list(zip(faces.frame_index.tolist(), faces.track_ids.tolist()))
    return ({"faces": len(analysis.faces), "classified": analysis.classified, "analyse_s": wall, "cpu_s": cpu},
            dict(zip(keys, faces.smoothed)))


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rates", default="0,15,10", help="classifier rates per track, Hz; 0 = every frame (the reference)")
    args = p.parse_args()
    common.print_machine()
    clips = rate_clips(args.seconds, "two,crowd,shots,hand")

    def measure(clip, rate):
        stats, smoothed = labelled(clip, rate)
        return {**stats, "classified_share": stats["classified"] / max(1, stats["faces"])}, smoothed

    def compare(reference, smoothed, matched):
        a = np.stack([reference[k] for k in matched]) if matched else np.zeros((0, 7))
        b = np.stack([smoothed[k] for k in matched]) if matched else np.zeros((0, 7))
        nan = float("nan")
        return {"same_label": float((a.argmax(1) == b.argmax(1)).mean()) if len(a) else nan,
                "mean_dp": float(np.abs(a - b).mean()) if len(a) else nan,
                "max_dp": float(np.abs(a - b).max()) if len(a) else nan}

    return common.rate_study(args, clips, measure, compare,
                             "labels and probabilities after smoothing (window:0.5), against every frame classified")


if __name__ == "__main__":
    sys.exit(main())
