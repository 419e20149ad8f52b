"""The expression classifier, loaded once per model path per process and shared by its threads
(batch jobs, segments): loading a model costs seconds, and `ExpressionClassifier` serialises its
own invokes."""

from __future__ import annotations

from pathlib import Path


_models: dict = {}


def load_classifier(model: Path | None):
    from fer_video.expression.classify import ExpressionClassifier

    key = str(model or "")
    if key not in _models:
        _models[key] = ExpressionClassifier(model)
    return _models[key]
