"""Decoded pixels shared by a meta-estimator's parts: each file decoded once, none left."""

import collections
import gc
import os
import shutil
import tempfile
import time
import warnings

import numpy as np
import pytest

from imageclef_concepts import (
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptSpecialists,
    EnsembleTuner,
    ImageLoader,
    ImageStore,
    ImageStoreError,
    ImageStoreWarning,
    ThresholdTuner,
    decode_image,
)
from imageclef_concepts.images import _shared
from imageclef_concepts.images._shared import shares_decoding
from imageclef_concepts.images._sources import ImageFiles
from imageclef_concepts.images._store_folder import MANIFEST

from .test_store import _write_images

LABELS = ["A;B", "B", "C", "A", "A;C", "B;C"] * 3


@pytest.fixture
def paths(tmp_path):
    return _write_images(tmp_path / "images", len(LABELS))


@pytest.fixture
def decoded(monkeypatch):
    """How many times each file was decoded."""
    import imageclef_concepts.images._sources as sources

    counts = collections.Counter()
    real = sources.decode_image

    def counting(path, *args):
        counts[os.fspath(path)] += 1
        return real(path, *args)

    monkeypatch.setattr(sources, "decode_image", counting)
    return counts


@pytest.fixture
def made(monkeypatch):
    """The temporary stores made by shared runs, with the memory budget at 0 (a store always)."""
    folders = []
    real = _shared._SharedRun._temporary_store

    def recording(run, needed):
        store = real(run, needed)
        folders.append(run.folder)
        return store

    monkeypatch.setattr(_shared, "memory_budget", lambda: 0)
    monkeypatch.setattr(_shared._SharedRun, "_temporary_store", recording)
    return folders


def _knn(**params):
    return ConceptKNNClassifier(**{"n_neighbors": 3, "pixel_size": 8, **params})


def _ensemble(**params):
    return ConceptEnsemble([(f"knn{k}", _knn(n_neighbors=k, **params)) for k in (1, 2, 3)])


class _FailsAfterReading(ConceptKNNClassifier):
    def fit(self, X, y):
        super().fit(X, y)
        raise KeyboardInterrupt


def test_an_ensemble_given_paths_decodes_each_file_once(paths, decoded):
    ensemble = _ensemble().fit(paths, LABELS)
    assert decoded == {path: 1 for path in paths}
    decoded.clear()
    shared = ensemble.predict_proba(paths)
    assert decoded == {path: 1 for path in paths}
    members = np.mean([member.predict_proba(paths) for member in ensemble.estimators_], axis=0)
    assert np.allclose(shared, members)  # the same pixels as decoding each time


def test_a_tuner_given_paths_decodes_each_file_once_over_its_folds(paths, decoded):
    ThresholdTuner(_knn(), cv=3).fit(paths, LABELS)
    assert decoded == {path: 1 for path in paths}


def test_an_ensemble_tuner_and_specialists_given_paths_decode_each_file_once(paths, decoded):
    ensemble = ConceptEnsemble.from_grid(_knn(), {"n_neighbors": [1, 2, 3]}, combine="vote")
    EnsembleTuner(ensemble, cv=3, thresholds=5).fit(paths, LABELS)
    assert decoded == {path: 1 for path in paths}
    decoded.clear()
    specialists = ConceptSpecialists(_knn(), [("a", "A", _knn(n_neighbors=1))], min_images=3)
    specialists.fit(paths, LABELS)
    assert decoded == {path: 1 for path in paths}
    specialists.predict_proba(paths)  # a call of its own: decoded again, once
    assert decoded == {path: 2 for path in paths}


def test_without_a_meta_estimator_nothing_is_shared(paths, decoded):
    for _ in range(2):
        _knn().fit(paths, LABELS)
    assert decoded == {path: 2 for path in paths}


def test_a_temporary_store_is_removed_after_use(paths, decoded, made):
    _ensemble().fit(paths, LABELS)
    assert decoded == {path: 1 for path in paths}  # shared through the store
    assert len(made) == 1 and not os.path.exists(made[0])
    assert _shared._run is None


def test_a_temporary_store_is_removed_after_an_interruption(paths, made):
    ensemble = ConceptEnsemble([("knn", _knn()), ("fails", _FailsAfterReading(pixel_size=8))])
    with pytest.raises(KeyboardInterrupt):
        ensemble.fit(paths, LABELS)
    assert len(made) == 1 and not os.path.exists(made[0])
    assert _shared._run is None


