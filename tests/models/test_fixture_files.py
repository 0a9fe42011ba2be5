"""Model files written by earlier versions load and predict exactly as they did.

``fixtures/`` holds one file of every kind the library writes, saved by
``fixtures/make_fixtures.py`` with the library as it was before its modules
moved into subpackages, beside what each file predicted then. A class is found
by its public name, never by the private module it was defined in when saved.
"""

import json
from pathlib import Path

import numpy as np
import pytest

try:
    from imageclef_concepts.recipes._workflows import load_model
except ImportError:  # before the subpackages
    from imageclef_concepts.recipes._workflows import load_model

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_file_saved_before_the_move_loads_and_predicts_as_then(name):
    X = np.load(FIXTURES / "X.npy")
    model = load_model(FIXTURES / name, allow_pickle=name.endswith(".joblib"))
    assert type(model).__name__ == EXPECTED[name]["class"]
    if name == "cnn.keras":  # saved when decoding threads defaulted to 2: kept as saved
        assert model.get_params()["n_jobs"] == 2
    # To float32's rounding: distances and products go through BLAS, whose kernels (and so
    # the last bit) differ between CPUs; a changed model differs far more.
    np.testing.assert_allclose(np.asarray(model.predict_proba(X)).tolist(),
                               EXPECTED[name]["proba"], rtol=1e-6, atol=1e-6)
    assert [list(c) for c in model.predict(X)] == EXPECTED[name]["concepts"]
