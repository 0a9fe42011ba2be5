import ast
import inspect
import pickle
from collections import Counter

import joblib
import keras
import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEncoder,
    imageclef_f1,
    imageclef_f1_score,
    make_concept_images,
)


def tiny(**overrides):
    from ..conftest import TINY

    return ConceptCNNClassifier(**{**TINY, **overrides})


# --------------------------------------------------------------- the network

def test_default_network_is_the_papers_layer_by_layer():
    X = np.zeros((2, 400, 400, 3), dtype=np.uint8)
    y = [f"C{i}" for i in range(5)] + ["C5;C6"]  # 7 concepts over 6 rows
    model = ConceptCNNClassifier().initialize(np.zeros((6, 400, 400, 3), np.uint8), y).model_
    assert model.input_shape == (None, 400, 400, 3)
    layers = model.layers[1:]  # after the input layer
    assert isinstance(layers[0], keras.layers.Rescaling)
    assert layers[0].scale == pytest.approx(1 / 255)
    blocks = [layers[1 + 3 * b: 4 + 3 * b] for b in range(4)]
    for (conv, pool, dropout), filters in zip(blocks, (16, 32, 64, 128)):
        assert isinstance(conv, keras.layers.Conv2D)
        assert conv.filters == filters
        assert conv.kernel_size == (5, 5) and conv.strides == (1, 1)
        assert conv.activation is keras.activations.relu
        assert isinstance(pool, keras.layers.MaxPooling2D) and pool.pool_size == (2, 2)
        assert isinstance(dropout, keras.layers.Dropout) and dropout.rate == 0.25
    flatten, hidden1, drop1, hidden2, drop2, output = layers[13:]
    assert isinstance(flatten, keras.layers.Flatten)
    assert (hidden1.units, hidden2.units) == (128, 64)
    assert drop1.rate == drop2.rate == 0.5
    assert output.units == 7 and output.activation is keras.activations.sigmoid
    assert model.loss == "binary_crossentropy"
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    schedule = model.optimizer.learning_rate_schedule if hasattr(
        model.optimizer, "learning_rate_schedule") else model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.InverseTimeDecay)
    assert schedule.initial_learning_rate == pytest.approx(1e-4)
    assert schedule.decay_rate == pytest.approx(1e-6) and schedule.decay_steps == 1
    # legacy decay: lr / (1 + decay * step)
    assert float(schedule(1000)) == pytest.approx(1e-4 / (1 + 1e-6 * 1000))
    del X


def test_paper_defaults_are_constructor_parameters():
    params = ConceptCNNClassifier().get_params()
    assert params["image_size"] == 400 and params["filters"] == (16, 32, 64, 128)
    assert params["kernel_size"] == 5 and params["conv_dropout"] == 0.25
    assert params["learning_rate"] == 1e-4 and params["decay"] == 1e-6
    assert params["batch_size"] == 32 and params["epochs"] == 10
    assert params["threshold"] == 0.1 and params["validation_fraction"] == 0.1
    assert params["monitor"] == "val_loss"
    assert params["n_jobs"] is None  # decoding threads: one per core available


def test_decoding_threads_default_to_none_and_explicit_counts_still_work():
    from imageclef_concepts import ImageLoader

    assert ImageLoader().get_params()["n_jobs"] is None
    ConceptCNNClassifier(n_jobs=2)._validate_params()
    ConceptCNNClassifier(n_jobs=None)._validate_params()
    with pytest.raises(ValueError, match="n_jobs"):
        ConceptCNNClassifier(n_jobs=0)._validate_params()


def _documented_parameters(cls):
    """{name: (default text, option set or None)} from a numpydoc Parameters section."""
    import re

    section = cls.__doc__.split("Parameters\n    ----------\n")[1].split("Attributes\n")[0]
    entries = re.findall(r"^    (\w+) : (.*)$", section.replace("\\\n", ""), flags=re.M)
    documented = {}
    for name, kind in entries:
        default = re.search(r"default=(.*)$", kind)
        options = re.search(r"\{([^}]*)\}", kind)
        documented[name] = (default and default.group(1).strip(),
                            options and set(ast.literal_eval(f"[{options.group(1)}]")))
    return documented


