"""Choosing `tta_flip_below` on the validation part of train: mirror only the faces whose plain
(unmirrored) confidence is below a threshold, so the flip TTA costs a fraction of a second pass.

    .venv/bin/python bench/flip_below.py ../shared/datasets/fer2013 [--labels VOTES_CSV] [--max-loss 0.002] [--write]

For each threshold: the share of validation faces mirrored and the validation accuracy, through
the pipeline's `ExpressionClassifier` (the .tflite, the card's logit bias). The chosen threshold
is the one mirroring the fewest faces whose accuracy is within `--max-loss` of mirroring every
face; the temperature is then refitted on the validation faces for the mixed logits (the
threshold compares confidences at that temperature, so the two are iterated to a fixed point).
`--write` records `tta_flip_below`, the new `temperature` and the full-flip one
(`temperature_flip_all`) in the model card. public_test is never read.
"""

from __future__ import annotations

import json
import sys

import numpy as np

import common
from common import table


def mixed(plain, flipped, bias, temperature, below):
    from fer_video.expression.training.calibration import softmax

    redo = softmax(plain + bias, temperature).max(axis=1) < below
    return np.where(redo[:, None], (plain + flipped) / 2, plain) + bias, redo.mean()


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="FER2013 folder (its train/ gives the validation part)")
    p.add_argument("--model", help="model .keras (default: the shipped models/fer_vgg.keras)")
    p.add_argument("--max-loss", type=float, default=0.002, help="validation accuracy given up at most (default 0.002)")
    p.add_argument("--labels", metavar="VOTES_CSV",
                   help="score against the FER+ crowd's majority (for a model trained with --labels)")
    p.add_argument("--write", action="store_true", help="record the choice in the model card")
    args = p.parse_args()

    from fer_video.expression.training.calibration import expected_calibration_error, fit_temperature, softmax
    from fer_video.expression.classify import ExpressionClassifier
    from fer_video.expression.training.export import card_path, validation_faces

    faces, labels = validation_faces(args.dataset, votes_csv=args.labels)
    classifier = ExpressionClassifier(args.model, flip=False)
    bias = classifier.logit_bias
    t_all = float(classifier.card.get("temperature_flip_all", classifier.temperature))
    plain = classifier.logits(faces) - bias
    flipped = classifier.logits(faces[:, :, ::-1]) - bias
    full = float((((plain + flipped) / 2 + bias).argmax(1) == labels).mean())
    rows, chosen = [], None
    for below in np.round(np.arange(0.30, 0.951, 0.05), 2):
        temperature = t_all
        for _ in range(5):
            logits, share = mixed(plain, flipped, bias, temperature, below)
            temperature = fit_temperature(logits, labels)
        logits, share = mixed(plain, flipped, bias, temperature, below)
        accuracy = float((logits.argmax(1) == labels).mean())
        rows.append({"flip_below": below, "mirrored": share, "accuracy": accuracy, "temperature": temperature,
                     "ece_before": expected_calibration_error(softmax(logits), labels),
                     "ece_after": expected_calibration_error(softmax(logits, temperature), labels)})
        if chosen is None and accuracy >= full - args.max_loss:
            chosen = rows[-1]
    table(rows, None, f"{len(labels)} validation faces; every face mirrored: accuracy {full:.4f}, "
                      f"temperature {t_all:.3f}")
    print(f"chosen: flip_below {chosen['flip_below']:g}, {chosen['mirrored']:.0%} mirrored, accuracy "
          f"{chosen['accuracy']:.4f} (all mirrored {full:.4f}), temperature {chosen['temperature']:.3f}")
    if args.write:
        path = card_path(classifier.path)
        card = json.loads(path.read_text())
        card["temperature_flip_all"] = t_all
        card["tta_flip_below"] = float(chosen["flip_below"])
        card["temperature"] = chosen["temperature"]
        card.setdefault("validation", {})["flip_below"] = {
            k: round(float(v), 4) for k, v in chosen.items() if k != "temperature"}
        path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote {path}")
    common.emit_json(args.json, {"rows": rows, "chosen": chosen, "all_mirrored_accuracy": full})
    return 0


if __name__ == "__main__":
    sys.exit(main())
