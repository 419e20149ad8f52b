"""Inputs whose file names are as long as the file system allows (255 bytes of UTF-8 on the
file systems the tests run on): every output, temp file and lock of theirs must fit too. The
real CLI on real clips, ASCII names and CJK ones (3 bytes a character)."""

from __future__ import annotations

import os
import shutil

import pytest

from fer_video.outputs import NAME_BYTES, lock_path, name_max, output_name
from helpers import hidden_partials, read_timeline, run_cli


def _copy(source, folder, stem: str):
    """`source` copied to `folder/<stem>.mp4`: the file system must take the name for the test to
    mean anything."""
    folder.mkdir(parents=True, exist_ok=True)
    assert len(f"{stem}.mp4".encode()) <= name_max(folder)
    path = folder / f"{stem}.mp4"
    shutil.copyfile(source, path)
    return path


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("stem", ["a" * 245, "b" * 236, "长" * 83], ids=["ascii-249", "ascii-240", "cjk-253-bytes"])
def test_annotate_takes_a_name_as_long_as_the_file_system_allows(silent_clip, tmp_path, stem):
    path = _copy(silent_clip.path, tmp_path / "in", stem)
    out = tmp_path / "out"
    done = run_cli("annotate", path, "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "too long" not in done.stderr
    name = output_name(path)
    assert len(name.encode()) <= NAME_BYTES
    assert name.startswith(stem[:20])
    assert _names(out) == [f"{name}.mp4", f"{name}.parquet"]
    rows, meta = read_timeline(out / f"{name}.parquet")
    assert len(rows) and meta["video_id"] == name and meta["source_path"] == str(path.resolve())
    # The output line says when the outputs' names were cut from the input's.
    assert (name != stem) == ("cut to" in done.stdout), done.stdout
    assert not hidden_partials(out)


def test_a_batch_of_long_names_annotates_each_once_and_skips_them_after(silent_clip, tmp_path):
    stems = ["c" * 245, "c" * 244 + "d", "长" * 83]  # the first two differ only past the cut
    folder = tmp_path / "in"
    for stem in stems:
        _copy(silent_clip.path, folder, stem)
    out = folder / "out"  # inside the folder: its outputs must never come back as inputs
    first = run_cli("batch", folder, "--out", out, "--quiet")
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    names = [output_name(folder / f"{s}.mp4", folder) for s in stems]
    assert len(set(names)) == 3
    assert _names(out) == sorted([f"{n}.mp4" for n in names] + [f"{n}.parquet" for n in names])
    assert "3 done, 0 skipped" in first.stdout, first.stdout
    assert first.stdout.count("cut to 200 bytes") == 3, first.stdout
    again = run_cli("batch", folder, "--out", out, "--quiet")
    assert again.returncode == 0, again.stderr
    assert "0 done, 3 skipped" in again.stdout, again.stdout


def test_temp_and_lock_names_fit_the_folder(tmp_path):
    from fer_video.outputs import atomic_path, claim

    limit = name_max(tmp_path)
    final = tmp_path / ("e" * (limit - 8) + ".parquet")  # the longest name the folder takes
    with atomic_path(final) as temp:
        assert len(temp.name.encode()) <= limit and temp.name.startswith(".")
        temp.write_bytes(b"x")
    assert final.read_bytes() == b"x"
    name = "長" * (NAME_BYTES // 3)
    assert len(lock_path(tmp_path, name).name.encode()) <= limit
    # What a killed run leaves: a cut temp name, which the next holder of the lock removes.
    with pytest.raises(RuntimeError), atomic_path(tmp_path / f"{name}.annotated.jpeg") as temp:
        left = temp
        raise RuntimeError
    left.write_bytes(b"half")
    with claim(tmp_path, name) as mine:
        assert mine and lock_path(tmp_path, name).exists()
    assert os.listdir(tmp_path) == [final.name]