def test_docstring_defaults_are_the_signatures():
    signature = inspect.signature(ConceptCNNClassifier).parameters
    documented = _documented_parameters(ConceptCNNClassifier)
    assert list(documented) == list(signature)
    for name, (default, _) in documented.items():
        assert ast.literal_eval(default) == signature[name].default, name


def test_docstring_option_lists_are_the_constraints():
    """A ``{...}`` list in the docstring is exactly what the parameter accepts;
    longer lists (backbones, Keras losses) are named by the constant holding them."""
    from sklearn.utils._param_validation import StrOptions

    documented = _documented_parameters(ConceptCNNClassifier)
    listed = {name: options for name, (_, options) in documented.items() if options}
    assert {"padding", "resample", "on_error", "pooling", "augmentation"} <= set(listed)
    for name, options in listed.items():
        constraints = ConceptCNNClassifier._parameter_constraints[name]
        accepted = {option for c in constraints if isinstance(c, StrOptions)
                    for option in c.options} | ({None} if None in constraints else set())
        assert options == accepted, name
    assert "BACKBONES" in ConceptCNNClassifier.__doc__ and "LOSSES" in ConceptCNNClassifier.__doc__


# ----------------------------------------------------------- the estimator

def test_is_a_multilabel_classifier():
    model = ConceptCNNClassifier()
    assert is_classifier(model)
    tags = model.__sklearn_tags__()
    assert tags.classifier_tags.multi_label
    assert tags.target_tags.multi_output and not tags.target_tags.single_output


def test_fit_predict_with_concept_lists(tiny_images):
    X, y = tiny_images.images, tiny_images.concepts
    model = tiny().fit(X, y)
    assert list(model.classes_) == sorted({c for cs in y for c in cs})
    proba = model.predict_proba(X)
    assert proba.shape == (40, 5) and proba.dtype == np.float32
    predicted = model.predict(X)
    assert predicted.dtype == object and predicted.shape == (40,)
    expected = [tuple(model.classes_[row >= 0.1]) for row in proba]
    assert list(predicted) == expected == model.predict_concepts(X)
    assert model.score(X, y) == pytest.approx(imageclef_f1_score(y, predicted))


def test_fit_predict_with_indicator(tiny_images, tiny_indicator):
    model = tiny().fit(tiny_images.images, tiny_indicator)
    np.testing.assert_array_equal(model.classes_, np.arange(5))
    predicted = model.predict(tiny_images.images)
    assert predicted.shape == (40, 5) and set(np.unique(predicted)) <= {0, 1}
    np.testing.assert_array_equal(predicted, model.predict_proba(tiny_images.images) >= 0.1)


def test_predict_uses_threshold(tiny_images, tiny_indicator):
    model = tiny().fit(tiny_images.images, tiny_indicator)
    proba = model.predict_proba(tiny_images.images)
    for threshold in (0.0, 0.3, 0.5, 1.0):
        model.set_params(threshold=threshold)
        np.testing.assert_array_equal(model.predict(tiny_images.images), proba >= threshold)
    assert model.set_params(threshold=0.0).predict(tiny_images.images).all()


@pytest.mark.parametrize("form", ["strings", "one_hot"])
def test_one_label_per_row_stays_multilabel(tiny_images, form):
    # scikeras would turn this into multiclass with argmax and softmax-like output.
    X = tiny_images.images[:30]
    labels = np.array(["C1", "C2", "C3"] * 10, dtype=object)
    y = labels if form == "strings" else np.eye(3, dtype=int)[np.arange(30) % 3]
    model = tiny().fit(X, y)
    assert model.model_.layers[-1].activation is keras.activations.sigmoid
    assert model.model_.output_shape == (None, 3)
    proba = model.predict_proba(X)
    assert not np.allclose(proba.sum(axis=1), 1.0)
    model.set_params(threshold=0.0)
    predicted = model.predict(X)
    n_predicted = [len(p) for p in predicted] if form == "strings" else predicted.sum(axis=1)
    assert set(n_predicted) == {3}  # several concepts per image: not argmax


