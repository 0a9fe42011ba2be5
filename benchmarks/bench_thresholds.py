"""Threshold search: ranked once vs the obvious predict-and-score loop, and the whole tuner."""

import time

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin

from imageclef_concepts import ThresholdTuner, imageclef_f1_score
from imageclef_concepts.concepts._metrics import per_concept_thresholds, threshold_curve

from ._timing import Row, alternate
from .bench_metric import long_tail_indicators


def simulated_scores(n_images, n_concepts, rng):
    """Long-tailed truth and a classifier's noisy probabilities for it."""
    truth = long_tail_indicators(n_images, n_concepts, 6, rng)
    scores = (rng.random((n_images, n_concepts), dtype=np.float32) ** 6) * 0.5
    rows, cols = truth.nonzero()
    scores[rows, cols] = np.clip(scores[rows, cols] + rng.random(len(rows)) * 0.6, 0, 1)
    return truth, scores.astype(np.float64)


def _obvious_curve(scores, truth, candidates):
    return [imageclef_f1_score(truth, sparse.csr_matrix(scores >= t)) for t in candidates]


def run(quick):
    rng = np.random.default_rng(0)
    n_images, n_concepts = (2_000 if quick else 10_000), 5_528
    truth, scores = simulated_scores(n_images, n_concepts, rng)
    n_true = np.diff(truth.indptr)
    candidates = np.linspace(0, 1, 100)

    def curve():
        return threshold_curve(scores, truth, n_true, candidates)

    ours, reference = alternate(curve, lambda: _obvious_curve(scores, truth, candidates),
                                repeat=2)
    np.testing.assert_allclose(curve(), _obvious_curve(scores, truth, candidates), atol=1e-12)
    rows = [Row("thresholds", f"100 global thresholds, {n_images:,} x {n_concepts:,}", ours,
                reference, "s", reference / ours,
                "speed-up over one predict + official score per threshold")]

    best = candidates[int(np.argmax(curve()))]
    start = time.perf_counter()
    per_concept_thresholds(scores, truth, n_true, candidates, best, min_support=10)
    ours_per_concept = time.perf_counter() - start
    tunable = np.flatnonzero(np.asarray(truth.sum(axis=0)).ravel() >= 10)
    # The obvious loop tries every candidate for every tunable concept, scoring
    # the whole matrix each time; timed on a few concepts, scaled to all.
    sample = tunable[:2]
    start = time.perf_counter()
    for concept in sample:
        thresholds = np.full(n_concepts, best)
        for candidate in candidates:
            thresholds[concept] = candidate
            imageclef_f1_score(truth, sparse.csr_matrix(scores >= thresholds))
    per_concept_loop = (time.perf_counter() - start) / len(sample) * len(tunable)
    rows.append(Row("thresholds", f"per-concept, {len(tunable):,} tunable concepts",
                    ours_per_concept, per_concept_loop, "s",
                    per_concept_loop / ours_per_concept,
                    f"speed-up over one sweep of the obvious loop (timed on {len(sample)} "
                    "concepts, scaled; ours sweeps up to twice)"))
    rows.append(_whole_tuner_row(truth, scores))
    return rows


class _FixedScores(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose probabilities are given."""

    def __init__(self, scores=None):
        self.scores = scores

    def fit(self, X, y):
        self.n_outputs_ = 1  # a fitted attribute, for check_is_fitted
        return self

    def predict_proba(self, X):
        return self.scores


def _whole_tuner_row(truth, scores):
    """ThresholdTuner(cv="prefit") on dense float32 probabilities and a dense int8 truth.

    The reference is the same search on float64 probabilities, the precision
    the tuner computed in before it kept float32 (and 2.5-5 s in all here).
    """
    dense_truth = truth.toarray().astype(np.int8)
    X = np.zeros((len(dense_truth), 1))

    def tune(probabilities):
        model = _FixedScores(probabilities).fit(X, dense_truth)
        start = time.perf_counter()
        ThresholdTuner(model, cv="prefit", refit=False, thresholds=100).fit(X, dense_truth)
        return time.perf_counter() - start

    float32, float64 = scores.astype(np.float32), scores.astype(np.float64)
    first_call = tune(float32)
    ours, reference = alternate(lambda: tune(float32), lambda: tune(float64), repeat=2)
    n_images, n_concepts = scores.shape
    return Row("thresholds", f"ThresholdTuner(cv='prefit'), dense float32 {n_images:,} x "
               f"{n_concepts:,} + int8 truth (first call {first_call:.2f} s)", ours,
               reference, "s", reference / ours, "speed-up over the same tuner on float64")
