"""prepare_images: chunks of the store checked against the disk's free space before writing."""

import os
import re
import shutil
import warnings
from collections import namedtuple
from contextlib import nullcontext

import numpy as np
import pytest
from PIL import Image

from imageclef_concepts import ImageLoader, ImageStore, ImageStoreWarning, prepare_images

_Usage = namedtuple("_Usage", "total used free")


def _images(folder, n=3):
    folder.mkdir()
    paths = [folder / f"{i}.png" for i in range(n)]
    for path in paths:
        Image.fromarray(np.full((20, 30), 9, dtype=np.uint8)).save(path)
    return [str(path) for path in paths]


def _room(paths, image_size):
    """What storing ``paths`` at ``image_size`` asks the disk for: pixels and index entries."""
    from imageclef_concepts.images._folder_store import index_bytes
    from imageclef_concepts.images._shelf import source_key

    keys = [source_key(path) for path in paths]
    return len(paths) * image_size**2 * 3 + index_bytes(len(keys), sum(map(len, keys)))


def _disk_with(monkeypatch, free):
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: _Usage(2**40, 2**40 - free, free))


def test_a_chunk_the_disk_has_no_room_for_is_refused_naming_image_size(tmp_path, monkeypatch):
    paths = _images(tmp_path / "images")
    _disk_with(monkeypatch, _room(paths, 64) - 1)  # one byte short of the three images
    with pytest.raises(ValueError, match=r"^image_size=64: storing 3 image\(s\) at that "
                                         r"size takes [0-9.]+ KiB .*more than the free space"):
        prepare_images(paths, tmp_path / "store", image_size=64, progress=False)
    assert not list((tmp_path / "store").glob("*px-*"))  # nothing decoded nor written
    _disk_with(monkeypatch, _room(paths, 64))
    assert prepare_images(paths, tmp_path / "store", image_size=64, progress=False).added == 3


def test_a_store_whose_disk_fills_meanwhile_warns_and_decodes(tmp_path, monkeypatch):
    # Room for the images when the source is made, none left when its chunk is written
    # (another program took it): the chunk is not begun, the images are decoded.
    paths = _images(tmp_path / "images")
    store = ImageStore(tmp_path / "store")
    free = iter([2**30])
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda folder: _Usage(2**40, 2**40, next(free, 100)))
    with pytest.warns(ImageStoreWarning, match="more than the free space"):
        read = ImageLoader(16, image_store=store).fit_transform(paths)
    assert read.shape == (3, 16, 16, 3)
    assert store.summary() == {}


def test_reading_into_a_store_its_disk_has_no_room_for_is_refused_before_decoding(
        tmp_path, monkeypatch):
    # Any source filling a user's store asks the disk for all it will add, as prepare does.
    paths = _images(tmp_path / "images")
    store = ImageStore(tmp_path / "store")
    prepare_images(paths[:1], store, image_size=16, progress=False)
    _disk_with(monkeypatch, 2 * 16 * 16 * 3 - 1)  # one byte short of the two not held
    with pytest.raises(ValueError, match=r"^image_size=16: storing 2 image\(s\) at that size"
                                         r".*choose a smaller image_size"):
        ImageLoader(16, image_store=store).fit_transform(paths + paths)  # twice: stored once
    _disk_with(monkeypatch, _room(paths[1:], 16))
    assert ImageLoader(16, image_store=store).fit_transform(paths).shape == (3, 16, 16, 3)
    assert store.summary()["16px-bilinear"]["images"] == 3


def test_images_that_together_exceed_the_free_disk_are_refused_before_decoding(
        tmp_path, monkeypatch):
    # Each chunk fits, all of them do not: the whole preparation is what the disk must take
    # (16 images of 24 px upscaled to 30000 px wrote 41 GB, one 2.5 GiB chunk at a time).
    import imageclef_concepts.images._preparation as preparation

    monkeypatch.setattr(preparation, "_BLOCK_BYTES", 64 * 64 * 3)  # a chunk of one image
    paths = _images(tmp_path / "images", n=5)
    _disk_with(monkeypatch, _room(paths[:3], 64))  # room for three of them
    with pytest.raises(ValueError, match=r"^image_size=64: storing 5 image\(s\) at that size "
                                         r"takes [0-9.]+ KiB .*more than the free space"):
        prepare_images(paths, tmp_path / "store", image_size=64, progress=False)
    assert not list((tmp_path / "store").glob("*px-*"))
    _disk_with(monkeypatch, _room(paths, 64))
    assert prepare_images(paths[:3], tmp_path / "store", image_size=64,
                          progress=False).added == 3
    _disk_with(monkeypatch, _room(paths[3:], 64))  # what is stored needs no room again
    assert prepare_images(paths, tmp_path / "store", image_size=64,
                          progress=False).added == 2


