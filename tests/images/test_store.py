"""The image store: decoded once, read back exactly, never wrong, never destroying anything."""

import os
import pickle
import shutil
import sqlite3
import threading
import warnings
from collections import namedtuple
from pathlib import Path

import joblib
import numpy as np
import pytest
from PIL import Image

from imageclef_concepts import (
    ImageLoader,
    ImageStore,
    ImageStoreError,
    ImageStoreWarning,
    SkippedImagesWarning,
    decode_image,
    prepare_images,
)
from imageclef_concepts.images._decoding import RESAMPLING
from imageclef_concepts.images._sources import ImageFiles
from imageclef_concepts.images._store_folder import INDEX, MANIFEST


def _write_images(folder, n, side=(40, 30), seed=0, suffix=".png"):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(n):
        path = folder / f"{index:03d}{suffix}"
        Image.fromarray(rng.integers(0, 256, (*side, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def images(tmp_path):
    return _write_images(tmp_path / "images", 12)


def _expected(paths, size, resample="bilinear"):
    return np.stack([decode_image(path, size, resample) for path in paths])


@pytest.mark.parametrize("resample", sorted(RESAMPLING))
def test_stored_pixels_are_exactly_the_decoded_ones(tmp_path, images, resample):
    store = ImageStore(tmp_path / "store")
    prepare_images(images, store, 24, resample, progress=False)
    read = ImageLoader(24, resample, image_store=store).fit_transform(images)
    assert np.array_equal(read, _expected(images, 24, resample))


def test_a_second_use_decodes_and_checks_nothing(tmp_path, images, decodes):
    store = ImageStore(tmp_path / "store")
    first = ImageLoader(24, image_store=store).fit_transform(images)
    assert decodes == {"decoded": len(images), "checked": len(images)}
    second = ImageLoader(24, image_store=store).fit_transform(images[::-1])
    assert decodes == {"decoded": len(images), "checked": len(images)}  # nothing more
    assert np.array_equal(second, first[::-1])


def test_each_size_and_filter_is_kept_apart(tmp_path, images):
    store = ImageStore(tmp_path / "store")
    assert prepare_images(images, store, 24, progress=False).added == len(images)
    assert prepare_images(images, store, 16, progress=False).added == len(images)
    assert prepare_images(images, store, 24, "nearest", progress=False).added == len(images)
    assert prepare_images(images, store, 24, progress=False).already_stored == len(images)
    assert sorted(store.summary()) == ["16px-bilinear", "24px-bilinear", "24px-nearest"]
    assert store.summary()["16px-bilinear"] == {
        "images": 12, "bytes": 12 * 16 * 16 * 3, "disk_bytes": 12 * 16 * 16 * 3 + 128}
    assert np.array_equal(ImageLoader(16, image_store=store).fit_transform(images),
                          _expected(images, 16))


def test_a_changed_file_is_decoded_again(tmp_path, images, decodes):
    store = ImageStore(tmp_path / "store")
    prepare_images(images, store, 24, progress=False)
    Image.fromarray(np.zeros((40, 30, 3), dtype=np.uint8)).save(images[3])  # same name
    os.utime(images[3], ns=(1, 1))  # even with an old modification time
    before = decodes["decoded"]
    done = prepare_images(images, store, 24, progress=False)
    assert (done.added, done.already_stored) == (1, len(images) - 1)
    assert decodes["decoded"] == before + 1
    read = ImageLoader(24, image_store=store).fit_transform(images)
    assert not read[3].any() and np.array_equal(read, _expected(images, 24))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "remove", "replace by a folder"])
def test_a_damaged_chunk_is_decoded_again_never_served(tmp_path, images, damage, decodes):
    store = ImageStore(tmp_path / "store")
    prepare_images(images, store, 24, progress=False)
    (chunk,) = (tmp_path / "store" / "24px-bilinear").iterdir()
    data = bytearray(chunk.read_bytes())
    if damage == "flip a byte":
        data[-5] ^= 0xFF  # in the last image
        chunk.write_bytes(bytes(data))
    elif damage == "truncate":
        chunk.write_bytes(bytes(data[:len(data) // 2]))
    elif damage == "remove":
        chunk.unlink()
    else:
        chunk.unlink()
        chunk.mkdir()
    before = decodes["decoded"]
    read = ImageLoader(24, image_store=store).fit_transform(images)
    assert np.array_equal(read, _expected(images, 24))
    assert decodes["decoded"] > before  # the damaged rows were decoded, not read
    decodes["decoded"] = 0
    ImageLoader(24, image_store=store).fit_transform(images)
    assert decodes["decoded"] == 0  # and stored again, intact


def test_a_tampered_index_never_reads_outside_the_shelf(tmp_path, images):
    store = ImageStore(tmp_path / "store")
    prepare_images(images, store, 24, progress=False)
    secret = tmp_path / "secret.npy"
    np.save(secret, np.full((12, 24, 24, 3), 255, dtype=np.uint8))
    with sqlite3.connect(tmp_path / "store" / INDEX) as index:
        index.execute("UPDATE images SET chunk = ?", ("../../secret.npy",))
    read = ImageLoader(24, image_store=store).fit_transform(images)
    assert np.array_equal(read, _expected(images, 24))


def test_a_folder_holding_a_users_file_is_refused_and_left_alone(tmp_path, images):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    with pytest.raises(ImageStoreError, match=r"holds 1 file\(s\) that are not an image store"
                                              r".*thesis\.txt"):
        ImageStore(folder)
    assert sorted(os.listdir(folder)) == ["thesis.txt"]
    assert (folder / "thesis.txt").read_text() == "years of work"


def test_the_working_folder_and_the_images_folder_are_refused(tmp_path, images, monkeypatch):
    monkeypatch.chdir(tmp_path / "images")
    listing = sorted(os.listdir("."))
    for folder in (".", tmp_path / "images"):
        with pytest.raises(ImageStoreError, match="not an image store"):
            ImageStore(folder)
    assert sorted(os.listdir(".")) == listing


@pytest.mark.parametrize("kind", ["file", "device", "pipe"])
def test_a_path_that_is_not_a_folder_is_refused(tmp_path, kind):
    path = {"file": tmp_path / "model.keras", "device": Path(os.devnull),
            "pipe": tmp_path / "pipe"}[kind]
    if kind == "file":
        path.write_bytes(b"weights")
    elif kind == "pipe":
        os.mkfifo(path)
    words = {"file": "a file", "device": "a character device",
             "pipe": "a named pipe"}[kind]
    with pytest.raises(ImageStoreError, match=f"is ({words}), not a folder"):
        ImageStore(path)
    if kind == "file":
        assert path.read_bytes() == b"weights"


def test_a_store_inside_the_images_folder_changes_no_image(tmp_path, images):
    before = {path: Path(path).read_bytes() for path in images}
    store = ImageStore(tmp_path / "images" / "store")
    prepare_images(images, store, 24, progress=False)
    assert prepare_images(images, store, 24, progress=False).already_stored == len(images)
    assert {path: Path(path).read_bytes() for path in images} == before


def test_a_manifest_of_another_kind_or_version_is_refused(tmp_path):
    folder = tmp_path / "store"
    ImageStore(folder)
    (folder / MANIFEST).write_text('{"format": "imageclef_concepts.ImageStore", "version": 9}')
    with pytest.raises(ImageStoreError, match="format version 9"):
        ImageStore(folder)
    (folder / MANIFEST).write_text('{"format": "something else"}')
    with pytest.raises(ImageStoreError, match="not an image store manifest"):
        ImageStore(folder)
    # Nested past Python's recursion limit: json raises RecursionError, not ValueError
    # (a traceback from prepare and ImageStore, issue 30 review 13).
    (folder / MANIFEST).write_text("[" * 4096)
    with pytest.raises(ImageStoreError, match="not a readable image store manifest"):
        ImageStore(folder)


def test_a_store_that_cannot_be_written_warns_once_and_decodes(tmp_path, images, monkeypatch):
    import imageclef_concepts.images._shelf as shelf_module

    attempts = []

    def full_disk(folder, name, write):
        attempts.append(name)
        raise OSError(28, "No space left on device")

    store = ImageStore(tmp_path / "store")
    monkeypatch.setattr(shelf_module, "write_in_folder", full_disk)
    files = ImageFiles(images, 24, workers=1, image_store=store)
    with pytest.warns(ImageStoreWarning, match="No space left on device") as caught:
        batches = [files.load(np.arange(start, start + 4))[0] for start in (0, 4, 8)]
        files.flush()  # the chunks are written in the background: the warning comes from there
    assert len([w for w in caught if w.category is ImageStoreWarning]) == 1
    assert len(attempts) == 1  # not tried again at every batch (a locked index: 30 s each)
    assert np.array_equal(np.concatenate(batches), _expected(images, 24))
    assert store.summary() == {}


usage = namedtuple("usage", "total used free")


def test_a_read_only_store_is_read_and_what_it_lacks_decoded(tmp_path, images, monkeypatch,
                                                             decodes):
    import sqlite3

    import imageclef_concepts.images._folder_store as store_module

    prepare_images(images[:6], tmp_path / "store", 24, progress=False)

    def read_only(index, table):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(store_module, "_writable_index", read_only)
    # nothing will be added: a full disk is no reason to refuse
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(1, 1, 0))
    decodes["decoded"] = 0
    with pytest.warns(ImageStoreWarning, match="read-only"):
        read = ImageLoader(24, image_store=tmp_path / "store").fit_transform(images)
    assert decodes["decoded"] == 6  # the six it holds were read
    assert np.array_equal(read, _expected(images, 24))
    assert len(list((tmp_path / "store" / "24px-bilinear").iterdir())) == 1  # no chunk added


def test_unreadable_files_are_named_and_counted_never_stored(tmp_path, images):
    broken = tmp_path / "images" / "broken.png"
    broken.write_bytes(b"not a png")
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ValueError, match="broken.png"):
        prepare_images([*images, str(broken)], store, 24, progress=False)
    assert store.summary() == {}  # stopped before decoding anything
    with pytest.warns(SkippedImagesWarning, match="broken.png"):
        done = prepare_images([*images, str(broken)], store, 24, on_error="skip",
                              progress=False)
    assert done == (len(images), 0, 1)


def test_preparing_keeps_memory_to_a_few_blocks(tmp_path, monkeypatch):
    import tracemalloc

    import imageclef_concepts.images._preparation as preparation
    from imageclef_concepts.images._writer import QUEUE_BATCHES

    block = 8 * 64 * 64 * 3
    monkeypatch.setattr(preparation, "_BLOCK_BYTES", block)  # 8 images a block
    paths = _write_images(tmp_path / "many", 192, side=(64, 64))
    peaks = []
    for count in (24, 192):
        tracemalloc.start()
        prepare_images(paths[:count], tmp_path / f"store{count}", 64, n_jobs=1,
                       progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # Eight times the images: at most the blocks waiting for the background writer more
    # (their number is bounded), far from the 168 images' pixels more.
    assert peaks[1] < peaks[0] + (QUEUE_BATCHES + 1) * block
    assert peaks[1] < 192 * 64 * 64 * 3 / 2


def test_a_store_pickles_without_its_connections(tmp_path, images):
    store = ImageStore(tmp_path / "store")
    prepare_images(images, store, 24, progress=False)
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and copy.summary() == store.summary()
    loader = joblib.load(_dumped(ImageLoader(24, image_store=store), tmp_path / "l.joblib"))
    assert np.array_equal(loader.fit_transform(images), _expected(images, 24))


def _dumped(estimator, path):
    joblib.dump(estimator, path)
    return path


def _prepare_in_a_worker(paths, folder):
    return prepare_images(paths, folder, 24, progress=False)


def test_concurrent_processes_share_one_store(tmp_path, images):
    # Loky worker processes write the same images into one store at once;
    # each image is then held once, and read back exactly.
    folder = tmp_path / "store"
    ImageStore(folder)
    done = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_prepare_in_a_worker)(images, str(folder)) for _ in range(4))
    assert all(d.added + d.already_stored == len(images) for d in done)
    store = ImageStore(folder)
    assert store.summary()["24px-bilinear"]["images"] == len(images)
    assert np.array_equal(ImageLoader(24, image_store=store).fit_transform(images),
                          _expected(images, 24))


class _LockedAtFirst(sqlite3.Connection):
    """A connection whose first two journal-mode changes meet another process's lock, as the
    losers of a race to create a new index do (SQLite answers at once, without waiting)."""

    refusals = 0

    def execute(self, sql, *parameters):
        if sql.startswith("PRAGMA journal_mode") and _LockedAtFirst.refusals < 2:
            _LockedAtFirst.refusals += 1
            raise sqlite3.OperationalError("database is locked")
        return super().execute(sql, *parameters)


def test_a_store_locked_by_another_opener_is_waited_for_not_taken_read_only(
        tmp_path, images, monkeypatch):
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: connect(*a, factory=_LockedAtFirst,
                                                                    **k))
    store = ImageStore(tmp_path / "store")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageStoreWarning)
        prepare_images(images, store, 24, progress=False)
    assert _LockedAtFirst.refusals == 2 and not store.read_only
    assert store.summary()["24px-bilinear"]["images"] == len(images)