def test_grayscale_float_and_other_sizes_are_accepted(tiny_images, tiny_indicator):
    grey = tiny_images.images[..., 0]
    model = tiny().fit(grey, tiny_indicator)
    proba = model.predict_proba(grey)
    np.testing.assert_allclose(model.predict_proba(grey[..., None]), proba, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(tiny_images.images), proba, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(tiny_images.images / 255.0), proba, atol=1e-5)
    larger = np.repeat(np.repeat(tiny_images.images, 2, axis=1), 2, axis=2)  # 64 x 64
    assert model.predict_proba(larger).shape == (40, 5)


@pytest.mark.slow
def test_same_seed_same_model_other_seed_other_model(tiny_images, tiny_indicator):
    X = tiny_images.images
    first = tiny(random_state=3).fit(X, tiny_indicator).predict_proba(X)
    again = tiny(random_state=3).fit(X, tiny_indicator).predict_proba(X)
    other = tiny(random_state=4).fit(X, tiny_indicator).predict_proba(X)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-4


def test_history_and_best_epoch_restored(tiny_images, tiny_indicator):
    X, Y = tiny_images.images, tiny_indicator
    model = tiny(epochs=4, learning_rate=3e-3, decay=0.0)
    model.fit(X[:30], Y[:30], validation_data=(X[30:], Y[30:]))
    assert set(model.history_) == {"loss", "val_loss"}
    assert len(model.history_["loss"]) == 4
    best = int(np.argmin(model.history_["val_loss"]))
    assert model.best_epoch_ == best
    # The kept weights are the best epoch's: evaluating them gives the best val_loss.
    loss = model.model_.evaluate(X[30:], Y[30:].astype("float32"), verbose=0)
    assert loss == pytest.approx(model.history_["val_loss"][best], rel=1e-4)


def test_validation_fraction_and_none(tiny_images, tiny_indicator):
    X, Y = tiny_images.images, tiny_indicator
    assert "val_loss" in tiny(validation_fraction=0.25).fit(X, Y).history_
    model = tiny(validation_fraction=None).fit(X, Y)
    assert "val_loss" not in model.history_ and model.best_epoch_ is None


def test_monitor_any_compiled_metric(tiny_images, tiny_indicator):
    model = tiny(metrics=["auc"], monitor="val_auc").fit(tiny_images.images, tiny_indicator)
    assert model.best_epoch_ == int(np.argmax(model.history_["val_auc"]))


