"""Count-aware decision rules and shrunk per-concept thresholds, against the plain tuned rule.

Usage::

    python benchmarks/count_rules.py \
        --roco DATA/roco-v1-concepts/roco_v1_validation_radiology_concepts.tsv
    python benchmarks/count_rules.py --nih DATA/nih-chestxray

``--roco``: the real concept lists of 8,180 ROCO images (the concepts of at
least 5 images, 1,414 columns) with synthetic probabilities: a concept's
logit is its prior's plus, when the image has it, 3 + 1.5 u (u an image's
confidence), plus 0.7 v (v an image's overall level) and unit noise.
``--nih``: the 800 real chest X-rays; a k-NN (k=10, 32 x 32 pixels) fitted on
the 600 training images gives the probabilities of the 200 validation ones.

In each of three seeds the images are split in halves (NIH: by patient):
every rule is tuned on one half (at least one concept per image) and scored
on the other. Prints each rule's official F1: mean and range over the seeds.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GroupShuffleSplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imageclef_concepts import (  # noqa: E402
    ConceptEncoder,
    ConceptKNNClassifier,
    ThresholdTuner,
    imageclef_f1_score,
    load_imageclef,
    read_concepts,
)

COVERAGES = [None, 0.3, 0.5, 0.7, 0.8, 0.9]
RULES = {
    "global threshold": {},
    "global + count model": {"count_coverage": COVERAGES},
    "per concept": {"strategy": "per_concept"},
    "per concept, shrunk (k by cv)": {"strategy": "per_concept", "shrinkage": "cv"},
    "per concept, shrunk + count model": {"strategy": "per_concept", "shrinkage": "cv",
                                          "count_coverage": COVERAGES},
}


class ScoresAsFeatures(ClassifierMixin, BaseEstimator):
    """Its 'images' are the probabilities it predicts."""

    def fit(self, X, y):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X):
        return np.asarray(X)


def roco_case(path, seed):
    concepts = read_concepts(path).concepts
    encoder = ConceptEncoder(min_count=5).fit(concepts)
    y = encoder.transform(concepts).astype(np.int8)
    rng = np.random.default_rng(seed)
    prior = np.clip(y.mean(axis=0), 1e-4, None)
    confidence = rng.normal(size=(len(y), 1))
    level = rng.normal(size=(len(y), 1))
    logits = (np.log(prior / (1 - prior)) + y * (3 + 1.5 * confidence) + 0.7 * level
              + rng.normal(size=y.shape))
    scores = (1 / (1 + np.exp(-logits))).astype(np.float32)
    halves = rng.permutation(len(y))
    tune, test = np.sort(halves[: len(y) // 2]), np.sort(halves[len(y) // 2:])
    model = ScoresAsFeatures().fit(scores, y)
    return model, (scores[tune], y[tune]), (scores[test], y[test])


def nih_case(folder, seed, knn_cache={}):
    if folder not in knn_cache:
        train = load_imageclef(folder / "images", folder / "train_concepts.tsv")
        valid = load_imageclef(folder / "images", folder / "valid_concepts.tsv")
        y_train = [";".join(c) for c in train.concepts]
        knn = ConceptKNNClassifier(n_neighbors=10, pixel_size=32).fit(train.paths, y_train)
        knn_cache[folder] = (knn, valid)
    knn, valid = knn_cache[folder]
    patients = [image_id.split("_")[0] for image_id in valid.ids]
    tune, test = next(GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=seed)
                      .split(valid.ids, groups=patients))
    paths = np.array(valid.paths)
    truth = np.array([";".join(c) for c in valid.concepts], dtype=object)
    return knn, (paths[tune], truth[tune]), (paths[test], truth[test])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--roco", type=Path, help="ROCO concept list (.tsv)")
    source.add_argument("--nih", type=Path, help="folder with images/ and the two .tsv files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    scores = {name: [] for name in RULES}
    for seed in args.seeds:
        model, (X_tune, y_tune), (X_test, y_test) = (
            roco_case(args.roco, seed) if args.roco else nih_case(args.nih, seed))
        for name, params in RULES.items():
            start = time.perf_counter()
            tuner = ThresholdTuner(model, cv="prefit", refit=False, min_concepts=1,
                                   random_state=seed, **params).fit(X_tune, y_tune)
            score = imageclef_f1_score(y_test, tuner.predict(X_test))
            scores[name].append(score)
            print(f"seed {seed} {name}: {score:.4f} (coverage {tuner.count_coverage_}, "
                  f"k {tuner.shrinkage_}; {time.perf_counter() - start:.1f} s)",
                  file=sys.stderr)
    print("| rule | official F1, mean | range |")
    print("|---|---:|---:|")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.4f} | {min(values):.4f} - {max(values):.4f} |")


if __name__ == "__main__":
    main()
