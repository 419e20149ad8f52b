"""Outputs you can trust (issue 13): one naming rule for `annotate` and `batch`, no result
replaced without a word, no two runs writing one output, and no run taking outputs for inputs.

The CLI in subprocesses (Prefect in ephemeral mode), real ffmpeg and Parquet; the inputs are
tiny generated clips, except the one that must keep a run busy while a second one starts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fer_video.samples import make_clip, make_image
from fer_video.timeline.schema import TimelineMetadata
from helpers import REPO, cli_command, run_cli

pytestmark = pytest.mark.slow

SMALL = dict(width=320, height=180, fps=10)


def meta(path: Path) -> TimelineMetadata:
    return TimelineMetadata.from_schema(pq.read_schema(path))


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("fer-video: error:")]


def tree(folder: Path) -> set[str]:
    """Every visible file under `folder`, relative."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


# --- the unique temp name of every atomic write ----------------------------------------------------

def test_a_writer_never_touches_another_writers_temp_file(tmp_path):
    """Before: every writer of `x.parquet` used `.x.parquet.part`, so a second one wrote into,
    renamed and deleted the first one's half-written file."""
    from test_timeline_summary import write

    other = tmp_path / ".meeting.parquet.part"
    other.write_bytes(b"another run's half-written timeline")
    write(tmp_path, "meeting", {1: [(0, 10, "happy")]})
    assert other.read_bytes() == b"another run's half-written timeline"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == [other.name]
    assert pq.read_table(tmp_path / "meeting.parquet").num_rows == 10


def test_claim_is_exclusive_and_leaves_no_lock_file(tmp_path):
    from fer_video.outputs import claim

    with claim(tmp_path, "clip") as mine:
        assert mine and _lock_held(tmp_path / ".clip.lock")
        with claim(tmp_path, "clip") as again:  # another open file description: as another process
            assert not again
        with claim(tmp_path, "clip.jpg") as other:
            assert other
    assert list(tmp_path.iterdir()) == []
    with claim(tmp_path, "clip") as mine:
        assert mine


# --- annotate: names, collisions, overwriting -----------------------------------------------------

