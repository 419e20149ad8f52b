"""BlazeFace vs Haar, as fer-video runs them: speed and detection rate (what chose the default).

    .venv/bin/python bench/detectors.py                      # 10 s clip, 20 placements per size
    .venv/bin/python bench/detectors.py --seconds 1 --trials 2
    .venv/bin/python bench/detectors.py --parts c --windows 80/1.875,96/2.25,128/3

(a) The two-face sample clip (1280x720): ms per frame and, per face, the share of frames where a
    detection's centre falls inside that face's pasted patch; other detections are false positives.
    Detectors run on consecutive frames as in the pipeline (BlazeFace discovers with its
    full-range model every 0.25 s, with tiles every 0.5 s, and follows faces in windows between).
(b) The astronaut patch (head and shoulders) pasted at one width into a 1280x720 background, at
    `--trials` random places: recall per width and false positives per frame. Each frame is a new
    image, so BlazeFace scans its tiles on every frame here.
(c) BlazeFace following one moving face in 640x360 at 24 fps, for each `--windows` setting (the
    short-range model's input size / window side in face widths; the first is what ships): swinging
    side to side at a peak speed (and also zooming by +-30%), or shaken by a random offset each
    frame; the share of frames it is found in, the mean error of its box centre from the pasted
    face's centre (less the median offset), in face widths, and ms per frame.
"""

from __future__ import annotations

import sys

import numpy as np

import common
from common import Timer, table

WIDTHS = (32, 50, 64, 80, 100, 128, 200, 400)  # patch widths; the face is about half
W, H = 1280, 720


def patch_box(actor, t: float, face_shape, width: int = W, height: int = H) -> tuple[int, int, int, int]:
    """Where fer_video.samples.sample_frame pastes `actor` at time t: (x, y, w, h)."""
    phase = 2 * np.pi * t / actor.period
    w = int(actor.width * (1 + actor.scale * np.sin(phase)))
    h = int(w * face_shape[0] / face_shape[1])
    cx, cy = int((actor.x + actor.dx * np.sin(phase)) * width), int(actor.y * height)
    return cx - w // 2, cy - h // 2, w, h


def match(boxes: np.ndarray, targets: list[tuple]) -> tuple[list[bool], int]:
    """Which targets have a detection centred inside them, and how many detections hit none."""
    centres = boxes[:, :2] + boxes[:, 2:4] / 2 if len(boxes) else np.zeros((0, 2))
    inside = np.array([[x <= cx < x + w and y <= cy < y + h for (x, y, w, h) in targets] for cx, cy in centres],
                      bool).reshape(len(centres), len(targets))
    return list(inside.any(axis=0)), int((~inside.any(axis=1)).sum())


def on_clip(names: list[str], seconds: float) -> list[dict]:
    from fer_video.faces.detectors import make_detector
    from fer_video.samples import astronaut_face, two_actors
    from fer_video.video import probe, read_frames

    clip = common.clip(seconds)
    info, actors, shape = probe(clip), two_actors(W), astronaut_face().shape
    rows = []
    for name in names:
        with common.quiet_stderr():
            detector = make_detector(name, frame_rate=float(info.fps))
            detector(np.zeros((H, W, 3), np.uint8))
            detector.reset()
        found, false_pos, busy, frames = np.zeros(len(actors)), 0, 0.0, 0
        for frame in read_frames(info):
            with Timer() as t:
                faces = detector(frame.image, frame.index)
            busy += t.seconds
            targets = [patch_box(a, frame.index / float(info.fps), shape) for a in actors]
            hits, fp = match(faces.boxes, targets)
            found += hits
            false_pos += fp
            frames += 1
        rows.append({"detector": name, "ms_per_frame": 1000 * busy / frames, "frames": frames,
                     "face_1_large": found[0] / frames, "face_2_small": found[1] / frames,
                     "false_pos_per_frame": false_pos / frames})
    return rows


def pasted(names: list[str], trials: int, seed: int = 0) -> tuple[list[dict], float]:
    import cv2

    from fer_video.faces.detectors import make_detector
    from fer_video.samples import astronaut_face, background

    face = astronaut_face()
    rng = np.random.default_rng(seed)
    scenes = [background(W, H, seed=s) for s in range(min(trials, 5))]
    with common.quiet_stderr():
        detectors = {n: make_detector(n) for n in names}
        for d in detectors.values():
            d(scenes[0])
    big = cv2.resize(face, (400, 480), interpolation=cv2.INTER_AREA)
    frame = scenes[0].copy()
    frame[100:580, 400:800] = big
    faces = detectors.get("blazeface", next(iter(detectors.values())))(frame)
    face_fraction = float(faces.boxes[:, 2].max() / 400) if len(faces) else float("nan")

    rows = []
    for width in WIDTHS:
        height = int(width * face.shape[0] / face.shape[1])
        patch = cv2.resize(face, (width, height), interpolation=cv2.INTER_AREA)
        frames = []
        for i in range(trials):
            x, y = int(rng.integers(0, W - width)), int(rng.integers(0, H - height))
            frame = scenes[i % len(scenes)].copy()
            frame[y : y + height, x : x + width] = patch
            frames.append((frame, (x, y, width, height)))
        row = {"patch_px": width, "face_px": round(width * face_fraction)}
        for name, detector in detectors.items():
            hits, fps, busy = 0, 0, 0.0
            for frame, target in frames:
                detector.reset()  # a new scene
                with Timer() as t:
                    found = detector(frame)
                busy += t.seconds
                (hit,), fp = match(found.boxes, [target])
                hits, fps = hits + hit, fps + fp
            row[f"{name}_recall"] = hits / trials
            row[f"{name}_fp"] = fps / trials
            row[f"{name}_ms"] = 1000 * busy / trials
        rows.append(row)
    return rows, face_fraction


