"""What the benchmarks on a real dataset share: its options, and its two splits read."""

import argparse
from pathlib import Path

from imageclef_concepts import load_imageclef


def dataset_parser(description, *, image_size, epochs):
    """A parser with the dataset's options: image folder, training and validation concepts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--train-concepts", required=True, type=Path)
    parser.add_argument("--valid-concepts", required=True, type=Path)
    parser.add_argument("--image-size", type=int, default=image_size)
    parser.add_argument("--epochs", type=int, default=epochs)
    return parser


def train_and_valid(args):
    """The training and validation splits named by :func:`dataset_parser`'s options."""
    return (load_imageclef(args.images, args.train_concepts),
            load_imageclef(args.images, args.valid_concepts))
