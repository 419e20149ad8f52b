"""Facial expression: the model, its training and evaluation, and batched classification."""

from fer_video.expression.labels import EMOTIONS

__all__ = ["EMOTIONS"]
