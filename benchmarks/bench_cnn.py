"""ConceptCNNClassifier against hand-written Keras on the same network and data."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

from imageclef_concepts import ConceptCNNClassifier
from imageclef_concepts.keras._network import build_concept_cnn

from ._timing import Row, alternate

N_CONCEPTS = 5_528
IMAGE_SIZE = 400


def run(quick):
    n_images = 96 if quick else 128
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n_images, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    Y = (rng.random((n_images, N_CONCEPTS)) < 6 / N_CONCEPTS).astype(np.float32)
    Y[np.arange(n_images), rng.integers(0, N_CONCEPTS, n_images)] = 1
    estimator = ConceptCNNClassifier(epochs=1, validation_fraction=None)

    # A hand-written script builds its model too; both sides include that.
    raw = {}

    def keras_fit():
        raw["model"] = build_concept_cnn(N_CONCEPTS)
        raw["model"].compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy")
        raw["model"].fit(X, Y, batch_size=32, epochs=1, verbose=0)

    # Run times on this shared machine jump between two levels (about 1.7x
    # apart) for identical code; many short alternating runs let the best of
    # each side land on the same level.
    repeat = 3 if quick else 8
    ours_fit, keras_fit_time = alternate(lambda: estimator.fit(X, Y), keras_fit, repeat)
    ours_predict, keras_predict = alternate(
        lambda: estimator.predict_proba(X),
        lambda: raw["model"].predict(X, batch_size=32, verbose=0), repeat)

    ours_fit_rate, keras_fit_rate = n_images / ours_fit, n_images / keras_fit_time
    ours_predict_rate, keras_predict_rate = n_images / ours_predict, n_images / keras_predict
    achieved = training_flops_per_image(estimator.model_) * ours_fit_rate / 1e9
    gemm, gemm_native = numpy_gemm_gflops(), numpy_gemm_gflops(native_openblas=True)
    size = f"{IMAGE_SIZE}px, {n_images} images, {N_CONCEPTS:,} concepts"
    return [
        Row("cnn", f"fit throughput, {size}", ours_fit_rate, keras_fit_rate, "images/s",
            ours_fit_rate / keras_fit_rate, "estimator / raw keras.Model.fit (target >= 0.95)"),
        Row("cnn", f"predict_proba throughput, {size}", ours_predict_rate, keras_predict_rate,
            "images/s", ours_predict_rate / keras_predict_rate,
            "estimator / raw keras.Model.predict (target >= 0.95)"),
        Row("cnn", "training GFLOP/s vs numpy float32 GEMM", achieved, gemm, "GFLOP/s",
            achieved / gemm, "share of numpy's GEMM rate (OpenBLAS as configured here)"),
        Row("cnn", "training GFLOP/s vs numpy GEMM, native kernel", achieved, gemm_native,
            "GFLOP/s", achieved / gemm_native,
            "share of numpy's GEMM rate with OPENBLAS_CORETYPE/L2_SIZE unset"),
    ] + memory_rows(n_fits=10 if quick else 30)


def training_flops_per_image(model):
    """Multiply-adds of one forward pass x 2 (FLOPs), x 3 for forward + backward."""
    import keras

    forward = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, out_channels = layer.output.shape
            kernel_h, kernel_w = layer.kernel_size
            in_channels = layer.input.shape[-1]
            forward += 2 * height * width * out_channels * kernel_h * kernel_w * in_channels
        elif isinstance(layer, keras.layers.Dense):
            forward += 2 * layer.input.shape[-1] * layer.units
    return 3 * forward


_GEMM_SCRIPT = """
import json, time, numpy as np
a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
np.dot(a, a)
best = min(_t for _t in (__import__('timeit').timeit(lambda: np.dot(a, a), number=3) / 3
                         for _ in range(3)))
print(json.dumps(2 * 2048 ** 3 / best / 1e9))
"""


def numpy_gemm_gflops(native_openblas=False):
    """numpy float32 matrix-multiply rate, measured in a fresh process."""
    env = dict(os.environ)
    if native_openblas:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    done = subprocess.run([sys.executable, "-c", _GEMM_SCRIPT], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def _rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_rows(n_fits):
    """RSS growth over many small fits in one process, as in a grid search."""
    import keras

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    Y = (rng.random((64, 200)) < 0.05).astype(np.float32)
    Y[:, 0] = 1
    params = dict(image_size=64, filters=(8, 16), dense_units=(32,), epochs=1,
                  validation_fraction=None)

    def growth(fit_once):
        for _ in range(3):  # warm-up: first fits load code and caches
            fit_once()
        start = _rss_mb()
        for _ in range(n_fits):
            fit_once()
        return (_rss_mb() - start) / n_fits

    ours = growth(lambda: ConceptCNNClassifier(**params).fit(X, Y))

    def raw_keras_fit():
        model = build_concept_cnn(200, image_size=64, filters=(8, 16), dense_units=(32,))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(X, Y, batch_size=32, epochs=1, verbose=0)

    reference = growth(raw_keras_fit)
    keras.backend.clear_session()
    return [Row("cnn", f"RSS growth per fit over {n_fits} fits", ours, reference, "MB/fit",
                reference / max(ours, 1e-3),
                "raw Keras without clear_session / estimator (higher is better)")]
