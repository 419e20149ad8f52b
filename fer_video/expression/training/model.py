"""The expression classifier: a VGG-style CNN with batch norm for FER2013-framed grey faces.

Training sees random `crop`-pixel views of each 48x48 face; the model the pipeline runs takes the
whole 48x48 face and looks at its centre `crop` pixels, so the pipeline's input never changes.
"""

from __future__ import annotations

import keras
from keras import layers

from fer_video.expression.labels import EMOTIONS
from fer_video.expression.preprocess import FACE_SIZE


def build_network(widths: tuple[int, ...] = (24, 48, 96, 192), dropout: float = 0.3,
                  size: int = 40, name: str = "fer_vgg") -> keras.Model:
    """(n, size, size, 1) faces in [0, 1] -> (n, 7) logits (not probabilities: temperature
    scaling divides them later). Per-face standardisation, then per width two 3x3 conv + BN +
    ReLU and a 2x2 max pool, then global average pooling and a linear layer."""
    inputs = keras.Input((size, size, 1), name="face")
    # Zero mean, unit variance per face: faces cut from video differ in exposure and contrast
    # far more than FER2013's do, and the network should not have to learn that invariance.
    x = layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False, epsilon=1e-3,
                                  name="standardise_face")(inputs)
    for width in widths:
        for _ in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    # float32 even under a mixed-precision policy: the loss and the calibration need full-range logits.
    logits = layers.Dense(len(EMOTIONS), dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def build_model(widths: tuple[int, ...] = (24, 48, 96, 192), dropout: float = 0.3,
                crop: int = 40, network: keras.Model | None = None) -> keras.Model:
    """What the pipeline runs: a 48x48 face, its centre `crop` pixels, the network's logits."""
    network = network or build_network(widths, dropout, crop)
    inputs = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    margin = (FACE_SIZE - crop) // 2
    x = layers.Cropping2D(margin, name="centre_crop")(inputs) if margin else inputs
    return keras.Model(inputs, network(x), name=network.name)
