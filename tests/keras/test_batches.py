"""Image batches as a tf.data pipeline: prefetched, and onto the one GPU when there is one."""

import numpy as np
import pytest

from imageclef_concepts.images._sources import ImageArray
from imageclef_concepts.keras import _batches
from imageclef_concepts.keras._batches import ImageBatches, prefetch_device


def _batches_of(dataset):
    return [[np.asarray(part) for part in batch] for batch in dataset]


def test_on_a_cpu_batches_are_prefetched_on_the_host_only():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is here")
    assert prefetch_device() is None  # to_device=True changes nothing on a CPU


def test_batches_copied_to_a_device_ahead_are_the_same_batches(monkeypatch):
    rng = np.random.default_rng(0)
    images = ImageArray(rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), 8)
    batches = ImageBatches(images, targets=np.eye(10)[:, :3], batch_size=4)
    on_host = _batches_of(batches.dataset())
    # The path a GPU takes, to the CPU device (the one every machine has).
    monkeypatch.setattr(_batches, "prefetch_device", lambda: "/CPU:0")
    copied = _batches_of(batches.dataset(to_device=True))
    assert len(copied) == len(on_host) == 3
    for ours, theirs in zip(copied, on_host):
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
