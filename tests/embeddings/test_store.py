"""The embedding store: its folder's guarantees (those of the image store), damaged rows,
concurrent writers, and embeddings shared by processes."""

import os
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from PIL import Image

from imageclef_concepts.embeddings import (
    EmbeddingStore,
    EmbeddingStoreError,
    EmbeddingStoreWarning,
    embed_images,
)
from imageclef_concepts.embeddings._once import clear_process_cache
from imageclef_concepts.embeddings._store import shelf_name

from ..doubles import CountingEncoder, logged_count

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_process_cache()  # each test counts what it embeds itself
    yield
    clear_process_cache()


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for index in range(10):
        path = folder / f"{index}.png"
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _shelf(store, identity="counting encoder v1"):
    return os.path.join(store.path, shelf_name(identity))


def test_embeddings_are_kept_and_read_back_exactly(tmp_path, images):
    log = tmp_path / "log"
    first = embed_images(CountingEncoder(str(log)), images, store=tmp_path / "store")
    clear_process_cache()  # what follows comes from the disk
    again = embed_images(CountingEncoder(str(log)), images[::-1], store=tmp_path / "store")
    assert logged_count(log) == len(images)
    assert again.dtype == np.float32 and np.array_equal(again, first[::-1])
    assert EmbeddingStore(tmp_path / "store").summary()[shelf_name("counting encoder v1")][
        "embeddings"] == len(images)


def test_a_changed_file_or_another_encoder_is_embedded_again(tmp_path, images):
    log, store = tmp_path / "log", EmbeddingStore(tmp_path / "store")
    embed_images(CountingEncoder(str(log)), images, store=store)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(images[0])  # same name, new pixels
    clear_process_cache()
    changed = embed_images(CountingEncoder(str(log)), images, store=store)
    assert logged_count(log) == len(images) + 1
    assert np.allclose(changed[0], 1)  # the new, black image's embedding
    embed_images(CountingEncoder(str(log), identity="another"), images, store=store)
    assert logged_count(log) == 2 * len(images) + 1


def test_pixel_arrays_are_keyed_by_their_content(tmp_path):
    log = tmp_path / "log"
    X = np.random.default_rng(1).integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    embed_images(CountingEncoder(str(log)), X, store=tmp_path / "store")
    clear_process_cache()
    X[0] = 0
    embed_images(CountingEncoder(str(log)), np.concatenate([X, X[:2]]), store=tmp_path / "store")
    assert logged_count(log) == 6 + 1  # only the changed image; repeats embedded once


def test_damaged_rows_are_embedded_again_never_served(tmp_path, images):
    log, store = tmp_path / "log", EmbeddingStore(tmp_path / "store")
    expected = embed_images(CountingEncoder(str(log)), images, store=store)
    (chunk,) = os.listdir(_shelf(store))
    path = os.path.join(_shelf(store), chunk)
    data = bytearray(open(path, "rb").read())
    data[-4:] = b"\xff\xff\xff\x7f"  # the last row's last value
    open(path, "wb").write(bytes(data))
    clear_process_cache()
    assert np.array_equal(embed_images(CountingEncoder(str(log)), images, store=store), expected)
    assert logged_count(log) == len(images) + 1
    os.remove(path)  # a chunk gone: all its rows embedded again, not the one kept elsewhere
    clear_process_cache()
    assert np.array_equal(embed_images(CountingEncoder(str(log)), images, store=store), expected)
    assert logged_count(log) == 2 * len(images)


@pytest.mark.parametrize("hostile", ["user_file", "dot", "images", "dev_null", "fifo", "file"])
def test_hostile_paths_are_refused_and_left_as_they_are(tmp_path, images, hostile, monkeypatch):
    monkeypatch.chdir(tmp_path / "images")
    path = {"user_file": tmp_path / "mine", "dot": ".", "images": tmp_path / "images",
            "dev_null": "/dev/null", "fifo": tmp_path / "fifo", "file": tmp_path / "notes.txt"
            }[hostile]
    if hostile == "user_file":
        path.mkdir()
        (path / "thesis.tex").write_text("mine")
    elif hostile == "fifo":
        os.mkfifo(path)
    elif hostile == "file":
        path.write_text("mine")
    before = sorted(os.listdir(tmp_path / "images"))
    with pytest.raises(EmbeddingStoreError, match="embedding store"):
        EmbeddingStore(path)
    assert sorted(os.listdir(tmp_path / "images")) == before
    if hostile == "user_file":
        assert os.listdir(path) == ["thesis.tex"]


