"""The public Python API: `from fer_video import ...` gives the documented names, and importing
`fer_video` alone loads none of the pipeline (the CLI's start-up depends on it)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_the_api_names_are_the_pipeline_s():
    import fer_video
    from fer_video import pipeline
    from fer_video.faces.record import Faces
    from fer_video.timeline.read import load
    from fer_video.timeline.summary import summary

    assert set(fer_video.__all__) == {"annotate", "AnnotateOptions", "Result", "Faces", "load", "summary"}
    assert fer_video.annotate is pipeline.annotate and fer_video.AnnotateOptions is pipeline.AnnotateOptions
    assert fer_video.Result is pipeline.Result and fer_video.Faces is Faces
    assert fer_video.load is load and fer_video.summary is summary
    with pytest.raises(AttributeError):
        fer_video.nothing_of_the_sort  # noqa: B018


def test_importing_fer_video_loads_nothing_heavy():
    code = "import sys, fer_video; print(sorted(m for m in ('cv2', 'pandas', 'numpy', 'prefect', 'flows') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_telling_our_timelines_apart_needs_no_pandas(tmp_path):
    """A batch looks at every Parquet file's footer (is it one of our timelines?) before its first
    line; pandas, half a second to import, must wait for the work."""
    from fer_video.timeline import SCHEMA, TimelineMetadata, load  # the package's names still resolve

    assert SCHEMA is not None and TimelineMetadata and callable(load)
    code = ("import sys; from fer_video.outputs import timeline_metadata; "
            f"timeline_metadata({str(tmp_path / 'missing.parquet')!r}); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
