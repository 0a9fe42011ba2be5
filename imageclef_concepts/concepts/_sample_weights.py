"""Sample weights from the concepts: images with rare concepts count more in training.

The long tail (2,655 of the 2019 edition's 5,528 concepts are on fewer than
four images) leaves a network little reason to learn a rare concept. A 2026
run sampled the images with rare concepts more often; weighting each image's
loss by the same rule is that sampling in expectation, and works with every
estimator whose ``fit`` takes ``sample_weight`` (the same idea as LVIS's
repeat-factor sampling, Gupta et al. 2019, with ``power=0.5, combine="max"``).
"""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import logsumexp
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._targets import ConceptTargets

if TYPE_CHECKING:  # names for annotations only
    from .._typing import FloatArray, Targets


@validate_params({"y": ["array-like", "sparse matrix"],
                  "power": [Interval(Real, 0, None, closed="left")],
                  "combine": [StrOptions({"max", "mean"})]},
                 prefer_skip_nested_validation=True)
def concept_sample_weight(y: Targets, *, power: float = 0.5,
                          combine: str = "max") -> FloatArray:
    """One weight per image, larger for images with rare concepts; their mean is 1.

    With ``N`` images and ``n_c`` of them carrying concept ``c``:

    1. each concept weighs ``w_c = (N / n_c) ** power`` (inverse frequency;
       ``power=0`` weighs all alike, 1 is plain inverse frequency);
    2. an image weighs ``u_i = max`` (``combine="max"``) or ``mean``
       (``"mean"``) of ``w_c`` over its concepts, and 1 (a concept on every
       image) when it has none;
    3. the weights are ``u_i / mean(u)``.

    Parameters
    ----------
    y : indicator matrix or sequence of concept lists
        The training concepts, in any form a concept estimator takes
        (concepts compared stripped and upper-cased).
    power : float >= 0, default=0.5
        How strongly rarity counts.
    combine : {"max", "mean"}, default="max"
        An image's weight from its concepts' weights: its rarest concept's
        (any rare concept makes the image worth more) or their mean.

    Returns
    -------
    ndarray of shape (n_images,)
        Positive and finite, with a mean of 1 (computed in logarithms, so a
        large ``power`` does not overflow; a ``power`` so large that the
        lightest image's weight would be 0 in float64 is refused with a
        ValueError): the loss keeps its scale, so the
        learning rate needs no change. Give it to ``fit(X, y,
        sample_weight=...)`` of :class:`~imageclef_concepts.ConceptCNNClassifier`,
        or of a :class:`~imageclef_concepts.ConceptEnsemble`,
        :class:`~imageclef_concepts.ThresholdTuner`,
        :class:`~imageclef_concepts.ConceptSpecialists` or ``GridSearchCV``,
        which pass it on (cut to the images each fit sees).

    Examples
    --------
    ``A`` is on two of three images, ``B`` and ``C`` on one; with ``power=1``
    they weigh 1.5, 3 and 3, the images 3, 1.5 and 3, divided by their mean
    2.5:

    >>> from imageclef_concepts import concept_sample_weight
    >>> concept_sample_weight(["A;B", "A", "C"], power=1)
    array([1.2, 0.6, 1.2])
    """
    targets = ConceptTargets().fit(y)
    indicator = targets.transform(y).tocsr()
    indicator.sum_duplicates()
    n_images = indicator.shape[0]
    # In logarithms: (N / n_c) ** power overflows float64 for a large power
    # (4 ** 2000), and inf / inf is NaN; the ratios of the weights do not.
    logs = float(power) * (np.log(n_images) - np.log(np.maximum(targets.column_counts_, 1)))
    lengths = np.diff(indicator.indptr)
    carrying = lengths > 0
    starts = indicator.indptr[:-1][carrying]
    per_concept = logs[indicator.indices]
    image_logs = np.zeros(n_images)  # an image without concepts weighs 1
    if len(starts):
        image_logs[carrying] = largest = np.maximum.reduceat(per_concept, starts)
        if combine == "mean":  # log of the mean of exp, shifted by the largest: no overflow
            shifted = np.exp(per_concept - np.repeat(largest, lengths[carrying]))
            image_logs[carrying] += np.log(np.add.reduceat(shifted, starts) / lengths[carrying])
    weights = np.exp(image_logs - (logsumexp(image_logs) - np.log(n_images)))
    if n_images and weights.min() < np.finfo(np.float64).tiny:
        raise ValueError(
            f"power={power!r} makes the weights span more than a float64 holds: the lightest "
            f"image would weigh e^{float(image_logs.min() - image_logs.max()):.0f} times the "
            "heaviest, which is 0. Give a smaller power.")
    return weights
