"""Foundation-model encoders: images/s of each at its real size, random weights, this CPU.

The reference is the library's default k-NN embedding, DenseNet-121 at 224 px
(:class:`BackboneEmbedding`, Keras, random weights), timed in the same run:
the ratio says what a foundation encoder costs next to it. Random weights
cost what the real ones do (same architecture, same operations); the
vectors mean nothing. Usage: ``python benchmarks/run.py --only encoders``.
"""

import time

import numpy as np

from imageclef_concepts import BackboneEmbedding, FoundationEncoder
from imageclef_concepts.embeddings._presets import PRESETS

from ._timing import Row


def _images_per_second(encoder, n_images):
    images = np.random.default_rng(0).integers(0, 256, (n_images, 256, 256, 3), dtype=np.uint8)
    encoder.embed(images[:2])  # built, loaded and warmed up: not timed
    start = time.perf_counter()
    encoder.embed(images)
    return n_images / (time.perf_counter() - start)


def run(quick):
    n_images = 8 if quick else 32
    reference = _images_per_second(BackboneEmbedding("densenet121", weights=None,
                                                     batch_size=8), n_images)
    rows = []
    for name, preset in PRESETS.items():
        if not preset.architecture:
            continue  # no random build (ConvNeXt): timed with its file only
        size = preset.architecture["image_size"]
        count = max(4, n_images // (size // 224) ** 2)
        ours = _images_per_second(FoundationEncoder(name, "random", batch_size=8), count)
        rows.append(Row("encoders", f"{name} ({preset.crop} px, ONNX Runtime) vs DenseNet-121",
                        ours, reference, "images/s", ours / reference,
                        "encoder / DenseNet-121 BackboneEmbedding images/s (CPU, random weights)"))
    return rows
