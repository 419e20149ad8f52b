"""Where outputs go and how they get there: the one naming rule, atomic writes, the per-output
lock, and telling fer-video's own outputs from inputs.

The naming rule (README, "Output names"): an input's name, which is also its rows' `video_id`,
is its file stem for a video (`clip.mp4` -> `clip`) and its whole file name for a still image
(`photo.jpg` -> `photo.jpg`), so that a clip and a photo of the same stem never share outputs.
In a batch the path relative to the folder is kept, folders joined by `__`
(`sub/dir/clip.mp4` -> `sub__dir__clip`). A name depends on the input alone, never on which other
files exist, so adding a file never renames another's outputs. Two inputs that still come out
equal (`d1/clip.mp4` and `d2/clip.mp4` in one call, `clip.mp4` beside `clip.mov`) are not given
made-up names: the second is refused. A name too long for its outputs' file names (over
`NAME_BYTES` bytes of UTF-8) is cut, and a hash of the whole name added (`fitted_name`).

File names are limited in bytes (NAME_MAX, 255 on ext4, XFS, btrfs, APFS), and the hidden temp
and lock names add to an output's name: those are cut with a hash too where the folder's own
limit calls for it, so that any input the file system holds can be annotated.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fer_video import interrupt
from fer_video.errors import InputError
from fer_video.video.probe import IMAGE_SUFFIXES

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                  ".3gp", ".mts", ".m2ts", ".ts"}
# What cv2.imencode writes, by suffix: an image is annotated in its own format under its own suffix.
IMAGE_WRITERS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# An image whose name does not say what it is (a JPEG named .mp4) gets its content's suffix.
# With --identity, face embeddings and the folder's persons live in `<out>/.identity/`
# (fer_video.persons.store); nothing in it is ever an input.
IDENTITY_DIR = ".identity"
IMAGE_CODEC_SUFFIX = {"mjpeg": ".jpg", "png": ".png", "bmp": ".bmp", "webp": ".webp", "tiff": ".tif"}


def output_name(path: str | Path, folder: str | Path | None = None) -> str:
    """The input's output name and video id (see the module's docstring). With `folder`, the
    path relative to it is flattened with `__`; a name too long for file names is cut."""
    return fitted_name(full_output_name(path, folder))


def full_output_name(path: str | Path, folder: str | Path | None = None) -> str:
    """`output_name` before any cut."""
    path = Path(path)
    relative = path.relative_to(folder) if folder is not None else Path(path.name)
    last = relative.name if path.suffix.lower() in IMAGE_SUFFIXES else relative.stem
    return "__".join([*relative.parent.parts, last])


NAME_MAX = 255  # bytes in a file name where the folder does not say (os.pathconf)
# The longest output file name is `.identity/<name>.embeddings.parquet`, 19 bytes more than
# its name: a name up to NAME_BYTES keeps all its outputs within 255 bytes and stays as it is.
NAME_BYTES = NAME_MAX - 19
# A longer name is cut to this, leaving room for the plots' `.track<ids>.timeline.png`.
CUT_BYTES = 200
_HASH = 10  # hex digits of the hash that keeps cut names apart


def fitted_name(name: str) -> str:
    """`name`, or if longer than NAME_BYTES its start (at a character boundary) and a hash of
    the whole: `<start>~<hash>`, CUT_BYTES bytes at most. The same name always gives the same cut,
    so a rerun finds its outputs."""
    return name if len(name.encode()) <= NAME_BYTES else _cut(name, CUT_BYTES)


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8: its start, `~` and a hash of all of it."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    digest = hashlib.sha256(encoded).hexdigest()[:_HASH]
    start = encoded[: limit - _HASH - 1].decode("utf-8", "ignore")  # never half a character
    return f"{start}~{digest}"


def name_note(path: str | Path, folder: str | Path | None = None) -> str | None:
    """One line when the input's output name was cut (`fitted_name`), else None."""
    full = full_output_name(path, folder)
    name = fitted_name(full)
    if name == full:
        return None
    return (f"its outputs' names are cut to {len(name.encode())} bytes and end in a hash: its name, "
            f"{len(full.encode())} bytes of UTF-8, is too long for them ({NAME_BYTES} fit)")


