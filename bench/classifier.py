"""ExpressionClassifier speed: faces/s batched (with and without flip TTA) and single-face latency,
for the pipeline's path (the .tflite in LiteRT) and, for comparison, the .keras in TensorFlow.

    .venv/bin/python bench/classifier.py [--model models/fer_vgg.keras] [--faces 4096] [--sweep]

Random 48x48 uint8 faces (speed does not depend on content). Batched runs go through the
pipeline's own call (`classifier(faces)`, i.e. scaling, batches, TTA, logit bias and softmax included)
after a warm-up call; the best of `--rounds` is kept. Single-face latency is the median of
`--repeats` one-face calls. `load_s` is the classifier's construction, imports included: the
LiteRT rows are measured first, before anything has imported TensorFlow. `--sweep` also measures
the LiteRT path with flip at other batch sizes (faces per invoke; the default is the measured best).
"""

from __future__ import annotations

import sys

import numpy as np

import common
from common import Timer, table

TARGET = 1500.0  # faces/s batched, shipped model, with the TTA its card names, 2 cores (issue 11)


def measure(classifier, faces: np.ndarray, rounds: int, repeats: int) -> dict:
    classifier(faces[:256])  # warm-up: interpreters made / function traced
    best = 0.0
    for _ in range(rounds):
        with Timer() as t:
            classifier(faces)
        best = max(best, len(faces) / t.seconds)
    single = common.repeat_ms(lambda: classifier(faces[:1]), repeats, warmup=5) if repeats else None
    return {"faces_per_s": best, "ms_per_face_batched": 1000 / best, "single_face_ms": single}


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model .keras (default: the shipped models/fer_vgg.keras)")
    p.add_argument("--faces", type=int, default=4096, help="faces per batched measurement (default 4096)")
    p.add_argument("--rounds", type=int, default=3, help="batched measurements; the best is kept (default 3)")
    p.add_argument("--repeats", type=int, default=200, help="single-face calls (default 200)")
    p.add_argument("--keras-batch", type=int, default=256, help="batch size of the Keras rows (default 256, "
                   "what the pipeline ran before the .tflite)")
    p.add_argument("--sweep", action="store_true", help="also the LiteRT path with flip at other batch sizes")
    args = p.parse_args()
    results = {"machine": common.print_machine()}
    faces = np.random.default_rng(0).integers(0, 256, (args.faces, 48, 48), dtype=np.uint8)
    rows = []

    from fer_video.expression.classify import ExpressionClassifier

    def row(backend: str, flip: bool, **kwargs) -> dict:
        with Timer() as load, common.quiet_stderr():
            classifier = ExpressionClassifier(args.model, flip=flip, backend=backend, **kwargs)
        r = {"backend": classifier.backend, "flip_tta": "yes" if flip else "no", "batch": classifier.batch_size,
             "load_s": load.seconds, **measure(classifier, faces, args.rounds, args.repeats)}
        print(f"measured {r['backend']}, flip {r['flip_tta']}, batch {r['batch']}: {r['faces_per_s']:,.0f} faces/s",
              file=sys.stderr)
        return r

    for flip in (False, True):
        rows.append(row("auto", flip))
    tensorflow_loaded = "tensorflow" in sys.modules or "keras" in sys.modules
    print(f"model: {rows[0]['backend']} beside {args.model or 'models/fer_vgg.keras'}; "
          f"TensorFlow imported by the LiteRT path: {'yes' if tensorflow_loaded else 'no'}")
    for flip in (False, True):
        rows.append(row("keras", flip, batch_size=args.keras_batch))
    if args.sweep:
        default = rows[1]["batch"]
        for batch in (8, 16, 64, 128, 256):
            if batch != default:
                rows.append({**row("auto", True, batch_size=batch), "single_face_ms": None})

    results["model"], results["rows"] = args.model or "models/fer_vgg.keras", rows
    table(rows, ["backend", "flip_tta", "batch", "load_s", "faces_per_s", "ms_per_face_batched", "single_face_ms"],
          f"ExpressionClassifier on {args.faces} random faces (best of {args.rounds}); single face: median of "
          f"{args.repeats} calls; load_s: construction, imports included")
    card_flip = ExpressionClassifier(args.model).flip  # the TTA the model card asks the pipeline for
    shipped = rows[1 if card_flip else 0]["faces_per_s"]
    keras_same = rows[3 if card_flip else 2]["faces_per_s"]
    print(f"\npipeline path (LiteRT, TTA {'flip' if card_flip else 'none'}, as the model card says): "
          f"{shipped:,.0f} faces/s, {shipped / keras_same:.2f}x the Keras path; "
          f"target >= {TARGET:,.0f} faces/s ({'met' if shipped >= TARGET else 'NOT met'})")
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
