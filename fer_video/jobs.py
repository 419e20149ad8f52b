"""What decides a job's result, cheap to import: the options (each pipeline option declared
here once, as a field of AnnotateOptions), the input's hash, the job key.

`fer_video.pipeline` re-exports these; they live here so that a batch with nothing to do (or
the CLI checking its arguments) need not import OpenCV, pandas and the models.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from fer_video import __version__, interrupt
from fer_video.faces.detectors import DETECTORS  # cheap: no numpy, the backends load when made
from fer_video.options import PRESETS, in_range, option, score
from fer_video.smoothing import Smoothing

# The shipped expression model, defined here, where checking the command line reads it without
# importing OpenCV (fer_video.expression.classify takes it from here; tests/test_cli.py checks)
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "fer_vgg.keras"

# A track is a face only if BlazeFace's confidence reaches --min-score in one of its frames
# (it is followed through weaker frames from 0.5). Measured by bench/face_scores.py (2026-12-06),
# faces 40-130 px: real faces uncovered (the astronaut and Grace Hopper, rolled up to +-30 deg,
# squashed to 0.6-0.85 width as a head turns, dimmed, blurred; the camera man) 0.758 and up; with
# a drawn hand over the mouth, a cheek, the chin or an eye (15-40% of the face), 322 photo
# detections 0.585 and up, median 0.83, and every one of the 70 such 1.2 s clips the detector
# followed peaked at 0.741 or more (issue 26: a laughing face behind a hand, 0.73). Not faces:
# the test suite's cartoon card 0.52-0.53, its faceless animation nothing, photos without people
# nothing; 64 drawn heads 0.52-0.88, median 0.70: the more a drawing looks like a face, the more
# BlazeFace takes it for one, and no threshold that keeps covered faces drops them all.
# 0.70 keeps every covered clip and 93% of the covered photo detections (0.75: 97% and 84%;
# 0.65: 100% and 97.5%), and lets 29 of the 58 drawn-head detections through (0.75: 27; 0.65: 35).
# A track's peak is its best frame, so a face covered only part of the time is kept by its
# uncovered frames; the threshold matters for faces covered or turned away for a whole track
# and for stills, whose one detection is their peak.
MIN_SCORE = 0.70


@dataclass
class AnnotateOptions:
    """What a run does. A field declared with `option(default, flag, help, ...)` is also a pipeline
    option: a command-line option of annotate, demo, batch and serve (fer_video/cli/) and a parameter
    of the annotate-folder flow (flows/batch.py), with the field's default; see fer_video/options.py."""

    out_dir: Path = option(Path("fer-video-out"), "--out", "output folder: <stem>.parquet, <stem>.mp4 "
                           "(default: %(default)s)", metavar="DIR", param="out")
    stride: int = option(1, "--stride", "analyse every Nth frame; the MP4 keeps every frame (default: %(default)s)",
                         type=in_range(1), metavar="N")
    # The registry itself, not a copy of its names: a detector registered later is a choice too.
    detector: str = option("blazeface", "--detector", "face detector: %(choices)s (default: %(default)s; see README)",
                           choices=DETECTORS)
    min_face: int = option(40, "--min-face", "smallest face width to find, source pixels, 16-4096 "
                           "(default: %(default)s)", type=in_range(16, 4096), metavar="PX")
    # A track's peak BlazeFace confidence must reach this.
    min_score: float = option(MIN_SCORE, "--min-score", "keep a face track only if BlazeFace's confidence reaches "
                              "this in one of its frames (default: %(default)s; measured: real faces 0.76 and up; "
                              "partly covered by a hand 0.59 and up in photos, their clips' tracks peaking at 0.74 "
                              "and up; simple cartoon heads 0.52-0.53, drawn heads 0.52-0.88)",
                              type=score, metavar="S")
    smoothing: str = option("window:0.5", "--smoothing", "none | ema[:TAU] | window[:SECONDS] | hmm[:SECONDS] "
                            "(default: %(default)s)", metavar="SPEC")
    model: Path | None = option(None, "--model", "expression model .keras (default: models/fer_vgg.keras)",
                                metavar="PATH")
    video: bool = option(True, "--no-video", "write the timeline only, no annotated MP4", invert=True)
    preset: str = option("ultrafast", "--preset", f"x264 preset of the MP4: {', '.join(PRESETS)} (default: "
                         "%(default)s; veryfast: files about 5x smaller, render about 25%% slower)",
                         choices=PRESETS, metavar="PRESET")
    classify_rate: float = option(7.5, "--classify-rate", "classify each face at most HZ times a second, sooner "
                                  "when it changes or is new, holding the last answer between (the default: "
                                  "every other analysed frame); 0: every analysed frame (default: %(default)s)",
                                  type=float, metavar="HZ")
    analyse_rate: float = option(15.0, "--analyse-rate", "detect, track and classify about HZ frames a second "
                                 "(every round(fps/HZ)th frame, and the frames either side of a shot cut); the "
                                 "faces of the frames between are interpolated from those either side, so every "
                                 "frame still has its rows; 0: every frame (default: %(default)s)", type=float,
                                 metavar="HZ")
    format: str = option("parquet", "--format", "timeline format: parquet, or csv for <name>.csv beside it with "
                         "the same rows, for tools that do not read Parquet (the Parquet file is always written: "
                         "it marks a finished job and `query` reads it) (default: %(default)s)",
                         choices=("parquet", "csv"), metavar="FORMAT", omit_default=True)
    progress: bool = True
    # Split a video into this many time segments, analysed in parallel (annotate and demo only).
    segments: int = option(1, "--segments", "analyse a long video as N time segments at once, stitched into "
                           "one timeline (default: %(default)s)", type=in_range(1, 64), metavar="N", folder=False)
    inputs_root: Path | None = None  # the folder a batch scans (where outputs must not look like inputs)
    # Who is who (README "Who is who"): face embeddings are biometric data.
    # person_id: link a video's tracks of one person (embeddings in memory only).
    persons: bool = option(True, "--no-persons", "no face embeddings at all: every track is its own person_id "
                           "(default: tracks of one person within a video share one, embeddings in memory only)",
                           invert=True, omit_default=True)
    # Also store the embeddings and link persons across the folder (biometric data).
    identity: bool = option(False, "--identity", "store face embeddings (biometric data) in OUT/.identity/ and "
                            "give the same person one person_id across all the output folder's videos",
                            omit_default=True)
    # With identity: one sub-folder of reference photos per name.
    people: Path | None = option(None, "--people", "with --identity: reference photos, one sub-folder per name "
                                 "(DIR/<name>/*.jpg); matched persons get that name", metavar="DIR", resolve=True,
                                 omit_default=True)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        Smoothing.parse(self.smoothing)  # fail early on a bad spec
        if self.stride < 1:
            raise ValueError("stride must be at least 1")
        if self.classify_rate < 0:
            raise ValueError(f"--classify-rate {self.classify_rate}: must be 0 (every frame) or more")
        if self.analyse_rate < 0:
            raise ValueError(f"--analyse-rate {self.analyse_rate}: must be 0 (every frame) or more")
        if not 0 < self.min_score < 1:
            raise ValueError(f"--min-score {self.min_score}: must be between 0 and 1")
        if self.people is not None:
            self.people = Path(self.people)
            if not self.identity:
                raise ValueError("--people needs --identity (it stores face embeddings; see README 'Who is who')")

    def settings(self) -> dict:
        """What, besides the input and the model, decides the result."""
        return {"stride": self.stride, "detector": self.detector, "min_face": self.min_face,
                "smoothing": str(Smoothing.parse(self.smoothing)), "video": self.video,
                "segments": self.segments, "min_score": self.min_score, "software": __version__,
                "classify_rate": self.classify_rate, "analyse_rate": self.analyse_rate,
                # Only when not the default, so that job keys of timelines made before stay valid.
                **({"persons": False} if not self.persons else {}),
                **({"identity": True} if self.identity else {}),
                **({"format": self.format} if self.format != "parquet" else {})}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            interrupt.check()
    return digest.hexdigest()