@pytest.fixture(scope="module")
def same_stems(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("same_stems")
    d1 = make_clip(root / "d1" / "clip.mp4", seconds=1.0, **SMALL)
    d2 = make_clip(root / "d2" / "clip.mp4", seconds=1.5, **SMALL)
    jpg = make_image(root / "d1" / "clip.jpg", width=320, height=240)
    return dict(root=root, d1=d1, d2=d2, jpg=jpg, out=root / "out")


def test_annotate_same_stems_get_their_own_outputs_or_are_refused(same_stems):
    """Before: `annotate d1/clip.mp4 d2/clip.mp4 d1/clip.jpg` exited 0 and kept one clip.parquet,
    the image's."""
    s = same_stems
    proc = run_cli("annotate", s["d1"], s["d2"], s["jpg"], "--out", s["out"], "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"fer-video: error: {s['d2']}: output name 'clip'"), errors
    assert str(s["d1"]) in errors[0]
    assert tree(s["out"]) == {"clip.parquet", "clip.mp4", "clip.jpg.parquet", "clip.jpg.annotated.jpg"}
    assert Path(meta(s["out"] / "clip.parquet").source_path) == s["d1"].resolve()
    assert Path(meta(s["out"] / "clip.jpg.parquet").source_path) == s["jpg"].resolve()
    assert meta(s["out"] / "clip.jpg.parquet").video_id == "clip.jpg"
    assert set(pq.read_table(s["out"] / "clip.jpg.parquet").column("video_id").to_pylist()) <= {"clip.jpg"}


def test_annotate_refuses_to_replace_another_inputs_timeline(same_stems):
    """Before: a later `annotate d2/clip.mp4` replaced d1's clip.parquet without a word."""
    s = same_stems
    if not (s["out"] / "clip.parquet").exists():
        pytest.skip("needs the run of the test before")
    before = stamp(s["out"] / "clip.parquet"), stamp(s["out"] / "clip.mp4")
    proc = run_cli("annotate", s["d2"], "--out", s["out"], "--quiet")
    assert proc.returncode == 1, proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "holds the timeline of another input" in errors[0] and "--overwrite" in errors[0]
    assert (stamp(s["out"] / "clip.parquet"), stamp(s["out"] / "clip.mp4")) == before

    proc = run_cli("annotate", s["d2"], "--out", s["out"], "--quiet", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("fer-video: note:")]
    assert len(notes) == 1 and f"replacing the timeline of {s['d1'].resolve()}" in notes[0], proc.stderr
    assert Path(meta(s["out"] / "clip.parquet").source_path) == s["d2"].resolve()


# --- annotate: two runs on one output at once -------------------------------------------------------

def _lock_held(lock: Path) -> bool:
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_second_annotate_on_the_same_output_is_busy(tmp_path):
    """Before: both runs wrote `.long.mp4.part`; one renamed it while the other still wrote, and
    a `long.mp4` without streams could be left under the final name, exit 0."""
    from fer_video.video import probe, read_frames

    clip = make_clip(tmp_path / "long.mp4", seconds=60, width=640, height=360, fps=25)
    out = tmp_path / "out"
    first = subprocess.Popen([*cli_command(), "annotate", str(clip), "--out", str(out)], cwd=REPO,
                             env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        seen = ""
        while "analyse long.mp4" not in seen:  # its progress bar: it is at work
            char = first.stderr.read(1)
            assert char, f"the first run ended before its analysis started: {seen}"
            seen += char
        second = run_cli("annotate", clip, "--out", out, "--quiet")
        assert first.poll() is None, "the first run ended before the second one started: make the clip longer"
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        errors = error_lines(second.stderr)
        assert len(errors) == 1 and errors[0].startswith(f"fer-video: error: {clip}: busy"), second.stderr
        stdout, stderr = first.communicate(timeout=600)
        assert first.returncode == 0, seen + stderr
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate()
    assert tree(out) == {"long.parquet", "long.mp4"}
    assert sum(1 for _ in read_frames(probe(out / "long.mp4"))) == 1500
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    assert not (out / ".long.lock").exists()  # removed by its holder when done


# --- batch: its own outputs are never inputs; names are stable ---------------------------------------

def _batch(folder: Path, *args) -> subprocess.CompletedProcess:
    return run_cli("batch", folder, *args)


def _done(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """Input (file name) -> status, from the summary table."""
    rows = {}
    for line in proc.stdout.splitlines():
        cells = line.split()
        if cells and cells[0] in ("done", "skipped", "busy", "failed") and len(cells) > 1:
            rows[Path(cells[1]).name] = cells[0]
    return rows


@pytest.fixture
def recordings(tmp_path) -> Path:
    folder = tmp_path / "recordings"
    make_clip(folder / "clip.mp4", seconds=1.0, **SMALL)
    make_clip(folder / "sub" / "b.mp4", seconds=1.0, **SMALL)
    return folder


@pytest.mark.timeout(1200)  # three batch runs
def test_batch_with_out_inside_the_folder_never_annotates_its_outputs(recordings, tmp_path):
    """`batch recordings --out recordings/fer-video-out`, twice, then once more after a photo
    with a clip's stem is added. Before: the second run annotated `fer-video-out/clip.mp4` as
    `fer-video-out__clip`, and the photo renamed the clip's outputs to `clip.mp4.*`."""
    out = recordings / "fer-video-out"
    first = _batch(recordings, "--out", out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _done(first) == {"clip.mp4": "done", "b.mp4": "done"}
    outputs = {"clip.parquet", "clip.mp4", "sub__b.parquet", "sub__b.mp4"}
    assert tree(out) == outputs
    before = {name: stamp(out / name) for name in outputs}

    second = _batch(recordings, "--out", out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _done(second) == {"clip.mp4": "skipped", "b.mp4": "skipped"}, second.stdout
    assert tree(out) == outputs and {n: stamp(out / n) for n in outputs} == before

    make_image(recordings / "clip.jpg", width=320, height=240)
    third = _batch(recordings, "--out", out)
    assert third.returncode == 0, third.stdout + third.stderr
    assert _done(third) == {"clip.jpg": "done", "clip.mp4": "skipped", "b.mp4": "skipped"}, third.stdout
    assert tree(out) == outputs | {"clip.jpg.parquet", "clip.jpg.annotated.jpg"}
    assert {n: stamp(out / n) for n in outputs} == before  # the clip's outputs kept their names


def test_batch_with_out_equal_to_the_folder_never_annotates_its_outputs(recordings):
    """`batch recordings --out recordings`, twice. Before: every run annotated the last one's
    outputs (`clip.annotated.mp4` -> `clip.annotated.annotated.mp4`, ...)."""
    first = _batch(recordings, "--out", recordings)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _done(first) == {"clip.mp4": "done", "b.mp4": "done"}
    made = tree(recordings) - {"clip.mp4", "sub/b.mp4"}
    # an annotated video never takes, or looks like, a source's name in the folder it came from
    assert made == {"clip.parquet", "clip.annotated.mp4", "sub__b.parquet", "sub__b.annotated.mp4"}
    before = {name: stamp(recordings / name) for name in made}

    second = _batch(recordings, "--out", recordings)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _done(second) == {"clip.mp4": "skipped", "b.mp4": "skipped"}, second.stdout
    assert tree(recordings) - {"clip.mp4", "sub/b.mp4"} == made
    assert {n: stamp(recordings / n) for n in made} == before
    assert not [n for n in tree(recordings) if ".annotated.annotated" in n or n.count(".mp4") > 1]


def test_batch_outputs_of_an_earlier_run_elsewhere_are_not_inputs(recordings, tmp_path):
    """A folder that also holds another run's outputs (annotate --out into it, plots, a
    report): only the real sources are annotated."""
    from test_timeline_summary import write

    results = recordings / "results"
    write(results, "talk", {1: [(0, 10, "happy")]})  # its source_path is /clips/talk.mp4
    shutil.copy(recordings / "clip.mp4", results / "talk.mp4")  # as `annotate --out results` leaves it
    shutil.copy(recordings / "clip.mp4", results / "talk.annotated.mp4")
    make_image(results / "talk.timeline.png", width=320, height=240)
    proc = _batch(recordings, "--out", tmp_path / "elsewhere", "--no-video")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _done(proc) == {"clip.mp4": "done", "b.mp4": "done"}, proc.stdout


# --- the input's hash ------------------------------------------------------------------------------

def test_a_new_output_hashes_its_input_beside_the_analysis(tmp_path, monkeypatch):
    """With no timeline to replace, nothing waits for the hash: it is computed in a thread of its
    own while the analysis runs, and the timeline records it. With one to replace, the hash
    decides first (the tests above)."""
    import hashlib
    import threading

    from fer_video import pipeline
    from fer_video.jobs import AnnotateOptions, file_sha256

    annotate_module = __import__("sys").modules["fer_video.pipeline.annotate"]
    hashed_in = []

    def recording(path):
        hashed_in.append(threading.current_thread().name)
        return file_sha256(path)

    monkeypatch.setattr(annotate_module, "file_sha256", recording)
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.5, **SMALL)
    pipeline.annotate(clip, AnnotateOptions(out_dir=tmp_path / "out", progress=False))
    assert hashed_in == ["hash-input"]
    assert meta(tmp_path / "out" / "clip.parquet").content_sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