def test_a_members_own_store_wins_and_is_left_as_it_is(tmp_path, paths, decoded, made):
    user_store = tmp_path / "store"
    _ensemble(image_store=str(user_store)).fit(paths, LABELS)
    assert made == []  # nothing made: every member reads the user's store
    assert decoded == {path: 1 for path in paths}
    assert ImageStore(user_store).summary()["8px-bilinear"]["images"] == len(paths)
    _ensemble(image_store=str(user_store)).fit(paths, LABELS)
    assert decoded == {path: 1 for path in paths}  # read back, still there


def test_a_users_store_at_dot_is_never_removed(tmp_path, paths, made, monkeypatch):
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    _ensemble(image_store=".").fit(paths, LABELS)
    assert (folder / MANIFEST).is_file()
    assert ImageStore(".").summary()["8px-bilinear"]["images"] == len(paths)


def test_a_temporary_folder_holding_a_users_file_keeps_it(tmp_path, paths, made, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    monkeypatch.chdir(folder)
    monkeypatch.setattr(tempfile, "tempdir", ".")  # relative: the store's path is made absolute
    _ensemble().fit(paths, LABELS)
    assert os.path.isabs(made[0]) and os.path.dirname(made[0]) == str(folder)
    assert sorted(os.listdir(folder)) == ["mine.txt"]
    assert (folder / "mine.txt").read_text() == "keep"


def test_a_temporary_store_replaced_meanwhile_is_not_removed(paths, made):
    @shares_decoding
    def load_then_replace():
        ImageLoader(8).transform(paths)
        os.rename(made[0], made[0] + "-moved")
        os.mkdir(made[0])
        open(os.path.join(made[0], "theirs.txt"), "w").close()

    try:
        load_then_replace()
        assert os.listdir(made[0]) == ["theirs.txt"]
    finally:
        shutil.rmtree(made[0]), shutil.rmtree(made[0] + "-moved")


@pytest.mark.parametrize("budget", [0, 2**30])
def test_shared_pixels_are_exactly_the_decoded_ones(paths, monkeypatch, budget):
    monkeypatch.setattr(_shared, "memory_budget", lambda: budget)

    @shares_decoding
    def twice():
        return ImageLoader(16).transform(paths), ImageLoader(16).transform(paths[::-1])

    first, second = twice()
    expected = np.stack([decode_image(path, 16) for path in paths])
    assert np.array_equal(first, expected) and np.array_equal(second, expected[::-1])


def test_store_rows_are_read_in_threads_exactly(tmp_path, decoded):
    paths = _write_images(tmp_path / "many", 40)
    store = ImageStore(tmp_path / "store")
    ImageLoader(16, image_store=store).transform(paths)
    decoded.clear()
    read = ImageLoader(16, n_jobs=4, image_store=store).transform(paths)
    assert not decoded
    assert np.array_equal(read, np.stack([decode_image(path, 16) for path in paths]))


def test_memory_beyond_the_budget_is_not_kept(paths, decoded, monkeypatch):
    row_bytes = 8 * 8 * 3
    monkeypatch.setattr(_shared, "memory_budget", lambda: 5 * row_bytes)

    @shares_decoding
    def small_then_all():
        ImageLoader(8).transform(paths[:2])  # the shelf is in memory, for 2 announced
        ImageLoader(8).transform(paths)
        ImageLoader(8).transform(paths)
        return _shared._run.held_bytes

    assert small_then_all() == 5 * row_bytes
    assert sum(decoded.values()) == len(paths) + len(paths) - 5


def test_a_file_put_in_the_temporary_store_is_left_with_its_folder(paths, made):
    @shares_decoding
    def load_then_put():
        ImageLoader(8).transform(paths)
        (shelf,) = [name for name in os.listdir(made[0]) if name.endswith("px-bilinear")]
        for where in (made[0], os.path.join(made[0], shelf)):
            with open(os.path.join(where, "theirs.txt"), "w") as f:
                f.write("keep")

    try:
        with pytest.warns(ImageStoreWarning, match="theirs.txt.*left there"):
            load_then_put()
        left = sorted(os.path.relpath(os.path.join(root, name), made[0])
                      for root, _, names in os.walk(made[0]) for name in names)
        assert left == ["8px-bilinear/theirs.txt", "theirs.txt"]  # the store's own files gone
    finally:
        shutil.rmtree(made[0], ignore_errors=True)


def test_a_temporary_folder_named_as_a_users_store_is_theirs(paths, made, decoded):
    @shares_decoding
    def share_then_name():
        ImageLoader(8).transform(paths)
        ImageLoader(16, image_store=made[0]).transform(paths)

    try:
        share_then_name()
        assert ImageStore(made[0]).summary()["16px-bilinear"]["images"] == len(paths)
    finally:
        shutil.rmtree(made[0], ignore_errors=True)


def test_a_link_put_at_the_temporary_path_is_not_followed(tmp_path, paths, made):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "index.sqlite").write_text("keep")  # a name of the store's own files

    @shares_decoding
    def load_then_link():
        ImageLoader(8).transform(paths)
        os.rename(made[0], tmp_path / "moved")
        os.symlink(theirs, made[0])

    try:
        load_then_link()
        assert (theirs / "index.sqlite").read_text() == "keep" and os.path.islink(made[0])
    finally:
        os.unlink(made[0])