def test_partial_fit_adds_one_epoch(tiny_images, tiny_indicator):
    X, Y = tiny_images.images, tiny_indicator
    model = tiny()
    model.partial_fit(X, Y)
    network = model.model_
    model.partial_fit(X, Y)
    assert model.model_ is network
    assert len(model.history_["loss"]) == model.current_epoch == 2


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_partial_fit_takes_classes_as_scikit_learn_incremental_classifiers_do(tiny_images):
    rare = tiny_images.concept_names[-1]  # the first batch lacks it
    rows = [row for row, concepts in enumerate(tiny_images.concepts) if rare not in concepts]
    X, y = tiny_images.images[rows[:16]], [";".join(tiny_images.concepts[r]) for r in rows[:16]]
    seen = sorted({c for r in rows[:16] for c in tiny_images.concepts[r]})
    every = np.unique([";".join(c) for c in tiny_images.concepts])  # as Optuna passes it
    unseen = sorted({c for concepts in tiny_images.concepts for c in concepts} - set(seen))
    assert rare in unseen
    model = tiny(epochs=1).partial_fit(X, y, classes=every)
    assert list(model.classes_) == sorted(seen + unseen)  # an output for it all the same
    assert model.predict_proba(X).shape == (16, len(seen) + len(unseen))
    model.partial_fit(X, y, every)  # positional, as scikit-learn's signature has it
    assert model.current_epoch == 2
    with pytest.raises(ValueError, match=f"classes_, fixed at its first call; these lack "
                                         f"{unseen[0]}"):
        model.partial_fit(X, y, classes=seen)
    with pytest.raises(ValueError, match=f"y holds 1 concept.*not: {seen[0]}"):
        tiny().partial_fit(X, y, classes=seen[1:])
    with pytest.raises(ValueError, match="must name concepts"):
        tiny().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="min_count=2 and max_labels=None choose them"):
        tiny(min_count=2).partial_fit(X, y, classes=every)
    # An indicator: its values (np.unique(Y)) or its columns.
    Y = ConceptEncoder().fit(tiny_images.concepts).transform(
        [tiny_images.concepts[r] for r in rows[:16]])
    indicator_model = tiny(epochs=1).partial_fit(X, Y, classes=np.unique(Y))
    assert list(indicator_model.classes_) == list(range(Y.shape[1]))
    indicator_model.partial_fit(X, Y, classes=np.arange(Y.shape[1]))
    with pytest.raises(ValueError, match=f"an indicator matrix of {Y.shape[1]} columns"):
        indicator_model.partial_fit(X, Y, classes=["C1"])


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_warm_start_continues_the_same_network(tiny_images, tiny_indicator):
    X, Y = tiny_images.images, tiny_indicator
    model = tiny(warm_start=True).fit(X, Y)
    network, weights = model.model_, model.model_.get_weights()
    model.fit(X, Y)
    assert model.model_ is network
    assert any(np.abs(a - b).max() > 0 for a, b in zip(weights, model.model_.get_weights()))
    cold = tiny(warm_start=False).fit(X, Y)
    first = cold.model_
    assert cold.fit(X, Y).model_ is not first


# ------------------------------------------------------------- persistence

def test_pickle_joblib_and_native_save_round_trip(tiny_images, tmp_path):
    X, y = tiny_images.images, tiny_images.concepts
    model = tiny().fit(X, y)
    proba = model.predict_proba(X)
    restored_pickle = pickle.loads(pickle.dumps(model))
    joblib.dump(model, tmp_path / "model.joblib")
    restored_joblib = joblib.load(tmp_path / "model.joblib")
    model.save(tmp_path / "model.keras")
    restored_native = ConceptCNNClassifier.load(tmp_path / "model.keras")
    for restored in (restored_pickle, restored_joblib, restored_native):
        np.testing.assert_array_equal(restored.predict_proba(X), proba)
        assert list(restored.predict(X)) == list(model.predict(X))
        assert restored.get_params() == model.get_params()
    assert restored_native.history_ == model.history_


def test_native_file_needs_no_unpickling(tiny_images, tiny_indicator, tmp_path):
    import zipfile

    model = tiny().fit(tiny_images.images, tiny_indicator)
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        names = archive.namelist()
    assert "imageclef_concepts.json" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    with pytest.raises(ValueError, match="must end in .keras"):
        model.save(tmp_path / "model.h5")


# --------------------------------------------------- scikit-learn tooling

def test_clone_and_pipeline(tiny_images, tiny_indicator):
    pipeline = Pipeline([("identity", FunctionTransformer()), ("cnn", tiny())])
    pipeline.fit(tiny_images.images, tiny_indicator)
    assert pipeline.predict(tiny_images.images).shape == (40, 5)
    cloned = clone(pipeline)
    assert cloned.get_params()["cnn__image_size"] == 32
    assert not hasattr(cloned.named_steps["cnn"], "model_")


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_cross_validate_with_official_scorer(tiny_images, tiny_indicator):
    X, Y = tiny_images.images, tiny_indicator
    results = cross_validate(tiny(), X, Y, cv=2, scoring=imageclef_f1)
    assert results["test_score"].shape == (2,)
    assert ((results["test_score"] >= 0) & (results["test_score"] <= 1)).all()


