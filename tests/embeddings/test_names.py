"""Encoders by name, and kept in model files by identity."""

import functools
import os

import pytest

from imageclef_concepts import BackboneEmbedding
from imageclef_concepts.embeddings._names import (
    encoder_description,
    encoder_from_description,
    encoder_names,
    make_encoder,
)
from imageclef_concepts.keras import _embedding
from imageclef_concepts.models import ModelFileError

from ..doubles import CountingEncoder
from .onnx_models import tiny_models, write_vit  # noqa: F401 (fixture)


def test_names_give_encoders_and_unknown_names_list_the_known():
    assert {"densenet121", "resnet50", "efficientnetb0"} <= set(encoder_names())
    encoder = make_encoder("resnet50", image_size=32, weights=None)
    assert isinstance(encoder, BackboneEmbedding) and encoder.image_size == 32
    with pytest.raises(ValueError, match="unknown encoder 'biomedclip-typo'.*densenet121"):
        make_encoder("biomedclip-typo")


def test_a_description_holds_the_identity_and_is_rebuilt_and_checked(tmp_path):
    encoder = BackboneEmbedding("efficientnetb0", 32, weights=None, image_store=tmp_path)
    described = encoder_description(encoder)
    assert described["identity"] == encoder.embedding_identity()
    assert described["params"]["image_store"] is None  # a local folder is never saved
    rebuilt = encoder_from_description(described, "m.zip")
    assert rebuilt.embedding_identity() == encoder.embedding_identity()
    with pytest.raises(ModelFileError, match="m.zip: the model was fitted on the embeddings"):
        encoder_from_description({**described, "identity": "other weights"}, "m.zip")
    with pytest.raises(ModelFileError, match="not one the library rebuilds"):
        encoder_from_description({**described, "encoder": "os.system"}, "m.zip")
    with pytest.raises(TypeError, match="cannot be saved in a model file"):
        encoder_description(CountingEncoder())


def test_backbone_identity_follows_weights_and_settings():
    a = BackboneEmbedding("efficientnetb0", 32, weights=None)
    assert a.embedding_identity() == BackboneEmbedding(
        "efficientnetb0", 32, weights=None).embedding_identity()  # random, yet reproducible
    assert a.embedding_identity() != BackboneEmbedding(
        "efficientnetb0", 40, weights=None).embedding_identity()
    kernel = a._network().trainable_weights[0]
    kernel.assign(kernel + 1.0)  # the same settings, other weights (not through the API:
    vars(a).pop("_identity", None)  # the identities of settings kept in the process forgotten)
    _embedding._IDENTITIES.clear()
    changed = a.embedding_identity()
    _embedding._IDENTITIES.clear()
    assert changed != BackboneEmbedding("efficientnetb0", 32, weights=None).embedding_identity()
    _embedding._IDENTITIES.clear()


def _write_weights(path, seed):
    """A MobileNetV3-Small's random weights of ``seed`` saved at ``path`` (32 px inputs)."""
    import keras

    keras.utils.set_random_seed(seed)
    keras.applications.MobileNetV3Small(include_top=False, pooling="avg", weights=None,
                                        input_shape=(32, 32, 3)).save_weights(path)


@pytest.mark.slow  # encoders built and run over a weights file: several seconds
def test_a_weights_file_rewritten_under_a_live_encoder_never_lends_its_old_identity(tmp_path):
    # An encoder that built its network before its weights file was rewritten (fine-tuned
    # weights saved again) kept its identity; asked again, it filed that old identity
    # under the file's new version, and a new encoder of the new weights then got it: an
    # embedding store would have served the old weights' embeddings for the new ones.
    import numpy as np

    weights = str(tmp_path / "tuned.weights.h5")
    write = functools.partial(_write_weights, weights)

    write(1)
    live = BackboneEmbedding("mobilenetv3small", 32, weights=weights)
    before = live.embedding_identity()
    write(2)
    live.embedding_identity()  # asked again, after the rewrite
    new = BackboneEmbedding("mobilenetv3small", 32, weights=weights).embedding_identity()
    _embedding._IDENTITIES.clear()
    assert new == BackboneEmbedding("mobilenetv3small", 32, weights=weights).embedding_identity()
    assert new != before
    _embedding._IDENTITIES.clear()
    assert np.isfinite(live.embed(np.zeros((1, 32, 32, 3), np.uint8))).all()


