"""A 4-configuration grid search: sequential (n_jobs=1) against a 2-worker Dask LocalCluster.

On 2 cores the cluster cannot be faster than one process using both cores;
what this measures is its overhead: shipping estimators and paths, starting
TensorFlow in each worker, gathering results. Each worker runs TensorFlow
on one thread (2 workers x 1 thread = 2 cores); the sequential side uses
TensorFlow's default, every core.
"""

import tempfile
import time

import joblib
import numpy as np
from PIL import Image
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import ConceptCNNClassifier, imageclef_f1, make_concept_images

from ._timing import Row


def _paths(folder, data):
    paths = []
    for index, pixels in enumerate(data.images):
        path = f"{folder}/img{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return np.array(paths)


def run(quick):
    import distributed

    data = make_concept_images(200 if quick else 400, 6, 32, random_state=0)
    y = np.array([";".join(c) for c in data.concepts], dtype=object)
    grid = {"learning_rate": [1e-3, 3e-3], "batch_size": [16, 32]}  # 4 configurations
    folds = KFold(2, shuffle=True, random_state=0)
    with tempfile.TemporaryDirectory() as folder:
        paths = _paths(folder, data)

        def search(n_threads, n_jobs):
            model = ConceptCNNClassifier(image_size=32, filters=(8, 16), dense_units=(16,),
                                         epochs=3 if quick else 6, decay=0.0,
                                         random_state=0, n_threads=n_threads)
            return GridSearchCV(model, grid, scoring=imageclef_f1, cv=folds, n_jobs=n_jobs,
                                refit=False)

        start = time.perf_counter()
        sequential = search(None, 1).fit(paths, y)
        sequential_s = time.perf_counter() - start
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as cluster, \
                distributed.Client(cluster):
            start = time.perf_counter()
            with joblib.parallel_backend("dask"):
                clustered = search(1, -1).fit(paths, y)
            cluster_s = time.perf_counter() - start
    np.testing.assert_allclose(clustered.cv_results_["mean_test_score"],
                               sequential.cv_results_["mean_test_score"], rtol=1e-5)
    n_tasks = len(sequential.cv_results_["params"]) * folds.get_n_splits() + 1
    overhead = (cluster_s - sequential_s) / n_tasks
    return [
        Row("cluster", "4-config grid x 2 folds, Dask 2 workers vs n_jobs=1", cluster_s,
            sequential_s, "s", cluster_s / sequential_s,
            "cluster time / sequential time (overhead; under 1.15 is the goal)"),
        Row("cluster", "per-task overhead of the cluster", overhead, sequential_s / n_tasks,
            "s", overhead / (sequential_s / n_tasks),
            "extra seconds per fit / seconds per sequential fit"),
    ]
