"""The `fer` PyPI package on a video, frame by frame, as its README shows: run with
bench/.venv-fer/bin/python (bench/setup_fer_venv.sh), not fer-video's venv. Prints one JSON object.

    bench/.venv-fer/bin/python bench/peer_fer.py CLIP [--mtcnn] [--max-frames 300]

Frames are decoded with OpenCV and each goes through `FER.detect_emotions(frame)`. The first
frame is a warm-up (lazy model set-up) and is not timed; `fps` is over the next `frames` frames,
decode included; `startup_s` is importing fer and building FER().
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("clip")
    p.add_argument("--mtcnn", action="store_true", help="FER(mtcnn=True): facenet-pytorch's MTCNN")
    p.add_argument("--max-frames", type=int, default=300, help="timed frames (default 300; 0: all)")
    args = p.parse_args()

    start = time.perf_counter()
    import cv2
    import numpy as np

    try:
        from fer import FER
    except ImportError:  # fer 25.x: the package's __init__ no longer exports FER
        from fer.fer import FER
    options = {}
    if not args.mtcnn:
        # OpenCV 5 wheels ship no Haar cascades; fer ships the same frontal-face cascade itself.
        builtin = os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", ""),
                               "haarcascade_frontalface_default.xml")
        if not os.path.exists(builtin):
            import fer as fer_package

            options["cascade_file"] = os.path.join(os.path.dirname(fer_package.__file__), "data",
                                                   "haarcascade_frontalface_default.xml")
    detector = FER(mtcnn=args.mtcnn, **options)
    startup = time.perf_counter() - start

    capture = cv2.VideoCapture(args.clip)
    ok, frame = capture.read()
    if not ok:
        print(f"peer_fer: cannot read {args.clip}", file=sys.stderr)
        return 1
    detector.detect_emotions(frame)  # warm-up

    faces, frames = [], 0
    start = time.perf_counter()
    while args.max_frames <= 0 or frames < args.max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        faces.append(len(detector.detect_emotions(frame)))
        frames += 1
    seconds = time.perf_counter() - start
    counts = np.bincount(faces, minlength=3) if faces else np.zeros(3, int)
    print(json.dumps({
        "detector": "mtcnn" if args.mtcnn else "haar",
        "frames": frames,
        "seconds": round(seconds, 3),
        "fps": round(frames / seconds, 3) if seconds else None,
        "startup_s": round(startup, 2),
        "faces_found_per_frame": round(float(np.mean(faces)), 3) if faces else None,
        "frames_with_0_1_2plus_faces": [int(counts[0]), int(counts[1]), int(counts[2:].sum())],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "versions": versions(),
    }))
    return 0


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("fer", "tensorflow", "torch", "facenet-pytorch", "opencv-contrib-python", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


if __name__ == "__main__":
    sys.exit(main())
