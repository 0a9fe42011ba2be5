"""The image store: decoding once for ensembles, grid searches, long trainings; its build.

Every row times three ways side by side in one run: the reference (an
in-memory array, decoded once), "before" (paths decoded at every use, as
without a store) and "after" (paths through an :class:`ImageStore`). For the
ensemble and the grid search the store starts empty in each timed call, so
its first decoding is counted; for training it was prepared beforehand.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    ImageLoader,
    ImageStore,
    imageclef_f1,
    prepare_images,
)

from ._timing import PEAK_RSS_FUNCTION, Row, alternate_all
from .bench_images import _write_jpegs

ROOT = Path(__file__).resolve().parent.parent


def run(quick):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        n_large = 400 if quick else 2000
        paths = _write_jpegs(folder / "jpegs", n_large, 1024, seed=3)
        return (ensemble_rows(folder, paths[:100 if quick else 300])
                + grid_search_rows(folder, paths)
                + training_rows(folder, paths)
                + build_rows(folder, paths)
                + memory_rows(folder, paths[:n_large // 4], paths)
                + disk_rows(folder, paths[:50]))


def _small_cnn(image_size, **params):
    params = {"filters": (8, 16, 32), "dense_units": (32,), "decay": 0.0,
              "validation_fraction": None, "random_state": 0, **params}
    return ConceptCNNClassifier(image_size=image_size, **params)


def _concepts(n_images, n_concepts=12, seed=0):
    rng = np.random.default_rng(seed)
    return [";".join(sorted({f"C{c}" for c in rng.integers(0, n_concepts, rng.integers(1, 4))}))
            for _ in range(n_images)]


def _fresh_store(folder):
    return ImageStore(tempfile.mkdtemp(dir=folder, prefix="store-"))


def _ratio_rows(capability, name, unit, times, meaning, amount):
    reference, before, after = times
    return [Row(capability, f"{name}: {label}", amount / time, amount / reference, unit,
                time / reference, meaning)
            for label, time in (("before (no store)", before), ("after (store)", after))]


def ensemble_rows(folder, paths):
    """Three CNNs predicting 1024px JPEGs at 128px: each member decoded every file before."""
    y = _concepts(64)
    train = ImageLoader(128).transform(paths[:64])
    members = [_small_cnn(128, epochs=1, random_state=seed).fit(train, y) for seed in range(3)]
    ensemble = ConceptEnsemble([(f"cnn{i}", m) for i, m in enumerate(members)], prefit=True)
    ensemble.fit(train, y)

    def with_store(store):
        ensemble.set_params(**{f"cnn{i}__image_store": store for i in range(3)})

    def reference():
        with_store(None)
        ensemble.predict_proba(ImageLoader(128).transform(paths))

    def before():
        with_store(None)
        ensemble.predict_proba(paths)

    def after():
        with_store(_fresh_store(folder))
        ensemble.predict_proba(paths)

    times = alternate_all([reference, before, after], repeat=2)
    return _ratio_rows("store", f"ensemble of 3 CNNs, {len(paths)} JPEGs 1024px at 128px",
                       "images/s", times, "time / (decode once + predict from array) "
                       "(target <= 1.10)", len(paths))


def grid_search_rows(folder, paths):
    """GridSearchCV, 4 candidates x 2 folds, 3 epochs each: every fit decoded every file before."""
    y = _concepts(len(paths), seed=1)
    grid = {"learning_rate": [1e-3, 3e-4], "dense_units": [(16,), (32,)]}

    def search(X, **params):
        GridSearchCV(_small_cnn(128, epochs=3, **params), grid,
                     cv=KFold(2, shuffle=True, random_state=0), scoring=imageclef_f1,
                     refit=False).fit(X, y)

    times = alternate_all([lambda: search(ImageLoader(128).transform(paths)),
                           lambda: search(paths),
                           lambda: search(paths, image_store=_fresh_store(folder))], repeat=2)
    return _ratio_rows("store", f"GridSearchCV 4x2 folds, 3 epochs, {len(paths)} JPEGs at 128px",
                       "fits/s", times, "time / (search on an array + one decoding pass) "
                       "(target <= 1.10)", 8)


def training_rows(folder, paths):
    """Two epochs at 400px of more images than the 256 MB cache holds."""
    y = _concepts(len(paths), seed=2)
    store = _fresh_store(folder)
    prepare_images(paths, store, 400, progress=False)
    in_memory = ImageLoader(400).transform(paths)
    model = _small_cnn(400, epochs=2, image_cache_mb=256)
    reference, before, after = alternate_all(
        [lambda: model.set_params(image_store=None).fit(in_memory, y),
         lambda: model.set_params(image_store=None).fit(paths, y),
         lambda: model.set_params(image_store=store).fit(paths, y)], repeat=2)
    amount = 2 * len(paths)
    return [Row("store", f"train 2 epochs at 400px from {len(paths)} paths: {label}",
                amount / time, amount / reference, "images/s", reference / time,
                "training speed / from an in-memory array (target >= 0.95)")
            for label, time in (("before (cache 256 MB)", before), ("after (store)", after))]


def build_rows(folder, paths):
    """The store's first build against decoding the same files into an array."""
    load_time, build_time = alternate_all(
        [lambda: ImageLoader(400, n_jobs=2).transform(paths),
         lambda: prepare_images(paths, _fresh_store(folder), 400, progress=False)], repeat=2)
    return [Row("store", f"first build of the store, {len(paths)} JPEGs at 400px",
                len(paths) / build_time, len(paths) / load_time, "images/s",
                build_time / load_time, "time / ImageLoader decoding (target <= 1.10)")]


