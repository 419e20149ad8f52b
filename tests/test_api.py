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


def test_what_batch_checks_before_its_first_line_loads_nothing_heavy(tmp_path):
    """Discovering a folder's inputs (which asks of every video whether it is one of our outputs)
    and checking the settings need neither NumPy, OpenCV nor pyarrow: before, they cost 0.2 s
    of `batch`'s first line (pyarrow imported to look for a timeline that was not there)."""
    (tmp_path / "clip.mp4").write_bytes(b"not decoded here")
    (tmp_path / "photo.jpg").write_bytes(b"nor here")
    code = ("import sys, argparse; from fer_video.cli.checks import check_folder_inputs, check_settings; "
            f"print(check_folder_inputs({str(tmp_path)!r}, '*', empty_ok=False)); "
            "check_settings(argparse.Namespace(smoothing='hmm:1', model=None)); "
            "print(sorted(m for m in ('cv2', 'numpy', 'pyarrow', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["2", "[]"], out


def test_the_analysis_starts_without_pandas_or_pyarrow():
    """The pipeline's modules import pandas and pyarrow where a stage after the analysis uses
    them: importing them (as `annotate` does before its first frame) leaves both to
    `import_later_stages`, which loads them in a thread beside the analysis (0.2 s and 0.03 s
    before the first frame otherwise)."""
    code = ("import sys; import fer_video.pipeline, fer_video.cli.annotate, fer_video.sinks.csv; "
            "print('pandas' in sys.modules, 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_the_later_stages_libraries_load_in_a_thread_of_their_own():
    code = ("import sys, threading; from fer_video.pipeline.annotate import import_later_stages; "
            "thread = import_later_stages(); print(thread.name, thread is not threading.main_thread()); "
            "thread.join(); print('pandas' in sys.modules, 'pyarrow.parquet' in sys.modules, import_later_stages())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["import-later True", "True True None"], out


def test_asking_for_a_configured_prefect_server_loads_no_http_client():
    """Every command asks whether a server is configured; only one that starts a server waits on
    its health over HTTP (0.02 s of imports)."""
    code = ("import sys, flows.server; flows.server.configured_api_url(); "
            "print('urllib.request' in sys.modules, 'http.client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PREFECT_API_URL": ""}).stdout
    assert out.strip() == "False False"