def test_preparing_into_a_store_that_cannot_be_written_is_refused_before_decoding(
        tmp_path, monkeypatch):
    # It decoded every image for nothing and returned added=0 (the command said nothing,
    # exit status 0): a store on a read-only disk takes no image.
    import sqlite3

    import imageclef_concepts.images._sources as sources
    from imageclef_concepts import ImageStoreError
    from imageclef_concepts.images import _folder_store

    paths = _images(tmp_path / "images", n=4)
    store = tmp_path / "store"
    prepare_images(paths[:1], store, image_size=16, progress=False)

    def refused(index, table):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(_folder_store, "_writable_index", refused)
    decoded = []
    monkeypatch.setattr(sources, "decode_image", lambda *args: decoded.append(args))
    with pytest.raises(ImageStoreError, match=rf"^image store {store} cannot be written: "
                                              r"3 image\(s\) of 4 are not in it"):
        prepare_images(paths, store, image_size=16, progress=False)
    assert not decoded
    held = prepare_images(paths[:1], store, image_size=16, progress=False)  # nothing to add
    assert held.added == 0 and held.already_stored == 1


def test_the_room_asked_counts_the_index_entries(tmp_path, monkeypatch):
    # A 16 px image is 768 bytes and its entry in the index (path, version, chunk; in the
    # table, its key index and SQLite's log) several hundred more: on a tmpfs with room for
    # the pixels of 300 images, prepare filled the disk, stored none and exited 0.
    paths = _images(tmp_path / "images", 4)
    _disk_with(monkeypatch, 4 * 16 * 16 * 3)  # the pixels alone
    with pytest.raises(ValueError, match=r"^image_size=16: storing 4 image\(s\) at that size "
                                         r"takes [0-9.]+ KiB"):
        prepare_images(paths, tmp_path / "store", image_size=16, progress=False)
    assert not list((tmp_path / "store").glob("*px-*"))


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_preparing_into_a_store_whose_folder_was_deleted_is_refused_before_decoding(
        tmp_path, monkeypatch, change):
    # A store object kept (a notebook) after its folder was deleted ("delete the folder to
    # start afresh") or replaced: prepare decoded every image it lacked, then the store
    # warned it was lost, and prepare returned added=0; its only work is filling the store.
    import imageclef_concepts.images._sources as sources
    from imageclef_concepts import ImageStoreError

    paths = _images(tmp_path / "images", 3)
    store = ImageStore(tmp_path / "store")
    prepare_images(paths[:1], store, image_size=16, progress=False)
    shutil.rmtree(tmp_path / "store")
    if change == "replaced":
        (tmp_path / "store").mkdir()
    decoded, real = [], sources.decode_image
    monkeypatch.setattr(sources, "decode_image",
                        lambda *args, **kwargs: decoded.append(1) or real(*args, **kwargs))
    # (the one stored went with the folder's chunks)
    with pytest.raises(ImageStoreError, match=r"^image store .*store is no longer the folder "
                                              r"it opened .*3 image\(s\) of 3 are not in it"):
        prepare_images(paths, store, image_size=16, progress=False)
    assert not decoded
    # With none to add, it said PreparedImages(added=0, already_stored=1): stored in a
    # folder no longer at its path (the user's store there lacks it, or there is none).
    with pytest.raises(ImageStoreError, match=r"no longer the folder it opened .*1 "
                                              r"image\(s\) of 1 are not in it"):
        prepare_images(paths[:1], store, image_size=16, progress=False)
    assert (tmp_path / "store").exists() == (change == "replaced")
    if change == "replaced":
        assert not list((tmp_path / "store").iterdir())


