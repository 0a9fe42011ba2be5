"""The 2024 recipe against the 2026 additions (votes, count model, both), with the split's ceilings.

Usage::

    python benchmarks/recipe_2026.py --nih DATA/nih-chestxray

For each seed, four small CNNs (``ConceptEnsemble.from_grid`` over two
losses x two seeds) are fitted on the training part, and four decisions are
tuned on a validation part with ``cv="prefit"``
(:func:`imageclef_concepts.recipes._2026.tune_decisions`, what
``recipe-2026`` runs), then scored on a test part never tuned on:

* 2024 recipe: the members' mean, one threshold (``ThresholdTuner``);
* + votes: each member's threshold and the vote count ``L`` (``EnsembleTuner``);
* + count model: the mean with a ``ConceptCountRegressor`` interval
  (coverage in None, 0.8, 0.9, kept only when it gains);
* + both: whichever of the last two scores higher on validation (the two
  do not compose: a vote decision has no score for the count model to rank).

Data: the synthetic images of ``make_concept_images`` (fixed data, 240
train / 80 valid / 80 test; the seeds vary the members), and the NIH chest
X-rays: ``train_concepts.tsv`` split by patient (the id's part before ``_``)
into 75% for the members and 25% for tuning, a new split per seed;
``valid_concepts.tsv`` is the test part. Prints one Markdown row per method
(official F1 per seed, mean, range) and the split's ceilings.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imageclef_concepts import (  # noqa: E402
    ConceptCNNClassifier,
    ConceptEnsemble,
    imageclef_f1_score,
    load_imageclef,
    make_concept_images,
    oracle_bounds,
)
from imageclef_concepts.recipes._2026 import Recipe2026, tune_decisions  # noqa: E402

ROWS = {"2024 recipe: mean, one threshold": "mean", "+ votes (member thresholds and L)": "votes",
        "+ count model (mean, threshold and coverage)": "mean+count",
        "+ both (the better of the two on validation)": "both"}


def fitted_members(seed, X, y, epochs, image_size):
    cnn = ConceptCNNClassifier(image_size=image_size, filters=(16, 32, 64), padding="same",
                               dense_units=(64,), epochs=epochs, learning_rate=1e-3, decay=0.0,
                               n_jobs=1)
    grid = ConceptEnsemble.from_grid(cnn, {"loss": ["binary_crossentropy", "focal"],
                                           "random_state": [10 * seed, 10 * seed + 1]})
    return [(name, member.fit(X, y)) for name, member in grid.estimators]


def run_seed(seed, data, args):
    start = time.perf_counter()
    (X_fit, y_fit), (X_valid, y_valid), (X_test, y_test) = data(seed)
    members = fitted_members(seed, X_fit, y_fit, args.epochs, args.image_size)
    tuned, _, chosen = tune_decisions(members, X_valid, y_valid,
                                      Recipe2026(count_coverage=(None, 0.8, 0.9)))
    tuned["both"] = tuned[chosen]
    scores = {name: imageclef_f1_score(y_test, model.predict(X_test))
              for name, model in tuned.items()}
    print(f"  seed {seed}: {time.perf_counter() - start:.0f} s; chosen {chosen}; "
          + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), file=sys.stderr)
    return scores, oracle_bounds(y_fit, y_test)


def synthetic(_seed):
    data = make_concept_images(400, 16, 32, random_state=0)
    y = np.array([";".join(c) for c in data.concepts], dtype=object)
    parts = np.split(np.arange(400), [240, 320])
    return [(data.images[rows], y[rows]) for rows in parts]


def nih(folder):
    train = load_imageclef(folder / "images", folder / "train_concepts.tsv")
    test = load_imageclef(folder / "images", folder / "valid_concepts.tsv")
    paths, y = np.array(train.paths), np.array([";".join(c) for c in train.concepts], dtype=object)
    patients = [image_id.split("_")[0] for image_id in train.ids]

    def split(seed):
        fit, tune = next(GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
                         .split(paths, groups=patients))
        return ((paths[fit], y[fit]), (paths[tune], y[tune]),
                (np.array(test.paths), np.array([";".join(c) for c in test.concepts],
                                                dtype=object)))
    return split


def table(name, results):
    print(f"\n{name}\n")
    print("| method | official F1 per seed | mean | range |")
    print("|---|---|---:|---:|")
    for label, key in ROWS.items():
        values = [scores[key] for scores, _ in results]
        print(f"| {label} | {' '.join(f'{v:.4f}' for v in values)} | {np.mean(values):.4f} "
              f"| {min(values):.4f}-{max(values):.4f} |")
    for field in ("vocabulary_f1", "retrieval_f1", "top_k_f1"):
        values = [getattr(bounds, field) for _, bounds in results]
        print(f"| ceiling: {field} | {' '.join(f'{v:.4f}' for v in values)} | "
              f"{np.mean(values):.4f} | {min(values):.4f}-{max(values):.4f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nih", type=Path, default=None, help="the NIH chest X-ray folder")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    datasets = {"synthetic (240 train / 80 valid / 80 test)": synthetic}
    if args.nih is not None:
        datasets["NIH chest X-rays (75% of train / 25% of train by patient / valid)"] = \
            nih(args.nih)
    for name, data in datasets.items():
        table(name, [run_seed(seed, data, args) for seed in args.seeds])


if __name__ == "__main__":
    main()