def test_stores_opened_by_many_threads_at_once_are_all_writable(tmp_path):
    # A race to create each new index: no opener may take the others' locks for a read-only store.
    from concurrent.futures import ThreadPoolExecutor

    stores = [ImageStore(tmp_path / f"store{index}") for index in range(150)]
    for store in stores:
        barrier = threading.Barrier(6)

        def open_index(_, store=store, barrier=barrier):
            copy = pickle.loads(pickle.dumps(store))
            barrier.wait()
            copy._connection()
            return copy.read_only

        with ThreadPoolExecutor(6) as pool:
            assert not any(pool.map(open_index, range(6)))


def test_concurrent_threads_share_one_store(tmp_path, images):
    from concurrent.futures import ThreadPoolExecutor

    store = ImageStore(tmp_path / "store")
    with ThreadPoolExecutor(4) as pool:
        read = list(pool.map(lambda _: ImageLoader(24, n_jobs=1, image_store=store)
                             .fit_transform(images), range(4)))
    assert all(np.array_equal(r, _expected(images, 24)) for r in read)
    assert store.summary()["24px-bilinear"]["images"] == len(images)


def test_urls_are_stored_locally_and_read_once(tmp_path, decodes):
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    urls = []
    for index, path in enumerate(_write_images(tmp_path / "src", 4)):
        urls.append(f"memory://store-test/{index}.png")
        memory.pipe(urls[-1], Path(path).read_bytes())
    store = ImageStore(tmp_path / "store")
    assert prepare_images(urls, store, 24, progress=False).added == 4
    decodes["decoded"] = 0
    read = ImageLoader(24, image_store=store).fit_transform(urls)
    assert decodes["decoded"] == 0 and np.array_equal(read, _expected(urls, 24))
    memory.pipe(urls[0], Path(_write_images(tmp_path / "other", 1, (20, 20), 9)[0]).read_bytes())
    assert prepare_images(urls, store, 24, progress=False).added == 1  # the changed object


