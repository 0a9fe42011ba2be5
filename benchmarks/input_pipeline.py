"""Can the input pipeline feed the model? Images/s delivered beside the model's own appetite.

Usage: ``python benchmarks/input_pipeline.py [--images 256] [--image-size 224]
[--threads 1 2 4 ...] [--model densenet121|small] [--batch-size 32] [--steps 10]``

Prints, on this machine:

* images/s decoded from 1024-px JPEG paths, by number of decoding threads
  (``ImageFiles(..., workers=t)``, no cache);
* images/s read back from an :class:`ImageStore` prepared at the same size,
  by threads, and through the ``tf.data`` pipeline training uses
  (``ImageBatches``, prefetched; here copied onto the GPU when there is one);
* the model's own training rate on synthetic batches already on the device
  (``train_on_batch`` on a device tensor: no input pipeline at all), in
  mixed precision on a GPU.

Whichever side is lower limits training. Runs on CPU (slowly for
DenseNet-121: ``--model small`` is the library's small paper CNN).
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

from benchmarks.bench_images import _write_jpegs  # noqa: E402
from imageclef_concepts import ImageStore, prepare_images  # noqa: E402
from imageclef_concepts.images._sources import ImageFiles  # noqa: E402
from imageclef_concepts.keras._batches import ImageBatches  # noqa: E402


def default_threads():
    """Thread counts worth trying: 1, 2, 4... up to the machine's cores."""
    cores = os.cpu_count() or 1
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return counts + ([cores] if counts[-1] != cores else [])


def load_rate(source, batch_size=32):
    """Images/s of ``source.load`` over every image, batch by batch."""
    start = time.perf_counter()
    for first in range(0, len(source), batch_size):
        source.load(np.arange(first, min(first + batch_size, len(source))))
    return len(source) / (time.perf_counter() - start)


def decode_rate(paths, image_size, threads):
    return load_rate(ImageFiles(paths, image_size, workers=threads))


def store_rate(paths, store, image_size, threads):
    return load_rate(ImageFiles(paths, image_size, workers=threads, image_store=store))


def pipeline_rate(paths, store, image_size, threads, batch_size=32, n_concepts=100):
    """Images/s through the ``tf.data`` pipeline of training (targets included)."""
    import tensorflow as tf

    source = ImageFiles(paths, image_size, workers=threads, image_store=store)
    targets = np.zeros((len(paths), n_concepts), dtype=np.float32)
    dataset = ImageBatches(source, targets=targets, batch_size=batch_size,
                           shuffle_seed=0).dataset()
    if tf.config.list_logical_devices("GPU"):
        dataset = dataset.apply(tf.data.experimental.prefetch_to_device("/GPU:0", 2))
    start = time.perf_counter()
    for x, _ in dataset:
        x.shape  # noqa: B018  # each batch delivered
    return len(paths) / (time.perf_counter() - start)


def training_rate(model_name, image_size, batch_size=32, steps=10, n_concepts=100):
    """Images/s of the model's training steps on a synthetic batch already on the device."""
    import keras
    import tensorflow as tf

    gpu = bool(tf.config.list_logical_devices("GPU"))
    if gpu:
        keras.mixed_precision.set_global_policy("mixed_float16")
    model = _model(model_name, image_size, n_concepts)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = tf.random.uniform((batch_size, image_size, image_size, 3), 0, 255)
    y = tf.cast(tf.random.uniform((batch_size, n_concepts)) < 0.05, tf.float32)
    for _ in range(2):  # traced and warmed up
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss).ravel()[0])  # the last step finished
    return steps * batch_size / (time.perf_counter() - start)


def _model(name, image_size, n_concepts):
    import keras

    if name == "small":
        from imageclef_concepts.keras._network import build_concept_cnn

        return build_concept_cnn(n_concepts, image_size=image_size)  # the paper's defaults
    application = {"densenet121": keras.applications.DenseNet121,
                   "resnet50": keras.applications.ResNet50,
                   "efficientnetb0": keras.applications.EfficientNetB0}[name]
    return application(weights=None, input_shape=(image_size, image_size, 3),
                       classes=n_concepts, classifier_activation="sigmoid")


def measure(n_images=256, image_size=224, threads=None, model="densenet121", batch_size=32,
            steps=10, folder=None, say=print):
    """Every rate of the module docstring, as ``{name: images/s}``."""
    threads = threads or default_threads()
    rates = {}
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        paths = _write_jpegs(Path(scratch) / "jpegs", n_images, 1024, seed=5)
        store = ImageStore(Path(scratch) / "store")
        prepare_images(paths, store, image_size, progress=False)
        for count in threads:
            rates[f"decode paths, {count} thread(s)"] = decode_rate(paths, image_size, count)
            rates[f"read store, {count} thread(s)"] = store_rate(paths, store, image_size, count)
        most = max(threads)
        rates[f"tf.data from store, {most} thread(s)"] = pipeline_rate(
            paths, store, image_size, most, batch_size)
    rates[f"training step {model}"] = training_rate(model, image_size, batch_size, steps)
    for name, rate in rates.items():
        say(f"{name:<40} {rate:>10.1f} images/s")
    step = rates[f"training step {model}"]
    fed = max(rate for name, rate in rates.items() if name.startswith("tf.data"))
    say(f"limited by the {'input pipeline' if fed < step else 'model'} "
        f"(pipeline / model = {fed / step:.2f}; {os.cpu_count()} cores)")
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="decoding threads to try (default: 1, 2, 4... up to the cores)")
    parser.add_argument("--model", default="densenet121",
                        choices=["densenet121", "resnet50", "efficientnetb0", "small"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    measure(args.images, args.image_size, args.threads, args.model, args.batch_size, args.steps)


if __name__ == "__main__":
    main()
