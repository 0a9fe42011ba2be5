"""
Reproducing the paper on the ImageCLEF 2019 data
================================================

The MacUni-CSIRO configuration, unchanged: 400 x 400 images, four 5x5
convolution blocks, Adam 1e-4 with decay 1e-6, batch size 32, 10 epochs, the
best epoch on validation, threshold tuned on validation (the paper found
0.1). It scored F1 0.1435 on the 2019 test set.

Run it with the paths of the official data::

    python examples/reproduce_paper_2019.py \\
        --train-images ImageCLEFmed2019/train --train-concepts Train_Concepts.tsv \\
        --valid-images ImageCLEFmed2019/valid --valid-concepts Val_Concepts.tsv \\
        --output paper_2019.keras

What to expect: 56,629 training images streamed from disk; about 20 images
per second on a 2-core CPU, so about 9 hours for 10 epochs (minutes on a
GPU); memory stays at a few GB whatever the number of images. This script is
not run when the documentation is built: it needs the real data.
"""

import argparse

from imageclef_concepts import ConceptCNNClassifier, ThresholdTuner, load_imageclef


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--train-images", required=True)
    parser.add_argument("--train-concepts", required=True)
    parser.add_argument("--valid-images", required=True)
    parser.add_argument("--valid-concepts", required=True)
    parser.add_argument("--output", default="paper_2019.keras")
    args = parser.parse_args()

    train = load_imageclef(args.train_images, args.train_concepts)
    valid = load_imageclef(args.valid_images, args.valid_concepts)
    model = ConceptCNNClassifier(verbose=1, random_state=0)  # every default is the paper's
    model.fit(train.paths, train.concepts, validation_data=(valid.paths, valid.concepts))
    tuner = ThresholdTuner(model, cv="prefit", refit=False, store_cv_results=True)
    tuner.fit(valid.paths, valid.concepts)
    print(f"threshold {tuner.best_threshold_:.3f}: validation F1 {tuner.best_score_:.4f}")
    tuner.save(args.output)  # the network with its tuned decision rule, one native file


if __name__ == "__main__":
    main()
