"""Facial expression as the pipeline computes it: the labels, the crop's preprocessing and the
batched, calibrated classifier (`classify.py`). Training, evaluation and export are in
`fer_video.expression.training`, which the pipeline never imports."""

from fer_video.expression.labels import EMOTIONS

__all__ = ["EMOTIONS"]
