"""What a user's X is: a Series or a one-column table of paths, one path refused."""

import numpy as np
import pytest
from PIL import Image

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptKNNClassifier,
    ThresholdTuner,
    imageclef_f1_score,
)

from ..conftest import TINY
from .test_sources import _save


def test_a_pandas_series_of_paths_and_a_dataframe_column_of_concepts(tmp_path, tiny_images):
    import pandas as pd
    frame = pd.DataFrame({
        "path": [_save(Image.fromarray(image), tmp_path / f"{i}.png")
                 for i, image in enumerate(tiny_images.images)],
        "concepts": [";".join(c) for c in tiny_images.concepts]}, index=range(100, 140))
    cnn = ConceptCNNClassifier(**{**TINY, "epochs": 1}).fit(frame["path"], frame["concepts"])
    from_lists = ConceptCNNClassifier(**{**TINY, "epochs": 1}).fit(
        list(frame["path"]), list(frame["concepts"]))
    assert list(cnn.classes_) == list(from_lists.classes_)
    np.testing.assert_allclose(cnn.predict_proba(frame["path"]),
                               from_lists.predict_proba(list(frame["path"])), atol=1e-6)
    assert len(cnn.predict_concepts(frame["path"].iloc[:5])) == 5
    # Cross-validation indexes the Series by position, whatever its index.
    tuner = ThresholdTuner(ConceptKNNClassifier(n_neighbors=3), cv=2, thresholds=5)
    tuner.fit(frame["path"], frame["concepts"])
    score = imageclef_f1_score(frame["concepts"], tuner.predict(frame["path"]))
    assert score == imageclef_f1_score(list(frame["concepts"]), tuner.predict(list(frame["path"])))


def test_a_one_column_table_of_paths_is_its_column_everywhere(tmp_path, tiny_images):
    import pandas as pd

    from imageclef_concepts import ImageLoader, MostFrequentConcepts

    table = pd.DataFrame({"path": [_save(Image.fromarray(image), tmp_path / f"{i}.png")
                                   for i, image in enumerate(tiny_images.images)],
                          "ID": range(40)}, index=range(100, 140))
    y = [";".join(c) for c in tiny_images.concepts]
    np.testing.assert_array_equal(ImageLoader(image_size=32).transform(table[["path"]]),
                                  tiny_images.images)
    for model in (ConceptKNNClassifier(3), MostFrequentConcepts(k=1),
                  ThresholdTuner(ConceptKNNClassifier(3), cv=2, thresholds=5)):
        from_table = model.fit(table[["path"]], y).predict_proba(table[["path"]].iloc[5:9])
        np.testing.assert_array_equal(
            from_table, model.fit(list(table["path"]), y).predict_proba(table["path"][5:9]))
    cnn = ConceptCNNClassifier(**{**TINY, "epochs": 1}).fit(table[["path"]], y)
    np.testing.assert_allclose(cnn.predict_proba(table[["path"]]),
                               cnn.predict_proba(list(table["path"])), atol=1e-6)
    # A table of several columns: which one holds the images is the user's to say.
    for model in (ConceptKNNClassifier(3), ConceptCNNClassifier(**TINY)):
        with pytest.raises(ValueError, match=r"2 columns \('path', 'ID'\).*X\['path'\]"):
            model.fit(table, y)
    with pytest.raises(ValueError, match=r"2 columns \('path', 'ID'\)"):
        ImageLoader(image_size=32).transform(table)


def test_a_single_path_is_refused():
    with pytest.raises(ValueError, match="not one path"):
        ConceptCNNClassifier(**TINY).fit("image.jpg", np.eye(1, dtype=int))


@pytest.mark.parametrize("as_array", [False, True])
def test_image_paths_given_as_bytes_are_refused_naming_them(as_array):
    # A folder listed with os.listdir(b"...") gives bytes: they were taken for pixels
    # ("X must be an array of image pixels ...; got dtype |S9").
    from imageclef_concepts import ImageLoader

    paths = [b"caf\xe9.jpg", b"b.jpg"]
    X = np.array(paths) if as_array else paths
    with pytest.raises(ValueError, match=r"^X holds image paths as bytes \(b'caf\\xe9.jpg'\): "
                                         r"give them as str, os.fsdecode\(path\)"):
        ImageLoader(image_size=32).fit_transform(X)
    with pytest.raises(ValueError, match=r"^X holds image paths as bytes"):
        ConceptCNNClassifier(**TINY).fit(X, np.eye(2, dtype=int))


@pytest.mark.parametrize("kind", [list, tuple, "object array"])
def test_bytes_among_str_paths_are_refused_naming_the_first(kind):
    # Only the first item was looked at: ["a.jpg", b"caf\xe9.jpg"] was "X must be an array
    # of image pixels ...; got dtype <U13", naming nothing of the bytes path.
    from imageclef_concepts import ImageLoader

    paths = ["a.jpg", b"caf\xe9.jpg"]
    X = np.array(paths, dtype=object) if kind == "object array" else kind(paths)
    with pytest.raises(ValueError, match=r"^X holds image paths as bytes \(b'caf\\xe9.jpg'\)"):
        ImageLoader(image_size=32).fit_transform(X)
