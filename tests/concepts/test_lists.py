"""Concept lists: a missing value (None, NaN, pandas' NA) is an image without concepts."""

import io

import numpy as np
import pandas as pd
import pytest

from imageclef_concepts import (
    ConceptEncoder,
    ConceptKNNClassifier,
    MostFrequentConcepts,
    imageclef_f1_score,
)
from imageclef_concepts.concepts._lists import is_concept_lists, split_concepts

# What pd.read_csv makes of a run-file-like table with an image without concepts.
TABLE = pd.read_csv(io.StringIO("ID,CUIs\nimage1,C1;C2\nimage2,\nimage3,C2\nimage4,C1\n"))
WRITTEN_OUT = ["C1;C2", "", "C2", "C1"]  # the same concepts, the empty cell as ""


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, np.float32("nan"), pd.NA])
def test_a_missing_value_is_no_concepts(missing):
    assert split_concepts(missing) == ()
    assert is_concept_lists([missing, "C1"])
    assert ConceptEncoder().fit(["C1", missing]).transform([missing]).tolist() == [[0]]


def test_a_read_csv_column_with_nan_reads_as_its_written_out_concepts():
    assert TABLE["CUIs"].isna().tolist() == [False, True, False, False]  # the case at hand
    for column in (TABLE["CUIs"], list(TABLE["CUIs"]), TABLE["CUIs"].astype("string")):
        encoder = ConceptEncoder().fit(column)
        np.testing.assert_array_equal(encoder.transform(column),
                                      ConceptEncoder().fit(WRITTEN_OUT).transform(WRITTEN_OUT))
    # The score leaves the image without true concepts out, as the organisers do.
    assert imageclef_f1_score(TABLE["CUIs"], ["C1;C2", "C9", "C2", "C2"]) == 2 / 3


def test_estimators_learn_from_a_column_with_nan():
    X = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    for model in (MostFrequentConcepts(k=1), ConceptKNNClassifier(1, pixel_size=4)):
        from_nan = model.fit(X, TABLE["CUIs"]).predict_proba(X)
        np.testing.assert_array_equal(from_nan, model.fit(X, WRITTEN_OUT).predict_proba(X))
        assert list(model.classes_) == ["C1", "C2"]


def test_numbers_with_nan_are_not_concept_lists():
    assert not is_concept_lists([np.nan, 1.0])  # the first other item decides
    with pytest.raises(ValueError, match="expects a sequence of concept collections"):
        ConceptEncoder().fit([np.nan, 1.0])