def test_image_files_without_a_store_are_unchanged(images):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        files = ImageFiles(images, 24)
    assert files.stored == {}
    assert np.array_equal(files.load(np.arange(len(images)))[0], _expected(images, 24))


@pytest.mark.parametrize("planted", ["index.sqlite", "index.sqlite-journal", "24px-bilinear",
                                     "index.sqlite-wal"])
def test_files_with_the_stores_names_but_no_manifest_are_someone_elses(tmp_path, images,
                                                                      planted):
    folder = tmp_path / "mine"
    folder.mkdir()
    target = folder / planted
    if planted.endswith("bilinear"):
        target.mkdir()
        (target / "holiday.jpg").write_bytes(b"photo")
    else:
        target.write_bytes(b"my database")
    with pytest.raises(ImageStoreError, match="not an image store"):
        prepare_images(images, folder, 24, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == [planted]
    assert (target.read_bytes() == b"my database" if target.is_file()
            else sorted(p.name for p in target.iterdir()) == ["holiday.jpg"])


@pytest.mark.parametrize("linked", ["24px-bilinear", "index.sqlite"])
def test_a_store_file_linked_to_a_users_file_is_refused(tmp_path, images, linked):
    store = ImageStore(tmp_path / "store")
    prepare_images(images[:2], store, 16, progress=False)  # the index exists
    users = tmp_path / "users"
    users.mkdir()
    target = users / ("photos" if linked.endswith("bilinear") else "accounts.db")
    if linked.endswith("bilinear"):
        target.mkdir()
    else:
        (tmp_path / "store" / linked).rename(target)
    (tmp_path / "store" / linked).symlink_to(target)
    before = sorted(p.name for p in users.rglob("*"))
    with pytest.raises(ImageStoreError, match="symbolic link"):
        prepare_images(images, tmp_path / "store", 24, progress=False)
    assert sorted(p.name for p in users.rglob("*")) == before


def test_a_pickled_store_is_checked_again_and_never_created(tmp_path, images):
    store = ImageStore(tmp_path / "store")
    copy = pickle.dumps(ImageLoader(24, image_store=store))
    (tmp_path / "store" / MANIFEST).unlink()  # the folder changed hands
    (tmp_path / "store" / "notes.txt").write_text("mine")
    with pytest.warns(ImageStoreWarning, match=f"its {MANIFEST} is gone"):  # decoded without it
        read = pickle.loads(copy).fit_transform(images)
    assert np.array_equal(read, _expected(images, 24))
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["notes.txt"]
    moved = pickle.dumps(ImageStore(tmp_path / "other"))
    (tmp_path / "other" / MANIFEST).unlink()
    (tmp_path / "other").rmdir()
    with pytest.warns(ImageStoreWarning), pytest.raises(ImageStoreError, match="no longer"):
        pickle.loads(moved).summary()
    with warnings.catch_warnings():  # another copy of the same lost folder: warned of once
        warnings.simplefilter("error", ImageStoreWarning)
        with pytest.raises(ImageStoreError, match="no longer") as raised:
            pickle.loads(moved).shelf(24)
    assert type(raised.value) is ImageStoreError  # the public class, not a private one
    assert not (tmp_path / "other").exists()


def test_a_store_is_not_pickled_into_a_joblib_model(tmp_path, images):
    from imageclef_concepts import ConceptKNNClassifier
    from imageclef_concepts.recipes._workflows import load_model, save_model

    store = ImageStore(tmp_path / "store")
    model = ConceptKNNClassifier(1, pixel_size=8, image_store=store).fit(images, ["a"] * 12)
    save_model(model, tmp_path / "m.joblib")
    assert model.image_store is store  # the user's model is as it was
    assert load_model(tmp_path / "m.joblib", allow_pickle=True).image_store is None


def test_damaged_index_entries_are_decoded_again(tmp_path, images, decodes):
    store = ImageStore(tmp_path / "store")
    prepare_images(images, store, 24, progress=False)
    with sqlite3.connect(tmp_path / "store" / INDEX) as index:
        rows = index.execute("SELECT rowid, row, crc FROM images ORDER BY rowid").fetchall()
        index.execute("UPDATE images SET row = 'y' WHERE rowid = ?", (rows[0][0],))
        index.execute("UPDATE images SET crc = 1.5 WHERE rowid = ?", (rows[1][0],))
        # rows 2 and 3 swap their place and check: each is another file's image
        index.execute("UPDATE images SET row = ?, crc = ? WHERE rowid = ?",
                      (rows[3][1], rows[3][2], rows[2][0]))
        index.execute("UPDATE images SET row = ?, crc = ? WHERE rowid = ?",
                      (rows[2][1], rows[2][2], rows[3][0]))
        index.execute("INSERT INTO images VALUES ('../evil', X'00', 'v', 'c', 0, 0)")
    decodes["decoded"] = 0
    read = ImageLoader(24, image_store=store).fit_transform(images)
    assert np.array_equal(read, _expected(images, 24))
    assert decodes["decoded"] == 4
    assert list(store.summary()) == ["24px-bilinear"]


def test_an_index_of_another_schema_is_a_warning_not_a_crash(tmp_path, images):
    folder = tmp_path / "store"
    ImageStore(folder)
    with sqlite3.connect(folder / INDEX) as index:
        index.execute("CREATE TABLE images (x)")
    with pytest.warns(ImageStoreWarning, match="cannot be read"):
        read = ImageLoader(24, image_store=folder).fit_transform(images)
    assert np.array_equal(read, _expected(images, 24))


def test_urls_whose_version_cannot_be_told_are_not_stored(monkeypatch):
    import hashlib
    import io

    import fsspec

    import imageclef_concepts.images._shelf as shelf_module

    class Stub:
        def __init__(self, info, content):
            self.reported, self.content = info, content

        def info(self, path):
            return self.reported

        def open(self, path, mode):
            if self.content is None:
                raise FileNotFoundError(path)
            return io.BytesIO(self.content)

    stamp = "Last-Modified=Mon, 30 Nov 2026 08:00:00 GMT"
    content = f"sha256={hashlib.sha256(b'pixels').hexdigest()}"
    # Times alone (a plain HTTP server's whole-second Last-Modified, which a rewrite with
    # the file's time put back keeps) were the version: now the content is in it too.
    for info, data, expected in (
            ({"size": 99}, None, None),
            ({"size": 99, "Last-Modified": stamp[14:]}, None, None),
            ({"size": 99}, b"pixels", f"size=99|{content}"),
            ({"size": 99, "Last-Modified": stamp[14:]}, b"pixels", f"size=99|{stamp}|{content}"),
            ({"size": 99, "ETag": '"abc"'}, None, 'size=99|ETag="abc"')):
        monkeypatch.setattr(fsspec.core, "url_to_fs",
                            lambda url, info=info, data=data: (Stub(info, data), url))
        assert shelf_module.file_version("https://example.org/x.png") == expected


def test_file_names_that_are_not_utf8_are_stored(tmp_path):
    folder = os.fsencode(tmp_path / "odd")
    os.mkdir(folder)
    name = os.path.join(folder, b"caf\xe9.png")
    Image.fromarray(np.full((20, 20, 3), 9, dtype=np.uint8)).save(os.fsdecode(name))
    paths = [os.fsdecode(name)]
    assert prepare_images(paths, tmp_path / "store", 16, progress=False).added == 1
    assert prepare_images(paths, tmp_path / "store", 16, progress=False).already_stored == 1


def test_a_file_named_twice_is_prepared_once(tmp_path, images):
    relative = os.path.relpath(images[0])
    done = prepare_images([images[0], images[0], relative], tmp_path / "store", 16,
                          progress=False)
    assert done == (1, 0, 0)
    (chunk,) = (tmp_path / "store" / "16px-bilinear").iterdir()
    assert chunk.stat().st_size == 16 * 16 * 3 + 128


def test_paths_that_cannot_be_stores_are_named(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "afile").write_text("x")
    for path, words in ((tmp_path / "dangling", "symbolic link to nothing"),
                        (tmp_path / "afile" / "store", "cannot be created"),
                        (tmp_path / "afile", "is a file, not a folder")):
        with pytest.raises(ImageStoreError, match=words):
            ImageStore(path)
    ImageStore(tmp_path / "store")
    (tmp_path / "store" / MANIFEST).write_text(
        '{"format": "imageclef_concepts.ImageStore", "version": true}')
    with pytest.raises(ImageStoreError, match="format version True"):
        ImageStore(tmp_path / "store")


# ------------------------------------------------- a store whose folder changed hands

def _used_store(tmp_path, images):
    """A live store that has written a shelf and holds an open index connection."""
    folder = tmp_path / "cache"
    store = ImageStore(folder)
    ImageLoader(16, image_store=store).fit_transform(images[:4])
    assert (folder / "16px-bilinear").is_dir()
    return folder, store


def _users_folder(folder):
    """The user's own folder put at the store's path: files of the store's names, their own."""
    folder.mkdir()
    database = sqlite3.connect(folder / INDEX)
    database.execute("CREATE TABLE accounts (name TEXT)")
    database.execute("INSERT INTO accounts VALUES ('mine')")
    database.commit()
    database.close()
    (folder / "notes.txt").write_text("mine")
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _store_warnings(caught):
    return [w for w in caught if issubclass(w.category, ImageStoreWarning)]


def test_a_deleted_store_is_never_recreated_and_warns_once(tmp_path, images):
    import shutil

    folder, store = _used_store(tmp_path, images)
    shutil.rmtree(folder)  # "delete the folder to start afresh", while the store is held
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = ImageLoader(16, image_store=store).fit_transform(images)
        again = ImageLoader(24, image_store=store).fit_transform(images)
    assert np.array_equal(read, _expected(images, 16))
    assert np.array_equal(again, _expected(images, 24))
    assert len(_store_warnings(caught)) == 1
    assert "no longer" in str(_store_warnings(caught)[0].message)
    assert not folder.exists()  # nothing re-created, no shelf without a marker
    with pytest.raises(ImageStoreError, match="no longer the folder it opened") as raised:
        store.summary()
    assert type(raised.value) is ImageStoreError  # the public class, not a private one
    with pytest.raises(ImageStoreError, match="no longer the folder it opened") as raised:
        store.shelf(16)
    assert type(raised.value) is ImageStoreError
    assert ImageStore(folder).summary() == {}  # a new store is taken there afresh


@pytest.mark.parametrize("use", ["new thread", "new size", "new filter", "same shelf"])
def test_a_store_replaced_by_a_users_folder_leaves_it_untouched(tmp_path, images, use):
    import shutil

    folder, store = _used_store(tmp_path, images)
    shutil.rmtree(folder)
    before = _users_folder(folder)
    size, resample = {"new size": (24, "bilinear"), "new filter": (16, "nearest")}.get(
        use, (16, "bilinear"))

    def run():
        return ImageLoader(size, resample, image_store=store).fit_transform(images)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if use == "new thread":  # as tf.data's are: a new index connection
            outcome = []
            thread = threading.Thread(target=lambda: outcome.append(run()))
            thread.start()
            thread.join()
            read = outcome[0]
        else:
            read = run()
        assert np.array_equal(run(), read)  # a second use: no second warning
    assert np.array_equal(read, _expected(images, size, resample))
    assert len(_store_warnings(caught)) == 1
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    database = sqlite3.connect(f"file:{folder / INDEX}?mode=ro", uri=True)
    assert database.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert [row[0] for row in database.execute("SELECT name FROM sqlite_master")] == [
        "accounts"]
    database.close()
    with pytest.raises(ImageStoreError, match="no longer"):
        store.summary()


def test_an_index_replaced_by_a_link_to_a_users_database_is_never_written(tmp_path, images):
    # The folder is still the store's, but its index.sqlite now links to the user's
    # database: a new thread's connection would open, and change, the user's file.
    folder, store = _used_store(tmp_path, images)
    elsewhere = tmp_path / "user"
    before = _users_folder(elsewhere)
    (folder / INDEX).unlink()
    (folder / INDEX).symlink_to(elsewhere / INDEX)
    outcome = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=lambda: outcome.append(
            ImageLoader(24, image_store=store).fit_transform(images)))
        thread.start()
        thread.join()
    assert np.array_equal(outcome[0], _expected(images, 24))
    assert len(_store_warnings(caught)) == 1
    assert "symbolic link" in str(_store_warnings(caught)[0].message)
    assert {path.name: path.read_bytes() for path in elsewhere.iterdir()} == before


