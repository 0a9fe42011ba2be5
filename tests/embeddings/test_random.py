"""random_vit: the ViT image towers with random weights that tests and timings run."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from imageclef_concepts.embeddings._random import random_vit

from .onnx_models import TINY_VIT


def _run(model, images):
    session = ort.InferenceSession(model)
    return session.run(None, {"pixel_values": images})[0]


def test_the_same_seed_builds_the_same_bytes_and_another_seed_others():
    assert random_vit(TINY_VIT, seed=4) == random_vit(TINY_VIT, seed=4)
    assert random_vit(TINY_VIT, seed=4) != random_vit(TINY_VIT, seed=5)


def test_outputs_follow_the_architecture():
    images = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    assert _run(random_vit(TINY_VIT), images).shape == (3, 16)  # projected CLS token
    plain = {**TINY_VIT, "projection": None, "ln_pre": True, "layer_scale": True}
    assert _run(random_vit(plain), images).shape == (3, 32)
    tokens = _run(random_vit(plain, "last_hidden_state", tokens=True), images)
    assert tokens.shape == (3, 1 + (32 // 8) ** 2, 32)  # CLS + 16 patches
    np.testing.assert_allclose(tokens[:, 0], _run(random_vit(plain), images), atol=1e-5)


@pytest.mark.slow  # a full-size ViT-B/16, built: 11 s
def test_a_vit_b16_has_the_size_of_biomedclips_tower():
    from imageclef_concepts.embeddings._presets import PRESETS

    model = onnx.load_from_string(random_vit(PRESETS["biomedclip"].architecture))
    n_parameters = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    # timm's vit_base_patch16_224 without its head (85.8 M) + the 768 x 512 projection
    assert 86.0e6 < n_parameters < 86.6e6
