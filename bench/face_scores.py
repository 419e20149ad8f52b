"""BlazeFace's confidence on real faces and on things that are not faces: the evidence for
`--min-score` and for the rule that drops weak or short tracks.

Real faces: scikit-image's `astronaut` (the whole photo, and her face pasted at many sizes,
places, brightnesses, blurs and small turns into textured frames, as the sample clips show it)
and `camera` (a man, face small and half turned); the astronaut and Grace Hopper (`hopper_face`)
partly covered by a drawn hand (`fer_video.samples.hand_over`: mouth, cheek, chin or one eye,
15-40% of the face) and turned (rolled up to +-30 deg, squashed to 0.6-0.85 of the width as a
yaw turn foreshortens a face), as photos and as 1.2 s clips whose track peaks `--min-score`
tests. Non-faces: scikit-image photos without a
person (`coffee`, `chelsea` the cat, `rocket`, `coins`, `page`, `text`, `horse`, `brick`, `gravel`, `retina`, `logo`, `moon`,
`hubble_deep_field`, `immunohistochemistry`), and cards drawn with OpenCV: cartoon smileys,
title text, animations of moving shapes, the cartoon card and faceless animation the tests use
(`fer_video.samples`), and 64 drawn heads (ovals with or without eyes, nose, mouth, outline).
For each frame the detector runs as the pipeline runs it (`BlazeFaceDetector`, candidates from
0.5; clips frame after frame, photos each anew) and we print the scores it returns.

    .venv/bin/python bench/face_scores.py [--only hard|easy]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_video.faces.detectors.blazeface import BlazeFaceDetector  # noqa: E402
from fer_video.samples import HAND_PARTS, astronaut_face, background, hand_over, hopper_face, paste  # noqa: E402


def rgb(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=2)
    return cv2.cvtColor(image[..., :3].astype(np.uint8), cv2.COLOR_RGB2BGR)


def pasted_faces(n: int = 60, seed: int = 0):
    """The astronaut's face in 640x360 frames: widths 40-200 px, brightness 0.6-1.3, blur, +-15 deg."""
    rng = np.random.default_rng(seed)
    face = astronaut_face()
    canvas = background(640, 360, seed=3)
    for i in range(n):
        w = int(rng.uniform(40, 200))
        patch = cv2.resize(face, (w, int(w * face.shape[0] / face.shape[1])), interpolation=cv2.INTER_AREA)
        angle = rng.uniform(-15, 15)
        m = cv2.getRotationMatrix2D((patch.shape[1] / 2, patch.shape[0] / 2), angle, 1.0)
        patch = cv2.warpAffine(patch, m, (patch.shape[1], patch.shape[0]), borderMode=cv2.BORDER_REFLECT)
        patch = np.clip(patch * rng.uniform(0.6, 1.3), 0, 255).astype(np.uint8)
        if i % 3 == 0:
            patch = cv2.GaussianBlur(patch, (0, 0), rng.uniform(0.5, 2.0))
        frame = canvas.copy()
        x = int(rng.uniform(0, 640 - patch.shape[1]))
        y = int(rng.uniform(0, 360 - patch.shape[0]))
        frame[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
        yield frame


PEOPLE = {"astronaut": astronaut_face, "hopper": hopper_face}


def turn(patch: np.ndarray, width: int, roll: float, squash: float) -> np.ndarray:
    """`patch` `width` px wide before a horizontal squash to `squash` of that (a yaw turn's
    foreshortening), then rolled `roll` degrees in the picture's plane."""
    height = int(width * patch.shape[0] / patch.shape[1])
    patch = cv2.resize(patch, (max(8, int(width * squash)), height), interpolation=cv2.INTER_AREA)
    m = cv2.getRotationMatrix2D((patch.shape[1] / 2, patch.shape[0] / 2), roll, 1.0)
    return cv2.warpAffine(patch, m, (patch.shape[1], patch.shape[0]), borderMode=cv2.BORDER_REFLECT)


def hard_faces(person: str, n: int, seed: int, covered: bool, roll: float, squash: tuple[float, float],
               widths: tuple[int, int] = (80, 260)):
    """`person`'s face in 640x360 frames, `n` of them: a hand over a part of it (HAND_PARTS in turn,
    15-40% of the face's box) if `covered`, rolled up to +-`roll` degrees, squashed to a width in
    `squash`, at widths in `widths` (the face's box about half that: 40-130 px, all above the
    default --min-face), brightness 0.7-1.2."""
    rng = np.random.default_rng(seed)
    face = PEOPLE[person]()
    canvas = background(640, 360, seed=3)
    for i in range(n):
        patch = hand_over(face, person, HAND_PARTS[i % 4], rng.uniform(0.15, 0.4), seed=i) if covered else face
        patch = turn(patch, int(rng.uniform(*widths)), rng.uniform(-roll, roll), rng.uniform(*squash))
        patch = np.clip(patch * rng.uniform(0.7, 1.2), 0, 255).astype(np.uint8)
        frame = canvas.copy()
        paste(frame, patch, int(rng.uniform(0, 640 - patch.shape[1])), int(rng.uniform(0, 360 - patch.shape[0])))
        yield frame


def covered_clip(person: str, part: str, cover: float, width: int, roll: float = 0.0, squash: float = 1.0,
                 seconds: float = 2.0):
    """A clip: `person`'s face with a hand over `part` for its whole length, drifting and swaying
    slowly, as the pipeline sees a video (its follow windows score a face, not fresh scans)."""
    patch = hand_over(PEOPLE[person](), person, part, cover)
    canvas = background(640, 360, seed=1)
    frames = []
    for i in range(int(25 * seconds)):
        t = i / 25
        p = turn(patch, int(width * (1 + 0.08 * np.sin(t * 2))), roll + 4 * np.sin(t * 3), squash)
        frame = canvas.copy()
        paste(frame, p, int(320 + 60 * np.sin(t) - p.shape[1] / 2), int(180 - p.shape[0] / 2))
        frames.append(frame)
    return frames


def smiley(frame: np.ndarray, cx: int, cy: int, r: int, colour=(0, 220, 255), mouth: int = 1) -> None:
    cv2.circle(frame, (cx, cy), r, colour, -1, cv2.LINE_AA)
    cv2.circle(frame, (cx, cy), r, (0, 0, 0), max(2, r // 20), cv2.LINE_AA)
    for dx in (-r // 3, r // 3):
        cv2.ellipse(frame, (cx + dx, cy - r // 4), (r // 9, r // 6), 0, 0, 360, (0, 0, 0), -1, cv2.LINE_AA)
    cv2.ellipse(frame, (cx, cy + r // 6), (r // 2, r // 3), 0, 10 if mouth > 0 else 190,
                170 if mouth > 0 else 350, (0, 0, 0), max(2, r // 15), cv2.LINE_AA)


def cartoon_card(width: int = 640, height: int = 360, t: float = 0.0) -> np.ndarray:
    """A title card: a flat colour, a big title and three cartoon faces."""
    frame = np.full((height, width, 3), (120, 60, 30), np.uint8)
    cv2.putText(frame, "EPISODE 3", (60, 80), cv2.FONT_HERSHEY_DUPLEX, 2.0, (255, 255, 255), 4, cv2.LINE_AA)
    for k, (x, r) in enumerate([(140, 60), (320, 75), (500, 55)]):
        smiley(frame, x + int(10 * np.sin(t * 2 + k)), 240, r, [(0, 220, 255), (80, 200, 120), (230, 160, 90)][k],
               1 if k != 1 else -1)
    return frame


def text_card(width: int = 640, height: int = 360, t: float = 0.0) -> np.ndarray:
    frame = np.full((height, width, 3), 20, np.uint8)
    for i, line in enumerate(["fer-video", "Outputs you can trust", "chapter 1: faces?"]):
        cv2.putText(frame, line, (40 + int(5 * t), 90 + 90 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.6,
                    (230, 230, 230), 3, cv2.LINE_AA)
    return frame


def shapes_animation(width: int = 640, height: int = 360, t: float = 0.0) -> np.ndarray:
    """A faceless animation: balls and boxes moving over a gradient."""
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack([(xx * 255 / width), (yy * 255 / height), np.full_like(xx, 128)], axis=2).astype(np.uint8)
    for k in range(5):
        cx = int((0.1 + 0.8 * ((0.13 * k + 0.2 * t) % 1)) * width)
        cy = int(height / 2 + 0.3 * height * np.sin(t * (1 + k * 0.3) + k))
        cv2.circle(frame, (cx, cy), 30 + 8 * k, (255 - 40 * k, 40 * k, 200), -1, cv2.LINE_AA)
        cv2.circle(frame, (cx - 8, cy - 8), 6, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.rectangle(frame, (width - cx - 25, cy - 20), (width - cx + 25, cy + 20), (40, 40 * k, 255 - 40 * k), -1)
    return frame


def drawn_heads():
    """Ovals with or without eyes, nose, mouth and outline, in four colours, two shapes."""
    for colour in [(0, 220, 255), (150, 190, 240), (200, 200, 200), (80, 200, 120)]:
        for features in range(16):
            eyes, nose, mouth, outline = (bool(features >> k & 1) for k in range(4))
            frame = np.full((360, 640, 3), (120, 60, 30), np.uint8)
            r, aspect = 70, 1.3 if colour[0] % 2 == 0 else 1.0
            cv2.ellipse(frame, (320, 190), (r, int(r * aspect)), 0, 0, 360, colour, -1, cv2.LINE_AA)
            if outline:
                cv2.ellipse(frame, (320, 190), (r, int(r * aspect)), 0, 0, 360, (20, 20, 20), 3, cv2.LINE_AA)
            for dx in (-int(r / 2.5), int(r / 2.5)):
                if eyes:
                    cv2.ellipse(frame, (320 + dx, 190 - r // 5), (r // 5, r // 8), 0, 0, 360, (255, 255, 255), -1)
                cv2.circle(frame, (320 + dx, 190 - r // 5), r // 10, (20, 20, 20), -1)
            if nose:
                cv2.line(frame, (320, 190 - r // 10), (320, 190 + r // 4), (60, 60, 60), 3)
            if mouth:
                cv2.ellipse(frame, (320, 190 + r // 2), (r // 3, r // 7), 0, 0, 180, (60, 40, 160), 3)
            yield frame


def scores_of(frames, video: bool) -> list[float]:
    """Every score the detector returns, one frame after another (a video) or each anew (photos)."""
    detector = BlazeFaceDetector(min_score=0.5, frame_rate=25.0)
    out = []
    for frame in frames:
        if not video:
            detector.reset()
        out += [float(s) for s in detector(frame).scores]
    return out


def describe(name: str, scores: list[float], frames: int) -> None:
    s = np.array(scores)
    if not len(s):
        print(f"{name:34s} frames {frames:4d}  detections    0")
        return
    q = np.percentile(s, [0, 5, 50, 95, 100])
    below = " ".join(f"<{t:.2f}:{int((s < np.float32(t)).sum()):3d}" for t in (0.75, 0.7, 0.65, 0.6))
    print(f"{name:34s} frames {frames:4d}  detections {len(s):4d}  min {q[0]:.3f}  p5 {q[1]:.3f}  "
          f"median {q[2]:.3f}  p95 {q[3]:.3f}  max {q[4]:.3f}  {below}")


def hard_sources() -> tuple[dict, dict]:
    """Real faces partly covered by a hand and turned: photos (each frame scanned anew), and
    clips with the hand there throughout, whose per-clip peak is what `--min-score` tests."""
    photos, clips = {}, {}
    for person in PEOPLE:
        for label, covered, roll, squash in [("plain", False, 0, (1, 1)), ("hand", True, 0, (1, 1)),
                                             ("rolled 30", False, 30, (1, 1)), ("squashed", False, 0, (0.6, 0.85)),
                                             ("rolled+squashed", False, 30, (0.6, 0.85)),
                                             ("hand+rolled", True, 30, (1, 1)), ("hand+squashed", True, 0, (0.6, 0.85)),
                                             ("hand+rolled+squashed", True, 30, (0.6, 0.85))]:
            seed = len(photos)
            photos[f"{person} {label}, 48"] = (list(hard_faces(person, 48, seed, covered, roll, squash)), False)
    for person in PEOPLE:
        for part in HAND_PARTS:
            for cover in (0.15, 0.25, 0.4):
                for width, roll, squash in [(160, 0, 1.0), (90, 0, 1.0), (130, 20, 0.75)]:
                    clips[(person, part, cover, width, roll, squash)] = covered_clip(
                        person, part, cover, width, roll, squash, seconds=1.2)
    return photos, clips


def hard(photos: dict, clips: dict) -> list[float]:
    print("real faces, covered by a hand (15-40% of the box: mouth, cheek, chin, eye in turn) and turned "
          "(roll up to +-30 deg, width squashed to 0.6-0.85), faces 40-130 px, photos")
    found = []
    for name, (frames, video) in photos.items():
        s = scores_of(frames, video)
        found += s
        describe(name, s, len(frames))
    print("\nclips, 1.2 s each, the hand there throughout: each clip's peak (what --min-score tests) and median")
    peaks, lost = [], 0
    for (person, part, cover, width, roll, squash), frames in clips.items():
        s = scores_of(frames, True)
        peak = max(s) if s else 0.0
        if s:
            peaks.append(peak)
        else:
            lost += 1
        print(f"  {person:9s} {part:5s} cover {cover:.2f} width {width:3d} roll {roll:2d} squash {squash:.2f}: "
              f"found in {len(s):2d}/{len(frames)} frames, peak {peak:.3f}, median {np.median(s) if s else 0:.3f}")
    describe("clip peaks, all", peaks, len(peaks) + lost)
    print(f"  ({lost} clips never found at all: no threshold keeps those)")
    return found, peaks


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["all", "hard", "easy"], default="all",
                        help="hard: only the covered and turned faces; easy: only the earlier groups")
    args = parser.parse_args()
    seconds = 4
    faces = {
        "astronaut photo": ([rgb("astronaut")], False),
        "camera (man) photo": ([rgb("camera")], False),
        "astronaut face pasted, 60 frames": (list(pasted_faces()), False),
        "astronaut two-face clip, 4 s": (None, True),
    }
    non_faces = {name: ([rgb(name)], False) for name in
                 ["coffee", "chelsea", "rocket", "coins", "page", "text", "horse", "brick", "gravel", "retina", "logo", "moon",
                  "hubble_deep_field", "immunohistochemistry"]}
    from fer_video import samples

    non_faces["samples.cartoon_card, 4 s (tests)"] = ([samples.cartoon_card(i / 25) for i in range(25 * seconds)], True)
    non_faces["samples.faceless_animation, 4 s"] = ([samples.faceless_animation(i / 25)
                                                     for i in range(25 * seconds)], True)
    non_faces["drawn heads, 64 variants"] = (list(drawn_heads()), False)
    non_faces["smiley title card, 4 s"] = ([cartoon_card(t=i / 25) for i in range(25 * seconds)], True)
    non_faces["text card, 4 s"] = ([text_card(t=i / 25) for i in range(25 * seconds)], True)
    non_faces["shapes animation, 4 s"] = ([shapes_animation(t=i / 25) for i in range(25 * seconds)], True)

    from fer_video.samples import sample_frame, two_actors

    canvas, face = background(640, 360), astronaut_face()
    faces["astronaut two-face clip, 4 s"] = ([sample_frame(canvas, face, two_actors(640), i / 25)
                                              for i in range(25 * seconds)], True)
    def all_scores(title: str, sources: dict) -> list[float]:
        print(title)
        found = []
        for name, (frames, video) in sources.items():
            s = scores_of(frames, video)
            found += s
            describe(name, s, len(frames))
        return found

    print("BlazeFace scores (detector candidates from 0.5)\n")
    real, fake, peaks = [], [], []
    if args.only != "hard":
        real = all_scores("real faces", faces)
        fake = all_scores("\nnot faces", non_faces)
        print()
    if args.only != "easy":
        found, peaks = hard(*hard_sources())
        real += found
        print()
    describe("all real faces", real, 0)
    describe("all non-faces", fake, 0)
    for threshold in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
        print(f"threshold {threshold:.2f}: real-face detections kept {np.mean(np.array(real) >= threshold):.3f}, "
              f"non-face detections kept {np.mean(np.array(fake) >= threshold) if fake else 0:.3f}"
              + (f", covered clips kept {np.mean(np.array(peaks) >= threshold):.3f}" if peaks else ""))


if __name__ == "__main__":
    main()
