"""The named models' preprocessing: consistent with their architectures."""

import pytest

from imageclef_concepts.embeddings._presets import CLIP_MEAN, PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_is_consistent(name):
    preset = PRESETS[name]
    assert 0 < preset.crop <= preset.resize
    assert preset.resample in ("bicubic", "bilinear")
    assert all(0 < s < 1 for s in preset.std) and all(0 < m < 1 for m in preset.mean)
    if preset.architecture:
        a = preset.architecture
        assert a["image_size"] == preset.crop and preset.crop % a["patch"] == 0
        assert (a["projection"] or a["width"]) == preset.n_features


def test_biomedclip_is_a_vit_b16_at_224_with_clip_statistics_and_512_features():
    preset = PRESETS["biomedclip"]
    assert (preset.resize, preset.crop, preset.resample) == (224, 224, "bicubic")
    assert preset.mean == CLIP_MEAN and preset.n_features == 512
    assert preset.architecture["patch"] == 16 and preset.architecture["depth"] == 12


def test_the_preprocessing_recorded_names_every_step():
    described = PRESETS["dinov2-base"].preprocessing()
    assert set(described) == {"resize", "crop", "resample", "mean", "std", "channel_order",
                              "layout", "resize_mode"}
