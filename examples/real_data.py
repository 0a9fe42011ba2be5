"""
A real dataset in the ImageCLEF layout
======================================

Train the paper's CNN (scaled to the images' size) and the
most-frequent-concepts baseline on a real dataset folder, tune the threshold
on half of the validation images and report the official F1 on the other
half. Try it on any folder of ``<id>.<ext>`` images with a training and a
validation concept file, for example a sample of NIH ChestX-ray14::

    python examples/real_data.py --images DATA/images \\
        --train-concepts DATA/train_concepts.tsv --valid-concepts DATA/valid_concepts.tsv

Labels can be any strings (finding names as well as CUIs). Not run when the
documentation is built: it needs a dataset.
"""

import argparse

import numpy as np

from imageclef_concepts import (
    ConceptCNNClassifier,
    MostFrequentConcepts,
    ThresholdTuner,
    imageclef_f1_score,
    load_imageclef,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--images", required=True)
    parser.add_argument("--train-concepts", required=True)
    parser.add_argument("--valid-concepts", required=True)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()

    train = load_imageclef(args.images, args.train_concepts)
    valid = load_imageclef(args.images, args.valid_concepts)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(valid.paths))
    tune, test = order[: len(order) // 2], order[len(order) // 2:]
    paths, concepts = np.array(valid.paths), np.array(valid.concepts, dtype=object)

    baseline = MostFrequentConcepts().fit(train.paths, train.concepts)
    cnn = ConceptCNNClassifier(image_size=args.image_size, filters=(16, 32, 64),
                               epochs=args.epochs, learning_rate=1e-3, decay=0.0,
                               random_state=0, validation_fraction=0.1)
    cnn.fit(train.paths, train.concepts)
    tuner = ThresholdTuner(cnn, cv="prefit", refit=False).fit(paths[tune], concepts[tune])
    truth = concepts[test]
    print(f"most frequent (k={baseline.k_}): "
          f"{imageclef_f1_score(truth, baseline.predict(paths[test])):.4f}")
    print(f"CNN at 0.1: {imageclef_f1_score(truth, cnn.predict(paths[test])):.4f}")
    print(f"CNN at tuned {tuner.best_threshold_:.3f}: "
          f"{imageclef_f1_score(truth, tuner.predict(paths[test])):.4f}")


if __name__ == "__main__":
    main()
