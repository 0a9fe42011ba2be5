"""The official ImageCLEFmed Caption concept-detection score.

The organisers' ``evaluate-f1.py`` (2019) computes, for each image, the F1
between the true concept set T and the predicted set P,
``2 |T & P| / (|T| + |P|)`` (0 when P is empty), leaves images with an empty T
out of the mean altogether, and averages the rest. Concepts are compared
upper-cased, after splitting on ``;``, each line's concepts counting as a set.

scikit-learn's ``f1_score(average="samples")`` differs for every
``zero_division`` setting: it keeps images with an empty T in the mean.
"""

import warnings

import numpy as np
from scipy import sparse
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import make_scorer

from ._concepts import as_binary_csr, is_concept_lists, split_concepts


def imageclef_f1_score(y_true, y_pred):
    """Mean per-image F1, exactly as the ImageCLEFmed Caption organisers score.

    Parameters
    ----------
    y_true, y_pred : indicator matrices or sequences of concept collections
        Either two indicator matrices of the same shape (numpy arrays or
        scipy sparse matrices; any non-zero entry counts as a label), or two
        sequences of the same length whose items are collections of concept
        strings or ``;``-joined strings. Strings are compared upper-cased and
        each image's concepts count as a set.

    Returns
    -------
    float
        The mean over images with at least one true concept. When no image
        has a true concept the score is 0.0 and an
        :class:`~sklearn.exceptions.UndefinedMetricWarning` is issued.

    Examples
    --------
    >>> from imageclef_concepts import imageclef_f1_score
    >>> imageclef_f1_score(["C1;C2", "C3", ""], ["c1", "C3;C4", "C5"])
    0.6666666666666666
    """
    scores, counted = per_image_f1_scores(y_true, y_pred)
    if not counted.any():
        warnings.warn(
            "No image has a true concept: the official F1 is undefined and "
            "reported as 0.0.",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return 0.0
    return float(scores[counted].mean())


def per_image_f1_scores(y_true, y_pred):
    """Per-image F1 and which images the official mean counts.

    Parameters
    ----------
    y_true, y_pred : indicator matrices or sequences of concept collections
        As for :func:`imageclef_f1_score`.

    Returns
    -------
    scores : ndarray of shape (n_images,)
        ``2 |T & P| / (|T| + |P|)``; 0 where both sets are empty.
    counted : ndarray of bool, shape (n_images,)
        True for images with at least one true concept.
    """
    true_is_lists = is_concept_lists(y_true)
    if true_is_lists != is_concept_lists(y_pred):
        raise ValueError(
            "y_true and y_pred must both be indicator matrices or both be "
            "sequences of concept collections; got "
            f"{_describe(y_true)} and {_describe(y_pred)}."
        )
    if true_is_lists:
        n_true, n_pred, n_both = _set_sizes_from_lists(y_true, y_pred)
    else:
        n_true, n_pred, n_both = _set_sizes_from_indicators(y_true, y_pred)
    denominator = n_true + n_pred
    scores = np.divide(
        2.0 * n_both,
        denominator,
        out=np.zeros(len(denominator), dtype=float),
        where=denominator > 0,
    )
    return scores, n_true > 0


def _describe(y):
    if sparse.issparse(y):
        return f"a sparse matrix of shape {y.shape}"
    if isinstance(y, np.ndarray):
        return f"an array of shape {y.shape} and dtype {y.dtype}"
    return f"a {type(y).__name__}"


def _set_sizes_from_lists(y_true, y_pred):
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} images but y_pred has {len(y_pred)}."
        )
    true_sets = [_upper_set(concepts) for concepts in y_true]
    pred_sets = [_upper_set(concepts) for concepts in y_pred]
    n_true = np.fromiter(map(len, true_sets), dtype=np.int64, count=len(true_sets))
    n_pred = np.fromiter(map(len, pred_sets), dtype=np.int64, count=len(pred_sets))
    n_both = np.fromiter(
        (len(t & p) for t, p in zip(true_sets, pred_sets)),
        dtype=np.int64,
        count=len(true_sets),
    )
    return n_true, n_pred, n_both


def _upper_set(concepts):
    return {concept.upper() for concept in split_concepts(concepts)}


def _set_sizes_from_indicators(y_true, y_pred):
    true = as_binary_csr(y_true, "y_true")
    pred = as_binary_csr(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true has shape {true.shape} but y_pred has shape {pred.shape}; "
            "indicator matrices must have one row per image and one column "
            "per concept, in the same order."
        )
    n_true = np.asarray(true.sum(axis=1)).ravel()
    n_pred = np.asarray(pred.sum(axis=1)).ravel()
    n_both = np.asarray(true.multiply(pred).sum(axis=1)).ravel()
    return n_true, n_pred, n_both


imageclef_f1 = make_scorer(imageclef_f1_score)
imageclef_f1.__doc__ = """Scorer for the official ImageCLEF F1, on ``predict``.

Use as ``GridSearchCV(..., scoring=imageclef_f1)``, ``cross_val_score`` or
``cross_validate``. It compares the fold's ``y`` with the estimator's
``predict`` output, so both must be of the same form: indicator matrices, or
concept collections (what the library's estimators return when fitted on
concept collections).
"""