# Nine fits each (a minute of both cores with other work beside): with the slow tests; the
# fast loop keeps cross_validate's two fits above.
@pytest.mark.slow
@pytest.mark.parametrize("form", ["indicator", "concepts"])
def test_grid_search_over_learning_rate_and_threshold(tiny_images, tiny_indicator, form):
    X = tiny_images.images
    y = tiny_indicator if form == "indicator" else np.array(
        [";".join(c) for c in tiny_images.concepts], dtype=object)
    grid = {"learning_rate": [1e-4, 3e-3], "threshold": [0.1, 0.5]}
    search = GridSearchCV(tiny(epochs=1), grid, cv=KFold(2), scoring=imageclef_f1, refit=False)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    # Each recorded score is the official F1 of that fold, recomputed by hand.
    params = search.cv_results_["params"][3]
    train, test = next(iter(KFold(2).split(X)))
    model = tiny(epochs=1, **params).fit(X[train], y[train])
    expected = imageclef_f1_score(y[test], model.predict(X[test]))
    assert search.cv_results_["split0_test_score"][3] == pytest.approx(expected)


@pytest.mark.slow
def test_grid_search_in_two_processes(tiny_images, tiny_indicator):
    search = GridSearchCV(tiny(epochs=1), {"threshold": [0.1, 0.5]}, cv=2,
                          scoring=imageclef_f1, n_jobs=2)
    search.fit(tiny_images.images, tiny_indicator)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(tiny_images.images).shape == (40, 5)


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_concepts_only_in_a_validation_fold_count_as_misses(tiny_images):
    X = tiny_images.images[:20]
    y = np.array(["C1;C2"] * 10 + ["C1;C9"] * 10, dtype=object)  # C9 only in fold 2
    scores = cross_val_score(tiny(threshold=0.0), X, y, cv=KFold(2), scoring=imageclef_f1)
    # Fold 2 is scored against C1;C9 with C1 and C2 predicted (threshold 0):
    # F1 = 2*1/(2+2) = 0.5, not the 2/3 a matrix without C9 would give.
    assert scores[1] == pytest.approx(0.5)


# ------------------------------------------------------------- bad input

@pytest.mark.parametrize(
    "X, message",
    [
        (np.zeros((4, 32)), r"shape \(n, h, w, 3\).*got an array of shape \(4, 32\)"),
        (np.zeros((4, 32, 32, 2)), "got an array of shape"),
        (np.full((4, 32, 32, 3), np.nan), "NaN"),
        (np.full((4, 32, 32, 3), 2.0), r"Float images must be in \[0, 1\]"),
        (np.full((4, 32, 32, 3), 300), "Integer images must be in 0-255"),
        (np.zeros((0, 32, 32, 3)), "no image"),
    ],
)
def test_bad_images_are_refused_before_training(X, message):
    y = np.eye(4, dtype=int)
    with pytest.raises(ValueError, match=message):
        tiny().fit(X, y)


def test_bad_targets_are_refused():
    X = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="X has 4 images but y has 3 rows"):
        tiny().fit(X, np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="no positive label"):
        tiny().fit(X, np.zeros((4, 3), dtype=int))
    with pytest.raises(ValueError, match="no positive label"):
        tiny().fit(X, ["", "", "", ""])
    with pytest.raises(ValueError, match="0/1 indicator"):
        tiny().fit(X, np.full((4, 2), 3))


def test_too_small_image_size_names_the_smallest():
    X = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="the smallest image_size that works is 76"):
        ConceptCNNClassifier(image_size=32).fit(X, np.eye(4, dtype=int))


def test_bad_parameters_are_named():
    X = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="learning_rate"):
        tiny(learning_rate=-1.0).fit(X, np.eye(4, dtype=int))
    with pytest.raises(ValueError, match="monitor='val_auc' is not logged"):
        tiny(monitor="val_auc").fit(X, np.eye(4, dtype=int))
    with pytest.raises(ValueError, match="validation_fraction=0.1 of 4 images leaves 0"):
        tiny().fit(X, np.eye(4, dtype=int))


# ---------------------------------------------------------------- learning