def test_an_image_size_beyond_memory_is_refused_before_any_work(tmp_path, images, decodes):
    from imageclef_concepts.files._sizes import memory_limit

    assert 2**28 < memory_limit() < 13 * 100000**2  # known, and less than 121 GiB here
    with pytest.raises(ValueError, match=r"image_size=100000: decoding one image .* bytes"):
        prepare_images(images, tmp_path / "store", image_size=100000, progress=False)
    assert not (tmp_path / "store").exists()
    with pytest.raises(ValueError, match=r"image_size=100000: .*130,000,000,000 bytes"):
        ImageLoader(100000, image_store=tmp_path / "store").fit_transform(images)
    assert not (tmp_path / "store").exists()
    with pytest.raises(ValueError, match=r"image_size=40000: holding 12 images at that size"):
        ImageLoader(40000).fit_transform(images)  # one image would fit, the array not
    assert decodes == {"decoded": 0, "checked": 0}


def _in_a_worker(store, paths):
    """What a joblib/loky worker does with a store the parent gave it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = ImageLoader(16, image_store=store).fit_transform(paths)
    return read, [str(w.message) for w in _store_warnings(caught)]


@pytest.mark.parametrize("change", ["deleted", "a new store", "a users folder"])
def test_a_worker_never_writes_into_a_folder_put_at_the_stores_path(tmp_path, images, change):
    import shutil

    folder, store = _used_store(tmp_path, images)
    shutil.rmtree(folder)  # after the parent opened it, before the workers start
    if change == "a new store":
        ImageStore(folder)  # someone else's store now, which the parent never opened
    elif change == "a users folder":
        _users_folder(folder)
    before = sorted(p.name for p in folder.rglob("*")) if folder.exists() else None
    read, warned = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_in_a_worker)(store, images[i::2]) for i in range(2))[0]
    assert np.array_equal(read, _expected(images[0::2], 16))  # decoded, the job not failed
    assert len(warned) == 1 and "no longer" in warned[0]
    after = sorted(p.name for p in folder.rglob("*")) if folder.exists() else None
    assert after == before  # nothing written, nothing re-created


def _lose_folder(folder, how):
    if how == "deleted":
        shutil.rmtree(folder)
    else:  # its manifest turned into a folder
        (folder / MANIFEST).unlink()
        (folder / MANIFEST).mkdir()


@pytest.mark.parametrize("how, why", [("deleted", "it was deleted"),
                                      ("manifest a folder", f"its {MANIFEST} is not a file")])
def test_a_workers_lost_store_says_why_as_shortly_as_the_live_one(tmp_path, images, how, why):
    # Review 20 (r20c F5): a store unpickled in a worker after its folder was lost warned
    # with claim_folder's whole refusal nested, the path two or three times ("... (image
    # store <path> no longer exists)"), where the live store says "(it was deleted)".
    folder, store = _used_store(tmp_path, images)
    copy = pickle.loads(pickle.dumps(store))  # as a joblib/loky worker receives it
    _lose_folder(folder, how)
    read, warned = _in_a_worker(copy, images[:2])
    assert np.array_equal(read, _expected(images[:2], 16))
    assert len(warned) == 1 and warned[0].startswith(
        f"the image store {folder} is no longer the folder it opened ({why}): "), warned
    assert warned[0].count(str(folder)) == 1


def test_a_lost_store_warns_once_per_folder_and_process_not_per_copy(tmp_path, images):
    # Each loky call delivers the store unpickled anew: every copy warned again, in each
    # worker. One warning per folder (path, device and inode) and process.
    folder, store = _used_store(tmp_path, images)
    copies = [pickle.loads(pickle.dumps(store)) for _ in range(2)]
    shutil.rmtree(folder)
    warned = [message for each in [*copies, store]
              for message in _in_a_worker(each, images[:2])[1]]
    assert len(warned) == 1, warned
    for each in [*copies, store]:  # each still refuses, saying why
        with pytest.raises(ImageStoreError, match=r"no longer the folder it opened \(it was"):
            each.summary()
    again = ImageStore(folder)  # a new store there is another folder: its loss is warned
    ImageLoader(16, image_store=again).fit_transform(images[:2])
    shutil.rmtree(folder)
    assert len(_in_a_worker(again, images[:2])[1]) == 1


def test_a_folder_swapped_between_the_check_and_the_write_gets_nothing(tmp_path, images,
                                                                         monkeypatch):
    # The ownership check passes, then the folder is swapped before the chunk is
    # written: the write goes through the opened folder, never into the new one.
    folder = tmp_path / "cache"
    store = ImageStore(folder)
    ImageLoader(16, image_store=store).fit_transform(images[:2])  # index and shelf exist
    real_check = ImageStore._check_still_own
    swapped = []

    def check_then_swap(self):  # each check passes just before the folder is swapped
        if not swapped:
            real_check(self)
            folder.rename(tmp_path / "moved")
            swapped.append(_users_folder(folder))

    monkeypatch.setattr(ImageStore, "_check_still_own", check_then_swap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageStoreWarning)
        read = ImageLoader(16, image_store=store).fit_transform(images)
    assert np.array_equal(read, _expected(images, 16))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == swapped[0]  # untouched
    assert len(list((tmp_path / "moved" / "16px-bilinear").glob("*.npy"))) == 2  # the old one's


def test_a_read_only_store_warns_once_per_store_not_per_source(tmp_path, images, monkeypatch):
    import imageclef_concepts.images._folder_store as store_module

    prepare_images(images[:2], tmp_path / "store", 24, progress=False)

    def read_only(index, table="images"):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(store_module, "_writable_index", read_only)
    store = ImageStore(tmp_path / "store")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for part in (images[:4], images[4:8], images[8:]):  # three sources, one store
            ImageFiles(part, 24, workers=1, image_store=store).load(np.arange(len(part)))
    assert len(_store_warnings(caught)) == 1


def test_a_store_named_through_a_link_to_its_folder_is_that_folder(tmp_path, images):
    # A store path that is a link to a folder (a cache on a larger disk) is the folder it
    # points to, resolved once: opened and used, and when the link is pointed elsewhere
    # while the store is live, the store goes on in its own folder and nothing is written
    # at the link's new target.
    (tmp_path / "big").mkdir()
    (tmp_path / "cache").symlink_to(tmp_path / "big")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageStoreWarning)
        store = ImageStore(tmp_path / "cache")
        read = ImageLoader(16, image_store=store).fit_transform(images[:4])
    assert np.array_equal(read, _expected(images[:4], 16))
    assert (tmp_path / "big" / "16px-bilinear").is_dir()
    (tmp_path / "cache").unlink()
    kept = _users_folder(tmp_path / "users")
    (tmp_path / "cache").symlink_to(tmp_path / "users")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ImageLoader(20, image_store=store).fit_transform(images)
    assert not _store_warnings(caught)
    assert (tmp_path / "big" / "20px-bilinear").is_dir()
    assert {path.name: path.read_bytes() for path in (tmp_path / "users").iterdir()} == kept


def test_a_store_name_no_folder_can_have_is_refused_by_name(tmp_path):
    # A lone surrogate that no file name's bytes give (\ud800): a UnicodeEncodeError
    # naming nothing; one that os.fsdecode gives (\udce9) is a folder like any other.
    from imageclef_concepts.embeddings import EmbeddingStore, EmbeddingStoreError

    for store, error in ((ImageStore, ImageStoreError), (EmbeddingStore, EmbeddingStoreError)):
        with pytest.raises(error, match=r"store .*s\\ud800 is not a file name this system"):
            store(tmp_path / "s\ud800")
        store(tmp_path / f"{store.__name__}\udce9")
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"EmbeddingStore\xe9",
                                                         b"ImageStore\xe9"]


def test_names_no_file_can_have_are_skipped_not_a_crash(tmp_path, images):
    # A NUL or a lone surrogate no file name's bytes give ("\ud800"): decoding reported
    # such a name as unreadable, but on_error="skip" with a store, prepare_images and a
    # checkpoint's fingerprint raised a UnicodeEncodeError or ValueError naming nothing
    # (os.fsencode for the store's key, os.stat for the file's version).
    from imageclef_concepts.images._fingerprints import images_digest
    from imageclef_concepts.images._shelf import file_version, settles_at, source_key

    odd = [str(tmp_path / "a\ud800.png"), str(tmp_path / "b\0.png"), "http://h/c\ud800.png"]
    for name in odd:
        assert file_version(name) is None and settles_at(name) is None
    keys = [source_key(name) for name in odd]
    assert all(key.startswith(b"\0") for key in keys[::2]) and len(set(keys)) == 3
    assert images_digest(odd) == images_digest(list(odd))
    with pytest.warns(SkippedImagesWarning):
        files = ImageFiles([*images, *odd], 24, "bilinear", "skip", None,
                           image_store=ImageStore(tmp_path / "store"))
    assert sorted(files.failures) == [12, 13, 14]
    with pytest.warns(SkippedImagesWarning):
        done = prepare_images([*images, *odd], tmp_path / "other", 24, on_error="skip",
                              progress=False)
    assert done == (12, 0, 3)


@pytest.mark.parametrize("image_size, error", [
    (True, TypeError), (2.0, TypeError), (float("nan"), TypeError), (float("inf"), TypeError),
    ("4", TypeError), (np.array(4), TypeError), ([[4]], TypeError), (np.float64(4), TypeError),
    (0, ValueError), (-4, ValueError)])
def test_a_shelf_of_a_size_that_is_no_whole_number_is_refused_naming_it(tmp_path, image_size,
                                                                        error):
    # int() took them: shelf(True) was a 1-pixel shelf, shelf("4") and shelf(-4) shelves
    # '4px' and '-4px', shelf(nan) 'cannot convert float NaN to integer' (issue 30 review 15).
    store = ImageStore(tmp_path / "store")
    with pytest.raises(error, match=r"^image_size=.*: image_size must be a whole number"):
        store.shelf(image_size)
    assert store.shelf(np.int64(4)).row_shape == (4, 4, 3)
