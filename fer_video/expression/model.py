"""The expression classifier: a small VGG-style CNN with batch norm, for 48x48 grey faces."""

from __future__ import annotations

import keras
from keras import layers

from fer_video.expression.labels import EMOTIONS
from fer_video.expression.preprocess import FACE_SIZE


def build_model(widths: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.4) -> keras.Model:
    """Per-face standardisation, then blocks of two 3x3 conv + BN + ReLU, each halving the
    resolution; then pooled logits.

    The model outputs logits, not probabilities, so temperature scaling can divide them later.
    """
    inputs = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    # Each face standardised to zero mean and unit variance: FER2013's train split has markedly
    # lower contrast than its public_test split and than faces cut from video (per-image pixel
    # std 37 vs 53), so a model must not depend on a face's contrast or brightness.
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
    logits = layers.Dense(len(EMOTIONS), name="logits")(x)
    return keras.Model(inputs, logits, name="fer_vgg")
