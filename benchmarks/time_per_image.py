"""Seconds per image of the README's own-folder path, at the default size.

Usage::

    python benchmarks/time_per_image.py [--images 96] [--source-size 512]

Writes ``--images`` generated radiology-like PNGs of ``--source-size`` pixels
in the ImageCLEF layout to a temporary folder, then times what ``train`` and
``predict`` do with them: :class:`ConceptCNNClassifier` at its defaults (the
paper's CNN, 400 px) reading the files from disk. One training epoch per
image is the difference between a 3-epoch and a 1-epoch fit, divided by two
and by the number of images, after an untimed fit (the network's
construction and TensorFlow's start-up are left out; a difference that is
not positive is refused, not printed);
prediction per image is the faster of two ``predict_proba`` calls. Prints
one JSON line; the README quotes it, measured on a 2-core CPU.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imageclef_concepts import (  # noqa: E402
    ConceptCNNClassifier,
    load_imageclef,
    make_concept_images,
)


def _seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(n_images, source_size, folder):
    generated = make_concept_images(n_images, 20, source_size, random_state=0,
                                    directory=folder)
    data = load_imageclef(Path(folder) / "images", generated.concepts_file)

    def fit(epochs):
        model = ConceptCNNClassifier(epochs=epochs, validation_fraction=None, random_state=0)
        return model.fit(data.paths, data.concepts)

    fit(1)  # untimed: TensorFlow's one-time start-up would otherwise count in the 1-epoch fit
    one, three = _seconds(lambda: fit(1)), None
    model = None

    def fit_three():
        nonlocal model
        model = fit(3)

    three = _seconds(fit_three)
    if three <= one:
        raise SystemExit(f"time_per_image: 3 epochs took {three:.1f} s, 1 epoch {one:.1f} s: "
                         "too few images for the machine's noise; give more --images")
    predict = min(_seconds(lambda: model.predict_proba(data.paths)) for _ in range(2))
    return {"images": n_images, "source_px": source_size,
            "image_size": model.image_size, "cores": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "train_s_per_image_per_epoch": round((three - one) / 2 / n_images, 4),
            "predict_s_per_image": round(predict / n_images, 4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--source-size", type=int, default=512)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(measure(args.images, args.source_size, folder)))


if __name__ == "__main__":
    main()