def test_preparing_into_a_shelf_folder_that_cannot_be_written_is_refused_before_decoding(
        tmp_path, monkeypatch):
    # A store shared by two users: its index writable by both, its 16px-bilinear folder made
    # by the other (mode 755). prepare decoded every image, every chunk was refused
    # ('Permission denied'), one warning, added=0 and exit status 0 (seen as user nobody).
    from imageclef_concepts import ImageStoreError

    paths = _images(tmp_path / "images", 3)
    prepare_images(paths[:1], tmp_path / "store", image_size=16, progress=False)
    shelf = str(tmp_path / "store" / "16px-bilinear")
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != shelf
                        and real(path, mode, **kw))
    with pytest.raises(ImageStoreError, match=r"cannot be written: 2 image\(s\) of 3"):
        prepare_images(paths, tmp_path / "store", image_size=16, progress=False)


def test_preparing_a_new_size_into_a_store_folder_that_cannot_be_written_is_refused(
        tmp_path, monkeypatch):
    # The same shared store, its index writable by both (the other user's process holding
    # it, index.sqlite-wal and -shm there), the store's own folder not: at a size it holds
    # no folder for, prepare decoded every image, then could not make 24px-bilinear
    # ('Permission denied'), one warning, added=0, exit status 0 (seen as user nobody).
    from imageclef_concepts import ImageStoreError

    paths = _images(tmp_path / "images", 3)
    prepare_images(paths[:1], tmp_path / "store", image_size=16, progress=False)
    folder = str(tmp_path / "store")
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != folder
                        and real(path, mode, **kw))
    with pytest.raises(ImageStoreError, match=r"cannot be written: 3 image\(s\) of 3"):
        prepare_images(paths, tmp_path / "store", image_size=24, progress=False)
    assert not (tmp_path / "store" / "24px-bilinear").exists()


def test_preparing_a_size_whose_folder_place_holds_a_users_file_is_refused(tmp_path):
    # A user's file named as the new size's folder (store/24px-bilinear): Shelf.writable()
    # asked the store's folder, prepare decoded every image, could not make the folder (Not
    # a directory), warned once and said 'Prepared 4 images ...: 0 decoded into store, 0
    # already there', exit status 0.
    from imageclef_concepts import ImageStoreError

    paths = _images(tmp_path / "images", 3)
    prepare_images(paths[:1], tmp_path / "store", image_size=16, progress=False)
    (tmp_path / "store" / "24px-bilinear").write_text("mine")
    with pytest.raises(ImageStoreError, match=r"cannot be written: 3 image\(s\) of 3 .*"
                                              r"24px-bilinear is not a folder of its own"):
        prepare_images(paths, tmp_path / "store", image_size=24, progress=False)
    assert (tmp_path / "store" / "24px-bilinear").read_text() == "mine"


@pytest.mark.parametrize("change", ["deleted", "replaced", "manifest removed"])
def test_preparing_into_a_store_lost_before_its_first_use_is_refused(tmp_path, change):
    # A store opened (ImageStore(path)) and not yet used in this process when its folder was
    # deleted, replaced or lost its manifest: prepare warned once and returned
    # PreparedImages(added=0, already_stored=0, unreadable=0) for 3 images (no warning at
    # all at a second size), the refusal of a lost store applying only to one already used.
    from imageclef_concepts import ImageStoreError

    paths = _images(tmp_path / "images", 3)
    prepare_images(paths, tmp_path / "store", image_size=16, progress=False)
    store = ImageStore(tmp_path / "store")
    _lose_store(tmp_path / "store", change)
    for size in (16, 24):
        with pytest.warns(ImageStoreWarning) if size == 16 else nullcontext(), \
                pytest.raises(ImageStoreError, match=r"no longer the folder it opened"):
            prepare_images(paths, store, image_size=size, progress=False)
    assert (tmp_path / "store").exists() == (change != "deleted")


