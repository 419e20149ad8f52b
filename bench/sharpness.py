"""How sharp are the training faces, and which Gaussian blur makes video crops match them?

    .venv/bin/python bench/sharpness.py [DATASET_DIR]

Sharpness is the mean variance of the Laplacian of each 48x48 face. The reference faces are our
own FER-style crops from the generated astronaut clip, not public_test, so nothing here looks at
the evaluation split. The sigma printed last goes into the model card as `input_blur_sigma`.
"""

from __future__ import annotations

import glob
import json
import sys

import cv2
import numpy as np

import common


def laplacian_variance(faces: np.ndarray) -> float:
    return float(np.mean([cv2.Laplacian(f.astype(np.float32), cv2.CV_32F).var() for f in faces]))


def main() -> None:
    dataset = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else str(
        common.ROOT.parent / "shared" / "datasets" / "fer2013")
    train = np.stack([cv2.imread(f, cv2.IMREAD_GRAYSCALE)
                      for f in sorted(glob.glob(f"{dataset}/train/*/*.jpg"))[::10]])
    with common.quiet_stderr():
        from fer_video.faces.align import FER_CROP, fer_crops
        from fer_video.faces.detect import make_detector
        from fer_video.video import probe, read_frames

        detector = make_detector("blazeface")
        clip = common.clip(2.0)
        crops = np.concatenate([fer_crops(f.image, detector(f.image), FER_CROP["blazeface"])
                                for f in read_frames(probe(clip))])
    target = laplacian_variance(train)
    rows = []
    for sigma in np.arange(0.0, 4.01, 0.25):
        blurred = crops if sigma == 0 else np.stack(
            [cv2.GaussianBlur(c, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for c in crops])
        rows.append({"sigma": float(sigma), "video_crops_laplacian_var": laplacian_variance(blurred)})
    best = min(rows, key=lambda r: abs(np.log(r["video_crops_laplacian_var"] / target)))
    common.table(rows, title=f"train split ({len(train)} faces): Laplacian variance {target:.2f}; "
                             f"{len(crops)} video crops blurred by sigma:")
    print(f"\nsigma that matches the training faces: {best['sigma']:.2f}")
    if "--json" in sys.argv:
        print(json.dumps({"train_laplacian_var": target, "sigma": best["sigma"], "rows": rows}))


if __name__ == "__main__":
    main()