def name_max(folder: str | Path) -> int:
    """The longest file name, in bytes, that `folder`'s file system takes."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX


@dataclass(frozen=True)
class OutputPaths:
    """Where one input's outputs go. Each file is written through `atomic_path` (a hidden
    `.<file>.<random>.part` beside it until complete); `lock` is the `claim` on all of them."""

    name: str  # the output name, also the rows' video_id
    timeline: Path  # <name>.parquet, written last: its presence marks the job done
    media: Path  # the annotated video or image
    lock: Path  # .<name>.lock


def output_paths(source: str | Path, out_dir: str | Path, name: str, is_image: bool,
                 inputs_root: str | Path | None = None, image_codec: str = "") -> OutputPaths:
    """`timeline`: `<name>.parquet`; `media`: the annotated video `<name>.mp4`, or
    `<name>.annotated.mp4` when the output folder is where the inputs are found (the input's own
    folder, or `inputs_root`, the folder a batch scans), so that no output ever replaces, or looks
    like, a source there; an image's is `<name>.annotated.<ext>` in its own format (by suffix, or
    by `image_codec`, what ffmpeg says the content is, for a name that does not say)."""
    out_dir, source = Path(out_dir), Path(source)
    if is_image:
        ext = source.suffix.lower()
        ext = ext if ext in IMAGE_WRITERS else IMAGE_CODEC_SUFFIX.get(image_codec, ".png")
        media = out_dir / f"{name}.annotated{ext}"
    elif out_dir.resolve() == Path(inputs_root if inputs_root is not None else source.parent).resolve():
        media = out_dir / f"{name}.annotated.mp4"
    else:
        media = out_dir / f"{name}.mp4"
    return OutputPaths(name, out_dir / f"{name}.parquet", media, lock_path(out_dir, name))


def outputs_of(info, out_dir: str | Path, name: str | None = None, inputs_root: str | Path | None = None) -> OutputPaths:
    """`output_paths` of a probed input (`fer_video.video.MediaInfo`), named by `output_name`
    unless the caller chose another name."""
    return output_paths(info.path, out_dir, name or output_name(info.path), info.is_image, inputs_root,
                        image_codec=info.video_codec)


def media_names(name: str) -> list[str]:
    """Every file name `output_paths` can give `name`'s annotated video or image."""
    return [f"{name}.mp4", f"{name}.annotated.mp4", *(f"{name}.annotated{s}" for s in sorted(IMAGE_WRITERS))]


def _output_files(name: str) -> list[str]:
    """Every file name an output of `name` can have."""
    return [f"{name}.parquet", f"{name}.csv", *media_names(name)]


# --- atomic writes ------------------------------------------------------------------------------

