"""Checks that a concept estimator keeps the library's contract, on images.

scikit-learn's ``check_estimator`` runs its data checks only on estimators
whose input is a 2-d table, so it skips every image estimator. These checks
fit on small images, given as arrays and as image paths, and check what the
contract (:mod:`imageclef_concepts.models._base`) promises: ``y``'s own form out
of ``predict``, ``score`` equal to the official F1, the decision rule
applied, clone and pickle, save then load predicting the same, concepts
unseen in training counted as misses. As imbalanced-learn's
``utils.estimator_checks`` beside scikit-learn's, run them in your own tests:

>>> from imageclef_concepts import MostFrequentConcepts
>>> from imageclef_concepts.utils.estimator_checks import check_concept_estimator
>>> check_concept_estimator(MostFrequentConcepts())

or one test per check with :func:`parametrize_with_concept_checks`.
"""

from __future__ import annotations

import functools
import os
import pickle
import tempfile
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from ..concepts._lists import is_concept_lists
from ..concepts._metrics import imageclef_f1_score
from ..models._base import decision_scores
from ..models._decision import DecisionRule

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from sklearn.base import BaseEstimator

N_IMAGES, SIZE = 12, 16
UNSEEN = "C_UNSEEN_IN_TRAINING"


def concept_images() -> tuple[np.ndarray, list[list[str]]]:
    """Twelve 16 x 16 RGB images and their concept lists: each concept has its colour.

    Every image has a concept and no concept is on every image (so a
    per-concept binary classifier such as ``LogisticRegression`` sees both
    labels of each): C1 on images ``i % 3 != 2``, C2 on odd images, C3 on
    images ``i % 3 != 1``.
    """
    rng = np.random.default_rng(0)
    concepts = [(["C1"] if i % 3 != 2 else []) + (["C2"] if i % 2 else [])
                + (["C3"] if i % 3 != 1 else []) for i in range(N_IMAGES)]
    images = rng.integers(0, 40, (N_IMAGES, SIZE, SIZE, 3), dtype=np.uint8)
    for image, names in zip(images, concepts):
        for channel, name in enumerate(("C1", "C2", "C3")):
            if name in names:
                image[: SIZE // 2, :, channel] += 180
    return images, concepts


@contextmanager
def image_paths(images: np.ndarray) -> Iterator[list[str]]:
    """The images written as lossless PNG files in a temporary folder, for the checks."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        paths = [os.path.join(folder, f"image{i}.png") for i in range(len(images))]
        for image, path in zip(images, paths):
            Image.fromarray(image).save(path)
        yield paths


@contextmanager
def _data(form: str) -> Iterator[tuple[Any, list[list[str]]]]:
    images, concepts = concept_images()
    if form == "arrays":
        yield images, concepts
    else:
        with image_paths(images) as paths:
            yield paths, concepts


def _indicator(concepts):
    names = sorted({c for row in concepts for c in row})
    return np.array([[name in row for name in names] for row in concepts], dtype=int)


# --------------------------------------------------------------------- checks

def check_predict_returns_y_form(estimator: BaseEstimator, form: str = "arrays") -> None:
    """Concept lists in, a 1-d object array of concept tuples out; an indicator in, an
    int indicator of its width out; scores of shape (n_images, len(classes_))."""
    with _data(form) as (X, concepts):
        for y in (concepts, _indicator(concepts)):
            kind = "concept lists" if is_concept_lists(y) else "an indicator"
            fitted = clone(estimator).fit(X, y)
            assert fitted is not None, f"fit on {kind} returned None, not the estimator"
            assert len(fitted.classes_) > 0, f"fit on {kind} left classes_ empty"
            scores = decision_scores(fitted, X, len(fitted.classes_))
            assert scores.shape == (N_IMAGES, len(fitted.classes_)), (
                f"scores have shape {scores.shape}, not (n_images, len(classes_)) = "
                f"{(N_IMAGES, len(fitted.classes_))}")
            predicted = fitted.predict(X)
            if is_concept_lists(y):
                assert predicted.shape == (N_IMAGES,) and predicted.dtype == object, (
                    "predict after fit on concept lists must be a 1-d object array of "
                    f"concept tuples; it has shape {predicted.shape}, dtype {predicted.dtype}")
                assert all(isinstance(row, tuple) for row in predicted), (
                    f"predict's rows must be tuples of concepts: {predicted[:3]!r}")
                unknown = set().union(*predicted) - set(fitted.classes_)
                assert not unknown, f"predict returned concepts not in classes_: {unknown}"
            else:
                assert predicted.shape == np.shape(y), (
                    f"predict after fit on an indicator has shape {predicted.shape}, not y's "
                    f"{np.shape(y)}")
                assert predicted.dtype.kind == "i" and set(np.unique(predicted)) <= {0, 1}, (
                    "predict after fit on an indicator must be a 0/1 int matrix; it is "
                    f"dtype {predicted.dtype} with values {np.unique(predicted)[:5]}")


def check_score_is_the_official_f1(estimator: BaseEstimator, form: str = "arrays") -> None:
    """``score(X, y)`` is :func:`~imageclef_concepts.imageclef_f1_score` of ``predict(X)``."""
    with _data(form) as (X, concepts):
        fitted = clone(estimator).fit(X, concepts)
        score, official = fitted.score(X, concepts), imageclef_f1_score(concepts,
                                                                        fitted.predict(X))
        assert score == official, f"score(X, y) = {score}, but the official F1 is {official}"


def check_decision_rule(estimator: BaseEstimator, form: str = "arrays") -> None:
    """``decide`` is ``predict`` before ``y``'s form, and the rule applied to the scores.

    Each image's concepts are compared as sets. When the estimator decides
    by its threshold (``decides_by_threshold``, True when absent) and has a
    ``threshold`` parameter, thresholds are tried in the scores' own units:
    for ``predict_proba``, 0 (every concept), the median score and 1; for a
    ``decision_function`` estimator, the smallest, the median and the
    largest score. Each must decide what
    :class:`~imageclef_concepts.DecisionRule` says of the scores; a fitted
    ``decision_rule_`` is applied as it is.
    """
    with _data(form) as (X, concepts):
        fitted = clone(estimator).fit(X, concepts)
        decided = _decision(fitted, X)
        if decided is not None:
            assert decided.dtype == bool and decided.shape == (N_IMAGES, len(fitted.classes_)), (
                "decide(X) must be a bool array of shape (n_images, len(classes_)) = "
                f"{(N_IMAGES, len(fitted.classes_))}; it is {decided.dtype} {decided.shape}")
            names = np.asarray(fitted.classes_, dtype=object)
            expected = [set(names[row]) for row in decided]
            assert [set(row) for row in fitted.predict(X)] == expected, (
                "predict(X) is not the concepts decide(X) marks")
        if not getattr(fitted, "decides_by_threshold", True):
            return  # documented to decide otherwise (set combinations, mean_count voting)
        scores = decision_scores(fitted, X, len(fitted.classes_))
        if "threshold" in fitted.get_params(deep=False):
            finite = scores[np.isfinite(scores)]
            probabilities = hasattr(fitted, "predict_proba")
            thresholds = ((0.0, float(np.median(finite)), 1.0) if probabilities else
                          (float(finite.min()), float(np.median(finite)), float(finite.max())))
            for threshold in thresholds:
                fitted.set_params(threshold=threshold)
                _assert_rule(fitted, X, DecisionRule(threshold).apply(scores),
                             f"threshold={threshold:.6g}")
        elif hasattr(fitted, "decision_rule_"):
            _assert_rule(fitted, X, fitted.decision_rule_.apply(scores), "decision_rule_")


def _decision(fitted, X):
    if not hasattr(fitted, "decide"):
        return None
    decided = fitted.decide(X)
    return np.asarray(decided.toarray() if hasattr(decided, "toarray") else decided)


def _assert_rule(fitted, X, expected, what):
    decided = _decision(fitted, X)
    if decided is None:  # no decide: read predict, concept lists
        decided = np.array([[name in row for name in fitted.classes_]
                            for row in fitted.predict(X)])
    wrong = np.flatnonzero((np.asarray(decided) != expected).any(axis=1))
    assert not len(wrong), (f"{what} is not applied to the scores (decides_by_threshold is "
                            f"not False): images {wrong[:5].tolist()} differ from "
                            "DecisionRule(threshold).apply(scores)")


def check_unseen_concepts_are_misses(estimator: BaseEstimator, form: str = "arrays") -> None:
    """A true concept never seen in training is never predicted and counts as a miss."""
    with _data(form) as (X, concepts):
        fitted = clone(estimator).fit(X, concepts)
        with_unseen = [row + [UNSEEN] for row in concepts]
        predicted = fitted.predict(X)
        assert UNSEEN not in set().union(*map(set, predicted)), (
            "predict returned a concept never seen in training")
        score = fitted.score(X, with_unseen)
        official = imageclef_f1_score(with_unseen, predicted)
        assert score == official, (f"score with an unseen true concept is {score}; the "
                                   f"official F1 is {official}")
        if fitted.score(X, concepts) > 0:
            assert score < fitted.score(X, concepts), (
                "an unseen true concept did not lower the score: it must count as a miss")


def check_clone_and_pickle(estimator: BaseEstimator, form: str = "arrays") -> None:
    """``clone`` keeps the parameters and no fitted state; a pickled model predicts the same."""
    copy = clone(estimator)
    assert copy.get_params(deep=False).keys() == estimator.get_params(deep=False).keys(), (
        "clone changed the parameter names")
    with _data(form) as (X, concepts):
        try:
            copy.predict(X)
        except NotFittedError:
            pass
        else:
            raise AssertionError("predict before fit must raise NotFittedError")
        fitted = copy.fit(X, concepts)
        again = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(decision_scores(again, X), decision_scores(fitted, X),
                                      err_msg="the unpickled model scores differently")
        assert list(again.predict(X)) == list(fitted.predict(X)), (
            "the unpickled model predicts differently")


def check_save_and_load(estimator: BaseEstimator, form: str = "arrays") -> None:
    """Where the class has ``save`` and ``load``: the loaded model predicts identically."""
    if not (hasattr(estimator, "save") and hasattr(type(estimator), "load")):
        return
    with _data(form) as (X, concepts), tempfile.TemporaryDirectory() as folder:
        fitted = clone(estimator).fit(X, concepts)
        for suffix in (".zip", ".keras"):  # an archive, or a network's own file
            path = os.path.join(folder, "model" + suffix)
            try:
                fitted.save(path)
            except ValueError:
                continue
            loaded = type(estimator).load(path)
            np.testing.assert_array_equal(decision_scores(loaded, X), decision_scores(fitted, X),
                                          err_msg="the loaded model scores differently")
            assert list(loaded.predict(X)) == list(fitted.predict(X)), (
                "the loaded model predicts differently")
            return
        raise AssertionError(f"{type(estimator).__name__}.save wrote neither .zip nor .keras")


def check_fit_checks_its_input(estimator: BaseEstimator, form: str = "arrays") -> None:
    """``fit`` refuses a ``y`` with another number of rows, and changes neither ``X``, ``y``
    nor its own parameters."""
    with _data(form) as (X, concepts):
        try:
            clone(estimator).fit(X, concepts[:-1])
        except ValueError:
            pass
        else:
            raise AssertionError("fit must refuse a y with fewer rows than X (ValueError)")
        before_X, before_y = np.array(X, copy=True), [list(row) for row in concepts]
        copy = clone(estimator)
        params = {k: repr(v) for k, v in copy.get_params(deep=False).items()}
        copy.fit(X, concepts).predict(X)
        assert np.array_equal(np.array(X), before_X), "fit or predict changed X"
        assert concepts == before_y, "fit or predict changed y"
        after = {k: repr(v) for k, v in copy.get_params(deep=False).items()}
        changed = sorted(k for k in params if params[k] != after.get(k))
        assert not changed, (f"fit changed the parameter(s) {', '.join(changed)}: "
                             "fitted state goes in attributes ending in '_'")


CHECKS = (check_predict_returns_y_form, check_score_is_the_official_f1, check_decision_rule,
          check_unseen_concepts_are_misses, check_clone_and_pickle, check_save_and_load,
          check_fit_checks_its_input)
FORMS = ("arrays", "paths")


def _checks(estimator: BaseEstimator, expected_failed_checks=None
            ) -> Iterator[tuple[str, Callable[[BaseEstimator], None]]]:
    expected = dict(expected_failed_checks or {})
    for check in CHECKS:
        for form in FORMS:
            name = f"{check.__name__}[{form}]"
            if check.__name__ in expected or name in expected:
                continue
            yield name, functools.partial(check, form=form)


def check_concept_estimator(estimator: BaseEstimator,
                            expected_failed_checks: dict[str, str] | None = None) -> None:
    """Run every contract check on ``estimator``, on image arrays and on image paths.

    Parameters
    ----------
    estimator : estimator
        Unfitted; it is cloned for each check.
    expected_failed_checks : dict of str to str, default=None
        Checks skipped, by name (``"check_decision_rule"``, or one form:
        ``"check_decision_rule[paths]"``), each with the reason why.

    Raises
    ------
    AssertionError
        Naming the check, the data form and what is wrong (an exception the
        estimator raised is named with its type).

    Notes
    -----
    The checks, by name (for ``expected_failed_checks``):
    ``check_predict_returns_y_form``, ``check_score_is_the_official_f1``,
    ``check_decision_rule``, ``check_unseen_concepts_are_misses``,
    ``check_clone_and_pickle``, ``check_save_and_load``,
    ``check_fit_checks_its_input``; each runs on image arrays (``[arrays]``)
    and on image paths (``[paths]``). Every check but the first fits on
    concept lists; an estimator fitted on indicator matrices only (a
    scikit-learn ``MultiOutputClassifier``) joins an ensemble or a tuner
    given indicator ``y``, but is not checked by this suite.

    Examples
    --------
    >>> from imageclef_concepts import ConceptKNNClassifier
    >>> from imageclef_concepts.utils.estimator_checks import check_concept_estimator
    >>> check_concept_estimator(ConceptKNNClassifier(n_neighbors=3, pixel_size=4))
    """
    for name, check in _checks(estimator, expected_failed_checks):
        try:
            check(estimator)
        except Exception as error:  # any failure is named by its check
            what = str(error) if isinstance(error, AssertionError) else (
                f"{type(error).__name__}: {error}")
            raise AssertionError(f"{type(estimator).__name__} fails {name}: {what}") from error


def parametrize_with_concept_checks(estimators: Sequence[BaseEstimator],
                                    expected_failed_checks: Callable[[BaseEstimator],
                                                                     dict[str, str]] | None = None
                                    ) -> Any:
    """A ``pytest.mark.parametrize`` of ``(estimator, check)``: one test per check and form.

    Parameters
    ----------
    estimators : list of estimators
    expected_failed_checks : callable, default=None
        ``estimator -> {check name: reason}``, as scikit-learn's
        ``parametrize_with_checks`` takes it.

    Returns
    -------
    decorator

    Examples
    --------
    >>> from imageclef_concepts import MostFrequentConcepts
    >>> from imageclef_concepts.utils.estimator_checks import parametrize_with_concept_checks
    >>> @parametrize_with_concept_checks([MostFrequentConcepts()])
    ... def test_contract(estimator, check):
    ...     check(estimator)
    """
    import pytest

    cases = [pytest.param(estimator, check,
                          id=f"{type(estimator).__name__}-{name}")
             for estimator in estimators
             for name, check in _checks(estimator, expected_failed_checks(estimator)
                                        if expected_failed_checks else None)]
    return pytest.mark.parametrize("estimator, check", cases)
