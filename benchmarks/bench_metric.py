"""The official F1: vectorised against a per-image loop of the organisers' kind."""

import numpy as np
from scipy import sparse

from imageclef_concepts import imageclef_f1_score
from tests.official_f1 import official_mean_f1

from ._timing import Row, alternate


def long_tail_indicators(n_images, n_concepts, mean_labels, rng):
    """A sparse indicator matrix whose concept frequencies fall off like a power law."""
    weights = 1.0 / np.arange(1, n_concepts + 1) ** 1.1
    weights /= weights.sum()
    counts = rng.poisson(mean_labels, size=n_images).clip(1, None)
    rows, cols = [], []
    for image, count in enumerate(counts):
        chosen = np.unique(rng.choice(n_concepts, size=count, p=weights))
        rows.extend([image] * len(chosen))
        cols.extend(chosen)
    data = np.ones(len(rows), dtype=np.int8)
    return sparse.csr_matrix((data, (rows, cols)), shape=(n_images, n_concepts))


def run(quick):
    rng = np.random.default_rng(0)
    n_images = 2_000 if quick else 10_000
    n_concepts = 5_528
    y_true = long_tail_indicators(n_images, n_concepts, 6, rng)
    y_pred = long_tail_indicators(n_images, n_concepts, 7, rng)
    names = np.array([f"C{j:07d}" for j in range(n_concepts)])
    true_lines = [";".join(names[row.indices]) for row in y_true]
    pred_lines = [";".join(names[row.indices]) for row in y_pred]

    ours, reference = alternate(
        lambda: imageclef_f1_score(y_true, y_pred),
        lambda: official_mean_f1(true_lines, pred_lines),
        repeat=2 if quick else 3,
    )
    difference = imageclef_f1_score(y_true, y_pred) - official_mean_f1(true_lines, pred_lines)
    assert abs(difference) < 1e-12
    return [
        Row("metric", f"official F1, {n_images:,} x {n_concepts:,} sparse", ours, reference,
            "s", reference / ours, "speed-up over the per-image official loop"),
    ]
