"""What the expression model calls real people's faces, as the pipeline runs it: the share of
face rows per label on the `fer-video demo` clip (the astronaut, smiling, twice) and on a clip of
Grace Hopper and the astronaut side by side, and on scikit-image's cameraman (the test suite's and
bench's real people; Hopper's and the cameraman's faces are calm), with the mean probability of
neutral, sad and fear over all rows, one row per model, so an old and a new model can be compared on the same clips.

    .venv/bin/python bench/label_distribution.py [--model A.keras --model B.keras] [--json]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import common
from common import table


def clips(work: Path) -> dict[str, Path]:
    from fer_video.samples import Shot, astronaut_face, cameraman_face, hopper_face, make_clip, make_shots_clip

    return {
        "demo clip (astronaut x2), 6 s 720p": make_clip(work / "demo.mp4", seconds=6, width=1280, height=720, fps=30),
        "Hopper (left) and astronaut, 4 s": make_shots_clip(
            work / "two.mp4", [Shot(4.0, {"hopper": (0.3, 0.5, 0, 9), "astronaut": (0.72, 0.5, 0, 9)})],
            {"hopper": hopper_face(), "astronaut": astronaut_face()}, fps=25, face_width=180),
        "the cameraman (calm, three-quarter view), 3 s": make_shots_clip(
            work / "cameraman.mp4", [Shot(3.0, {"man": (0.5, 0.5, 0, 9)})], {"man": cameraman_face()},
            fps=25, face_width=180),
    }


def label_shares(video: Path, model: str | None, out: Path) -> dict[str, dict[str, float]]:
    """Share of rows per label, for all faces and per track (left to right by mean x)."""
    import pandas as pd

    from fer_video.pipeline import AnnotateOptions, annotate

    result = annotate(video, AnnotateOptions(out_dir=out, progress=False, model=Path(model) if model else None,
                                             video=False))
    rows = pd.read_parquet(result.timeline)
    shares = {"all faces": rows["label"].astype(str).value_counts(normalize=True).to_dict()}
    calm = {f"mean p_{e}": float(rows[f"p_{e}"].mean()) for e in ("neutral", "sad", "fear")}
    order = rows.groupby("track_id")["x"].mean().sort_values().index
    for n, track in enumerate(order):
        part = rows[rows["track_id"] == track]
        shares[f"track {n + 1} of {len(order)} ({len(part)} rows)"] = (
            part["label"].astype(str).value_counts(normalize=True).to_dict())
    shares["all faces, mean probability"] = calm
    return shares


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help="model .keras (repeat to compare; default: the shipped one)")
    args = p.parse_args()
    common.print_machine()
    models = args.model or [None]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, video in clips(work).items():
            for model in models:
                label = Path(model).as_posix() if model else "shipped"
                results.setdefault(name, {})[label] = label_shares(video, model, work / f"out-{len(results)}-{hash(label)}")
    for name, per_model in results.items():
        rows = []
        for model, shares in per_model.items():
            for who, share in shares.items():
                top = sorted(share.items(), key=lambda kv: -kv[1])
                rows.append({"model": model, "faces": who,
                             "labels": ", ".join(f"{k} {v:.0%}" for k, v in top if v >= 0.01)})
        table(rows, ["model", "faces", "labels"], name)
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