_TOKEN = 8  # hex digits of a temp name's random part


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """`with atomic_path(final) as temp: write(temp)`: the block writes to a hidden temp file of
    its own beside `final` (`.<name>.<random>.part`), renamed to `final` when the block succeeds
    and removed when it fails. Each call gets a new temp name, so two runs writing the same output
    never write into, rename or delete each other's half-written file; globs like `*.parquet`
    never see it. Ctrl-C or SIGTERM removes it too (`interrupt.in_flight`). Every file fer-video
    writes goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = _temp_base(path.name, name_max(path.parent))
    while True:
        temp = path.with_name(f"{base}.{secrets.token_hex(_TOKEN // 2)}.part")
        try:
            # O_EXCL: the name is ours alone; 0o666 so the umask, not mkstemp's 0600, decides.
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        with interrupt.in_flight(temp):
            yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _temp_base(filename: str, limit: int) -> str:
    """A temp name without its `.<random>.part`: `.<filename>`, cut where the whole would not fit
    in `limit` bytes (a name the file system takes must not fail on its temp's)."""
    return _cut(f".{filename}", limit - _TOKEN - len("..part"))


def _temp_of(filename: str, limit: int = NAME_MAX) -> re.Pattern:
    # `.x.part` and `..x.<random>.part.part` too: what versions before the unique temp names left.
    base = _temp_base(filename, limit)
    if base != f".{filename}":
        return re.compile(rf"^{re.escape(base)}\.[0-9a-f]{{{_TOKEN}}}\.part$")
    return re.compile(rf"^\.{{1,2}}{re.escape(filename)}(\.[0-9a-f]{{{_TOKEN}}})?\.part(\.part)?$")


def remove_leftovers(out_dir: Path, name: str) -> None:
    """Temp files of a killed run of `name`'s outputs; call only while holding its `claim`."""
    if not out_dir.is_dir():
        return
    limit = name_max(out_dir)
    patterns = [_temp_of(f, limit) for f in _output_files(name)]
    for entry in os.scandir(out_dir):
        if entry.name.startswith(".") and entry.name.endswith(".part") and any(p.match(entry.name) for p in patterns):
            Path(entry.path).unlink(missing_ok=True)


# --- the lock on a name's outputs ---------------------------------------------------------------

def lock_path(out_dir: Path, name: str) -> Path:
    """`<out>/.<name>.lock`, its name cut (`_cut`) where the folder's file system needs it."""
    return Path(out_dir) / (_cut(f".{name}", name_max(out_dir) - len(".lock")) + ".lock")


@contextlib.contextmanager
def claim(out_dir: Path, name: str) -> Iterator[bool]:
    """Yields True while this process holds the exclusive `flock` on `<out>/.<name>.lock`, False
    if another process has it. The OS drops the lock when its holder dies (`kill -9` too), so
    leftovers found while holding it are a dead run's and are removed. `annotate` and `batch` take
    the same lock, so no two runs ever write one output at once.

    The holder removes the lock file when done, so finished and failed jobs leave nothing behind
    (a killed one leaves the hidden lock, harmless). Removing it is safe because a process that
    got the lock checks that the file it locked is still the one at that path, else starts over."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(out_dir, name)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # its holder removed it just before we locked it: lock the new one
    try:
        remove_leftovers(out_dir, name)
        yield True
    finally:
        path.unlink(missing_ok=True)  # while still locked: whoever opened it meanwhile starts over
        os.close(fd)


# --- what an existing output is -----------------------------------------------------------------

def timeline_metadata(path: str | Path):
    """The fer-video metadata of a Parquet file, or None if it is missing, unreadable or not a
    fer-video timeline. Reads the footer only."""
    if not os.path.isfile(path):
        return None  # before importing pyarrow: folder discovery asks this of every video's name
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fer_video.timeline.schema import TimelineMetadata

    try:
        return TimelineMetadata.from_schema(pq.read_schema(path))
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError):
        return None


_ANNOTATED = re.compile(r"^(?P<name>.+)\.annotated\.[^.]+$")
_PLOT = re.compile(r"^(?P<name>.+?)(\.track[0-9-]+)?\.(timeline|shares)\.png$")


def is_output(path: str | Path) -> bool:
    """Whether a file is one of fer-video's own outputs, temp files or locks, and so never an
    input. Hidden files are, and everything in an `.identity/` folder; an annotated video or image (`<name>.annotated.<ext>`) or a plot
    (`<name>.timeline.png`, `<name>.shares.png`) is when the name's timeline or lock lies beside
    it; a `<name>.mp4` is when `<name>.parquet` beside it is a timeline made from another file."""
    path = Path(path)
    folder, filename = path.parent, path.name
    if filename.startswith(".") or folder.name == IDENTITY_DIR:
        return True
    for pattern in (_ANNOTATED, _PLOT):
        match = pattern.match(filename)
        if match and (lock_path(folder, match["name"]).exists()
                      or timeline_metadata(folder / f"{match['name']}.parquet") is not None):
            return True
    if path.suffix.lower() == ".mp4":
        meta = timeline_metadata(folder / f"{path.stem}.parquet")
        if meta is not None and Path(meta.source_path) != path.resolve():
            return True
    return False


def check_overwrite(timeline: Path, source: str | Path, content_sha256: str, job_key: str,
                    overwrite: bool = False, hint: str = "--overwrite replaces it, or choose another --out") -> str | None:
    """Before `source`'s result is written to `timeline`: None when nothing is lost; a one-line
    note when a result of the same input made with other settings (or, with `overwrite`, another
    input's result) will be replaced. Raises InputError when `timeline` holds another input's
    result (or is not a timeline at all) and `overwrite` is off."""
    if not timeline.exists():
        return None
    meta = timeline_metadata(timeline)
    if meta is None:
        if overwrite:
            return f"{timeline}: replacing a file that is not a fer-video timeline"
        raise InputError(source, f"{timeline} exists and is not a fer-video timeline; {hint}")
    same_input = Path(meta.source_path) == Path(source).resolve() or meta.content_sha256 == content_sha256
    if same_input:
        if meta.job_key == job_key:
            return None
        return f"{timeline}: replacing the timeline of this input made with other settings or model"
    if overwrite:
        return f"{timeline}: replacing the timeline of {meta.source_path}"
    raise InputError(source, f"{timeline} holds the timeline of another input, {meta.source_path}; {hint}")


