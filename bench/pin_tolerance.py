"""How far the output pin's values move when the models' float kernels change: the pin's pipeline
(tests/test_output_pin.py) run once with LiteRT's default XNNPACK kernels and once with TFLite's
builtin kernels (no delegate), each in its own process, and the largest differences printed per
kind of value. XNNPACK on another CPU type moves them less than a different kernel set does, so
the pin's tolerances are set a few times above these figures.

    python bench/pin_tolerance.py [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))


def run_pin(kernels: str, out: Path) -> None:
    """The pin's outputs, with `kernels` ('xnnpack' or 'builtin'), written to out as JSON."""
    if kernels == "builtin":
        from ai_edge_litert.interpreter import OpResolverType

        import fer_video.resources as resources

        plain = resources.new_interpreter

        def builtin(input_shape, **options):
            return plain(input_shape, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                         **options)

        resources.new_interpreter = builtin
        for module in ("fer_video.expression.classify", "fer_video.faces.detectors.blazeface"):
            mod = __import__(module, fromlist=["*"])
            if hasattr(mod, "new_interpreter"):
                mod.new_interpreter = builtin
    from test_output_pin import outputs

    with tempfile.TemporaryDirectory() as tmp:
        out.write_text(json.dumps(outputs(Path(tmp))))


def differences(a: dict, b: dict) -> dict:
    from test_output_pin import BOX

    worst = {"rows_equal": True, "labels_equal": True, "box": 0.0, "score": 0.0, "probability": 0.0,
             "thumbnail_max": 0, "thumbnail_mean": 0.0}
    for run in b:
        ca, cb = a[run]["timeline"]["columns"], b[run]["timeline"]["columns"]
        if len(ca["frame_index"]) != len(cb["frame_index"]):
            worst["rows_equal"] = False
            continue
        worst["labels_equal"] &= ca["label"] == cb["label"] and ca["track_id"] == cb["track_id"]
        for name in ca:
            kind = ("box" if name in BOX else "score" if name == "det_score"
                    else "probability" if name.startswith(("p_", "raw_")) or name == "confidence" else None)
            if kind:
                fa = np.array([np.nan if v is None else v for v in ca[name]], float)
                fb = np.array([np.nan if v is None else v for v in cb[name]], float)
                worst[kind] = max(worst[kind], float(np.nanmax(np.abs(fa - fb), initial=0.0)))
        for frames in ("video", "image"):
            for fa, fb in zip(a[run].get(frames, []), b[run].get(frames, [])):
                d = np.abs(np.frombuffer(base64.b64decode(fa), np.uint8).astype(int)
                           - np.frombuffer(base64.b64decode(fb), np.uint8).astype(int))
                worst["thumbnail_max"] = max(worst["thumbnail_max"], int(d.max()))
                worst["thumbnail_mean"] = max(worst["thumbnail_mean"], float(d.mean()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--kernels", choices=("xnnpack", "builtin"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernels:
        run_pin(args.kernels, args.out)
        return
    from common import machine, print_machine

    with tempfile.TemporaryDirectory() as tmp:
        found = {}
        for kernels in ("xnnpack", "builtin"):
            out = Path(tmp) / f"{kernels}.json"
            subprocess.run([sys.executable, __file__, "--kernels", kernels, "--out", str(out)], check=True)
            found[kernels] = json.loads(out.read_text())
    worst = differences(found["builtin"], found["xnnpack"])
    if args.json:
        print(json.dumps({"machine": machine(), **worst}, indent=2))
        return
    print_machine()
    print("XNNPACK against TFLite's builtin kernels, the output pin's clip and image:")
    for key, value in worst.items():
        print(f"  {key:<16} {value}")


if __name__ == "__main__":
    main()
