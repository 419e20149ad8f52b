"""The expression model on faces the pipeline cuts itself, not on FER2013's own crops.

    .venv/bin/python bench/pipeline_faces.py [DATASET_DIR] [--split public_test] [--images 1000]

For `--images` random images of DATASET_DIR/<split>/: upscale x4 and pad by reflection (as
bench/fer_crop_geometry.py does, so the detector has context), then run the pipeline's own
stages on that picture: BlazeFace, the FER crop of fer_video/faces/align.py (eyes levelled) and
the classifier as the pipeline calls it. Prints the detection rate, the accuracy on the faces the
pipeline found, the classifier's accuracy on the dataset's own crops of the same faces, and how
often the two agree: the cost of cutting faces ourselves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import common
from common import ROOT, table
from fer_crop_geometry import FACE, UPSCALE, prepared


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("dataset", nargs="?", default=str(ROOT.parent / "shared" / "datasets" / "fer2013"))
    p.add_argument("--split", default="public_test")
    p.add_argument("--images", type=int, default=1000, help="images to sample (default 1000; 0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="model .keras (default: the shipped one)")
    args = p.parse_args()
    results = {"machine": common.print_machine()}

    from fer_video.expression.classify import ExpressionClassifier
    from fer_video.expression.training.data import load_folder
    from fer_video.faces.align import crop_geometry, fer_crops
    from fer_video.faces.detectors import make_detector

    faces, labels, paths = load_folder(Path(args.dataset) / args.split)
    if args.images and args.images < len(paths):
        pick = np.sort(np.random.default_rng(args.seed).choice(len(paths), args.images, replace=False))
        faces, labels, paths = faces[pick], labels[pick], [paths[i] for i in pick]
    with common.quiet_stderr():
        detector = make_detector("blazeface", min_face=40)
        classifier = ExpressionClassifier(args.model)
    found, crops = [], []
    for i, path in enumerate(paths):
        image, pad = prepared(Path(path))
        detector.reset()
        detected = detector(image)
        if not len(detected):
            continue
        b = detected.boxes.astype(np.float64)
        centre = np.array([image.shape[1], image.shape[0]]) / 2
        nearest = int(np.argmin(np.hypot(*(b[:, :2] + b[:, 2:] / 2 - centre).T)))
        x, y, w, h = b[nearest]
        if abs(x + w / 2 - centre[0]) > FACE * UPSCALE / 2 or abs(y + h / 2 - centre[1]) > FACE * UPSCALE / 2:
            continue  # a mirrored face in the padding, not the image's own
        found.append(i)
        crops.append(fer_crops(image, detected[nearest : nearest + 1], crop_geometry("blazeface"))[0])
    found = np.array(found, int)
    cut = classifier(np.stack(crops)).argmax(1)
    own = classifier(faces[found]).argmax(1)
    truth = labels[found]
    row = {"images": len(paths), "found": len(found), "rate": len(found) / len(paths),
           "accuracy_pipeline_crops": float((cut == truth).mean()),
           "accuracy_dataset_crops": float((own == truth).mean()),
           "agreement": float((cut == own).mean())}
    results["rows"] = [row]
    table([row], list(row), f"{args.split}: {classifier.name} ({classifier.backend}, TTA "
          f"{'flip' if classifier.flip else 'none'}) on faces the pipeline cut vs the dataset's crops")
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
