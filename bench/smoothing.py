"""Label flicker of each smoothing method on the two-face clip: label changes per minute per track.

    .venv/bin/python bench/smoothing.py [--seconds 60] [--methods none,ema:0.3,window:0.5,hmm:1]

The clip is analysed once in-process with smoothing "none" (its raw faces cached as timeline rows
under bench/out/, keyed by clip and model file); then `fer_video.pipeline.smooth(faces, spec)` is
applied per method.
The faces in the sample clip do not change expression, so every change is flicker.
`agree_raw` is the share of face rows whose label equals the unsmoothed one.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

import common
from common import OUT, table


def raw_faces(seconds: float, detector: str):
    """The clip's analysed faces (raw probabilities, not smoothed) and where they came from."""
    from fer_video.expression.classify import DEFAULT_MODEL
    from fer_video.faces.record import from_timeline_columns
    from fer_video.timeline.rows import rows_of

    clip = common.clip(seconds)
    stat = DEFAULT_MODEL.stat()
    cache = OUT / "smoothing" / f"{clip.stem}_{detector}_{stat.st_size}_{int(stat.st_mtime)}.parquet"
    if cache.exists():
        return from_timeline_columns(pd.read_parquet(cache)), f"{clip.name} (cached rows {cache.name})"
    with common.quiet_stderr():
        from fer_video.pipeline import AnnotateOptions, analyse, probe

        analysis = analyse(probe(clip), AnnotateOptions(detector=detector, smoothing="none", progress=False))
    cache.parent.mkdir(parents=True, exist_ok=True)
    rows_of(analysis.faces, analysis.name, str(clip)).to_parquet(cache)
    return analysis.faces, clip.name


def flicker(rows: pd.DataFrame) -> dict[int, float]:
    """Label changes per minute of each track (rows sorted by frame)."""
    out = {}
    for track, group in rows.sort_values("frame_index").groupby("track_id"):
        labels = group["label"].to_numpy()
        times = group["timestamp_s"].to_numpy()
        minutes = max(times[-1] - times[0], 1e-9) / 60
        if len(labels) >= 2:
            out[int(track)] = float((labels[1:] != labels[:-1]).sum()) / minutes
    return out


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60, help="clip length (default 60)")
    from fer_video.faces.detectors import DETECTORS

    p.add_argument("--detector", default="blazeface", choices=list(DETECTORS))
    p.add_argument("--methods", default="none,ema:0.3,window:0.5,hmm:1")
    args = p.parse_args()
    results = {"machine": common.print_machine()}
    from fer_video.pipeline import smooth
    from fer_video.timeline.rows import rows_of

    faces, source = raw_faces(args.seconds, args.detector)
    rows = pd.DataFrame({"track_id": faces.track_ids, "timestamp_s": faces.timestamp_s})
    tracks = rows.groupby("track_id")["timestamp_s"].agg(["count", "min", "max"])
    print(f"timeline: {source}: {len(rows)} face rows; tracks " + ", ".join(
        f"{t} ({int(r['count'])} rows, {r['max'] - r['min']:.1f} s)" for t, r in tracks.iterrows()))
    base = rows_of(smooth(faces, "none"), "bench", source)
    table_rows = []
    for spec in args.methods.split(","):
        smoothed = rows_of(smooth(faces, spec), "bench", source)
        per_track = flicker(smoothed)
        row = {"method": spec, **{f"track_{t}": v for t, v in per_track.items()},
               "mean": float(np.mean(list(per_track.values()))) if per_track else float("nan"),
               "agree_raw": float((smoothed["label"].to_numpy() == base["label"].to_numpy()).mean())}
        table_rows.append(row)
    columns = ["method"] + [f"track_{int(t)}" for t in tracks.index] + ["mean", "agree_raw"]
    table(table_rows, columns, "label changes per minute, per track (lower = steadier)")
    results["source"], results["rows"] = source, table_rows
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
