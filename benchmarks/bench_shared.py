"""Fast without being told (issue 33): decoding shared by default, the store at array speed.

Each row is a ratio of two (or three) ways timed side by side in one run:

* an ensemble of three CNNs predicting 1024-px JPEGs at 128 px from paths,
  with no store named (members now share decoded pixels) and through a new,
  empty ``ImageStore`` (its first decoding counted), against decoding once
  and predicting from the array;
* ``ThresholdTuner(cv=5)`` around a CNN given paths, against the same tuner
  on an array plus one decoding pass;
* ``GridSearchCV`` over a CNN given paths, plain and with ``image_store=`` (its
  documented one-line route), against an array plus one decoding pass;
* two epochs at 400 px from a prepared store against an in-memory array;
* 100 global thresholds on a dense 10,000 x 5,528 matrix: first call against
  the second;
* the ``tf.data`` pipeline's images/s from the store at 224 px against the
  paper CNN's own training rate at 224 px on batches already on the device
  (``benchmarks/input_pipeline.py`` prints the whole picture).
"""

import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import (
    ConceptEnsemble,
    ImageLoader,
    ThresholdTuner,
    imageclef_f1,
    prepare_images,
)
from imageclef_concepts.concepts._metrics import threshold_curve

from ._timing import Row, alternate_all
from .bench_images import _write_jpegs
from .bench_store import _concepts, _fresh_store, _small_cnn
from .bench_thresholds import simulated_scores
from .input_pipeline import pipeline_rate, training_rate


def run(quick):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        paths = _write_jpegs(folder / "jpegs", 100 if quick else 300, 1024, seed=3)
        return (ensemble_rows(folder, paths) + tuner_rows(paths) + grid_rows(folder, paths)
                + training_rows(folder, paths) + threshold_rows(quick)
                + pipeline_rows(folder, paths))


def ensemble_rows(folder, paths):
    y = _concepts(64)
    train = ImageLoader(128).transform(paths[:64])
    members = [_small_cnn(128, epochs=1, random_state=seed).fit(train, y) for seed in range(3)]
    ensemble = ConceptEnsemble([(f"cnn{i}", m) for i, m in enumerate(members)], prefit=True)
    ensemble.fit(train, y)

    def with_store(store):
        ensemble.set_params(**{f"cnn{i}__image_store": store for i in range(3)})
        return ensemble

    reference, shared, stored = alternate_all([
        lambda: with_store(None).predict_proba(ImageLoader(128).transform(paths)),
        lambda: with_store(None).predict_proba(paths),
        lambda: with_store(_fresh_store(folder)).predict_proba(paths)], repeat=3)
    name = f"ensemble of 3 CNNs, {len(paths)} JPEGs 1024px at 128px"
    meaning = "time / (decode once + predict from array) (target <= 1.10)"
    return [Row("shared", f"{name}: paths, no store", len(paths) / shared,
                len(paths) / reference, "images/s", shared / reference, meaning),
            Row("shared", f"{name}: new ImageStore", len(paths) / stored,
                len(paths) / reference, "images/s", stored / reference, meaning)]


def tuner_rows(paths):
    y = _concepts(len(paths), seed=4)
    tuner = ThresholdTuner(_small_cnn(128, epochs=1), cv=5)
    reference, ours = alternate_all([
        lambda: tuner.fit(ImageLoader(128).transform(paths), y),
        lambda: tuner.fit(paths, y)], repeat=2)
    return [Row("shared", f"ThresholdTuner(cv=5) around a CNN, {len(paths)} paths at 128px",
                6 / ours, 6 / reference, "fits/s", ours / reference,
                "time / (the same on an array + one decoding pass) (target <= 1.15)")]


def grid_rows(folder, paths):
    """GridSearchCV given paths: its one-line route is ``image_store=`` on the estimator."""
    y = _concepts(len(paths), seed=1)

    def search(X, **params):
        GridSearchCV(_small_cnn(128, epochs=1, **params), {"learning_rate": [1e-3, 3e-4]},
                     cv=KFold(2, shuffle=True, random_state=0), scoring=imageclef_f1,
                     refit=False).fit(X, y)

    reference, plain, stored = alternate_all([
        lambda: search(ImageLoader(128).transform(paths)), lambda: search(paths),
        lambda: search(paths, image_store=_fresh_store(folder))], repeat=2)
    name = f"GridSearchCV 2x2 folds, {len(paths)} JPEGs at 128px"
    meaning = "time / (search on an array + one decoding pass)"
    return [Row("shared", f"{name}: paths, no store", 4 / plain, 4 / reference, "fits/s",
                plain / reference, meaning),
            Row("shared", f"{name}: image_store=new store", 4 / stored, 4 / reference,
                "fits/s", stored / reference, meaning + " (target <= 1.10)")]


def training_rows(folder, paths):
    y = _concepts(len(paths), seed=2)
    store = _fresh_store(folder)
    prepare_images(paths, store, 400, progress=False)
    in_memory = ImageLoader(400).transform(paths)
    model = _small_cnn(400, epochs=2, image_cache_mb=0)  # the store's own rows, each epoch
    fits = [lambda: model.set_params(image_store=None).fit(in_memory, y),
            lambda: model.set_params(image_store=store).fit(paths, y)]
    # Consecutive identical fits here differ by up to 30% (the first ones most): one of
    # each first, untimed, then the best of three in turn.
    for fit in fits:
        fit()
    reference, stored = alternate_all(fits, repeat=3)
    amount = 2 * len(paths)
    return [Row("shared", f"train 2 epochs at 400px, {len(paths)} images, from the store",
                amount / stored, amount / reference, "images/s", reference / stored,
                "training speed / from an in-memory array (target >= 0.98)")]


def threshold_rows(quick):
    n_images = 2_000 if quick else 10_000
    truth, scores = simulated_scores(n_images, 5_528, np.random.default_rng(0))
    n_true = np.diff(truth.indptr)
    candidates = np.linspace(0, 1, 100)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        threshold_curve(scores, truth, n_true, candidates)
        times.append(time.perf_counter() - start)
    return [Row("shared", f"100 thresholds, dense {n_images:,} x 5,528: first call", times[0],
                times[1], "s", times[0] / times[1], "first call / second call (target <= 1.2)")]


def pipeline_rows(folder, paths):
    store = _fresh_store(folder)
    prepare_images(paths, store, 224, progress=False)
    fed = max(pipeline_rate(paths, store, 224, threads=2) for _ in range(2))
    step = training_rate("small", 224, steps=5)
    return [Row("shared", "tf.data from the store at 224px, 2 threads / paper CNN step",
                fed, step, "images/s", fed / step,
                "input images/s / training images/s on the device (> 1: the model limits)")]
