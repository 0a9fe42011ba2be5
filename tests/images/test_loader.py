"""ImageLoader: image files decoded into arrays, in a cached pipeline."""

import numpy as np
import pytest
from PIL import Image
from sklearn.pipeline import Pipeline

from imageclef_concepts import ConceptCNNClassifier, ImageLoader

from ..conftest import TINY
from ..images.test_sources import _save


def test_image_loader_in_a_cached_pipeline(tmp_path, tiny_images, tiny_indicator):
    paths = [_save(Image.fromarray(image), tmp_path / f"{i}.png")
             for i, image in enumerate(tiny_images.images)]
    loaded = ImageLoader(image_size=32).fit_transform(paths)
    np.testing.assert_array_equal(loaded, tiny_images.images)
    pipeline = Pipeline([("load", ImageLoader(image_size=32)),
                         ("cnn", ConceptCNNClassifier(**TINY))], memory=str(tmp_path / "cache"))
    pipeline.fit(paths, tiny_indicator)
    assert pipeline.predict_proba(paths).shape == (40, 5)
    with pytest.raises(ValueError, match="sequence of image paths"):
        ImageLoader().transform(np.zeros((2, 4, 4, 3)))
