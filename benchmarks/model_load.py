"""Loading a saved ConceptCNNClassifier with and without the check of its config's variables.

Usage::

    python benchmarks/model_load.py [--repeat N]

``check_stored_variables`` builds the network of a ``.keras`` file's
``config.json`` once more, in a TensorFlow graph and Keras' stateless scope
(nothing computed), to refuse a config that declares more than its weights
hold before Keras allocates it. This prints, for the paper's CNN and a
DenseNet-121 backbone (``weights=None``, 96 px), the seconds of
``ConceptCNNClassifier.load`` with the check and with it replaced by a no-op,
the two alternating in one process (the best of ``--repeat``), and their ratio.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import imageclef_concepts.keras._model_file as model_file  # noqa: E402
from imageclef_concepts import ConceptCNNClassifier  # noqa: E402

NETWORKS = {"paper CNN": dict(filters=(8, 8)),
            "DenseNet-121": dict(backbone="densenet121", weights=None)}


def saved_model(folder, settings):
    """A model of ``settings`` fitted for one epoch on 8 random images, saved; its path."""
    X = np.random.default_rng(0).integers(0, 256, (8, 96, 96, 3), dtype=np.uint8)
    model = ConceptCNNClassifier(image_size=96, epochs=1, validation_fraction=None,
                                 **settings).fit(X, [["A"], ["B"], ["A", "B"], ["A"]] * 2)
    path = os.path.join(folder, "model.keras")
    model.save(path)
    return path


def load_times(path, repeat):
    """Best seconds of loading ``path`` with the check and without it, alternating."""
    checked, times = model_file.check_stored_variables, {"with": [], "without": []}
    ConceptCNNClassifier.load(path)  # Keras and TensorFlow warmed up
    try:
        for _ in range(repeat):
            for kind in times:
                model_file.check_stored_variables = (
                    checked if kind == "with" else lambda *args, **kwargs: None)
                start = time.perf_counter()
                ConceptCNNClassifier.load(path)
                times[kind].append(time.perf_counter() - start)
    finally:
        model_file.check_stored_variables = checked
    return min(times["with"]), min(times["without"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{'network':<14} {'file MB':>8} {'with (s)':>9} {'without (s)':>12} {'ratio':>6}")
    for name, settings in NETWORKS.items():
        with tempfile.TemporaryDirectory() as folder:
            path = saved_model(folder, settings)
            size = os.path.getsize(path) / 2**20
            with_check, without = load_times(path, args.repeat)
        print(f"{name:<14} {size:>8.1f} {with_check:>9.2f} {without:>12.2f} "
              f"{with_check / without:>6.2f}")


if __name__ == "__main__":
    main()
