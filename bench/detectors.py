"""BlazeFace vs Haar, as fer-video runs them: speed and detection rate (what chose the default).

    .venv/bin/python bench/detectors.py                      # 10 s clip, 20 placements per size
    .venv/bin/python bench/detectors.py --seconds 1 --trials 2
    .venv/bin/python bench/detectors.py --parts c --windows 80/1.875,96/2.25,128/3
    .venv/bin/python bench/detectors.py --parts d --entering 16

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
(d) Small faces walking into a shot: the two-face sample scene (both faces moving, a still
    background) and, from a random moment 1-2 s in, a small astronaut patch at a random place
    (`--entering` per face width); BlazeFace as it ships (scans and tiles only where the picture
    changed, `StillWindows`) and scanning on schedule (the whole frame every 0.25 s, every tile
    every 0.5 s), on the same frames: how long after it appears the small face is first found (the
    median and largest delay, the share found within 0.5 s and within 2 s), split by whether it
    appears beside a followed person (its centre within their head and shoulders, where
    StillWindows compares nothing) or clear of them, and the full-range windows each ran.
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


def entering(trials: int, seed: int = 0) -> list[dict]:
    """(d): for each face width, `trials` small faces entering the moving two-face scene."""
    from fer_video.faces.detectors.blazeface import BlazeFaceDetector, StillWindows
    from fer_video.samples import Actor, astronaut_face, background, sample_frame, two_actors

    fps, horizon = 30, 3.0  # a face not found within `horizon` s of appearing counts as that late
    face, canvas, people = astronaut_face(), background(W, H), two_actors(W)
    rng = np.random.default_rng(seed)
    rows = []
    for face_px in (40, 60, 90):
        patch = face_px / 0.55  # the face is about 0.55 of the patch's width
        delays = {True: {}, False: {}}  # beside a person? -> {still_windows: [delays]}
        windows = {True: 0, False: 0}
        for _ in range(trials):
            enter = int(rng.integers(fps, 2 * fps)) / fps  # on a frame: the delay counts from the first showing it
            x, y = float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.1, 0.9))
            small = Actor(x=x, y=y, width=patch, enter=enter)
            target = patch_box(small, enter, face.shape)
            centre = (target[0] + target[2] / 2, target[1] + 0.44 * target[3])  # its face's centre
            beside = any(_inside(centre, _head_and_shoulders(patch_box(a, enter, face.shape))) for a in people)
            frames = [sample_frame(canvas, face, people + [small], i / fps) for i in range(int((enter + horizon) * fps))]
            for still in (True, False):
                with common.quiet_stderr():
                    detector = BlazeFaceDetector(frame_rate=fps, still_windows=still)
                late = horizon
                for i, frame in enumerate(frames):
                    faces = detector(frame, i, time=i / fps)
                    if i >= round(enter * fps) and match(faces.boxes, [target])[0][0]:
                        late = i / fps - enter
                        break
                for j in range(i + 1, len(frames)):  # the rest of the frames, for the tile count
                    detector(frames[j], j, time=j / fps)
                delays[beside].setdefault(still, []).append(late)
                windows[still] += detector._full.windows
        for beside in (False, True):
            if not delays[beside]:
                continue
            row = {"face_px": face_px, "where": "beside a person" if beside else "clear", "trials": len(delays[beside][True])}
            for still, name in ((True, "still"), (False, "every")):
                d = np.array(delays[beside][still])
                row[f"{name}_median_s"] = float(np.median(d))
                row[f"{name}_max_s"] = float(d.max())
                row[f"{name}_in_0.5s"] = float(np.mean(d <= 0.5 + 1e-6))
                row[f"{name}_in_2s"] = float(np.mean(d <= 2.0 + 1e-6))
            rows.append(row)
        rows.append({"face_px": face_px, "where": "full-range windows", "trials": trials,
                     "still_median_s": windows[True], "every_median_s": windows[False]})
    return rows


def _head_and_shoulders(patch: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """An astronaut patch's face box (BlazeFace's: 0.52 of its width, centred, its top at 0.22 of
    its height) widened as StillWindows widens a followed face's box."""
    from fer_video.faces.detectors.blazeface import StillWindows

    x, y, w, h = patch
    side = 0.52 * w
    fx, fy = x + (w - side) / 2, y + 0.22 * h
    a, b = StillWindows.AROUND * side, StillWindows.BELOW * side
    return fx - a, fy - a, side + 2 * a, side + a + b


def _inside(point, box) -> bool:
    return box[0] <= point[0] < box[0] + box[2] and box[1] <= point[1] < box[1] + box[3]


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10, help="length of the two-face clip (default 10)")
    p.add_argument("--trials", type=int, default=20, help="placements per pasted width (default 20)")
    p.add_argument("--detectors", default="blazeface,haar")
    p.add_argument("--windows", default="96/2.5,128/3",
                   help="(c): short-range input px / window side in face widths, comma-separated "
                        "(default: as shipped, and the 128 px input it had before)")
    p.add_argument("--parts", default="abcd", help="which parts to run (default abcd)")
    p.add_argument("--entering", type=int, default=12, help="(d): small faces entering per face width (default 12)")
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
    if "c" in args.parts:
        settings = [(int(a), float(b)) for a, b in (w.split("/") for w in args.windows.split(","))]
        results["following"] = following(settings)
        keys = [f"{a}/{b:g}" for a, b in settings]
        table(results["following"], ["motion", "face_px"] + [f"{k}_{m}" for k in keys for m in ("found", "err", "ms")],
              "(c) BlazeFace following one face, 640x360 24 fps, 96 frames: found = share of frames, err = mean "
              "centre error in face widths; columns per short-range input px / window side in face widths")
    if "d" in args.parts:
        results["entering"] = entering(args.entering)
        table(results["entering"], ["face_px", "where", "trials"] + [f"{n}_{k}" for n in ("still", "every")
                                                                    for k in ("median_s", "max_s", "in_0.5s", "in_2s")],
              "(d) a small face entering the moving two-face scene (1280x720, 30 fps) 1-2 s in, at a random place: "
              "seconds until first found (3 = not within 3 s); still = scans and tiles only where the picture "
              "changed (as shipped), every = on schedule; the 'full-range windows' rows hold each's windows "
              "over all trials")
    common.emit_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
