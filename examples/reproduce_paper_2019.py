"""
Reproducing the paper on the ImageCLEF 2019 data
================================================

The MacUni-CSIRO procedure, step by step (see
:func:`~imageclef_concepts.reproduce_2019` and the user guide's fidelity
table): training and validation concepts combined (5,528 outputs), a
coarse-to-fine search over learning rate, batch size and decay (10 epochs
each, best epoch by accuracy), the threshold checked on held-out data (the
paper's 0.1), the test images' run file in the 2019 layout and a report. The
paper scored F1 0.1435 on the 2019 test set.

Run it on the official data laid out as ``DATA/train_concepts.tsv``,
``DATA/valid_concepts.tsv``, ``DATA/test_concepts.tsv`` (optional, to score)
and the images in ``DATA/train/``, ``DATA/valid/``, ``DATA/test/``::

    python examples/reproduce_paper_2019.py --data DATA --output paper_2019

or ``imageclef-concepts reproduce-2019 --data DATA --output paper_2019``.
``--dry-run`` runs the whole procedure on a small synthetic dataset in the
same layout in about a minute. The full run takes days on a 2-core CPU
(about 8.5 hours per configuration) and hours on a GPU: see the user guide.
This script is not run when the documentation is built.
"""

import argparse

from imageclef_concepts import make_imageclef_2019_layout, reproduce_2019
from imageclef_concepts.recipes._reproduce import DRY_RUN


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--data", help="the dataset folder in the 2019 layout")
    parser.add_argument("--output", default="paper_2019")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--tune-threshold", action="store_true")
    args = parser.parse_args()
    data = args.data
    if args.dry_run:
        data = f"{args.output}/data"
        make_imageclef_2019_layout(data)
    reproduce_2019(data, args.output, tune_threshold=args.tune_threshold,
                   procedure=DRY_RUN if args.dry_run else None)


if __name__ == "__main__":
    main()
