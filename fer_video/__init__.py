"""fer-video: facial-expression timelines from recorded video.

    from fer_video import AnnotateOptions, annotate, load, summary

    result = annotate("clip.mp4", AnnotateOptions(out_dir="out"))   # timeline + annotated MP4
    rows = load("out", video="clip", label=["happy"])                # the rows, filtered
    summary("out")                                                   # per track: time, emotions, changes

`annotate` runs the whole pipeline for one input (`fer_video.pipeline`, stage by stage);
`Result` says what it wrote; `Faces` is the record the stages pass on. Names are imported when
first used, so `import fer_video` (and the CLI's start-up) stays cheap.
"""

__version__ = "0.1.0"

_API = {
    "annotate": "fer_video.pipeline",
    "AnnotateOptions": "fer_video.jobs",
    "Result": "fer_video.pipeline",
    "Faces": "fer_video.faces.record",
    "load": "fer_video.timeline.read",
    "summary": "fer_video.timeline.summary",
}

__all__ = [*_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'fer_video' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value
