"""MLflow: every estimator kind logged in MLflow's default (skops) format, served by pyfunc.

The tracking store is a SQLite file in a temporary folder, never a server.
Logging a model infers its requirements in a subprocess (seconds each): the
logging tests run with ``-m slow``;
tests/models/test_skops.py checks every kind's skops file without MLflow.
"""

import mlflow
import mlflow.sklearn
import pytest
from mlflow.exceptions import MlflowException
from sklearn.model_selection import GridSearchCV

from imageclef_concepts import (
    ConceptCNNClassifier,
    MostFrequentConcepts,
    ThresholdTuner,
    imageclef_f1,
    make_concept_images,
    skops_trusted_types,
)
from tests.models.test_skops import KINDS


@pytest.fixture(scope="module")
def data():
    images = make_concept_images(30, 4, 16, random_state=0)
    return images.images, [";".join(concepts) for concepts in images.concepts]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """A SQLite store and experiments whose artifacts are in a temporary folder
    (MLflow's default artifact root is ./mlruns in the working directory)."""
    folder, previous = tmp_path_factory.mktemp("mlflow"), mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    experiments = {name: mlflow.create_experiment(name, (folder / name).as_uri())
                   for name in ("models", "autolog")}
    mlflow.set_experiment(experiment_id=experiments["models"])
    yield experiments
    mlflow.set_tracking_uri(previous)


def _cnn(X, y):
    return ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=1,
                                random_state=0).fit(X, y)


MODELS = {"cnn": _cnn,
          "tuned_cnn": lambda X, y: ThresholdTuner(_cnn(X, y), cv="prefit", refit=False,
                                                   thresholds=5).fit(X, y),
          **KINDS}


@pytest.mark.slow  # 12-25 s each, the k-NN's too (its requirements inferred in a subprocess)
@pytest.mark.parametrize("kind", list(MODELS))
def test_log_model_in_the_default_format_then_pyfunc_predicts_the_same(tracking, data, kind):
    # Before: the network (alone or inside a tuner or an ensemble) "could not be
    # serialized in the skops format" (skops' RecursionError).
    X, y = data
    model = MODELS[kind](X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model",
                                        skops_trusted_types=skops_trusted_types())
    assert info.flavors["sklearn"]["serialization_format"] == "skops"  # MLflow's default
    served = mlflow.pyfunc.load_model(info.model_uri)
    assert list(served.predict(X)) == list(model.predict(X))
    assert mlflow.sklearn.load_model(info.model_uri).predict_concepts(X) == \
        model.predict_concepts(X)


def test_without_the_trusted_types_mlflow_names_the_parameter_to_set(tracking, data):
    X, y = data
    with mlflow.start_run(), pytest.raises(MlflowException, match="skops_trusted_types"):
        mlflow.sklearn.log_model(MostFrequentConcepts(k=1).fit(X, y), name="model")


def test_autolog_logs_the_grid_search_around_an_estimator_not_its_plain_fit(tracking, data):
    # MLflow patches scikit-learn's own classes only (see the FAQ): a plain fit of
    # a library estimator logs nothing, GridSearchCV around it logs its search.
    X, y = data
    mlflow.set_experiment(experiment_id=tracking["autolog"])
    mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)
    try:
        MostFrequentConcepts(k=2).fit(X, y)
        assert mlflow.search_runs([tracking["autolog"]]).empty
        GridSearchCV(MostFrequentConcepts(), {"k": [1, 2]}, cv=2, scoring=imageclef_f1).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
        mlflow.set_experiment(experiment_id=tracking["models"])
    runs = mlflow.search_runs([tracking["autolog"]])
    parent = runs[runs["params.best_k"].notna()].iloc[0]
    assert parent["params.best_k"] in ("1", "2") and 0 <= parent["metrics.best_cv_score"] <= 1
