"""The seven FER2013 expression classes, in the dataset's own label order."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
