"""Image batches as a tf.data pipeline: prefetched on the host, of known length."""

import numpy as np

from imageclef_concepts.images._sources import ImageArray
from imageclef_concepts.keras import _batches
from imageclef_concepts.keras._batches import ImageBatches


def _batches_of(dataset):
    return [[np.asarray(part) for part in batch] for batch in dataset]


def test_batches_are_prefetched_with_their_number_known():
    rng = np.random.default_rng(0)
    images = ImageArray(rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), 8)
    dataset = ImageBatches(images, targets=np.eye(10)[:, :3], batch_size=4).dataset()
    assert int(dataset.cardinality()) == 3  # Keras knows an epoch's steps
    assert [len(batch[0]) for batch in _batches_of(dataset)] == [4, 4, 2]


def test_training_on_the_path_one_gpu_takes_keeps_the_epoch_length(monkeypatch):
    # prefetch_to_device must end a pipeline and loses its cardinality: Keras then
    # warned "Your input ran out of data; interrupting training" at every epoch
    # on a one-GPU machine, with no steps known to the progress bar and callbacks.
    import warnings

    from imageclef_concepts import ConceptCNNClassifier

    monkeypatch.setattr(_batches, "prefetch_device", lambda: "/CPU:0", raising=False)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    y = np.eye(3, dtype=int)[np.arange(12) % 3]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*ran out of data")
        model = ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=2,
                                     batch_size=4, validation_fraction=None, random_state=0,
                                     verbose=0).fit(X, y)
    assert len(model.history_["loss"]) == 2
