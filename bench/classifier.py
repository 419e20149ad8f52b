"""ExpressionClassifier speed: faces/s batched (with and without flip TTA) and single-face latency.

    .venv/bin/python bench/classifier.py [--model models/fer_vgg.keras] [--faces 4096]

Random 48x48 uint8 faces (speed does not depend on content). Each figure is measured after a
warm-up call that traces the model; batched runs go through the pipeline's own call
(`classifier(faces)`, chunks of 256), single-face latency is the median of `--repeats` calls.
"""

from __future__ import annotations

import sys

import numpy as np

import common
from common import Timer, table

TARGET = 2000.0  # faces/s batched, shipped model, 2 cores


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model .keras (default: the shipped models/fer_vgg.keras)")
    p.add_argument("--faces", type=int, default=4096, help="faces per batched measurement (default 4096)")
    p.add_argument("--rounds", type=int, default=3, help="batched measurements; the best is kept (default 3)")
    p.add_argument("--repeats", type=int, default=200, help="single-face calls (default 200)")
    args = p.parse_args()
    results = {"machine": common.print_machine()}
    with common.quiet_stderr():
        from fer_video.expression.classify import ExpressionClassifier

        classifiers = {flip: ExpressionClassifier(args.model, batch_size=256, flip=flip) for flip in (False, True)}
    some = classifiers[False]
    params = None
    try:
        import keras

        params = keras.models.load_model(some.path, compile=False).count_params()
    except Exception:  # noqa: BLE001 - only for the heading
        pass
    print(f"model: {some.path} ({some.name}, {params or '?'} parameters)")

    faces = np.random.default_rng(0).integers(0, 256, (args.faces, 48, 48), dtype=np.uint8)
    rows = []
    for flip, classifier in classifiers.items():
        classifier(faces[:256])  # warm-up: traces the function
        best = 0.0
        for _ in range(args.rounds):
            with Timer() as t:
                classifier(faces)
            best = max(best, args.faces / t.seconds)
        single = common.repeat_ms(lambda c=classifier: c(faces[:1]), args.repeats, warmup=5)
        rows.append({"flip_tta": "yes" if flip else "no", "batch": 256, "faces_per_s": best,
                     "ms_per_face_batched": 1000 / best, "single_face_ms": single})
    results["model"], results["rows"] = str(some.path), rows
    table(rows, ["flip_tta", "batch", "faces_per_s", "ms_per_face_batched", "single_face_ms"],
          f"ExpressionClassifier on {args.faces} random faces (best of {args.rounds}); single face: median of "
          f"{args.repeats} calls")
    shipped = rows[1]["faces_per_s"]  # the pipeline runs with flip TTA (the default)
    print(f"\ntarget >= {TARGET:,.0f} faces/s batched (with flip TTA, as the pipeline runs): {shipped:,.0f} "
          f"({'met' if shipped >= TARGET else 'NOT met'})")
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
