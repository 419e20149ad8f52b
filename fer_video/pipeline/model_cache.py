"""The expression classifier, loaded once per model path per process and shared by its threads
(batch jobs, segments): loading a model costs seconds, and `ExpressionClassifier` serialises its
own invokes."""

from __future__ import annotations

from pathlib import Path


_models: dict = {}


def load_classifier(model: Path | None, threads: int | None = None):
    """The classifier of `model` (None: the shipped one), its invokes on `threads` threads (None:
    `model_threads()`)."""
    from fer_video.expression.classify import ExpressionClassifier

    key = str(model or "")
    if key not in _models:
        _models[key] = ExpressionClassifier(model)
    return _models[key] if threads is None else _models[key].on_threads(threads)
