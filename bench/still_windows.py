"""What scanning only where the picture changed (BlazeFace's `StillWindows`) costs in faces and
labels and saves in work: the same clips analysed with every scheduled scan and tile run
(`still_windows=False`) and as fer-video ships, side by side.

    .venv/bin/python bench/still_windows.py [--seconds 10] [--clips two,crowd,shots]

Clips as bench/follow_rate.py: two moving faces at 1280x720 30 fps; ten faces at 1920x1080
30 fps; shots at 640x360 30 fps where people come, go, turn and are cut between. For each: seconds
and CPU seconds of the analysis, the full-range model's windows (whole-frame scans and tiles),
tracks, and against scanning on schedule, on the kept, smoothed faces matched by (frame, track):
how many match, the IoU of their boxes and the share whose smoothed label is unchanged.
bench/detectors.py part (d) measures what it costs small faces walking in.
"""

from __future__ import annotations

import sys

import common
from common import table


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--clips", default="two,crowd,shots")
    args = p.parse_args()
    sys.path.insert(0, str(common.BENCH))
    common.print_machine()
    from classify_rate import shots_clip
    from follow_rate import analysed

    import numpy as np

    from fer_video.faces.record import box_iou
    from fer_video.pipeline import load_classifier

    load_classifier(None)  # the model's load is not the analysis's
    makers = {"two": ("two faces 720p", common.clip), "crowd": ("ten faces 1080p", common.crowd_clip),
              "shots": ("shots, turns, cuts 360p", shots_clip)}
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
