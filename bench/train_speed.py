"""Training throughput of the expression network on this machine: Keras `fit` on random 40x40
faces, float32 against mixed_bfloat16, for the given widths (the data and augmentation of
`fer-video train` are left out: this measures the training step the precision choice changes).

    python bench/train_speed.py [--widths 24,48,96,192 32,64,128,256] [--batches 20]

Each measurement runs in its own process, so one policy's state cannot leak into the next."""

from __future__ import annotations

import os
import subprocess
import sys

import common

STEP = """
import sys, time
import numpy as np
import keras
policy, widths, batches = sys.argv[1], tuple(int(w) for w in sys.argv[2].split(",")), int(sys.argv[3])
keras.mixed_precision.set_global_policy(policy)
from fer_video.expression.training.model import build_network
m = build_network(widths, 0.3, 40)
m.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True, weight_decay=5e-4),
          loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
x = np.random.default_rng(0).random((128 * batches, 40, 40, 1), np.float32)
y = np.eye(7, dtype=np.float32)[np.random.default_rng(1).integers(0, 7, len(x))]
m.fit(x[:384], y[:384], batch_size=128, epochs=1, verbose=0)  # compile and warm up
t = time.perf_counter(); m.fit(x, y, batch_size=128, epochs=1, verbose=0)
print(m.count_params(), len(x) / (time.perf_counter() - t))
"""


def main() -> int:
    parser = common.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--widths", nargs="+", default=["24,48,96,192", "32,64,128,256"])
    parser.add_argument("--batches", type=int, default=20, help="batches of 128 per measurement")
    args = parser.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="1",
               PYTHONPATH=os.pathsep.join([str(common.ROOT), os.environ.get("PYTHONPATH", "")]))
    info = common.print_machine()
    rows = []
    for widths in args.widths:
        row = {"widths": widths}
        for policy in ("float32", "mixed_bfloat16"):
            out = subprocess.run([sys.executable, "-c", STEP, policy, widths, str(args.batches)], env=env,
                                 capture_output=True, text=True, check=True).stdout.split()
            row["parameters"], row[f"{policy}_images_per_s"] = int(out[-2]), float(out[-1])
        row["bf16_speedup"] = row["mixed_bfloat16_images_per_s"] / row["float32_images_per_s"]
        rows.append(row)
    common.table(rows, title="Keras fit, batches of 128 40x40 faces, images/s")
    common.emit_json(args.json, {"machine": info, "rows": rows})
    return 0

if __name__ == "__main__":
    sys.exit(main())
