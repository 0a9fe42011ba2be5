"""Embed once: each image embedded once across a grid search, a tuner's folds and refits."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import ConceptKNNClassifier, ThresholdTuner
from imageclef_concepts.embeddings import embed_images
from imageclef_concepts.embeddings._once import clear_process_cache

from ..doubles import CountingEncoder


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_process_cache()
    CountingEncoder.embedded = 0
    yield
    clear_process_cache()


def _data(n=30):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    y = [["C1"] if image[:8].mean() > image[8:].mean() else ["C2", "C3"] for image in X]
    return X, y


def _search(embedding, store=None):
    knn = ConceptKNNClassifier(embedding=embedding, embedding_store=store)
    return GridSearchCV(ThresholdTuner(knn, cv=3, thresholds=5),
                        {"estimator__n_neighbors": [1, 2, 3, 4, 5]}, cv=KFold(5), n_jobs=1)


@pytest.mark.parametrize("form", ["arrays", "paths"])
def test_a_grid_search_with_a_tuner_embeds_each_image_once(tmp_path, form):
    X, y = _data()
    if form == "paths":
        from PIL import Image

        paths = []
        for index, image in enumerate(X):
            paths.append(str(tmp_path / f"{index}.png"))
            Image.fromarray(image).save(paths[-1])
        X = paths
    search = _search(CountingEncoder()).fit(X, y)
    search.predict(X)
    assert CountingEncoder.embedded == 30  # 5 values x 5 folds x (3 tuner folds + refit)


class _Plain(BaseEstimator):
    """An encoder with embed alone: nothing tells its embeddings apart, nothing is kept."""

    def embed(self, X):
        return CountingEncoder().embed(X)


def test_without_an_identity_every_fit_embeds_again():
    class Anonymous(CountingEncoder):
        def embedding_identity(self):  # not an identity
            return None

    X, y = _data(12)
    with pytest.raises(TypeError, match="non-empty string"):
        ConceptKNNClassifier(embedding=Anonymous()).fit(X, y)
    _search(_Plain()).fit(X, y)
    assert CountingEncoder.embedded > 12 * 20


def test_embed_images_gives_what_the_encoder_gives():
    X, _ = _data(7)
    kept = embed_images(CountingEncoder(), X)
    assert kept.dtype == np.float32 and np.array_equal(kept, CountingEncoder().embed(X))
    assert np.array_equal(embed_images(CountingEncoder(), X[[3, 3, 1]]), kept[[3, 3, 1]])


def test_an_encoder_whose_width_changes_under_one_identity_is_refused():
    X, _ = _data(4)
    embed_images(CountingEncoder(), X[:2])

    class Wider(CountingEncoder):
        def embed(self, X):
            return np.ones((len(X), 5), np.float32)

    with pytest.raises(ValueError, match="must change with its output"):
        embed_images(Wider(), X)


class _ReusedBuffer:
    """An encoder that hands out (and later overwrites) its own output buffer."""

    def __init__(self):
        self.buffer = None

    def embed(self, X):
        self.buffer = np.asarray(X, np.float32).reshape(len(X), -1)[:, :4] + 1
        return self.buffer

    def embedding_identity(self):
        return "reused buffer, test"


def test_an_encoder_reusing_its_output_buffer_cannot_change_kept_rows():
    X, _ = _data(3)
    encoder = _ReusedBuffer()
    first = embed_images(encoder, X)
    encoder.buffer[:] = -1  # the encoder's next batch written into the same array
    np.testing.assert_array_equal(embed_images(encoder, X), first)


def test_the_cache_keeps_rows_not_the_blocks_they_came_from():
    from imageclef_concepts.embeddings._once import PROCESS_CACHE

    X, _ = _data(3)
    embed_images(CountingEncoder(), X)
    assert PROCESS_CACHE._rows
    assert all(row.base is None for row in PROCESS_CACHE._rows.values())
    assert PROCESS_CACHE.bytes == sum(row.nbytes for row in PROCESS_CACHE._rows.values())


class _Broken:
    def __init__(self, output):
        self.output = output

    def embed(self, X):
        return self.output(len(X))

    def embedding_identity(self):
        return "broken, test"


@pytest.mark.parametrize(("output", "message"), [
    (lambda n: np.full((n, 2), np.nan), "NaN or infinite"),
    (lambda n: np.ones((n, 0)), "must give"),
])
def test_an_encoders_nan_or_empty_output_is_refused_and_never_stored(tmp_path, output, message):
    from imageclef_concepts.embeddings import EmbeddingStore

    X, _ = _data(3)
    store = EmbeddingStore(tmp_path / "store")
    with pytest.raises(ValueError, match=message):
        embed_images(_Broken(output), X, store=store)
    assert store.summary() == {}
    clear_process_cache()
    good = embed_images(_Broken(lambda n: np.ones((n, 2))), X, store=store)
    assert good.shape == (3, 2)


def test_an_identity_that_lies_about_the_width_writes_nothing(tmp_path):
    from imageclef_concepts.embeddings import EmbeddingStore

    X, _ = _data(4)
    store = EmbeddingStore(tmp_path / "store")
    embed_images(_Broken(lambda n: np.ones((n, 2))), X[:2], store=store)
    clear_process_cache()
    with pytest.raises(ValueError, match="must change with its output"):
        embed_images(_Broken(lambda n: np.ones((n, 3))), X, store=store)
    assert [shelf["embeddings"] for shelf in store.summary().values()] == [2]


def test_a_store_named_for_an_encoder_without_identity_is_not_silently_unused(tmp_path):
    from imageclef_concepts.embeddings import EmbeddingStoreWarning

    X, _ = _data(3)
    with pytest.warns(EmbeddingStoreWarning, match="none is kept in the embedding store"):
        assert embed_images(_Plain(), X, store=tmp_path / "store").shape[0] == 3


def test_a_store_whose_disk_cannot_take_the_rows_is_refused_after_one_image(tmp_path,
                                                                           monkeypatch):
    # Each chunk was checked as it was written: the encoder ran over every image, the store
    # filled its disk up to the chunk that did not fit, then warned once.
    import shutil
    from collections import namedtuple

    from imageclef_concepts.embeddings import EmbeddingStore

    X, _ = _data(30)
    store = EmbeddingStore(tmp_path / "store")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, 1000))
    with pytest.raises(ValueError, match=r"^embedding store .*store: storing 30 embedding\(s\) "
                                         r"of 12 dimensions takes .*free space there"):
        embed_images(CountingEncoder(), X, store=store)
    assert CountingEncoder.embedded == 1 and store.summary() == {}
    from imageclef_concepts.images._folder_store import index_bytes

    room = 1440 + index_bytes(30, 30 * 27)  # keys of pixels: "pixels:" and a digest
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, room))
    assert embed_images(CountingEncoder(), X, store=store).shape == (30, 12)
    assert CountingEncoder.embedded == 31  # the refused first image was not kept
    assert [shelf["embeddings"] for shelf in store.summary().values()] == [30]


def test_the_room_asked_for_embeddings_counts_their_index_entries(tmp_path, monkeypatch):
    # Only the rows' floats were asked for: a row's entry in the index (its file's key and
    # version, in the table, its key index and SQLite's log) takes more than 12 floats, so
    # on a disk with room for the floats alone the store filled it and warned (seen on a
    # tmpfs: 300 rows of 64 dimensions, 75 KiB, filled 192 KiB free).
    import shutil
    from collections import namedtuple

    from imageclef_concepts.embeddings import EmbeddingStore

    X, _ = _data(30)
    store = EmbeddingStore(tmp_path / "store")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, 30 * 12 * 4))
    with pytest.raises(ValueError, match=r"storing 30 embedding\(s\) of 12 dimensions "
                                         r"takes [0-9.]+ KiB"):
        embed_images(CountingEncoder(), X, store=store)
    assert CountingEncoder.embedded == 1 and store.summary() == {}


class _StoringEncoder(BaseEstimator):
    """An encoder that decodes its images into an image store (as a BackboneEmbedding)."""

    calls = 0

    def __init__(self, image_store=None):
        self.image_store = image_store

    def _image_shelves(self):
        return [(self.image_store, "image_size", 16, "bilinear")]

    def embed(self, X):
        from imageclef_concepts import ImageLoader

        _StoringEncoder.calls += len(X)
        pixels = ImageLoader(16, image_store=self.image_store).fit_transform(list(X))
        return pixels.reshape(len(pixels), -1)[:, :8].astype(np.float32)

    def embedding_identity(self):
        return "storing encoder, tests"


def _image_files(folder, n):
    from PIL import Image

    folder.mkdir()
    for index in range(n):
        Image.fromarray(np.full((20, 20, 3), index, np.uint8)).save(folder / f"{index}.png")
    return [str(folder / f"{index}.png") for index in range(n)]


def _disk(monkeypatch, free):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, free))


def test_an_encoders_image_store_is_asked_for_every_image_before_the_first_block(
        tmp_path, monkeypatch):
    # Each block of images asked the encoder's image store for its own images: on a real
    # disk a k-NN over a BackboneEmbedding ran the encoder over 25 of 40 images, block
    # after block, and was refused at the fourth.
    from imageclef_concepts.embeddings import _once
    from imageclef_concepts.images._folder_store import index_bytes

    monkeypatch.setattr(_once, "BLOCK", 4)
    paths = _image_files(tmp_path / "images", 20)
    _StoringEncoder.calls = 0
    _disk(monkeypatch, 5 * 16 * 16 * 3 + index_bytes(5, 5 * 200))  # each block fits, not all
    with pytest.raises(ValueError, match=r"^image_size=16: storing 20 image\(s\) at that size"):
        embed_images(_StoringEncoder(str(tmp_path / "images-store")), paths)
    assert _StoringEncoder.calls == 0


def test_embeddings_and_the_encoders_images_on_one_disk_are_asked_for_together(
        tmp_path, monkeypatch):
    # Each store was asked against the whole free space: the images passed, the embeddings
    # passed, and the pass filled the disk with both.
    from imageclef_concepts.embeddings import EmbeddingStore
    from imageclef_concepts.images._folder_store import index_bytes

    paths = _image_files(tmp_path / "images", 20)
    _StoringEncoder.calls = 0
    images = 20 * 16 * 16 * 3 + index_bytes(20, 20 * 200)  # the images alone fit
    _disk(monkeypatch, images)
    with pytest.raises(ValueError, match=r"storing 20 embedding\(s\) of 8 dimensions and the "
                                         r"images the encoder stores on that disk takes"):
        embed_images(_StoringEncoder(str(tmp_path / "images-store")), paths,
                     store=EmbeddingStore(tmp_path / "embeddings"))
    assert _StoringEncoder.calls == 1  # the one image that tells the embeddings' width


def test_a_batch_the_encoder_refuses_is_refused_before_it_embeds_the_store_probe(tmp_path):
    # With a store, one image was embedded first (its width sizes the disk check), so an
    # encoder's memory check for a whole batch (embed --image-size 20000: one image fits,
    # five do not) came only after the network had run over that image, at that size.
    from imageclef_concepts import EmbeddingStore

    class Batched(CountingEncoder):
        def __init__(self, batch_size=4):
            super().__init__()
            self.batch_size = batch_size

        def embed(self, X):
            if len(X) < min(self.batch_size, 10):  # the first call: a whole batch
                raise AssertionError(f"embedded {len(X)} image(s) before a whole batch")
            raise ValueError("batch_size=4: a batch does not fit")

    X, _ = _data(10)
    with pytest.raises(ValueError, match="a batch does not fit"):
        embed_images(Batched(), X, store=EmbeddingStore(tmp_path / "store"))


@pytest.mark.parametrize("form", ["arrays", "paths"])
def test_a_second_store_named_in_one_process_receives_the_rows_the_cache_holds(tmp_path,
                                                                              form):
    # The process's cache answered for every image, and the second store was left empty:
    # another process using it embedded everything again.
    from imageclef_concepts.embeddings import EmbeddingStore
    from imageclef_concepts.embeddings._once import count_stored

    X, _ = _data(6)
    if form == "paths":
        X = _image_files(tmp_path / "images", 6)
    encoder = CountingEncoder()
    first = embed_images(encoder, X, store=tmp_path / "a")
    again = embed_images(encoder, X, store=tmp_path / "b")
    np.testing.assert_array_equal(again, first)
    assert CountingEncoder.embedded == 6  # from the cache: embedded once
    identity = encoder.embedding_identity()
    assert count_stored(EmbeddingStore(tmp_path / "b"), identity, X) == 6
    clear_process_cache()  # another process: the store answers
    np.testing.assert_array_equal(embed_images(encoder, X, store=tmp_path / "b"), first)
    assert CountingEncoder.embedded == 6


def test_a_store_made_anew_at_the_path_of_one_filled_before_receives_the_rows(tmp_path):
    # The rows found in the last store are remembered; a new folder at its path (even one
    # reusing the inode) is another store, and lacks them.
    import shutil

    from imageclef_concepts.embeddings import EmbeddingStore
    from imageclef_concepts.embeddings._once import count_stored

    X, _ = _data(6)
    encoder = CountingEncoder()
    embed_images(encoder, X, store=tmp_path / "a")
    embed_images(encoder, X, store=tmp_path / "a")  # all found there: remembered
    shutil.rmtree(tmp_path / "a")
    embed_images(encoder, X, store=tmp_path / "a")
    assert count_stored(EmbeddingStore(tmp_path / "a"), encoder.embedding_identity(), X) == 6
    assert CountingEncoder.embedded == 6
