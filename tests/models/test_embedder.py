"""The image embedding transformers as scikit-learn transformers: names, pandas output."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from imageclef_concepts import BackboneEmbedding, FoundationEncoder

from ..embeddings.onnx_models import tiny_models  # noqa: F401 (a fixture)

pytest.importorskip("onnxruntime", reason="FoundationEncoder runs on ONNX Runtime (extra onnx)")

# A random ViT of BiomedCLIP's kind, small ("tiny": 2 blocks of width 32; a ViT-B/16 takes
# 15 s to build here), and a Keras backbone.
_ENCODERS = {"FoundationEncoder": lambda: FoundationEncoder("tiny", weights="random",
                                                            batch_size=2),
             "BackboneEmbedding": lambda: BackboneEmbedding("mobilenetv3small", image_size=32,
                                                            weights=None)}


@pytest.mark.usefixtures("tiny_models")
@pytest.mark.parametrize("kind", list(_ENCODERS))
def test_pandas_output_names_every_feature_and_keeps_the_vectors(kind):
    pandas = pytest.importorskip("pandas")
    encoder = _ENCODERS[kind]()
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    plain = encoder.fit_transform(images)
    names = encoder.get_feature_names_out()
    assert len(names) == plain.shape[1] and len(set(names)) == len(names)
    assert names[0] == f"{type(encoder).__name__.lower()}0"
    frame = encoder.set_output(transform="pandas").fit_transform(images)
    assert isinstance(frame, pandas.DataFrame) and list(frame.columns) == list(names)
    np.testing.assert_allclose(frame.to_numpy(), plain, rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("tiny_models")
def test_a_pipeline_names_the_features_it_passes_on():
    encoder = FoundationEncoder("tiny", weights="random", batch_size=2)
    pipeline = make_pipeline(encoder, StandardScaler()).set_output(transform="pandas")
    out = pipeline.fit_transform(np.zeros((2, 32, 32, 3), dtype=np.uint8))
    assert list(out.columns) == list(encoder.get_feature_names_out())


def test_a_bad_parameter_is_named_before_the_names_are_counted():
    with pytest.raises(ValueError, match="batch_size"):
        FoundationEncoder("vit-b16", weights="random", batch_size=0).get_feature_names_out()
