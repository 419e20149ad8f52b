"""Annotated images in their own format under their own suffix, the report embedding the
annotated output (not the source), and EXIF-rotated photos reported at their upright size.
Real OpenCV, ffmpeg, detector and model, in this process."""

from __future__ import annotations

import re
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import FPS, one_actor
from fer_video.pipeline import AnnotateOptions, annotate
from fer_video.samples import make_clip, make_image
from fer_video.timeline.report import report_video
from helpers import read_timeline

MAGIC = {".jpg": (b"\xff\xd8\xff",), ".png": (b"\x89PNG",), ".webp": (b"RIFF",),
         ".tif": (b"II*\x00", b"MM\x00*")}


def run(path, out):
    return annotate(str(path), AnnotateOptions(out_dir=out, progress=False))


@pytest.fixture(scope="module")
def still_png(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("stills") / "still.png", 480, 360)


@pytest.mark.parametrize("suffix", [".webp", ".tif"])
def test_annotated_image_is_written_in_its_own_format(suffix, still_png, tmp_path):
    source = tmp_path / f"still{suffix}"
    assert cv2.imwrite(str(source), cv2.imread(str(still_png)))
    result = run(source, tmp_path / "out")
    assert result.image == tmp_path / "out" / f"still{suffix}.annotated{suffix}"  # an image's name: its file name
    assert result.image.read_bytes().startswith(MAGIC[suffix])
    assert result.image.read_bytes()[8:12] == b"WEBP" if suffix == ".webp" else True
    assert cv2.imread(str(result.image)).shape == (360, 480, 3)


def test_a_jpeg_named_mp4_gives_an_annotated_jpeg_named_jpg(still_png, tmp_path):
    source = tmp_path / "photo.mp4"
    ok, data = cv2.imencode(".jpg", cv2.imread(str(still_png)))
    source.write_bytes(data.tobytes())
    result = run(source, tmp_path / "out")
    assert result.image == tmp_path / "out" / "photo.annotated.jpg"
    assert result.image.read_bytes().startswith(MAGIC[".jpg"])
    assert not list((tmp_path / "out").glob("*.annotated.mp4"))


def embedded_media(report) -> str:
    return re.search(r'id="annotated-video" href="([^"]+)"', report.read_text()).group(1)


def test_report_embeds_the_annotated_mp4_written_beside_the_source(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0, width=320, height=180, fps=FPS,
                     actors=one_actor(320), audio=False)
    result = run(clip, tmp_path)  # annotate clip.mp4 --out .
    assert result.video == tmp_path / "clip.annotated.mp4"
    assert embedded_media(report_video(tmp_path, "clip")) == "clip.annotated.mp4"


@pytest.mark.parametrize("suffix", [".tif", ".webp"])
def test_report_embeds_annotated_tif_and_webp_images(suffix, still_png, tmp_path):
    source = tmp_path / f"still{suffix}"
    assert cv2.imwrite(str(source), cv2.imread(str(still_png)))
    run(source, tmp_path / "out")
    report = report_video(tmp_path / "out", f"still{suffix}")
    assert embedded_media(report) == f"still{suffix}.annotated{suffix}"
    assert f'<img class="media" src="still{suffix}.annotated{suffix}"' in report.read_text()


def test_exif_rotated_jpeg_is_recorded_at_its_upright_size(still_png, tmp_path):
    """Stored 480x360 with EXIF orientation 6 (turn 90 degrees clockwise to view): upright 360x480."""
    source = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(still_png).convert("RGB").save(source, exif=exif)
    upright = cv2.imread(str(source))
    assert upright.shape == (480, 360, 3)
    result = run(source, tmp_path / "out")
    rows, meta = read_timeline(result.timeline)
    assert (meta["width"], meta["height"]) == (360, 480)
    assert cv2.imread(str(result.image)).shape == (480, 360, 3)
    assert "360x480" in report_video(tmp_path / "out", "phone.jpg").read_text()
    if len(rows):
        assert (rows.x + rows.w).max() <= 360 + 1 and (rows.y + rows.h).max() <= 480 + 1