def test_a_temporary_folder_that_cannot_be_made_shares_nothing(tmp_path, paths, decoded,
                                                                 made, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))

    @shares_decoding
    def twice():
        return ImageLoader(8).transform(paths), ImageLoader(8).transform(paths)

    first, second = twice()  # not an error: decoded at each use, as before
    assert np.array_equal(first, second)
    assert decoded == {path: 2 for path in paths}


def test_a_run_that_ended_makes_no_temporary_folder(paths, made):
    run, _ = _shared._enter()
    _shared._leave(run)
    assert run.shelf(len(paths), 8, "bilinear") is None  # a thread outside the call, late
    assert run.folder is None and not run.hold(1)


def test_a_forked_child_removes_the_temporary_store_it_made(paths, made):
    @shares_decoding
    def in_a_child():
        ImageLoader(8).transform(paths)
        return _shared.temporary_folders()

    @shares_decoding
    def fork():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            try:
                os.write(write, "\n".join(in_a_child() + made).encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read) as f:
            return f.read().split("\n")

    folders = fork()
    try:
        assert folders[0] and folders[0] == folders[1]  # the child made its own
        assert not os.path.exists(folders[0])  # and removed it when its call ended
    finally:
        shutil.rmtree(folders[0], ignore_errors=True)


def test_a_source_used_after_its_run_decodes_without_a_warning(paths, made, decoded):
    @shares_decoding
    def make():
        return ImageFiles(paths, 8)

    source = make()  # kept beyond the call (a thread outside it, a lazy result)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no word about a store the user never named
        batch, good = source.load(np.arange(len(paths)))
    assert good.all() and np.array_equal(batch, np.stack([decode_image(p, 8) for p in paths]))
    assert not os.path.exists(made[0])


def test_images_kept_within_the_budget_hold_no_more_than_it(paths, monkeypatch):
    row_bytes = 8 * 8 * 3
    monkeypatch.setattr(_shared, "memory_budget", lambda: 5 * row_bytes)

    @shares_decoding
    def small_then_all():
        ImageLoader(8).transform(paths[:2])  # in memory, for 2 announced
        ImageLoader(8).transform(paths)  # one batch: 3 more rows kept of it
        (shelf,) = _shared._run.shelves.values()
        return [pixels for _, pixels in shelf._images.values()]

    kept = small_then_all()
    held = {id(owner): owner.nbytes
            for owner in (pixels if pixels.base is None else pixels.base for pixels in kept)}
    assert len(kept) == 5 and sum(held.values()) <= 5 * row_bytes  # not the batch they came in


def test_an_estimator_reused_keeps_nothing_shared_between_calls(paths, decoded):
    ensemble = _ensemble()
    for _ in range(2):
        ensemble.fit(paths, LABELS).predict_proba(paths)
    gc.collect()
    assert not [held for held in gc.get_objects()
                if isinstance(held, (_shared._MemoryShelf, _shared._SharedRun))]
    assert decoded == {path: 4 for path in paths}  # once a call: nothing carried over