def _lose_store(folder, change):
    """The store at ``folder`` deleted, replaced by an empty folder, or unmarked."""
    if change == "manifest removed":
        os.remove(folder / "imageclef_concepts-image-store.json")
    else:
        shutil.rmtree(folder)
        if change == "replaced":
            folder.mkdir()


@pytest.mark.parametrize("change", ["deleted", "replaced", "manifest removed"])
def test_preparing_from_another_thread_into_a_lost_store_says_what_the_main_thread_says(
        tmp_path, change):
    # From a new thread the store's first act is that thread's index connection, whose
    # ownership check raised the private _StoreLost out of prepare_images, in other words
    # than on the thread that opened it.
    import threading

    from imageclef_concepts import ImageStoreError

    paths = _images(tmp_path / "images", 3)
    store = ImageStore(tmp_path / "store")
    prepare_images(paths[:1], store, image_size=16, progress=False)
    _lose_store(tmp_path / "store", change)
    raised = []

    def prepare():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ImageStoreWarning)
                prepare_images(paths, store, image_size=16, progress=False)
        except Exception as error:  # noqa: BLE001 - what reaches the user, checked below
            raised.append(error)

    thread = threading.Thread(target=prepare)
    thread.start()
    thread.join()
    assert [type(error) for error in raised] == [ImageStoreError], raised
    assert re.search(r"no longer the folder it opened .*image\(s\) of 3 are not in it",
                     str(raised[0])), raised[0]


def test_preparing_into_a_store_whose_index_cannot_be_made_is_refused_before_decoding(
        tmp_path, monkeypatch):
    # On a disk with a few KiB left the store's marker was written, its index not: prepare
    # warned "cannot be read", decoded every image for nothing, then failed, naming the
    # index by /proc/self/fd/N (the descriptor it was opened through).
    import sqlite3
    import warnings

    import imageclef_concepts.images._sources as sources
    from imageclef_concepts import ImageStoreError
    from imageclef_concepts.images import _folder_store

    paths = _images(tmp_path / "images")
    store = tmp_path / "store"

    def full(index, table):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(_folder_store, "_writable_index", full)
    decoded = []
    monkeypatch.setattr(sources, "decode_image", lambda *args: decoded.append(args))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning before the error
        with pytest.raises(ImageStoreError, match=rf"^the index of the image store {store} "
                                                  rf"cannot be created \({store}{os.sep}index"):
            prepare_images(paths, store, image_size=16, progress=False)
    assert not decoded


def test_images_whose_size_folder_was_deleted_are_prepared_again(tmp_path):
    # A user freeing space deleted one size's folder of the store: prepare counted its
    # images as already stored (the index still listed them) and never added them back.
    paths = _images(tmp_path / "images")
    store = ImageStore(tmp_path / "store")
    assert prepare_images(paths, store, 16, progress=False).added == 3
    prepare_images(paths, store, 24, progress=False)
    shutil.rmtree(tmp_path / "store" / "16px-bilinear")
    done = prepare_images(paths, ImageStore(tmp_path / "store"), 16, progress=False)
    assert (done.added, done.already_stored) == (3, 0)
    assert ImageStore(tmp_path / "store").summary()["16px-bilinear"]["images"] == 3
    again = prepare_images(paths, ImageStore(tmp_path / "store"), 24, progress=False)
    assert (again.added, again.already_stored) == (0, 3)  # the other size untouched


@pytest.mark.parametrize("integer", [np.uint8, np.int16, np.int64])
def test_numpy_integer_image_sizes_prepare_and_load_as_their_int(tmp_path, integer):
    # prepare_images(image_size=np.uint8(8)) passed the check (a whole number), then the
    # chunk's arithmetic wrapped: 'Python integer 33554432 out of bounds for uint8' (review 16).
    from imageclef_concepts import make_concept_images

    paths = make_concept_images(3, 2, 16, random_state=0, directory=tmp_path / "d").paths
    store = tmp_path / "store"
    assert prepare_images(paths, store, image_size=integer(8), progress=False).added == 3
    assert prepare_images(paths, store, image_size=8, progress=False).already_stored == 3
    loaded = ImageLoader(image_size=integer(8), image_store=store).transform(paths)
    np.testing.assert_array_equal(loaded, ImageLoader(image_size=8).transform(paths))