def test_a_store_inside_the_images_folder_is_its_own_folder(tmp_path, images):
    store = EmbeddingStore(tmp_path / "images" / "store")
    embed_images(CountingEncoder(), images, store=store)
    assert sorted(os.listdir(tmp_path / "images")) == sorted(
        [*(os.path.basename(p) for p in images), "store"])


def test_an_image_store_is_not_an_embedding_store(tmp_path):
    from imageclef_concepts import ImageStore

    ImageStore(tmp_path / "pixels")
    with pytest.raises(EmbeddingStoreError, match="not an embedding store"):
        EmbeddingStore(tmp_path / "pixels")


def test_a_deleted_store_is_never_recreated(tmp_path, images):
    import shutil

    store = EmbeddingStore(tmp_path / "store")
    embed_images(CountingEncoder(), images[:2], store=store)
    shutil.rmtree(tmp_path / "store")
    with pytest.warns(EmbeddingStoreWarning, match="no longer the folder"):
        vectors = embed_images(CountingEncoder(), images, store=store)
    assert vectors.shape == (len(images), 12) and not (tmp_path / "store").exists()
    with pytest.raises(EmbeddingStoreError, match="no longer the folder it opened") as raised:
        store.summary()
    assert type(raised.value) is EmbeddingStoreError  # the public class, not a private one
    with pytest.raises(EmbeddingStoreError, match="no longer the folder it opened") as raised:
        store.shelf("counting encoder v1", 12)
    assert type(raised.value) is EmbeddingStoreError


def test_a_read_only_store_is_read_and_the_rest_embedded(tmp_path, images):
    store = EmbeddingStore(tmp_path / "store")
    embed_images(CountingEncoder(), images[:5], store=store)
    store.read_only = True  # as a store on a read-only disk is opened
    clear_process_cache()
    with pytest.warns(EmbeddingStoreWarning, match="cannot be written"):
        vectors = embed_images(CountingEncoder(str(tmp_path / "log")), images, store=store)
    assert logged_count(tmp_path / "log") == 5 and vectors.shape == (10, 12)


def test_a_store_pickles_and_estimators_with_it_survive_joblib(tmp_path, images):
    from imageclef_concepts import ConceptKNNClassifier

    store = EmbeddingStore(tmp_path / "store")
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store
    model = ConceptKNNClassifier(1, embedding=CountingEncoder(), embedding_store=store).fit(
        images, [["C1"]] * 5 + [["C2"]] * 5)
    joblib.dump(model, tmp_path / "m.joblib")
    assert np.array_equal(joblib.load(tmp_path / "m.joblib").predict_proba(images),
                          model.predict_proba(images))


def _embed_in_a_worker(paths, folder, log):
    clear_process_cache()
    return embed_images(CountingEncoder(log), paths, store=folder)


@pytest.mark.slow
def test_concurrent_writers_keep_one_intact_row_an_image(tmp_path, images):
    folder, log = str(tmp_path / "store"), str(tmp_path / "log")
    EmbeddingStore(folder)
    done = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_embed_in_a_worker)(images, folder, log) for _ in range(4))
    assert all(np.array_equal(vectors, done[0]) for vectors in done)
    assert EmbeddingStore(folder).summary()[shelf_name("counting encoder v1")][
        "embeddings"] == len(images)
    clear_process_cache()
    before = logged_count(log)
    assert np.array_equal(embed_images(CountingEncoder(log), images, store=folder), done[0])
    assert logged_count(log) == before  # every row read back intact


