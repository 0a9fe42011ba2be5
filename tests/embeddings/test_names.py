"""Encoders by name, and kept in model files by identity."""

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
from .onnx_models import tiny_models  # noqa: F401 (fixture)


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


def test_foundation_models_are_encoders_by_name(tiny_models):  # noqa: F811
    from imageclef_concepts import FoundationEncoder

    assert {"biomedclip", "rad-dino", "tiny"} <= set(encoder_names())
    encoder = make_encoder("tiny", weights="w.onnx", batch_size=4)
    assert isinstance(encoder, FoundationEncoder) and encoder.batch_size == 4
    with pytest.raises(ValueError, match="tiny sees images at the size its authors chose"):
        make_encoder("tiny", image_size=32)


def test_a_knn_on_a_foundation_encoder_saves_by_identity_and_loads(tmp_path,
                                                                    tiny_models):  # noqa: F811
    """The docs: heads on an encoder save with its identity, never its weights. A
    FoundationEncoder could not be saved in a model file at all (TypeError)."""
    import numpy as np

    from imageclef_concepts import ConceptKNNClassifier, FoundationEncoder

    from .onnx_models import write_vit

    weights = write_vit(tmp_path / "tiny.onnx")
    X = np.random.default_rng(0).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    knn = ConceptKNNClassifier(3, embedding=FoundationEncoder("tiny", weights=weights))
    knn.fit(X, [["C1"], ["C2"]] * 3).save(tmp_path / "knn.zip")
    loaded = ConceptKNNClassifier.load(tmp_path / "knn.zip")
    np.testing.assert_array_equal(loaded.predict_proba(X), knn.predict_proba(X))
    write_vit(tmp_path / "tiny.onnx", seed=5)  # other weights at the same path
    with pytest.raises(ModelFileError, match="fitted on the embeddings of"):
        ConceptKNNClassifier.load(tmp_path / "knn.zip")
