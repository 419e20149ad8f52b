"""Sample clips built from a real face (scikit-image's `astronaut`, a NASA public-domain photo).

Used by `fer-video demo`, the tests and the benchmarks, so that none of them needs a downloaded
video. Each clip has moving, scaling faces over a textured background and a tone as audio.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_video.video.ffmpeg_binary import ffmpeg_exe, ffmpeg_path


def astronaut_face() -> np.ndarray:
    """The astronaut's head and shoulders, BGR, face roughly centred (about 200x240 px)."""
    from skimage import data

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return image[20:260, 130:330].copy()


@dataclass
class Actor:
    """One face: where it is (as a fraction of the frame) and how wide, over time."""

    x: float  # centre, fraction of width
    y: float  # centre, fraction of height
    width: float  # face-patch width in pixels
    dx: float = 0.0  # horizontal travel amplitude, fraction of width
    scale: float = 0.0  # relative size oscillation amplitude
    period: float = 4.0  # seconds
    flip: bool = False
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    enter: float = 0.0  # seconds; the actor is absent before
    leave: float = 1e9


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([80 + 60 * xx / width, 90 + 50 * yy / height, 120 - 40 * xx / width], axis=2)
    noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)).astype(np.float32), (0, 0), 3)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def sample_frame(canvas: np.ndarray, face: np.ndarray, actors: list[Actor], t: float) -> np.ndarray:
    frame = canvas.copy()
    height, width = frame.shape[:2]
    for actor in actors:
        if not actor.enter <= t < actor.leave:
            continue
        phase = 2 * np.pi * t / actor.period
        w = int(actor.width * (1 + actor.scale * np.sin(phase)))
        patch = cv2.resize(face, (w, int(w * face.shape[0] / face.shape[1])), interpolation=cv2.INTER_AREA)
        if actor.flip:
            patch = patch[:, ::-1]
        patch = np.clip(patch * np.array(actor.tint, np.float32), 0, 255).astype(np.uint8)
        cx = int((actor.x + actor.dx * np.sin(phase)) * width)
        cy = int(actor.y * height)
        paste(frame, patch, cx - patch.shape[1] // 2, cy - patch.shape[0] // 2)
    return frame


def paste(frame: np.ndarray, patch: np.ndarray, x0: int, y0: int) -> None:
    """`patch` into `frame` (in place) with its top-left corner at x0, y0, cut where it leaves
    the frame."""
    height, width = frame.shape[:2]
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + patch.shape[1], width), min(y0 + patch.shape[0], height)
    if xe > xs and ye > ys:
        frame[ys:ye, xs:xe] = patch[ys - y0 : ye - y0, xs - x0 : xe - x0]


def two_actors(width: int) -> list[Actor]:
    """A moving, scaling face and a second, smaller one, both sized relative to the frame."""
    return [
        Actor(x=0.33, y=0.45, width=0.22 * width, dx=0.08, scale=0.2, period=5.0),
        Actor(x=0.72, y=0.55, width=0.15 * width, dx=0.04, scale=0.1, period=7.0, flip=True,
              tint=(0.9, 1.0, 1.15)),
    ]


def crowd_actors(width: int, count: int = 10) -> list[Actor]:
    """`count` faces (the astronaut, every other one mirrored and tinted) in two rows, each sized
    relative to the frame and swaying a little in its own place, at its own pace: a crowd for the
    benchmarks (10 faces at 1920x1080 in `bench/annotate.py --clip crowd-1080p`)."""
    columns = (count + 1) // 2
    tints = [(1.0, 1.0, 1.0), (0.9, 1.0, 1.15), (1.1, 0.95, 0.85), (0.8, 0.85, 0.9), (1.05, 1.05, 1.0)]
    actors = []
    for i in range(count):
        row, column = divmod(i, columns)
        actors.append(Actor(
            x=(column + 0.5) / columns + (0.03 if row else -0.03), y=0.3 if row == 0 else 0.72,
            width=(0.09 + 0.04 * ((i * 7) % 5) / 4) * width, dx=0.02, scale=0.1,
            period=4.0 + 0.7 * i, flip=bool(i % 2), tint=tints[i % len(tints)]))
    return actors


