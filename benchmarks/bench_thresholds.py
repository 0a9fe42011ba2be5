"""Threshold search: ranked once vs the obvious predict-and-score loop."""

import time

import numpy as np
from scipy import sparse

from imageclef_concepts import imageclef_f1_score
from imageclef_concepts._thresholds import _Truth, global_f1_curve, per_concept_thresholds

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
    prepared = _Truth.from_target(truth, np.arange(n_concepts))
    candidates = np.linspace(0, 1, 100)
    ours, reference = alternate(lambda: global_f1_curve(scores, prepared, candidates),
                                lambda: _obvious_curve(scores, truth, candidates), repeat=2)
    np.testing.assert_allclose(global_f1_curve(scores, prepared, candidates),
                               _obvious_curve(scores, truth, candidates), atol=1e-12)
    rows = [Row("thresholds", f"100 global thresholds, {n_images:,} x {n_concepts:,}", ours,
                reference, "s", reference / ours,
                "speed-up over one predict + official score per threshold")]

    best = candidates[int(np.argmax(global_f1_curve(scores, prepared, candidates)))]
    start = time.perf_counter()
    per_concept_thresholds(scores, prepared, candidates, best, min_support=10)
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
    return rows
