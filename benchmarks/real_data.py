"""Baselines and models on a real dataset in the ImageCLEF layout.

Usage::

    python benchmarks/real_data.py --images DATA/images \\
        --train-concepts DATA/train_concepts.tsv --valid-concepts DATA/valid_concepts.tsv

Every method is fitted on the training file. The validation file is split in
two halves by patient (the id's part before ``_``; all of a patient's images
on one side): thresholds are tuned on the first half, the official F1 is
reported on the second. Prints a Markdown table with fit and predict times.
"""

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._dataset import dataset_parser, train_and_valid  # noqa: E402
from imageclef_concepts import (  # noqa: E402
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    MostFrequentConcepts,
    ThresholdTuner,
    imageclef_f1_score,
)


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main(argv=None):
    parser = dataset_parser(__doc__.splitlines()[0], image_size=64, epochs=30)
    parser.add_argument("--json", type=Path,
                        default=ROOT / "benchmarks" / "results" / "real_data.json")
    args = parser.parse_args(argv)

    train, valid = train_and_valid(args)
    patients = [image_id.split("_")[0] for image_id in valid.ids]
    tune, test = next(GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=0)
                      .split(valid.ids, groups=patients))
    paths = np.array(valid.paths)
    truth = np.array([";".join(c) for c in valid.concepts], dtype=object)
    y_train = np.array([";".join(c) for c in train.concepts], dtype=object)
    print(f"{len(train.paths)} training images; validation split by patient into "
          f"{len(tune)} tuning and {len(test)} test images", file=sys.stderr)

    rows = []

    def report(name, model, fit_seconds, predicted, predict_seconds):
        score = imageclef_f1_score(truth[test], predicted)
        rows.append({"method": name, "official_f1": score, "fit_s": fit_seconds,
                     "predict_s": predict_seconds})
        print(f"{name}: {score:.4f}", file=sys.stderr)

    baseline, fit_s = timed(MostFrequentConcepts().fit, train.paths, y_train)
    predicted, predict_s = timed(baseline.predict, paths[test])
    report(f"most frequent concepts (k={baseline.k_}, chosen on training data)", baseline,
           fit_s, predicted, predict_s)

    cnn = ConceptCNNClassifier(image_size=args.image_size, filters=(16, 32, 64),
                               dense_units=(128, 64), epochs=args.epochs,
                               learning_rate=1e-3, decay=1e-6, random_state=0)
    _, cnn_fit_s = timed(cnn.fit, train.paths, y_train)
    predicted, predict_s = timed(cnn.predict, paths[test])
    report(f"paper's CNN ({args.image_size}px, 3 blocks), threshold 0.1", cnn, cnn_fit_s,
           predicted, predict_s)
    tuner, tune_s = timed(ThresholdTuner(cnn, cv="prefit", refit=False, min_concepts=1).fit,
                          paths[tune], truth[tune])
    predicted, predict_s = timed(tuner.predict, paths[test])
    report(f"paper's CNN, threshold tuned on the tuning half ({tuner.best_threshold_:.3f}), "
           "at least 1 concept", tuner, cnn_fit_s + tune_s, predicted, predict_s)

    def fit_tuned(name, model):
        """Fit ``model``, tune its threshold on the tuning half, report the test half."""
        _, fit_s = timed(model.fit, train.paths, y_train)
        tuner, tune_s = timed(ThresholdTuner(model, cv="prefit", refit=False,
                                             min_concepts=1).fit, paths[tune], truth[tune])
        predicted, predict_s = timed(tuner.predict, paths[test])
        report(f"{name}, tuned threshold ({tuner.best_threshold_:.3f}), at least 1 concept",
               tuner, fit_s + tune_s, predicted, predict_s)

    for name, embedding in (("pixels (32x32)", "pixels"), ("CNN features", cnn)):
        fit_tuned(f"k-NN (k=10) on {name}",
                  ConceptKNNClassifier(n_neighbors=10, embedding=embedding, pixel_size=32))

    # The winners' recipe, one part at a time, each with its threshold tuned.
    for name, change in (("focal loss", {"loss": "focal"}),
                         ("standard augmentation", {"augmentation": "standard"})):
        fit_tuned(f"paper's CNN with {name}",
                  ConceptCNNClassifier(**{**cnn.get_params(), **change}))

    # Systems of several models, each with its threshold tuned on the tuning half.
    second_cnn = ConceptCNNClassifier(**{**cnn.get_params(), "random_state": 1})
    _, second_fit_s = timed(second_cnn.fit, train.paths, y_train)
    two_cnns = ConceptEnsemble([("seed0", cnn), ("seed1", second_cnn)], prefit=True)
    two_cnns.fit(train.paths, y_train)
    ensemble_tuner, tune_s = timed(
        ThresholdTuner(two_cnns, cv="prefit", refit=False, min_concepts=1).fit,
        paths[tune], truth[tune])
    predicted, predict_s = timed(ensemble_tuner.predict, paths[test])
    report(f"ensemble of two CNNs (seeds 0, 1), mean, tuned threshold "
           f"({ensemble_tuner.best_threshold_:.3f}), at least 1 concept", ensemble_tuner,
           cnn_fit_s + second_fit_s + tune_s, predicted, predict_s)

    knn_on_cnn = ConceptKNNClassifier(n_neighbors=10, embedding=cnn).fit(train.paths, y_train)
    best = None
    for weight in (0.25, 0.5, 0.75):  # chosen on the tuning half, like the threshold
        fusion = ConceptEnsemble([("cnn", cnn), ("knn", knn_on_cnn)], weights=[weight, 1 - weight],
                                 prefit=True).fit(train.paths, y_train)
        fusion_tuner = ThresholdTuner(fusion, cv="prefit", refit=False, min_concepts=1)
        fusion_tuner.fit(paths[tune], truth[tune])
        if best is None or fusion_tuner.best_score_ > best[1].best_score_:
            best = (weight, fusion_tuner)
    weight, fusion_tuner = best
    predicted, predict_s = timed(fusion_tuner.predict, paths[test])
    report(f"CNN + k-NN on CNN features, mean with CNN weight {weight} and threshold "
           f"({fusion_tuner.best_threshold_:.3f}) tuned, at least 1 concept", fusion_tuner,
           cnn_fit_s, predicted, predict_s)

    print("| method | official F1 (test half) | fit s | predict s |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['method']} | {row['official_f1']:.4f} | {row['fit_s']:.1f} | "
              f"{row['predict_s']:.2f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": {"python": platform.python_version(),
                                                 "processor": platform.processor()},
                                     "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