def make_clip(
    path: str | Path,
    seconds: float = 4.0,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    actors: list[Actor] | None = None,
    audio: bool = True,
    cut_at: float | None = None,
    extra_output_args: list[str] | None = None,
) -> Path:
    """Write an H.264 MP4 of the actors (default: `two_actors`) with a 440 Hz tone.

    `cut_at` switches to a different background (a shot cut) at that second.
    `extra_output_args` go to ffmpeg before the output name (e.g. rotation metadata).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    actors = two_actors(width) if actors is None else actors
    face = astronaut_face()
    scenes = [background(width, height, seed=0), background(width, height, seed=1)[:, ::-1] // 2 + 60]
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", str(fps),
            "-i", "pipe:"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    args += (extra_output_args or []) + [ffmpeg_path(path)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE)
    for i in range(int(round(seconds * fps))):
        t = i / fps
        canvas = scenes[1] if cut_at is not None and t >= cut_at else scenes[0]
        proc.stdin.write(sample_frame(canvas, face, actors, t).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed to write {path}")
    return path


def make_image(path: str | Path, width: int = 640, height: int = 480) -> Path:
    path = Path(path)
    frame = sample_frame(background(width, height), astronaut_face(), two_actors(width), 0.0)
    cv2.imwrite(str(path), frame)
    return path


def hopper_face() -> np.ndarray:
    """Grace Hopper's head and shoulders (matplotlib's sample photo, public domain), BGR, framed
    like `astronaut_face`: a second real person for the identity tests and benchmarks."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(path))
    return cv2.resize(image[60:460, 100:440], (200, 235), interpolation=cv2.INTER_AREA)