def job_key(content_sha256: str, model_sha256: str, options: AnnotateOptions) -> str:
    """Equal keys mean the same output: same bytes in, same model, same settings."""
    payload = json.dumps([content_sha256, model_sha256, options.settings()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def model_sha256(options: AnnotateOptions) -> str:
    return model_fingerprint(options.model or DEFAULT_MODEL)


def model_fingerprint(path: str | Path) -> str:
    """`fingerprint` of the model file at `path` and the card beside it (<stem>.json)."""
    path = Path(path)
    try:
        card = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        card = {}  # a model without a card runs uncalibrated
    return fingerprint(file_sha256(path), card)


def fingerprint(model_sha256: str, card: dict) -> str:
    """The model as far as results go: the network's file (its sha256) and its card (the TTA,
    logit bias and temperature the classifier applies), so that recalibrating a model re-runs the
    jobs it made. A float32 conversion to TFLite gives the network's results, so the card's record
    of it is left out (that file is checked against the network separately); a quantised one gives
    results of its own, so its sha256 counts."""
    calibration = {k: v for k, v in card.items() if not k.startswith("tflite_")}
    if card.get("tflite_quantization", "none") != "none":
        calibration["tflite_sha256"] = card.get("tflite_sha256")
    payload = json.dumps([model_sha256, calibration], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
