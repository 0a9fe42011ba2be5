"""The image embedding transformers as scikit-learn transformers: names, pandas output."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from imageclef_concepts import BackboneEmbedding, FoundationEncoder

pytest.importorskip("onnxruntime", reason="FoundationEncoder runs on ONNX Runtime (extra onnx)")


def _encoders():
    return [FoundationEncoder("vit-b16", weights="random", batch_size=2),
            BackboneEmbedding("mobilenetv3small", image_size=32, weights=None)]


@pytest.mark.parametrize("encoder", _encoders(), ids=lambda e: type(e).__name__)
def test_pandas_output_names_every_feature_and_keeps_the_vectors(encoder):
    pandas = pytest.importorskip("pandas")
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    plain = encoder.fit_transform(images)
    names = encoder.get_feature_names_out()
    assert len(names) == plain.shape[1] and len(set(names)) == len(names)
    assert names[0] == f"{type(encoder).__name__.lower()}0"
    frame = encoder.set_output(transform="pandas").fit_transform(images)
    assert isinstance(frame, pandas.DataFrame) and list(frame.columns) == list(names)
    np.testing.assert_allclose(frame.to_numpy(), plain, rtol=1e-5, atol=1e-6)


def test_a_pipeline_names_the_features_it_passes_on():
    encoder = FoundationEncoder("vit-b16", weights="random", batch_size=2)
    pipeline = make_pipeline(encoder, StandardScaler()).set_output(transform="pandas")
    out = pipeline.fit_transform(np.zeros((2, 32, 32, 3), dtype=np.uint8))
    assert list(out.columns) == list(encoder.get_feature_names_out())


def test_a_bad_parameter_is_named_before_the_names_are_counted():
    with pytest.raises(ValueError, match="batch_size"):
        FoundationEncoder("vit-b16", weights="random", batch_size=0).get_feature_names_out()
