import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner out of test logs
# oneDNN's fused kernels sum in an order that can differ between processes; the
# tests compare results across processes (cluster workers), so they run without.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Under pytest-xdist each worker takes its share of the cores, so that two
# workers on two cores do not each start a thread pool of two (TensorFlow's
# and the BLAS's): oversubscribed, the suite runs slower than on one worker.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_variable, _share)

from pathlib import Path

import numpy as np
import pytest

from imageclef_concepts import make_concept_images

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(*parts):
    """A path under ``../shared/data``; the calling test is skipped when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path}: the project's shared data, not beside this checkout")
    return path


TINY = dict(image_size=32, filters=(4, 8), dense_units=(8,), epochs=2, random_state=0)


def labels_of(data):
    """A synthetic data set's concepts as ``;``-joined strings."""
    return [";".join(concepts) for concepts in data.concepts]


def snapshot(folder):
    """Every file below ``folder`` with its bytes."""
    return {os.path.relpath(os.path.join(root, name), folder):
            open(os.path.join(root, name), "rb").read()
            for root, _, names in os.walk(folder) for name in names}


def tiny_cnn(**params):
    """A network of the tests' tiny size, trained one epoch."""
    from imageclef_concepts import ConceptCNNClassifier

    return ConceptCNNClassifier(**{**TINY, "epochs": 1, **params})


@pytest.fixture(scope="session")
def tiny_images():
    """40 synthetic 32 x 32 images with 5 concepts (names and lists)."""
    return make_concept_images(40, 5, 32, random_state=0)


@pytest.fixture
def tiny_params():
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_indicator(tiny_images):
    names = list(tiny_images.concept_names)
    Y = np.zeros((len(tiny_images.concepts), len(names)), dtype=int)
    for row, concepts in enumerate(tiny_images.concepts):
        Y[row, [names.index(c) for c in concepts]] = 1
    return Y


@pytest.fixture
def decodes(monkeypatch):
    """Count the files decoded and checked by image sources (any thread)."""
    counts = {"decoded": 0, "checked": 0}
    import imageclef_concepts.images._sources as images_module

    real_decode, real_check = images_module.decode_image, images_module.check_image_file

    def decode(path, *args):
        counts["decoded"] += 1
        return real_decode(path, *args)

    def check(path):
        counts["checked"] += 1
        return real_check(path)

    monkeypatch.setattr(images_module, "decode_image", decode)
    monkeypatch.setattr(images_module, "check_image_file", check)
    return counts


# Docstring examples that build a full-size network (a random ViT-B/16: 25 s), which a
# docstring cannot mark itself.
SLOW_EXAMPLES = {"imageclef_concepts.embeddings._encoder.FoundationEncoder"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """The network's contract checks on image files, and the full-size docstring
    examples, run with the slow tests.

    The library's check suite generates its cases (one per check and data
    form), so they cannot carry a mark where they are written: on files the
    network runs the same checks as on arrays, with decoding added.
    """
    for item in items:
        if item.nodeid.endswith("[paths]]") and \
                "keeps_the_contract[ConceptCNNClassifier-" in item.nodeid \
                or isinstance(item, pytest.DoctestItem) and item.name in SLOW_EXAMPLES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def sigint_raises():
    """SIGINT raising KeyboardInterrupt, as in a terminal: a job a script starts in the
    background (as CI may run the tests) has it ignored, and the library leaves an ignored
    SIGINT ignored."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
