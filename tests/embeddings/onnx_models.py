"""Tiny same-architecture encoders with random weights, for the embeddings tests."""

import pytest

from imageclef_concepts.embeddings._presets import PRESETS, Preset, _vit
from imageclef_concepts.embeddings._random import random_vit

#: A ViT of BiomedCLIP's architecture (pre-norm blocks, CLS token, linear projection),
#: 8 px patches on a 32 px crop of 40 px images, 2 blocks of width 32.
TINY_VIT = _vit(8, 32, width=32, depth=2, heads=2, projection=16)
TINY = Preset("tests/tiny-vit", 40, 32, "bicubic", (0.4, 0.5, 0.6), (0.2, 0.25, 0.3),
              ("image_embeds",), 16, TINY_VIT)
TINY_TOKENS = Preset("tests/tiny-tokens", 32, 32, "bilinear", (0.5,) * 3, (0.5,) * 3,
                     ("last_hidden_state",), 32, {**TINY_VIT, "projection": None})


@pytest.fixture
def tiny_models(monkeypatch):
    """The presets "tiny" and "tiny-tokens" known to FoundationEncoder for one test."""
    monkeypatch.setitem(PRESETS, "tiny", TINY)
    monkeypatch.setitem(PRESETS, "tiny-tokens", TINY_TOKENS)
    return PRESETS


def write_vit(path, architecture=TINY_VIT, seed=1, output="image_embeds", tokens=False):
    """Write a random ViT as an ONNX file; return its path as a string."""
    with open(path, "wb") as handle:
        handle.write(random_vit(architecture, output, seed=seed, tokens=tokens))
    return str(path)