@pytest.mark.slow
def test_two_processes_share_a_store_each_image_embedded_once(tmp_path, images):
    log, folder = str(tmp_path / "log"), str(tmp_path / "store")
    script = ("import sys, numpy as np; from tests.doubles import CountingEncoder; "
              "from imageclef_concepts.embeddings import embed_images; "
              "np.save(sys.argv[2], embed_images(CountingEncoder(sys.argv[1]), sys.argv[4:], "
              "store=sys.argv[3]))")
    environment = {**os.environ, "PYTHONPATH": ROOT}
    for run in ("first", "second"):
        subprocess.run([sys.executable, "-c", script, log, str(tmp_path / f"{run}.npy"),
                        folder, *images], check=True, cwd=ROOT, env=environment)
    assert logged_count(log) == len(images)
    assert np.array_equal(np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy"))


def test_the_process_cache_is_bounded(monkeypatch):
    from imageclef_concepts.embeddings import _once

    monkeypatch.setattr(_once, "PROCESS_CACHE", _once._ProcessCache(3 * 12 * 4))
    X = np.random.default_rng(2).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed_images(CountingEncoder(), X)
    assert len(_once.PROCESS_CACHE._rows) == 3 and _once.PROCESS_CACHE.bytes == 3 * 12 * 4


@pytest.mark.parametrize("kind", ["embedding", "image"])
def test_a_link_to_a_store_folder_opens_that_folder(tmp_path, kind):
    from imageclef_concepts import ImageStore

    make = EmbeddingStore if kind == "embedding" else ImageStore
    make(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not "no longer the folder it opened"
        store = make(tmp_path / "link")
    assert store.path == str(tmp_path / "real")
    if kind == "embedding":
        X = np.zeros((2, 8, 8, 3), np.uint8)
        X[1] = 9
        embed_images(CountingEncoder(), X, store=store)
        assert [shelf["embeddings"] for shelf in store.summary().values()] == [2]


def test_a_chunk_of_another_width_spoils_only_its_own_rows(tmp_path):
    X = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    store = EmbeddingStore(tmp_path / "store")
    embed_images(CountingEncoder(), X[:3], store=store)
    embed_images(CountingEncoder(), X[3:], store=store)
    clear_process_cache()
    CountingEncoder.embedded = 0
    first = embed_images(CountingEncoder(), X, store=store)
    assert CountingEncoder.embedded == 0
    folder = tmp_path / "store" / shelf_name(CountingEncoder().embedding_identity())
    chunks = sorted(folder.iterdir(), key=lambda chunk: chunk.stat().st_mtime_ns)
    np.save(chunks[0], np.zeros((3, 7), np.float32))  # the rows of X[:3], at another width
    clear_process_cache()
    np.testing.assert_array_equal(embed_images(CountingEncoder(), X, store=store), first)
    assert CountingEncoder.embedded == 3


def test_an_index_the_full_disk_let_be_created_but_not_made_says_so(tmp_path, monkeypatch):
    # On a full disk SQLite creates the index file, then cannot write its table: the store
    # took it for a read-only index and the first query said "cannot be read (no such
    # table: embeddings)" (seen on a full tmpfs); the reason is the disk's.
    import sqlite3

    import imageclef_concepts.images._folder_store as folder_store

    def full(index, table):
        open(index, "wb").close()
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(folder_store, "_writable_index", full)
    store = EmbeddingStore(tmp_path / "store")
    with pytest.raises(EmbeddingStoreError, match=r"index of the embedding store .* cannot be "
                                                  r"created .*database or disk is full"):
        store.summary()


@pytest.mark.parametrize("dimension, error", [
    (True, TypeError), (2.0, TypeError), (float("nan"), TypeError), (np.array(4), TypeError),
    ("4", TypeError), (0, ValueError)])
def test_a_shelf_of_a_width_that_is_no_whole_number_is_refused_naming_it(tmp_path, dimension,
                                                                         error):
    # int() took them: shelf("e", True) held rows of 1 value, shelf("e", nan) ended in
    # 'cannot convert float NaN to integer' (issue 30 review 15).
    store = EmbeddingStore(tmp_path / "store")
    with pytest.raises(error, match=r"^dimension=.*: dimension must be a whole number"):
        store.shelf("e", dimension)
    assert store.shelf("e", np.int64(4)).row_shape == (4,)
