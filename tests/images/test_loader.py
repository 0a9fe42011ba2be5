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


@pytest.mark.parametrize("image_size", [True, np.True_, 32.0, "32"])
def test_an_image_size_that_is_not_a_whole_number_is_refused_by_name(image_size):
    from imageclef_concepts.images._sources import check_image_size

    with pytest.raises(TypeError, match=r"image_size must be a whole number of pixels"):
        check_image_size(image_size)
    with pytest.raises(TypeError, match=r"--image-size .*: --image-size must be"):
        check_image_size(image_size, name="--image-size")
