"""Rare-concept sample weights and EMA weights against the plain CNN, over seeds.

Usage::

    python benchmarks/long_tail_training.py --images DATA/images \\
        --train-concepts DATA/train_concepts.tsv --valid-concepts DATA/valid_concepts.tsv

Each variant is a :class:`ThresholdTuner` around the CNN with ``cv=0.2``
and ``refit=False``: the network trains on 80% of the training file and the
threshold (``min_concepts=1``) is tuned on the other 20%. The validation
file is only scored, never tuned on. Prints, per variant, the official F1
on the validation file at the tuned threshold and at the paper's 0.1: the
mean over the seeds and the range.
"""

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._dataset import dataset_parser, train_and_valid  # noqa: E402
from imageclef_concepts import (  # noqa: E402
    ConceptCNNClassifier,
    ThresholdTuner,
    concept_sample_weight,
    imageclef_f1_score,
)

VARIANTS = {
    "plain": ({}, False),
    "rare-concept weights (power 0.5, max)": ({}, True),
    "EMA (momentum 0.99)": ({"ema_momentum": 0.99}, False),
    "weights + EMA": ({"ema_momentum": 0.99}, True),
}


def main(argv=None):
    parser = dataset_parser(__doc__.splitlines()[0], image_size=64, epochs=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)

    train, valid = train_and_valid(args)
    y_train = np.array([";".join(c) for c in train.concepts], dtype=object)
    y_valid = np.array([";".join(c) for c in valid.concepts], dtype=object)
    weights = concept_sample_weight(y_train)
    print(f"{len(y_train)} training images, {len(y_valid)} validation images; weights "
          f"{weights.min():.2f}-{weights.max():.2f}", file=sys.stderr)

    print("| variant | F1, tuned threshold: mean (range) | F1 at 0.1: mean (range) | fit s |")
    print("|---|---|---|---|")
    for name, (params, weighted) in VARIANTS.items():
        tuned, fixed, seconds = [], [], []
        for seed in args.seeds:
            cnn = ConceptCNNClassifier(image_size=args.image_size, filters=(16, 32, 64),
                                       dense_units=(128, 64), epochs=args.epochs,
                                       learning_rate=1e-3, decay=1e-6, random_state=seed,
                                       **params)
            tuner = ThresholdTuner(cnn, cv=0.2, refit=False, min_concepts=1, random_state=0)
            start = time.perf_counter()
            tuner.fit(train.paths, y_train, **({"sample_weight": weights} if weighted else {}))
            seconds.append(time.perf_counter() - start)
            tuned.append(imageclef_f1_score(y_valid, tuner.predict(valid.paths)))
            fixed.append(imageclef_f1_score(y_valid, tuner.estimator_.predict(valid.paths)))
            print(f"{name}, seed {seed}: {tuned[-1]:.4f} tuned "
                  f"({float(np.ravel(tuner.best_threshold_)[0]):.3f}), {fixed[-1]:.4f} at 0.1",
                  file=sys.stderr)
        print(f"| {name} | {np.mean(tuned):.4f} ({min(tuned):.4f}-{max(tuned):.4f}) | "
              f"{np.mean(fixed):.4f} ({min(fixed):.4f}-{max(fixed):.4f}) | "
              f"{np.mean(seconds):.1f} |", flush=True)


if __name__ == "__main__":
    main()
