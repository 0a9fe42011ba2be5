"""Values outside their range are refused with a message naming them."""

import os

import numpy as np
import pytest
from PIL import Image

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    DecisionRule,
    ImageDecodeError,
    MostFrequentConcepts,
    ThresholdTuner,
    decode_image,
)
from imageclef_concepts.cli._main import main

X = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
Y = ["C1", "C1;C2", "C2", "C1", "C2", "C1;C2"]
SMALL = dict(image_size=16, filters=(2,), dense_units=(4,), epochs=1, random_state=0)


@pytest.mark.parametrize("command", ["train", "predict"])
@pytest.mark.parametrize("value", ["2", "inf", "-1", "nan"])
def test_cli_threshold_outside_0_1_is_refused(command, value, tmp_path, capsys):
    args = {"train": ["train", "--images", str(tmp_path), "--concepts", str(tmp_path / "c"),
                      "--output", str(tmp_path / "m.keras")],
            "predict": ["predict", "--model", str(tmp_path / "m.keras"), "--images",
                        str(tmp_path), "--output", str(tmp_path / "run.tsv")]}[command]
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--threshold", value])
    assert stopped.value.code == 2
    assert "probability in [0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("threshold", [2.0, -0.5, DecisionRule([0.2, 1.5])])
def test_api_threshold_outside_0_1_is_refused_at_fit_and_predict(threshold):
    with pytest.raises(ValueError, match="threshold"):
        ConceptKNNClassifier(1, pixel_size=4, threshold=threshold).fit(X, Y)
    with pytest.raises(ValueError, match="threshold"):
        ConceptEnsemble([("top", MostFrequentConcepts(k=1))], threshold=threshold).fit(X, Y)
    fitted = ConceptKNNClassifier(1, pixel_size=4).fit(X, Y)
    with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
        fitted.set_params(threshold=threshold).predict(X)


@pytest.mark.parametrize("weights", [[1, -1], [np.nan, 1], [np.inf, 1], [0, 0]])
def test_ensemble_weights_must_be_finite_non_negative_with_a_positive_sum(weights):
    ensemble = ConceptEnsemble([("a", MostFrequentConcepts(k=1)),
                                ("b", MostFrequentConcepts(k=2))], weights=weights)
    with pytest.raises(ValueError, match="weights must be finite and non-negative"):
        ensemble.fit(X, Y)


@pytest.mark.parametrize("weight", [-1.0, np.nan])
def test_sample_weight_must_be_finite_and_non_negative(weight):
    sample_weight = np.ones(len(X))
    sample_weight[0] = weight
    with pytest.raises(ValueError, match="(?i)negative|NaN"):
        ConceptCNNClassifier(**SMALL).fit(X, Y, sample_weight=sample_weight)


def test_a_weights_file_with_the_papers_network_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no backbone|has none"):
        ConceptCNNClassifier(**SMALL, weights=str(tmp_path / "nonexistent.h5")).fit(X, Y)


def test_tuning_on_nothing_or_on_unreadable_images_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        ThresholdTuner(MostFrequentConcepts(k=1), cv="prefit", refit=False).fit(X[:0], [])

    class Unreadable(MostFrequentConcepts):
        def predict_proba(self, X):
            return np.full(super().predict_proba(X).shape, np.nan)

    model = Unreadable(k=1).fit(X, Y)
    with pytest.raises(ValueError, match="all NaN"):
        ThresholdTuner(model, cv="prefit", refit=False).fit(X, Y)


@pytest.mark.slow
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_float_image_with_non_finite_pixels_is_a_bad_file(tmp_path, bad):
    pixels = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    pixels[3, 3] = bad
    path = os.path.join(tmp_path, "scan.tif")
    Image.fromarray(pixels, mode="F").save(path)
    with pytest.raises(ImageDecodeError, match="scan.tif.*NaN or infinite"):
        decode_image(path, 16)
    good = os.path.join(tmp_path, "good.png")
    Image.fromarray(X[0]).save(good)
    model = ConceptCNNClassifier(**SMALL, on_error="skip").fit([good] * 5 + [path], Y)
    with pytest.warns(UserWarning, match="scan.tif"):
        probabilities = model.predict_proba([good, path])
    assert np.isnan(probabilities[1]).all() and not np.isnan(probabilities[0]).any()


@pytest.mark.parametrize("pos_weight, message", [
    ([np.nan, 1, 1], "got nan among 3 values"), ([np.inf, 1, 1], "got inf"),
    (1e39, "got 1e[+]39"), ([-1, 1, 1], "got -1"), ([0, 0, 0], "got 0"),
    ([1, 2], "pos_weight has 2 values for 3 concepts"),
    ([[1, 2, 3]], "one number per concept"), ([1 + 0j, 1, 1], "real numbers"),
])
def test_pos_weight_must_be_positive_and_finite_in_float32(pos_weight, message):
    from imageclef_concepts.models._ranges import check_pos_weight

    with pytest.raises(ValueError, match=message):
        check_pos_weight(pos_weight, 3)
    assert check_pos_weight([1, 2.5, 3e38], 3).tolist() == [1, 2.5, 3e38]
    assert check_pos_weight("balanced", 3) == "balanced" and check_pos_weight(None) is None


@pytest.mark.parametrize("sample_weight, message", [
    ([None] * 3, "missing value .None, NA. at position 0"),
    ([1.0, 1.0, None], "missing value .None, NA. at position 2"),
    ([1e39] * 3, "above 3.4e[+]38, the largest float32"),
    ([np.inf] * 3, "is infinite"), ([1, np.nan, 1], "position 1 .nan. is NaN"),
    ([1, 1, -1], "is negative"), ([0, 0, 0], "0 for every image"),
    (np.ones(3, complex), "real numbers"), (np.ones((3, 1)), "one number per image"),
    ([1, 1], "2 values for 3 images"),
])
def test_sample_weight_is_one_float32_safe_number_per_image(sample_weight, message):
    from imageclef_concepts.models._ranges import check_sample_weight

    with pytest.raises(ValueError, match=message):
        check_sample_weight(sample_weight, 3)
    assert check_sample_weight(None, 3).tolist() == [1, 1, 1]
    assert check_sample_weight([1, 2, 3e38], 3).tolist() == [1, 2, 3e38]
