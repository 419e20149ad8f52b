"""What scanning only where the picture changed (BlazeFace's `StillWindows`) costs in faces and
labels and saves in work: the same clips analysed with every scheduled scan and tile run
(`still_windows=False`) and as fer-video ships, side by side.

    .venv/bin/python bench/still_windows.py [--seconds 10] [--clips two,crowd,shots]

Clips as bench/follow_rate.py: two moving faces at 1280x720 30 fps; ten faces at 1920x1080
30 fps; shots at 640x360 30 fps where people come, go, turn and are cut between; and `empty`: the
two moving faces at 720p, both gone for the middle 40% of the clip (a still, empty room, where the
detector scans for newcomers; with `--clips empty`). For each: seconds
and CPU seconds of the analysis, the full-range model's windows (whole-frame scans and tiles),
tracks, and against scanning on schedule, on the kept, smoothed faces matched by (frame, track):
how many match, the IoU of their boxes and the share whose smoothed label is unchanged.
bench/detectors.py part (d) measures what it costs small faces walking in.
"""

from __future__ import annotations

import sys

import numpy as np

import common
from common import table


def empty_clip(seconds: float):
    """The bench's two moving faces at 1280x720 30 fps, both away from 30% to 70% of the clip."""
    from dataclasses import replace

    from fer_video.outputs import atomic_path
    from fer_video.samples import make_clip, two_actors

    path = common.OUT / "clips" / f"two_faces_away_1280x720_30fps_{seconds:g}s.mp4"
    if not path.exists():
        print(f"building {path.relative_to(common.ROOT)} ...", flush=True)
        first, second = (replace(a, leave=0.3 * seconds) for a in two_actors(1280))
        back = [replace(a, enter=0.7 * seconds) for a in two_actors(1280)]
        with atomic_path(path) as temp:
            make_clip(temp, seconds=seconds, width=1280, height=720, fps=30, actors=[first, second, *back],
                      extra_output_args=["-f", "mp4"])
    return path


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--clips", default="two,crowd,shots,empty")
    args = p.parse_args()
    sys.path.insert(0, str(common.BENCH))
    common.print_machine()
    from classify_rate import shots_clip
    from follow_rate import analysed

    from fer_video.faces.record import box_iou
    from fer_video.pipeline import load_classifier

    load_classifier(None)  # the model's load is not the analysis's
    makers = {"two": ("two faces 720p", common.clip), "crowd": ("ten faces 1080p", common.crowd_clip),
              "shots": ("shots, turns, cuts 360p", shots_clip), "empty": ("two faces, gone 40%, 720p", empty_clip)}
    rows = []
    for key in args.clips.split(","):
        name, make = makers[key]
        clip = make(args.seconds)
        reference = None
        for still in (False, True):
            stats, faces = analysed(clip, None, still_windows=still)
            reference = faces if reference is None else reference
            matched = [k for k in faces if k in reference]
            iou = np.array([box_iou(faces[k][0][None], reference[k][0][None])[0, 0] for k in matched])
            same = np.array([faces[k][1].argmax() == reference[k][1].argmax() for k in matched])
            row = {"clip": name, "scans": "where changed" if still else "on schedule",
                   **{k: stats[k] for k in ("analyse_s", "cpu_s", "full", "faces", "tracks", "kept_tracks")},
                   "matched": f"{len(matched)}/{len(reference)}", "extra": len(faces) - len(matched),
                   "iou_mean": float(iou.mean()) if len(iou) else float("nan"),
                   "same_label": float(same.mean()) if len(same) else float("nan")}
            rows.append(row)
            print(row, flush=True)
    table(rows, None, f"{args.seconds:g} s clips; full = full-range model windows; kept faces after smoothing, "
                      "against every scheduled scan and tile")
    common.emit_json(args.json, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
