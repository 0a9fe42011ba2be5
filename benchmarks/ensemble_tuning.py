"""A mean ensemble against a jointly tuned vote ensemble and tuned weights, on real data.

Usage::

    python benchmarks/ensemble_tuning.py --images DATA/images \\
        --train-concepts DATA/train_concepts.tsv --valid-concepts DATA/valid_concepts.tsv

For each seed the training file is split by patient (the id's part before
``_``) into a part the members are fitted on (75%) and a part the decisions
are tuned on (25%); the validation file is only scored, never tuned on. The
members: small CNNs (``ConceptEnsemble.from_grid`` over seeds and losses)
and k-NN on pixels, fitted once per seed; then, each tuned on the tuning
part with ``cv="prefit"``:

* mean: equal weights, one threshold (``ThresholdTuner``);
* votes: each member's threshold and the vote count ``L`` (``EnsembleTuner``);
* weights: member weights from a coarse grid, threshold re-tuned;
* weights per band: the same per two bands of concept frequency.

Prints one row per method: the official F1 on the validation file for each
seed, their mean and range, and the seconds each step took.
"""

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GroupShuffleSplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._dataset import dataset_parser, train_and_valid  # noqa: E402
from imageclef_concepts import (  # noqa: E402
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    EnsembleTuner,
    MostFrequentConcepts,
    ThresholdTuner,
    imageclef_f1_score,
)


def members(seed, epochs, image_size):
    """Eight small CNNs (four seeds x two losses) and three k-NN on pixels."""
    cnn = ConceptCNNClassifier(image_size=image_size, filters=(16, 32, 64), padding="same",
                               dense_units=(64,),
                               epochs=epochs, learning_rate=1e-3, decay=0.0, n_jobs=1)
    cnns = ConceptEnsemble.from_grid(
        cnn, {"random_state": [10 * seed + i for i in range(4)],
              "loss": ["binary_crossentropy", "focal"]})
    knns = ConceptEnsemble.from_grid(ConceptKNNClassifier(pixel_size=image_size),
                                     {"n_neighbors": [5, 10, 20]})
    return cnns.estimators + knns.estimators


def run_seed(seed, args, train, valid):
    paths = np.array(train.paths)
    y = np.array([";".join(c) for c in train.concepts], dtype=object)
    truth = np.array([";".join(c) for c in valid.concepts], dtype=object)
    patients = [image_id.split("_")[0] for image_id in train.ids]
    fit, tune = next(GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
                     .split(paths, groups=patients))
    start = time.perf_counter()
    ensemble = ConceptEnsemble(members(seed, args.epochs, args.image_size), n_jobs=1)
    ensemble.fit(paths[fit], y[fit])
    seconds = {"members' fit": time.perf_counter() - start}
    tuners = {
        "mean, threshold tuned": ThresholdTuner(FrozenEstimator(ensemble), cv="prefit",
                                                refit=False, thresholds=100),
        "votes: members' thresholds and L tuned": EnsembleTuner(
            ensemble, cv="prefit", refit=False, thresholds=20),
        "weights tuned (grid 0, 0.5, 1, 2), threshold re-tuned": EnsembleTuner(
            ensemble, tune="weights", cv="prefit", refit=False, thresholds=100),
        "weights per 2 frequency bands tuned": EnsembleTuner(
            ensemble, tune="weights", bands=2, cv="prefit", refit=False, thresholds=100),
    }
    scores = {"most frequent concepts": imageclef_f1_score(
        truth, MostFrequentConcepts().fit(paths[fit], y[fit]).predict(valid.paths))}
    for name, tuner in tuners.items():
        start = time.perf_counter()
        tuner.fit(paths[tune], y[tune])
        seconds[name] = time.perf_counter() - start
        scores[name] = imageclef_f1_score(truth, tuner.predict(valid.paths))
        detail = (f"L={tuner.min_votes_}, thresholds {np.round(tuner.member_thresholds_, 2)}"
                  if getattr(tuner, "min_votes_", None) else
                  f"weights {np.round(tuner.weights_, 2).tolist()}"
                  if getattr(tuner, "weights_", None) is not None else "")
        print(f"seed {seed}: {name}: valid {scores[name]:.4f}, tuning-part "
              f"{tuner.best_score_:.4f} {detail}", file=sys.stderr)
    return scores, seconds


def main(argv=None):
    parser = dataset_parser(__doc__.splitlines()[0], image_size=32, epochs=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    train, valid = train_and_valid(args)
    results = [run_seed(seed, args, train, valid) for seed in args.seeds]
    print(f"| method | official F1 on validation, seeds {args.seeds} | mean | range |")
    print("|---|---|---:|---:|")
    for name in results[0][0]:
        values = [scores[name] for scores, _ in results]
        print(f"| {name} | {', '.join(f'{v:.4f}' for v in values)} | {np.mean(values):.4f} "
              f"| {min(values):.4f}-{max(values):.4f} |")
    for name in results[0][1]:
        print(f"{name}: {np.mean([seconds[name] for _, seconds in results]):.1f} s per seed",
              file=sys.stderr)


if __name__ == "__main__":
    main()
