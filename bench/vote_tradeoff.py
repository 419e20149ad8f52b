"""The price of keeping rare expressions: for a network trained on FER+ votes, the per-class logit
bias fitted on the validation part of train at several recall floors, and for each, accuracy
against the crowd's majority and the lowest per-class recall on the clear faces (FER2013's label
equals the majority). public_test is never read.

    .venv/bin/python bench/vote_tradeoff.py DATASET VOTES_CSV --model RUN/best.keras [--tta flip]
"""

from __future__ import annotations

import sys

import numpy as np

import common
from common import table


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="FER2013 folder (its train/ gives the validation part)")
    p.add_argument("votes", help="the FER+ votes CSV")
    p.add_argument("--model", required=True, help="a run's best.keras or model.keras")
    p.add_argument("--tta", choices=("none", "flip"), default="flip", help="mirror every face and average")
    p.add_argument("--crop", type=int, default=40, help="the network's input crop")
    p.add_argument("--floors", default="0,0.5,0.6,0.7,0.75,0.8", help="recall floors to fit")
    p.add_argument("--floor-cost", type=float, default=3.0, help="errors a face missing from a floor counts as")
    args = p.parse_args()

    from fer_video.expression.labels import EMOTIONS
    from fer_video.expression.training.calibration import fit_logit_bias, recalls
    from fer_video.expression.training.export import validation_split
    from fer_video.expression.training.train import centre_crop, load_network

    faces, labels, majority = validation_split(args.dataset, args.votes)
    has, clear = majority >= 0, (majority >= 0) & (majority == labels)
    network = load_network(args.model, args.crop, "the model")
    x = centre_crop(faces, args.crop)
    logits = np.asarray(network.predict(x, batch_size=256, verbose=0), np.float64)
    if args.tta == "flip":
        logits = (logits + np.asarray(network.predict(x[:, :, ::-1], batch_size=256, verbose=0))) / 2
    rows = []
    for floor in (float(f) for f in args.floors.split(",")):
        bias = (fit_logit_bias(logits[has], majority[has], floor, miss_cost=args.floor_cost, floor_on=(logits[clear], majority[clear]))
                if floor > 0 else np.zeros(len(EMOTIONS)))
        predicted = (logits + bias).argmax(1)
        clear_recall = recalls(predicted[clear], majority[clear], len(EMOTIONS))
        rows.append({"floor": floor, "majority_acc": float((predicted[has] == majority[has]).mean()),
                     "fer2013_acc": float((predicted[has] == labels[has]).mean()),
                     "min_clear_recall": float(clear_recall.min()),
                     **{f"clear_{e[:4]}": float(r) for e, r in zip(EMOTIONS, clear_recall)},
                     "pred_fear": float((predicted[has] == EMOTIONS.index("fear")).mean()),
                     "pred_neutral": float((predicted[has] == EMOTIONS.index("neutral")).mean())})
    table(rows, None, f"{has.sum()} validation faces with a crowd majority, {clear.sum()} clear; {args.model}")
    common.emit_json(args.json, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
