"""Facial expression as the pipeline computes it: the labels, the crop's preprocessing, the
model card (`card.py`) and the batched, calibrated classifier (`classify.py`). Training,
evaluation and export are in `fer_video.expression.training`; the pipeline imports it only to
convert a .keras that has no fresh .tflite beside it, in memory."""

from fer_video.expression.labels import EMOTIONS

__all__ = ["EMOTIONS"]
