"""Where a FER2013 crop sits relative to each detector's box: the `crop` of its entry in
fer_video/faces/detectors/__init__.py's DETECTORS (crop side = scale x box width, crop centre = box centre + shift_y x width).

    .venv/bin/python bench/fer_crop_geometry.py [DATASET_DIR] [--images 500]

For `--images` random images of DATASET_DIR/train/ (training split only): upscale x4 (48 -> 192
px, cubic), pad by reflection with half a face (96 px) on each side so the detector has context,
run each detector and keep the detection centred nearest the middle (the reflections hold partial
mirror faces). Boxes are mapped back to 48-px FER coordinates. Box width is max(w, h), as
align.py uses it. Per image: scale = 48 / width, shift_y = (24 - box centre y) / width.
BlazeFace finds few of these tight, grey crops at its shipped score threshold (0.5); lower
`--min-score` finds more, with smaller boxes (a larger implied scale): the rate matters.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import common
from common import ROOT, table

UPSCALE, FACE = 4, 48


def sample_paths(dataset: Path, n: int, seed: int) -> list[Path]:
    train = dataset / "train"
    if not train.is_dir():
        raise SystemExit(f"{train}: no train/ folder (the Kaggle FER2013 layout is expected)")
    paths = sorted(p for p in train.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SystemExit(f"{train}: no images")
    rng = np.random.default_rng(seed)
    return [paths[i] for i in sorted(rng.choice(len(paths), min(n, len(paths)), replace=False))]


def prepared(path: Path):
    import cv2

    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(grey, (FACE * UPSCALE, FACE * UPSCALE), interpolation=cv2.INTER_CUBIC)
    pad = FACE * UPSCALE // 2
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR), pad


def measure(name: str, paths: list[Path], min_score: float = 0.5) -> dict:
    from fer_video.faces.align import crop_geometry
    from fer_video.faces.detectors import make_detector

    options = {"min_face": 40, **({"min_score": min_score} if name == "blazeface" else {})}
    with common.quiet_stderr():
        detector = make_detector(name, **options)
        detector(np.zeros((64, 64, 3), np.uint8))  # LiteRT's start-up banner
    boxes = []
    for path in paths:
        image, pad = prepared(path)
        detector.reset()  # each image is a new scene: nothing followed from the last one
        faces = detector(image)
        if not len(faces):
            continue
        b = faces.boxes.astype(np.float64)
        centre = (image.shape[1] / 2, image.shape[0] / 2)
        best = b[np.argmin(np.hypot(b[:, 0] + b[:, 2] / 2 - centre[0], b[:, 1] + b[:, 3] / 2 - centre[1]))]
        x, y, w, h = (best - [pad, pad, 0, 0]) / UPSCALE
        if abs(x + w / 2 - FACE / 2) < FACE / 2 and abs(y + h / 2 - FACE / 2) < FACE / 2:  # centre on the image
            boxes.append((x, y, w, h))
    boxes = np.array(boxes).reshape(-1, 4)
    side = boxes[:, 2:4].max(axis=1)
    scale, shift = FACE / side, (FACE / 2 - (boxes[:, 1] + boxes[:, 3] / 2)) / side
    q = lambda v: np.percentile(v, [50, 25, 75]) if len(v) else [np.nan] * 3  # noqa: E731
    row = {"detector": name, "images": len(paths), "found": len(boxes), "rate": len(boxes) / len(paths)}
    for key, values in zip("xywh", boxes.T):
        med, lo, hi = q(values)
        row[key], row[f"{key}_iqr"] = med, f"{lo:.1f}..{hi:.1f}"
    (row["scale"], s_lo, s_hi), (row["shift_y"], y_lo, y_hi) = q(scale), q(shift)
    row["scale_iqr"], row["shift_y_iqr"] = f"{s_lo:.2f}..{s_hi:.2f}", f"{y_lo:.3f}..{y_hi:.3f}"
    row["shift_x"] = q((FACE / 2 - (boxes[:, 0] + boxes[:, 2] / 2)) / side)[0]
    row["shipped_scale"], row["shipped_shift_y"] = crop_geometry(name).scale, crop_geometry(name).shift_y
    return row


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("dataset", nargs="?", default=str(ROOT.parent / "shared" / "datasets" / "fer2013"))
    p.add_argument("--images", type=int, default=500, help="training images to sample (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detectors", default="blazeface,haar")
    p.add_argument("--min-score", type=float, default=0.5, help="BlazeFace score threshold (default 0.5, as shipped)")
    args = p.parse_args()
    results = {"machine": common.print_machine()}
    paths = sample_paths(Path(args.dataset), args.images, args.seed)
    rows = [measure(name, paths, args.min_score) for name in args.detectors.split(",")]
    results["geometry"] = rows
    table(rows, ["detector", "images", "found", "rate", "x", "y", "w", "h", "w_iqr"],
          f"boxes in 48-px FER coordinates (medians; {len(paths)} images of {args.dataset}/train, seed {args.seed}; "
          f"BlazeFace min_score {args.min_score:g})")
    table(rows, ["detector", "scale", "scale_iqr", "shipped_scale", "shift_y", "shift_y_iqr", "shipped_shift_y",
                 "shift_x"], "implied crop: scale = 48 / box width; shift_y = (24 - box centre y) / box width "
          "(crop centre minus box centre; negative: crop above the box)")
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
