"""EnsembleTuner(tune="votes"): the exhaustive search against the coordinate ascent.

Usage::

    python benchmarks/vote_search.py [--quick] [--images N] [--concepts N]

On simulated long-tailed truth and member scores (continuous, so that every
candidate threshold is distinct, and k-NN-like scores tied at multiples of
``1 / 5``), times ``vote_search`` both ways for each number of members and
candidate thresholds: the ascent (``exact_limit=0``, what ran before the
exhaustive search existed) and the exhaustive search. Prints, per row, the
settings (distinct thresholds of every member x vote counts), the seconds of
each (the best of three), their ratio, how far the ascent's F1 is below the
best, and which of the two the default (a cost limit: ``EXACT_COST`` or the
ascent's own bound) runs.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_metric import long_tail_indicators  # noqa: E402
from imageclef_concepts.tuning._ensemble_search import (  # noqa: E402
    EXACT_COST,
    distinct_thresholds,
    vote_buckets,
    vote_search,
)


def members(truth, n_members, tied, rng):
    """Scores that follow the truth more or less; tied: k-NN votes of 5 neighbours."""
    dense = truth.toarray().astype(bool)
    scores = []
    for _ in range(n_members):
        noisy = np.clip(dense * rng.uniform(0.1, 0.9, dense.shape)
                        + rng.random(dense.shape) ** 4 * 0.6, 0, 1)
        scores.append(np.round(noisy * 5) / 5 if tied else noisy)
    return scores


def best_of(function, repeat=3):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and concepts")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--concepts", type=int, default=None)
    args = parser.parse_args(argv)
    n_images = args.images or (300 if args.quick else 1_000)
    n_concepts = args.concepts or (300 if args.quick else 1_000)
    rng = np.random.default_rng(0)
    truth = long_tail_indicators(n_images, n_concepts, 6, rng).tocsr()
    n_true = np.diff(truth.indptr)
    print(f"{n_images:,} images x {n_concepts:,} concepts; EXACT_COST = {EXACT_COST:,}")
    print(f"{'scores':<11}{'members':>8}{'candidates':>11}{'settings':>10}"
          f"{'ascent s':>10}{'exact s':>9}{'ratio':>7}{'ascent below by':>17}{'default':>9}")
    cases = [(2, 20), (3, 4), (3, 8), (3, 10), (3, 12), (3, 20), (4, 4), (4, 6), (5, 4),
             (6, 3)]
    for tied in (False, True):
        for n_members, n_candidates in cases:
            scores = members(truth, n_members, tied, rng)
            buckets = [vote_buckets(member, np.linspace(0.05, 0.95, n_candidates))
                       for member in scores]
            settings = math.prod(len(distinct_thresholds(b, n_candidates))
                                 for b in buckets) * n_members
            ascent_time, ascent = best_of(lambda: vote_search(
                buckets, n_candidates, truth, n_true, exact_limit=0))
            exact_time, exact = best_of(lambda: vote_search(
                buckets, n_candidates, truth, n_true, exact_limit=math.inf))
            assert exact.exact and not ascent.exact
            assert exact.score >= ascent.score - 1e-12
            default = vote_search(buckets, n_candidates, truth, n_true)
            print(f"{'tied' if tied else 'continuous':<11}{n_members:>8}{n_candidates:>11}"
                  f"{settings:>10}{ascent_time:>10.3f}{exact_time:>9.3f}"
                  f"{exact_time / ascent_time:>7.2f}{exact.score - ascent.score:>17.5f}"
                  f"{'exact' if default.exact else 'ascent':>9}", flush=True)


if __name__ == "__main__":
    main()
