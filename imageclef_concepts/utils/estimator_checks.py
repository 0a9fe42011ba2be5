"""Checks that a concept estimator keeps the library's contract, on images.

scikit-learn's ``check_estimator`` runs its data checks only on estimators
whose input is a 2-d table, so it skips every image estimator. These checks
fit on small images, given as arrays and as image paths, and check what the
contract (:mod:`imageclef_concepts._base`) promises: ``y``'s own form out
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

from .._base import decision_scores
from .._concepts import is_concept_lists
from .._decision import DecisionRule
from .._metrics import imageclef_f1_score

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from sklearn.base import BaseEstimator

N_IMAGES, SIZE = 12, 16
UNSEEN = "C_UNSEEN_IN_TRAINING"


def concept_images() -> tuple[np.ndarray, list[list[str]]]:
    """Twelve 16 x 16 RGB images and their concept lists: each concept has its colour."""
    rng = np.random.default_rng(0)
    concepts = [["C1"] + (["C2"] if i % 2 else []) + (["C3"] if i % 3 == 0 else [])
                for i in range(N_IMAGES)]
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
            fitted = clone(estimator).fit(X, y)
            assert fitted is not None and len(fitted.classes_) > 0
            scores = decision_scores(fitted, X, len(fitted.classes_))
            assert scores.shape == (N_IMAGES, len(fitted.classes_)), scores.shape
            predicted = fitted.predict(X)
            if is_concept_lists(y):
                assert predicted.shape == (N_IMAGES,) and predicted.dtype == object
                assert all(isinstance(row, tuple) for row in predicted), predicted[:3]
                assert set().union(*predicted) <= set(fitted.classes_)
            else:
                assert predicted.shape == np.shape(y), (predicted.shape, np.shape(y))
                assert predicted.dtype.kind == "i" and set(np.unique(predicted)) <= {0, 1}


def check_score_is_the_official_f1(estimator: BaseEstimator, form: str = "arrays") -> None:
    """``score(X, y)`` is :func:`~imageclef_concepts.imageclef_f1_score` of ``predict(X)``."""
    with _data(form) as (X, concepts):
        fitted = clone(estimator).fit(X, concepts)
        assert fitted.score(X, concepts) == imageclef_f1_score(concepts, fitted.predict(X))


def check_decision_rule(estimator: BaseEstimator, form: str = "arrays") -> None:
    """``decide`` is ``predict`` before ``y``'s form, and the rule applied to the scores.

    A ``threshold`` parameter is the rule: 0 decides every concept, a
    threshold above every score none, and any threshold decides what
    :class:`~imageclef_concepts.DecisionRule` says; a fitted
    ``decision_rule_`` is applied as it is.
    """
    with _data(form) as (X, concepts):
        fitted = clone(estimator).fit(X, concepts)
        decided = np.asarray(fitted.decide(X)) if hasattr(fitted, "decide") else None
        if decided is not None:
            assert decided.dtype == bool and decided.shape == (N_IMAGES, len(fitted.classes_))
            expected = [tuple(fitted.classes_[row]) for row in decided]
            assert list(map(tuple, fitted.predict(X))) == expected
        scores = decision_scores(fitted, X, len(fitted.classes_))
        if "threshold" in fitted.get_params(deep=False):
            for threshold in (0.0, float(np.nanmedian(scores)), 1.0):
                fitted.set_params(threshold=threshold)
                rule = DecisionRule(threshold)
                _assert_rule(fitted, X, rule.apply(scores), f"threshold={threshold}")
            assert _decision(fitted.set_params(threshold=0.0), X).all()
        elif hasattr(fitted, "decision_rule_"):
            _assert_rule(fitted, X, fitted.decision_rule_.apply(scores), "decision_rule_")


def _decision(fitted, X):
    return np.asarray(fitted.decide(X)) if hasattr(fitted, "decide") else None


def _assert_rule(fitted, X, expected, what):
    decided = _decision(fitted, X)
    if decided is None:  # no decide: read predict, concept lists
        decided = np.array([[name in row for name in fitted.classes_]
                            for row in fitted.predict(X)])
    assert np.array_equal(decided, expected), f"{what} is not applied to the scores"


def check_unseen_concepts_are_misses(estimator: BaseEstimator, form: str = "arrays") -> None:
    """A true concept never seen in training is never predicted and counts as a miss."""
    with _data(form) as (X, concepts):
        fitted = clone(estimator).fit(X, concepts)
        with_unseen = [row + [UNSEEN] for row in concepts]
        predicted = fitted.predict(X)
        assert UNSEEN not in set().union(*map(set, predicted))
        score = fitted.score(X, with_unseen)
        assert score == imageclef_f1_score(with_unseen, predicted)
        if fitted.score(X, concepts) > 0:
            assert score < fitted.score(X, concepts)


def check_clone_and_pickle(estimator: BaseEstimator, form: str = "arrays") -> None:
    """``clone`` keeps the parameters and no fitted state; a pickled model predicts the same."""
    copy = clone(estimator)
    assert copy.get_params(deep=False).keys() == estimator.get_params(deep=False).keys()
    with _data(form) as (X, concepts):
        try:
            copy.predict(X)
        except NotFittedError:
            pass
        else:
            raise AssertionError("predict before fit must raise NotFittedError")
        fitted = copy.fit(X, concepts)
        again = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(decision_scores(again, X), decision_scores(fitted, X))
        assert list(again.predict(X)) == list(fitted.predict(X))


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
            np.testing.assert_array_equal(decision_scores(loaded, X), decision_scores(fitted, X))
            assert list(loaded.predict(X)) == list(fitted.predict(X))
            return
        raise AssertionError(f"{type(estimator).__name__}.save wrote neither .zip nor .keras")


def check_fit_checks_its_input(estimator: BaseEstimator, form: str = "arrays") -> None:
    """``fit`` refuses a ``y`` with another number of rows, and changes neither ``X``, ``y``
    nor its own parameters."""
    with _data(form) as (X, concepts):
        copy = clone(estimator)
        try:
            copy.fit(X, concepts[:-1])
        except ValueError:
            pass
        else:
            raise AssertionError("fit must refuse a y with fewer rows than X")
        before_X, before_y = np.array(X, copy=True), [list(row) for row in concepts]
        params = {k: repr(v) for k, v in copy.get_params(deep=False).items()}
        clone(estimator).fit(X, concepts).predict(X)
        assert np.array_equal(np.array(X), before_X) and concepts == before_y
        assert params == {k: repr(v) for k, v in copy.get_params(deep=False).items()}


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
        Naming the check, the data form and what is wrong.

    Examples
    --------
    >>> from imageclef_concepts import ConceptKNNClassifier
    >>> from imageclef_concepts.utils.estimator_checks import check_concept_estimator
    >>> check_concept_estimator(ConceptKNNClassifier(n_neighbors=3, pixel_size=4))
    """
    for name, check in _checks(estimator, expected_failed_checks):
        try:
            check(estimator)
        except AssertionError as error:
            raise AssertionError(f"{type(estimator).__name__} fails {name}: {error}") from error


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