def test_a_users_store_given_to_a_tuner_is_read_not_decoded_again_while_it_is_written(
        tmp_path, paths, decoded, monkeypatch):
    # Each fold's clone deep-copies the store (a new object of the same folder): it
    # waits for the rows the earlier folds queued in the background, never decodes them.
    from imageclef_concepts.images._shelf import Shelf

    real = Shelf.add
    monkeypatch.setattr(Shelf, "add", lambda *args: time.sleep(0.1) or real(*args))
    ThresholdTuner(_knn(image_store=ImageStore(tmp_path / "store")), cv=3).fit(paths, LABELS)
    assert decoded == {path: 1 for path in paths}


def _entries(paths, stores=1):
    """What the index entries of ``paths`` ask the disk for, in each of ``stores``."""
    from imageclef_concepts.images._folder_store import index_bytes
    from imageclef_concepts.images._store import key_length

    return stores * index_bytes(len(paths), len(paths) * key_length(paths))


def _disk_with(monkeypatch, free):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40 - free, free))


@pytest.fixture
def fits(monkeypatch):
    """The fits of k-NN parts, counted."""
    counted = []
    real = ConceptKNNClassifier.fit
    monkeypatch.setattr(ConceptKNNClassifier, "fit",
                        lambda self, *args, **kwargs: counted.append(1) or real(self, *args,
                                                                                **kwargs))
    return counted


def test_a_tuner_asks_a_users_store_for_all_its_folds_images_before_the_first_fit(
        tmp_path, paths, decoded, fits, monkeypatch):
    # Each fold's fit asked only for its own images (12 of 18 at cv=3): the disk filled
    # fold after fold, and the last part was refused after the others had trained.
    store = ImageStore(tmp_path / "store")
    row = 8 * 8 * 3
    _disk_with(monkeypatch, len(paths) * row + _entries(paths) - 1)
    with pytest.raises(ValueError, match=r"^pixel_size=8: storing 18 image\(s\) at that size "
                                         r"takes .*give no image_store or choose a smaller"):
        ThresholdTuner(_knn(image_store=store), cv=3).fit(paths, LABELS)
    assert not fits and not decoded and store.summary() == {}
    _disk_with(monkeypatch, len(paths) * row + _entries(paths))
    ThresholdTuner(_knn(image_store=store), cv=3).fit(paths + paths[:2], LABELS + LABELS[:2])
    assert store.summary()["8px-bilinear"]["images"] == len(paths)  # each file once
    _disk_with(monkeypatch, 0)  # all held: nothing more to ask for
    ThresholdTuner(_knn(image_store=str(tmp_path / "store")), cv=3).fit(paths, LABELS)


def test_members_at_two_sizes_need_room_in_their_store_for_both_before_the_first_fits(
        tmp_path, paths, decoded, fits, monkeypatch):
    # Each member asked for its own size only: the first filled the disk, the second was
    # refused after the first had trained.
    store = str(tmp_path / "store")
    ensemble = ConceptEnsemble([("small", _knn(pixel_size=8, image_store=store)),
                                ("large", _knn(pixel_size=16, image_store=store))])
    both = len(paths) * (8 * 8 + 16 * 16) * 3
    both += _entries(paths + paths)  # an entry in each shelf
    _disk_with(monkeypatch, both - 1)  # room for either shelf, not both
    with pytest.raises(ValueError, match=r"^pixel_size=16: storing 18 image\(s\) at each of 2 "
                                         r"sizes and filters takes .*give no image_store"):
        ensemble.fit(paths, LABELS)
    assert not fits and not decoded
    _disk_with(monkeypatch, both)
    ensemble.fit(paths, LABELS)
    assert {shelf: held["images"] for shelf, held in ImageStore(store).summary().items()} == {
        "8px-bilinear": 18, "16px-bilinear": 18}


def test_parts_with_parameters_they_refuse_are_left_to_refuse_them(tmp_path, paths,
                                                                    monkeypatch):
    # The check opens no store a part would refuse, and raises nothing in the part's place.
    _disk_with(monkeypatch, 0)
    user = tmp_path / "theirs"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    for knn, error in [(_knn(pixel_size=0, image_store=str(tmp_path / "new")),
                        r"'pixel_size' parameter of ConceptKNNClassifier"),
                       (_knn(image_store=str(user)), r"holds 1 file\(s\) that are not")]:
        with pytest.raises((ValueError, ImageStoreError), match=error):
            ThresholdTuner(knn, cv=3).fit(paths, LABELS)
    assert not (tmp_path / "new").exists() and os.listdir(user) == ["notes.txt"]