def following(settings: list[tuple[int, float]], seed: int = 0) -> list[dict]:
    import cv2

    from fer_video.faces.detectors.blazeface import BlazeFaceDetector
    from fer_video.samples import astronaut_face, background, paste

    width, height, fps, n = 640, 360, 24, 96
    canvas, face0 = background(width, height), astronaut_face()
    rng = np.random.default_rng(seed)
    cases = []  # (name, face patch width, patch centres, patch widths)
    for period in (4.0, 2.0, 1.0):
        for zoom in (0.0, 0.3):
            phase = 2 * np.pi * np.arange(n) / fps / period
            centres = np.stack([width / 2 + 0.3 * width * np.sin(phase), np.full(n, height / 2)], axis=1)
            peak = 0.3 * width * 2 * np.pi / period / fps
            cases.append((f"swing {peak:.0f} px/frame" + (", zoom" if zoom else ""), 140, centres,
                          (140 * (1 + zoom * np.sin(phase))).astype(int)))
    for patch in (140, 70):
        for shake in (0.1, 0.2):
            centres = np.array([width / 2, height / 2]) + rng.normal(0, shake * patch / 2, (n, 2))
            cases.append((f"shake sd {shake} face widths", patch, centres, np.full(n, patch)))

    rows = []
    for name, patch, centres, widths in cases:
        frames = []
        for (cx, cy), w in zip(centres, widths):
            img = cv2.resize(face0, (int(w), int(w * face0.shape[0] / face0.shape[1])), interpolation=cv2.INTER_AREA)
            frame = canvas.copy()
            paste(frame, img, int(cx - img.shape[1] / 2), int(cy - img.shape[0] / 2))
            frames.append(frame)
        row = {"motion": name, "face_px": patch // 2}
        for size, scale in settings:
            BlazeFaceDetector.WINDOW_INPUT, BlazeFaceDetector.WINDOW_SCALE = size, scale
            with common.quiet_stderr():
                detector = BlazeFaceDetector(frame_rate=fps)
            found, errors, busy = 0, [], 0.0
            for i, frame in enumerate(frames):
                ahead = (frames[i + 5], i + 5) if i + 5 < n else None  # as the pipeline passes them
                with Timer() as t:
                    faces = detector(frame, i, ahead=ahead)
                busy += t.seconds
                hit = [np.r_[b[:2] + b[2:] / 2 - centres[i]] / widths[i] for b in faces.boxes
                       if np.all(np.abs(b[:2] + b[2:] / 2 - centres[i]) < widths[i] / 2)]
                found += bool(hit)
                errors += hit[:1]
            errors = np.array(errors)
            key = f"{size}/{scale:g}"
            row[f"{key}_found"] = found / n
            row[f"{key}_err"] = float(np.abs(errors - np.median(errors, axis=0)).mean()) if len(errors) else float("nan")
            row[f"{key}_ms"] = 1000 * busy / n
        rows.append(row)
    return rows


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10, help="length of the two-face clip (default 10)")
    p.add_argument("--trials", type=int, default=20, help="placements per pasted width (default 20)")
    p.add_argument("--detectors", default="blazeface,haar")
    p.add_argument("--windows", default="96/2.5,128/3",
                   help="(c): short-range input px / window side in face widths, comma-separated "
                        "(default: as shipped, and the 128 px input it had before)")
    p.add_argument("--parts", default="abc", help="which parts to run (default abc)")
    args = p.parse_args()
    names = args.detectors.split(",")
    results = {"machine": common.print_machine()}

    if "a" in args.parts:
        results["clip"] = on_clip(names, args.seconds)
        table(results["clip"], ["detector", "ms_per_frame", "frames", "face_1_large", "face_2_small", "false_pos_per_frame"],
              f"(a) two-face clip, 1280x720, {args.seconds:g} s: share of frames where each face is found "
              "(face 1 ~220-340 px patch, face 2 ~170-210 px, flipped and tinted)")
    if "b" in args.parts:
        rows, fraction = pasted(names, args.trials)
        results["pasted"], results["face_fraction_of_patch"] = rows, fraction
        columns = ["patch_px", "face_px"] + [f"{n}_{k}" for n in names for k in ("recall", "fp", "ms")]
        table(rows, columns, f"(b) astronaut patch pasted into a 1280x720 frame, {args.trials} places per width; "
              f"face_px ~ {fraction:.2f} x patch (BlazeFace box at 400 px); fp = false positives per frame; "
              "min_face 40 as shipped")
    if "c" not in args.parts:
        common.emit_json(args.json, results)
        return 0
    settings = [(int(a), float(b)) for a, b in (w.split("/") for w in args.windows.split(","))]
    results["following"] = following(settings)
    keys = [f"{a}/{b:g}" for a, b in settings]
    table(results["following"], ["motion", "face_px"] + [f"{k}_{m}" for k in keys for m in ("found", "err", "ms")],
          "(c) BlazeFace following one face, 640x360 24 fps, 96 frames: found = share of frames, err = mean "
          "centre error in face widths; columns per short-range input px / window side in face widths")
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