_PEAK_RSS_SCRIPT = PEAK_RSS_FUNCTION + """
import json, sys
from imageclef_concepts import ConceptCNNClassifier, prepare_images
paths = json.loads(open(sys.argv[1]).read())
prepare_images(paths, sys.argv[2], 400, progress=False)
print(peak_rss_mb())
y = [f"C{i % 10}" for i in range(len(paths))]
ConceptCNNClassifier(image_size=400, filters=(8, 16), dense_units=(16,), epochs=1,
                     validation_fraction=None, image_cache_mb=0,
                     image_store=sys.argv[2]).fit(paths, y)
print(peak_rss_mb())
"""


def _peak_rss_mb(paths, folder):
    """Peak RSS of a fresh process after preparing ``paths`` at 400 px, then after an epoch."""
    listing = folder / f"rss-paths-{len(paths)}.json"
    listing.write_text(json.dumps(paths))
    store = tempfile.mkdtemp(dir=folder, prefix="rss-store-")
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT, str(listing), store],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    return [float(line) for line in done.stdout.strip().splitlines()[-2:]]


def memory_rows(folder, small, large):
    (prepared_small, trained_small), (prepared_large, trained_large) = (
        _peak_rss_mb(small, folder), _peak_rss_mb(large, folder))
    pixels_mb = len(large) * 400 * 400 * 3 / 2**20
    meaning = f"peak RSS ratio (1.00 = flat; {pixels_mb:.0f} MB of pixels in the store)"
    return [Row("store", f"peak RSS, prepare at 400px, {len(large)} vs {len(small)} images",
                prepared_large, prepared_small, "MB", prepared_large / prepared_small, meaning),
            Row("store", f"peak RSS, then 1 epoch from the store, {len(large)} vs {len(small)}",
                trained_large, trained_small, "MB", trained_large / trained_small, meaning)]


def disk_rows(folder, paths):
    rows = []
    for image_size in (224, 400):
        store = _fresh_store(folder)
        prepare_images(paths, store, image_size, progress=False)
        held = store.summary()[f"{image_size}px-bilinear"]
        per_10k = held["disk_bytes"] / held["images"] * 10_000 / 1e9
        rows.append(Row("store", f"disk space at {image_size}px", per_10k, per_10k,
                        "GB per 10,000 images", 1.0, "chunk files on disk, per 10,000 images"))
    return rows