def test_one_store_named_by_two_paths_is_asked_for_both_shelves_at_once(tmp_path, paths,
                                                                        decoded, fits,
                                                                        monkeypatch):
    # A store reached through a linked parent folder was taken for another store: each
    # path was asked for its own shelf, and the second member refused after the first fit.
    (tmp_path / "disk").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "disk")
    ensemble = ConceptEnsemble([
        ("small", _knn(pixel_size=8, image_store=str(tmp_path / "disk" / "store"))),
        ("large", _knn(pixel_size=16, image_store=ImageStore(tmp_path / "link" / "store")))])
    _disk_with(monkeypatch, len(paths) * (8 * 8 + 16 * 16) * 3 - 1)  # either shelf, not both
    with pytest.raises(ValueError, match=r"^pixel_size=16: storing 18 image\(s\) at each of 2 "):
        ensemble.fit(paths, LABELS)
    assert not fits and not decoded


@pytest.mark.filterwarnings("ignore::imageclef_concepts.ImageStoreWarning")  # read-only
def test_a_read_only_store_is_asked_for_no_room(tmp_path, paths, fits, monkeypatch):
    # It takes nothing; the check asked before the store knew it was read-only (its index
    # is opened by the first query), so a full disk refused a tuner that writes nothing.
    import sqlite3

    from imageclef_concepts.images import _folder_store

    store = tmp_path / "store"
    ImageLoader(image_size=8, image_store=str(store)).fit_transform(paths[:3])

    def refused(index, table):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(_folder_store, "_writable_index", refused)
    _disk_with(monkeypatch, 0)
    ThresholdTuner(_knn(image_store=ImageStore(store)), cv=3).fit(paths, LABELS)
    ThresholdTuner(_knn(image_store=str(store)), cv=3).fit(paths, LABELS)
    assert len(fits) == 2 * 4 and ImageStore(store).summary()["8px-bilinear"]["images"] == 3


def test_an_image_loader_in_a_tuners_pipeline_asks_its_store_for_all_folds_first(
        tmp_path, paths, decoded, fits, monkeypatch):
    # The loader asked for each fold's images as the fold came: the disk filled fold after
    # fold, and a later one was refused after the first had trained.
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(ImageLoader(image_size=8, image_store=str(tmp_path / "store")),
                             _knn())
    _disk_with(monkeypatch, len(paths) * 8 * 8 * 3 - 1)
    with pytest.raises(ValueError, match=r"^image_size=8: storing 18 image\(s\) at that size"):
        ThresholdTuner(pipeline, cv=3).fit(paths, LABELS)
    assert not fits and not decoded


def test_two_stores_on_one_disk_are_asked_for_their_room_together(tmp_path, paths, decoded,
                                                                  fits, monkeypatch):
    # Each store was asked for its own images against the same free space: both passed,
    # the first member filled the disk, and the second was refused after the first fit.
    ensemble = ConceptEnsemble([("small", _knn(pixel_size=8, image_store=str(tmp_path / "a"))),
                                ("large", _knn(pixel_size=16, image_store=str(tmp_path / "b")))])
    _disk_with(monkeypatch, len(paths) * (8 * 8 + 16 * 16) * 3 + _entries(paths, 2) - 1)
    with pytest.raises(ValueError, match=r"^pixel_size=16: storing 18 image\(s\) in 2 image "
                                         r"stores on one disk takes .*give no image_store"):
        ensemble.fit(paths, LABELS)
    assert not fits and not decoded


def test_a_knn_on_pixels_names_pixel_size_when_its_store_has_no_room(tmp_path, paths, decoded,
                                                                     monkeypatch):
    # It said image_size, which the k-NN does not have.
    _disk_with(monkeypatch, 0)
    with pytest.raises(ValueError, match=r"^pixel_size=8: storing 18 image\(s\) at that size "
                                         r"takes .*choose a smaller pixel_size\.$"):
        _knn(image_store=str(tmp_path / "store")).fit(paths, LABELS)
    assert not decoded