@pytest.mark.slow  # encoders built and run over a weights file: several seconds
def test_a_live_encoder_never_takes_the_identity_of_weights_it_did_not_load(tmp_path):
    # The other order: a new encoder of the rewritten weights filed the new identity first;
    # the live encoder (its network built from the old weights) then took it, so an
    # embedding store served it the new weights' rows and filed its old-weights rows under
    # the new identity, where every encoder of the new weights read them
    weights = str(tmp_path / "tuned.weights.h5")
    write = functools.partial(_write_weights, weights)

    _embedding._IDENTITIES.clear()
    write(1)
    live = BackboneEmbedding("mobilenetv3small", 32, weights=weights)
    before = live.embedding_identity()
    write(2)
    new = BackboneEmbedding("mobilenetv3small", 32, weights=weights).embedding_identity()
    assert new != before
    assert live.embedding_identity() == before  # what its network embeds with
    _embedding._IDENTITIES.clear()


@pytest.mark.slow  # an encoder built over a weights file: several seconds
def test_a_weights_file_named_by_a_path_is_the_file_named_by_its_str(tmp_path):
    # BackboneEmbedding(weights=Path(...)) was refused ("must be a str among {'imagenet'}, an
    # instance of 'str' or None"), while ConceptCNNClassifier takes a Path.
    import numpy as np
    from sklearn.base import clone

    weights = tmp_path / "tuned.weights.h5"
    _write_weights(weights, 1)
    _embedding._IDENTITIES.clear()
    by_path = BackboneEmbedding("mobilenetv3small", 32, weights=weights)
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    embedded = by_path.embed(images)
    by_str = BackboneEmbedding("mobilenetv3small", 32, weights=str(weights))
    np.testing.assert_allclose(by_str.embed(images), embedded, atol=1e-6)
    assert by_path.embedding_identity() == by_str.embedding_identity()
    assert clone(by_path).weights == weights
    _embedding._IDENTITIES.clear()


def test_foundation_models_are_named_and_their_settings_checked(tiny_models, tmp_path):  # noqa: F811
    from imageclef_concepts import FoundationEncoder

    assert {"biomedclip", "rad-dino"} <= set(encoder_names())
    from imageclef_concepts.keras import BACKBONES

    assert encoder_names()[:len(BACKBONES)] == tuple(BACKBONES)  # the backbones first
    path = write_vit(tmp_path / "tiny.onnx")
    encoder = make_encoder("tiny", weights=path, batch_size=4)
    assert isinstance(encoder, FoundationEncoder)
    assert (encoder.model, encoder.weights, encoder.batch_size) == ("tiny", path, 4)
    assert make_encoder("tiny", weights=None).weights == "random"  # None: random, as backbones
    with pytest.raises(ValueError, match="weights='imagenet': the tiny encoder needs its own"):
        make_encoder("tiny")
    with pytest.raises(ValueError, match="image_size=64: the tiny encoder sees images at"):
        make_encoder("tiny", weights=path, image_size=64)
    assert make_encoder("tiny", weights=path, image_size=32).model == "tiny"  # its own size


def test_a_retrieval_model_of_a_foundation_encoder_is_saved_by_identity(
        tiny_models, tmp_path):  # noqa: F811
    import numpy as np

    from imageclef_concepts import ConceptKNNClassifier, FoundationEncoder

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    y = [["C1"], ["C2"], ["C1", "C2"], ["C1"], ["C2"], ["C1"]]
    path = write_vit(tmp_path / "tiny.onnx")
    model = ConceptKNNClassifier(2, embedding=FoundationEncoder("tiny", path)).fit(images, y)
    model.save(tmp_path / "knn.zip")
    assert os.path.getsize(tmp_path / "knn.zip") < os.path.getsize(path)  # no weights inside
    loaded = ConceptKNNClassifier.load(tmp_path / "knn.zip")
    np.testing.assert_allclose(loaded.predict_proba(images), model.predict_proba(images))
    write_vit(path, seed=2)  # other weights at the same path: not the model's encoder
    with pytest.raises(ModelFileError, match="fitted on the embeddings"):
        ConceptKNNClassifier.load(tmp_path / "knn.zip")
