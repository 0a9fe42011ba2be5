"""From one machine to a cluster: Dask and Ray through joblib, devices, precision, object storage.

The cluster tests start a local cluster on this machine's loopback (a Dask
LocalCluster with 2 worker processes; Ray with 2 CPUs). They are marked
``cluster`` so that they can be deselected (``-m "not cluster"``); CI runs them.
"""

import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import ConceptCNNClassifier, ThresholdTuner, imageclef_f1

# Slow by nature: local Dask and Ray clusters, mirrored devices, mixed precision
# (run by `pytest -m slow`).
pytestmark = pytest.mark.slow


CNN = dict(image_size=16, filters=(4,), dense_units=(8,), epochs=2, random_state=0,
           learning_rate=3e-3, decay=0.0, n_threads=1, n_jobs=1)


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory, tiny_images):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for index, pixels in enumerate(tiny_images.images):
        path = folder / f"img{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return np.array(paths), np.array([";".join(c) for c in tiny_images.concepts], dtype=object)


def _search():
    # Fixed candidate thresholds: ones drawn from the scores' own range would
    # move with the last bits of the probabilities.
    tuner = ThresholdTuner(ConceptCNNClassifier(**CNN), cv=0.5, refit=False, random_state=0,
                           thresholds=[0.2, 0.3, 0.4, 0.5])
    return GridSearchCV(tuner, {"estimator__learning_rate": [1e-3, 1e-2]},
                        scoring=imageclef_f1, cv=KFold(2, shuffle=True, random_state=0),
                        n_jobs=-1, refit=False)


def _sequential_search_scores(paths, y):
    return _search().set_params(n_jobs=1).fit(paths, y).cv_results_["mean_test_score"]


@pytest.fixture(scope="module")
def sequential_scores(image_paths):
    """The n_jobs=1 search, in a fresh process set up as a cluster worker is.

    A worker runs TensorFlow on ``n_threads=1`` and, as Dask and Ray set
    them, one OpenMP/BLAS thread; another thread count sums in another order,
    which can move a score by a threshold's width. This test process started
    TensorFlow long ago with its own settings, so the reference runs apart.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    single = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS")}
    saved = {name: os.environ.get(name) for name in single}
    os.environ.update(single)  # inherited by the spawned process
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_sequential_search_scores, *image_paths).result(timeout=600)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_an_unfitted_estimator_travels_in_kilobytes():
    size = len(pickle.dumps(ThresholdTuner(ConceptCNNClassifier())))
    assert size < 10_000, size


def test_a_fitted_network_travels_as_its_native_file(tmp_path, image_paths):
    paths, y = image_paths
    model = ConceptCNNClassifier(**CNN).fit(paths, y)
    model.save(tmp_path / "m.keras")
    pickled = pickle.dumps(model)
    # the network is pickled as its .keras file (keras_free_state), not as Python objects
    assert b"model.weights.h5" in pickled
    assert len(pickled) < 2 * (tmp_path / "m.keras").stat().st_size + 50_000
    np.testing.assert_array_equal(pickle.loads(pickled).predict_proba(paths),
                                  model.predict_proba(paths))


@pytest.mark.cluster
def test_grid_search_on_a_dask_cluster_equals_the_sequential_one(image_paths,
                                                                  sequential_scores):
    distributed = pytest.importorskip("distributed")
    paths, y = image_paths
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with joblib.parallel_backend("dask"):
            search = _search().fit(paths, y)
        threads = client.run(_threads_after_a_fit, paths[:8], y[:8])
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], sequential_scores,
                               rtol=1e-6)
    assert set(threads.values()) == {(1, 1)}  # 2 workers x 1 thread on 2 cores


def _threads_after_a_fit(paths, y):
    import tensorflow as tf

    ConceptCNNClassifier(**{**CNN, "epochs": 1}).fit(paths, y)
    threading = tf.config.threading
    return (threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads())


@pytest.mark.cluster
def test_grid_search_on_ray_equals_the_sequential_one(image_paths, sequential_scores):
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    paths, y = image_paths
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        register_ray()
        with joblib.parallel_backend("ray"):
            search = _search().fit(paths, y)
    finally:
        ray.shutdown()
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], sequential_scores,
                               rtol=1e-6)


def test_images_from_object_storage_urls(image_paths):
    fsspec = pytest.importorskip("fsspec")
    paths, y = image_paths
    memory = fsspec.filesystem("memory")
    urls = []
    for path in paths:
        url = f"memory://bucket/{path.rsplit('/', 1)[1]}"
        with open(path, "rb") as source, memory.open(url, "wb") as target:
            target.write(source.read())
        urls.append(url)
    model = ConceptCNNClassifier(**CNN).fit(paths, y)
    np.testing.assert_allclose(model.predict_proba(urls), model.predict_proba(paths))
    memory.pipe("memory://bucket/broken.png", b"not an image")
    with pytest.warns(UserWarning, match="broken.png"):
        probabilities = model.set_params(on_error="skip").predict_proba(
            urls[:2] + ["memory://bucket/broken.png"])
    assert np.isnan(probabilities[2]).all() and np.isfinite(probabilities[:2]).all()


MIRRORED = textwrap.dedent("""
    import json, sys, tempfile
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from imageclef_concepts import ConceptCNNClassifier, make_concept_images

    data = make_concept_images(64, 4, 16, random_state=0)
    y = [";".join(c) for c in data.concepts]
    model = ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=4,
                                 batch_size=16, learning_rate=1e-2, decay=0.0,
                                 validation_fraction=None, distribution="mirrored",
                                 random_state=0).fit(data.images, y)
    replicas = model.model_.distribute_strategy.num_replicas_in_sync
    path = tempfile.mkdtemp() + "/m.keras"
    model.save(path)
    loaded = ConceptCNNClassifier.load(path)
    same = bool(np.allclose(loaded.predict_proba(data.images), model.predict_proba(data.images),
                            atol=1e-6))
    print(json.dumps({"replicas": replicas, "loss": model.history_["loss"],
                      "shape": list(model.predict_proba(data.images).shape), "same": same}))
""")


def test_training_mirrored_over_two_devices():
    done = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["loss"][-1] < result["loss"][0]
    assert result["shape"] == [64, 4] and result["same"]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_probabilities(tiny_images, policy):
    y = [";".join(c) for c in tiny_images.concepts]
    common = dict(image_size=32, filters=(4, 8), dense_units=(8,), epochs=2, random_state=0,
                  learning_rate=1e-3, decay=0.0)
    full = ConceptCNNClassifier(**common).fit(tiny_images.images, y)
    mixed = ConceptCNNClassifier(**common, dtype_policy=policy).fit(tiny_images.images, y)
    assert np.isfinite(mixed.history_["loss"]).all()
    probabilities = mixed.predict_proba(tiny_images.images)
    assert probabilities.dtype == np.float32
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities, full.predict_proba(tiny_images.images), atol=0.05)
    assert mixed.model_.get_layer("block1_conv").compute_dtype in ("float16", "bfloat16")
    import keras

    assert keras.config.dtype_policy().name == "float32"  # the global policy is back