def cameraman_face() -> np.ndarray:
    """The cameraman's head and shoulders (scikit-image's `camera`, grey, a man seen three-quarter
    from the side), BGR, scaled so his face is about the size of `astronaut_face`'s: a third real
    person for the identity tests and benchmarks."""
    from skimage import data

    grey = cv2.resize(data.camera()[55:235, 135:285], (200, 240), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def face_views(face: np.ndarray) -> dict[str, np.ndarray]:
    """Other views of one face photo, as a video shows one person in other shots: mirrored,
    cropped off-centre, darker and brighter, turned by 10 degrees either way, at half size,
    blurred, compressed hard, in grey. The labelled same-person pairs of bench/identity.py and
    tests/test_identity.py (there are no two photos of one person here)."""
    h, w = face.shape[:2]

    def turned(degrees: float) -> np.ndarray:
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        return cv2.warpAffine(face, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)

    jpeg = cv2.imdecode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 15])[1], cv2.IMREAD_COLOR)
    shifted = face[int(0.06 * h):, int(0.08 * w):]
    return {
        "as is": face,
        "mirrored": face[:, ::-1].copy(),
        "cropped": cv2.resize(shifted, (w, h), interpolation=cv2.INTER_AREA),
        "darker": (face * 0.55).astype(np.uint8),
        "brighter": np.clip(face * 1.4 + 10, 0, 255).astype(np.uint8),
        "turned left": turned(10),
        "turned right": turned(-10),
        "half size": cv2.resize(face, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        "blurred": cv2.GaussianBlur(face, (0, 0), 2.0),
        "compressed": jpeg,
        "grey": cv2.cvtColor(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
    }


@dataclass
class Shot:
    """A stretch of a clip: which faces are where. `faces` maps a face image's key to its
    (x, y) centre as fractions of the frame, and (enter, leave) seconds within the shot."""

    seconds: float
    faces: dict[str, tuple[float, float, float, float]]
    scene: int = 0  # background seed: a new scene is a shot cut


def make_shots_clip(path: str | Path, shots: list[Shot], faces: dict[str, np.ndarray], width: int = 640,
                    height: int = 360, fps: int = 10, face_width: int = 150) -> Path:
    """An MP4 (no audio) of `shots` in turn, each face drifting slowly so the tracker follows it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
            "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", ffmpeg_path(path)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE)
    scenes: dict[int, np.ndarray] = {}
    for shot in shots:
        # Each scene its own colours (channels rotated, brightness changed), so the cut is a cut.
        canvas = scenes.setdefault(shot.scene, np.clip(
            np.roll(background(width, height, seed=shot.scene), shot.scene, axis=2).astype(np.float32)
            * (1.0, 0.55, 1.6)[shot.scene % 3], 0, 255).astype(np.uint8))
        for i in range(int(round(shot.seconds * fps))):
            t = i / fps
            frame = canvas.copy()
            for key, (fx, fy, enter, leave) in shot.faces.items():
                if not enter <= t < leave:
                    continue
                face = faces[key]
                patch = cv2.resize(face, (face_width, int(face_width * face.shape[0] / face.shape[1])),
                                   interpolation=cv2.INTER_AREA)
                cx, cy = int((fx + 0.01 * np.sin(t)) * width), int(fy * height)
                x0, y0 = max(cx - patch.shape[1] // 2, 0), max(cy - patch.shape[0] // 2, 0)
                x1, y1 = min(x0 + patch.shape[1], width), min(y0 + patch.shape[0], height)
                frame[y0:y1, x0:x1] = patch[: y1 - y0, : x1 - x0]
            proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed to write {path}")
    return path


def _oval(frame: np.ndarray, cx: int, cy: int, r: int, colour, eyes: bool, mouth: bool) -> None:
    cv2.ellipse(frame, (cx, cy), (r, int(r * 1.3)), 0, 0, 360, colour, -1, cv2.LINE_AA)
    cv2.ellipse(frame, (cx, cy), (r, int(r * 1.3)), 0, 0, 360, (20, 20, 20), 3, cv2.LINE_AA)
    if eyes:
        for dx in (-int(r / 2.5), int(r / 2.5)):
            cv2.ellipse(frame, (cx + dx, cy - r // 5), (r // 5, r // 8), 0, 0, 360, (255, 255, 255), -1)
            cv2.circle(frame, (cx + dx, cy - r // 5), r // 10, (20, 20, 20), -1)
    if mouth:
        cv2.ellipse(frame, (cx, cy + r // 2), (r // 3, r // 7), 0, 0, 180, (60, 40, 160), 3)


def cartoon_card(t: float, width: int = 640, height: int = 360) -> np.ndarray:
    """A title card: flat colour, a title and two simply drawn cartoon heads, swaying. BlazeFace
    scores one of these heads 0.52-0.53 and the other not at all (bench/face_scores.py, 2026-12-06;
    0.6-0.65 with the detector of issue 13)."""
    frame = np.full((height, width, 3), (120, 60, 30), np.uint8)
    cv2.putText(frame, "EPISODE 3", (150, 60), cv2.FONT_HERSHEY_DUPLEX, 1.6, (255, 255, 255), 3, cv2.LINE_AA)
    sway = int(12 * np.sin(2 * np.pi * t / 2))
    _oval(frame, 200 + sway, 210, 70, (0, 220, 255), eyes=False, mouth=True)
    _oval(frame, 450 - sway, 210, 70, (150, 190, 240), eyes=True, mouth=False)
    return frame


def faceless_animation(t: float, width: int = 640, height: int = 360) -> np.ndarray:
    """Plain ovals, no eyes or mouth, drifting over a flat background: nothing a face; BlazeFace
    finds nothing here (2026-12-06), though it gave such blobs about 0.65 with the detector of issue 13."""
    frame = np.full((height, width, 3), (120, 60, 30), np.uint8)
    x = int(width * (0.3 + 0.2 * np.sin(2 * np.pi * t / 3)))
    cv2.ellipse(frame, (x, 190), (70, 91), 0, 0, 360, (80, 200, 120), -1, cv2.LINE_AA)
    return frame


def make_drawn_clip(path: str | Path, draw, seconds: float = 2.0, fps: int = 25) -> Path:
    """An H.264 MP4 of `draw(t)` frames (e.g. `cartoon_card`, `faceless_animation`), no audio."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = draw(0.0)
    height, width = first.shape[:2]
    proc = subprocess.Popen(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
         "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:", "-c:v", "libx264", "-preset",
         "ultrafast", "-pix_fmt", "yuv420p", ffmpeg_path(path)], stdin=subprocess.PIPE)
    for i in range(int(round(seconds * fps))):
        proc.stdin.write(np.ascontiguousarray(draw(i / fps)).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed to write {path}")
    return path


# Where the sample faces' features are in `astronaut_face()` and `hopper_face()` (BlazeFace's box
# and keypoints on the unturned patch), so a hand can be drawn over one of them.
FACE_PARTS = {
    "astronaut": {"box": (46, 54, 102, 102), "eye": (75, 81), "other_eye": (118, 85), "nose": (93, 109),
                  "mouth": (92, 128)},
    "hopper": {"box": (38, 46, 122, 122), "eye": (73, 75), "other_eye": (125, 74), "nose": (99, 99),
               "mouth": (99, 127)},
}
HAND_PARTS = ("mouth", "cheek", "chin", "eye")


def _hand_mask(shape: tuple[int, int], centre, angle: float, size: float) -> tuple[np.ndarray, list]:
    """A hand's silhouette: a palm (ellipse) and four fingers (thick round-capped lines) pointing
    along `angle` (degrees, 0 = up), `size` the palm's half-width in pixels."""
    mask = np.zeros(shape, np.uint8)
    up = np.array([np.sin(np.radians(angle)), -np.cos(np.radians(angle))])
    across = np.array([-up[1], up[0]])
    cx, cy = centre
    cv2.ellipse(mask, (int(cx), int(cy)), (int(size), int(size * 1.15)), angle, 0, 360, 255, -1, cv2.LINE_AA)
    fingers = []
    for k, (offset, length) in enumerate([(-0.72, 1.25), (-0.24, 1.45), (0.24, 1.4), (0.72, 1.1)]):
        base = np.array(centre) + across * offset * size + up * 0.6 * size
        tip = base + up * length * size
        fingers.append((base, tip))
        cv2.line(mask, tuple(int(v) for v in base), tuple(int(v) for v in tip), 255, max(2, int(0.42 * size)),
                 cv2.LINE_AA)
    return mask, fingers


def hand_over(face: np.ndarray, person: str, part: str, cover: float, seed: int = 0) -> np.ndarray:
    """`face` (`astronaut_face()` or `hopper_face()`, unturned) with a drawn hand over its `part`
    (one of HAND_PARTS), covering `cover` (0-1) of the face's box: skin coloured as the face's own
    cheek, shaded across the palm, with a faint texture and darker creases between the fingers."""
    geometry = FACE_PARTS[person]
    bx, by, bw, bh = geometry["box"]
    (ex, ey), (ox, oy), (nx, ny), (mx, my) = (geometry[k] for k in ("eye", "other_eye", "nose", "mouth"))
    # The skin between the eye and the mouth, beside the nose: the hand's colour.
    cheek = face[int((ey + my) / 2) - 4: int((ey + my) / 2) + 4, int((ex + nx) / 2) - 4: int((ex + nx) / 2) + 4]
    skin = np.median(cheek.reshape(-1, 3), axis=0).astype(np.float32)
    place = {  # (centre, angle): where the palm sits and where the fingers point
        "mouth": ((mx - 0.05 * bw, my + 0.05 * bh), -80.0),  # across the mouth, fingers sideways
        "cheek": ((ex - 0.05 * bw, (ny + my) / 2 + 0.05 * bh), 10.0),  # one cheek, fingers up
        "chin": ((mx, my + 0.35 * bh), -15.0),  # chin on the hand, fingers up the jaw
        "eye": ((ex - 0.05 * bw, ey - 0.05 * bh), 25.0),  # over one eye
    }[part]
    box = np.zeros(face.shape[:2], bool)
    box[by: by + bh, bx: bx + bw] = True

    def covered(size: float) -> float:
        return (_hand_mask(face.shape[:2], *place, size)[0][box] > 127).mean()

    low, high = 1.0, bw
    for _ in range(20):  # the palm size whose hand covers `cover` of the box
        mid = (low + high) / 2
        low, high = (mid, high) if covered(mid) < cover else (low, mid)
    mask, fingers = _hand_mask(face.shape[:2], *place, (low + high) / 2)
    rng = np.random.default_rng(seed)
    h, w = face.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.radians(place[1])
    across = (xx - place[0][0]) * np.cos(angle) + (yy - place[0][1]) * np.sin(angle)
    shade = 1.0 + 0.12 * np.tanh(across / (0.5 * bw))  # lit from one side
    texture = cv2.GaussianBlur(rng.normal(0, 0.05, (h, w)).astype(np.float32), (0, 0), 1.5)
    hand = skin * (shade + texture)[..., None]
    creases = np.zeros((h, w), np.uint8)
    for (b0, t0), (b1, t1) in zip(fingers, fingers[1:]):
        cv2.line(creases, tuple(int(v) for v in (b0 + b1) / 2), tuple(int(v) for v in (t0 + t1) / 2 * 0.9
                 + (b0 + b1) / 2 * 0.1), 255, 1, cv2.LINE_AA)
    hand *= (1 - 0.3 * cv2.GaussianBlur(creases, (0, 0), 1.0).astype(np.float32) / 255)[..., None]
    outline = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(np.float32) / 255
    hand *= (1 - 0.25 * outline)[..., None]
    alpha = cv2.GaussianBlur(mask, (0, 0), 0.8).astype(np.float32)[..., None] / 255
    return np.clip(face * (1 - alpha) + hand * alpha, 0, 255).astype(np.uint8)