@pytest.mark.slow
def test_learns_visible_concepts_far_above_most_frequent_baseline():
    data = make_concept_images(600, 6, 32, non_visual_fraction=0, most_common_frequency=0.5,
                               tail_exponent=0.5, random_state=0)
    X, y = data.images, data.concepts
    model = tiny(filters=(8, 16), dense_units=(32,), conv_dropout=0.1, dense_dropout=0.2,
                 learning_rate=3e-3, decay=0.0, epochs=15, threshold=0.3)
    model.fit(X[:450], y[:450])
    counts = Counter(c for concepts in y[:450] for c in concepts)
    baseline = max(
        imageclef_f1_score(y[450:], [[c for c, _ in counts.most_common(k)]] * 150)
        for k in (1, 2, 3, 4)
    )
    score = model.score(X[450:], y[450:])
    assert baseline < 0.5
    assert score > 0.9


def test_fit_into_a_store_its_disk_has_no_room_for_is_refused_before_training(
        tmp_path, monkeypatch):
    # The store fills a chunk at a time while training: the disk must take every image
    # it will add, asked before the network is built, naming the parameter that sizes them.
    import shutil
    from collections import namedtuple

    from imageclef_concepts import make_concept_images

    data = make_concept_images(6, 2, 16, random_state=0, directory=tmp_path / "data")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, 6 * 24**2 * 3 - 1))
    built = []
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: built.append(1))
    model = ConceptCNNClassifier(image_size=24, filters=(4,), dense_units=(4,), epochs=1,
                                 validation_fraction=None, image_store=str(tmp_path / "store"))
    with pytest.raises(ValueError, match=r"^image_size=24: storing 6 image\(s\) at that size "
                                         r"takes .*more than the free space"):
        model.fit(data.paths, data.concepts)
    assert not built and not hasattr(model, "model_")
    assert not list((tmp_path / "store").glob("*px-*"))


def test_a_tuner_over_a_cnn_asks_its_store_for_every_fold_before_training(tmp_path,
                                                                          monkeypatch):
    # Each fold's network asked for its fold's images only: the store filled the disk fold
    # after fold, and the last one was refused after the others had trained.
    import shutil
    from collections import namedtuple

    from imageclef_concepts import ThresholdTuner, make_concept_images

    data = make_concept_images(8, 2, 16, random_state=0, directory=tmp_path / "data")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, 8 * 24**2 * 3 - 1))
    built = []
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: built.append(1))
    model = ConceptCNNClassifier(image_size=24, filters=(4,), dense_units=(4,), epochs=1,
                                 validation_fraction=None, image_store=str(tmp_path / "store"))
    with pytest.raises(ValueError, match=r"^image_size=24: storing 8 image\(s\) at that size "):
        ThresholdTuner(model, cv=2).fit(data.paths, data.concepts)
    assert not built and not list((tmp_path / "store").glob("*px-*"))


def test_validation_images_ask_the_store_for_room_with_the_training_images(tmp_path,
                                                                           monkeypatch):
    # The training and the validation images each asked for their own room: both passed,
    # and the store filled the disk during training (as ensemble members did, a member's
    # validation images asked for after the members before it had trained).
    import shutil
    from collections import namedtuple

    from imageclef_concepts import ThresholdTuner, make_concept_images

    data = make_concept_images(8, 2, 16, random_state=0, directory=tmp_path / "data")
    held = make_concept_images(4, 2, 16, random_state=1, directory=tmp_path / "held")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, 8 * 24**2 * 3))
    built = []
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: built.append(1))
    model = ConceptCNNClassifier(image_size=24, filters=(4,), dense_units=(4,), epochs=1,
                                 validation_fraction=None, image_store=str(tmp_path / "store"))
    for fit in (model.fit, ThresholdTuner(model, cv=2).fit):
        with pytest.raises(ValueError, match=r"^image_size=24: storing 12 image\(s\) at that "):
            fit(data.paths, data.concepts, validation_data=(held.paths, held.concepts))
    assert not built and not list((tmp_path / "store").glob("*px-*"))
