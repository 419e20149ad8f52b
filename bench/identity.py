"""Who is who: the cost of face embeddings and how well persons are linked.

    python bench/identity.py            # cost (ms per embedding, pipeline frames/s with and without) and accuracy

Cost: dlib's landmarks + chip (per candidate, during analysis) and ResNet (per kept chip, at the
end), then the whole analysis of a generated clip with person linking on and off.
Accuracy: clips with known identities built from the real photos available offline
(scikit-image's astronaut, matplotlib's Grace Hopper): shot cuts, a person leaving and coming
back, the same people in two videos. Printed: the fraction of tracks linked to the right person
(a track is right when it shares a person with exactly the tracks of the same true person) and
the fraction of pairs of different people wrongly merged, within video and across the folder.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_video.faces.detect import make_detector  # noqa: E402
from fer_video.faces.embed import FaceEmbedder  # noqa: E402
from fer_video.pipeline import AnnotateOptions, analyse, probe, smooth, write  # noqa: E402
from fer_video.samples import make_clip  # noqa: E402
from tests.test_identity import FACES, _truth, video_a, video_b  # noqa: E402


def embedding_cost(repeats: int = 20) -> tuple[float, float]:
    detector, embedder = make_detector("blazeface", min_face=20), FaceEmbedder.shared()
    image = cv2.copyMakeBorder(FACES["astronaut"], 80, 80, 80, 80, cv2.BORDER_REFLECT)
    box = detector(image).boxes[0]
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    embedder.embed_chips([embedder.chip(rgb, box)])  # warm
    t = time.perf_counter()
    chips = [embedder.chip(rgb, box) for _ in range(repeats)]
    chip_ms = (time.perf_counter() - t) / repeats * 1000
    t = time.perf_counter()
    embedder.embed_chips(chips)
    return chip_ms, (time.perf_counter() - t) / repeats * 1000


def pipeline_speed(folder: Path) -> dict[str, float]:
    clip = make_clip(folder / "speed.mp4", seconds=4, width=640, height=360, fps=25)
    info = probe(clip)
    out = {}
    for persons in (False, True):
        options = AnnotateOptions(out_dir=folder, video=False, progress=False, persons=persons)
        t = time.perf_counter()
        analysis = analyse(info, options)
        fps = analysis.frames_decoded / (time.perf_counter() - t)
        key = "with person ids" if persons else "without"
        out[key] = max(out.get(key, 0.0), fps)
    return out


def accuracy(folder: Path) -> dict[str, float]:
    from fer_video.identity import link_folder
    from fer_video.timeline import load

    out_dir = folder / "out"
    for make, name in ((video_a, "a"), (video_b, "b")):
        clip = make(folder / f"{name}.mp4")
        options = AnnotateOptions(out_dir=out_dir, video=False, progress=False, identity=True)
        analysis = analyse(probe(clip), options, name)
        write(smooth(analysis.rows, options.smoothing), analysis, options)
    within = load(out_dir)
    link_folder(out_dir)
    across = load(out_dir)
    return {**_scores(within, per_video=True, prefix="within video"), **_scores(across, per_video=False,
                                                                              prefix="across videos")}


def _scores(rows, per_video: bool, prefix: str) -> dict[str, float]:
    rows = rows.assign(key=rows["video_id"] + "/" + rows["track_id"].astype(str))
    tracks = {}
    for key, g in rows.groupby("key"):
        truth = _truth(key.split("/")[0], g["timestamp_s"].median(), (g["x"].median() + g["w"].median() / 2) / 640)
        person = (g["video_id"].iat[0], int(g["person_id"].iat[0])) if per_video else int(g["person_id"].iat[0])
        tracks[key] = (truth, person, key.split("/")[0])
    right, merged, pairs = 0, 0, 0
    for a, (ta, pa, va) in tracks.items():
        same = {b for b, (tb, _, vb) in tracks.items() if tb == ta and (vb == va or not per_video)}
        linked = {b for b, (_, pb, vb) in tracks.items() if pb == pa}
        right += same == linked
        for b, (tb, pb, vb) in tracks.items():
            if a < b and tb != ta and (va == vb or not per_video):
                pairs += 1
                merged += pa == pb
    return {f"{prefix}: tracks": len(tracks), f"{prefix}: linked right": right / len(tracks),
            f"{prefix}: different people merged": merged / max(pairs, 1)}


def main() -> None:
    chip_ms, embed_ms = embedding_cost()
    print(f"landmarks + aligned chip: {chip_ms:.1f} ms per candidate; ResNet embedding: {embed_ms:.1f} ms per chip")
    with tempfile.TemporaryDirectory() as tmp:
        for key, value in pipeline_speed(Path(tmp)).items():
            print(f"analysis of a 4 s 360p clip with two faces, {key}: {value:.1f} frames/s")
        for key, value in accuracy(Path(tmp)).items():
            print(f"{key}: {value:.3g}")


if __name__ == "__main__":
    main()
