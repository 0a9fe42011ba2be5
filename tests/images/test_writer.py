"""Chunks written in the background: the batch goes on, every write is done before it is needed."""

import os
import shutil
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from imageclef_concepts import ImageStore, ImageStoreWarning
from imageclef_concepts.images import _shared, _writer
from imageclef_concepts.images._shelf import Shelf
from imageclef_concepts.images._sources import ImageFiles

from .test_store import _expected, _write_images


@pytest.fixture
def paths(tmp_path):
    return _write_images(tmp_path / "images", 12)


@pytest.fixture
def held(monkeypatch):
    """Shelf.add waits for ``held.release`` (set) before writing; calls and ends are counted."""
    gate = threading.Event()
    record = {"calls": 0, "ended": [], "release": gate}
    real = Shelf.add

    def waiting(shelf, *args):
        record["calls"] += 1
        assert gate.wait(20)
        try:
            return real(shelf, *args)
        finally:
            record["ended"].append(time.monotonic())

    monkeypatch.setattr(Shelf, "add", waiting)
    yield record
    gate.set()


def _writer_threads():
    return [thread for thread in threading.enumerate() if "store writer" in thread.name]


def test_a_batch_is_returned_before_its_chunk_is_written_then_all_rows_are_there(
        tmp_path, paths, held, monkeypatch):
    import imageclef_concepts.images._sources as sources

    store = ImageStore(tmp_path / "store")
    files = ImageFiles(paths, 16, workers=1, image_store=store)
    first, good = files.load(np.arange(6))  # returns while the write waits at the gate
    assert good.all() and held["ended"] == [] and files.stored == {}
    decoded = []
    monkeypatch.setattr(sources, "decode_image",
                        lambda path, *args: decoded.append(path) or _expected([path], 16)[0])
    again, _ = files.load(np.arange(6))  # served from the pending rows, not decoded again
    assert decoded == [] and np.array_equal(again, first)
    files.load(np.arange(6, 12))
    held["release"].set()
    files.flush()
    assert held["calls"] == 2 and sorted(files.stored) == list(range(12))
    assert _writer_threads() == []  # the thread ends once nothing is left to write
    assert ImageStore(tmp_path / "store").summary()["16px-bilinear"]["images"] == 12
    assert np.array_equal(np.concatenate([first, files.load(np.arange(6, 12))[0]]),
                          _expected(paths, 16))


def test_a_new_source_waits_for_the_writes_before_reading_the_index(tmp_path, paths):
    store = ImageStore(tmp_path / "store")
    ImageFiles(paths, 16, workers=1, image_store=store).load(np.arange(12))
    assert len(ImageFiles(paths, 16, workers=1, image_store=store).stored) == 12


def test_the_queue_is_bounded_the_producer_waits_for_room():
    writer = _writer._Writer("test store writer")
    gate = threading.Event()
    for _ in range(_writer.QUEUE_BATCHES):
        writer.submit(gate.wait)
    late = threading.Thread(target=writer.submit, args=(lambda: None,))
    late.start()
    late.join(0.3)
    assert late.is_alive()  # no room: it waits
    gate.set()
    late.join(10)
    writer.flush()
    assert not late.is_alive() and not writer.busy()


def test_an_error_in_the_writer_is_one_warning_and_training_goes_on(tmp_path, paths,
                                                                     monkeypatch):
    attempts = []

    def broken(shelf, *args):
        attempts.append(1)
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(Shelf, "add", broken)
    files = ImageFiles(paths, 16, workers=1, image_store=ImageStore(tmp_path / "store"))
    with pytest.warns(ImageStoreWarning, match="cannot be written.*a bug") as caught:
        batches = [files.load(np.arange(start, start + 4))[0] for start in (0, 4, 8)]
        files.flush()
    assert len([w for w in caught if w.category is ImageStoreWarning]) == 1
    assert len(attempts) == 1  # the writes queued after it are dropped
    assert np.array_equal(np.concatenate(batches), _expected(paths, 16))


def test_a_store_lost_while_writing_in_the_background_warns_once(tmp_path, paths):
    store = ImageStore(tmp_path / "store")
    files = ImageFiles(paths, 16, workers=1, image_store=store)
    shutil.rmtree(tmp_path / "store")
    with pytest.warns(ImageStoreWarning, match="no longer the folder") as caught:
        for start in (0, 4, 8):
            files.load(np.arange(start, start + 4))
        files.flush()
    assert len([w for w in caught if w.category is ImageStoreWarning]) == 1
    assert not (tmp_path / "store").exists()  # never re-created


def test_a_temporary_store_is_removed_only_after_its_writes(paths, monkeypatch):
    monkeypatch.setattr(_shared, "memory_budget", lambda: 0)  # a temporary store always
    ended, removed = [], []
    real_add, real_remove = Shelf.add, _shared.remove_store_folder

    def slow_add(shelf, *args):
        time.sleep(0.3)
        try:
            return real_add(shelf, *args)
        finally:
            ended.append(time.monotonic())

    def remove(folder, identity):
        removed.append((time.monotonic(), folder))
        return real_remove(folder, identity)

    monkeypatch.setattr(Shelf, "add", slow_add)
    monkeypatch.setattr(_shared, "remove_store_folder", remove)
    run, _ = _shared._enter()
    try:
        ImageFiles(paths, 16, workers=1).load(np.arange(12))
        assert ended == []  # the write is still under way as the call ends
    finally:
        _shared._leave(run)
    assert len(ended) == 1 and removed[0][0] > ended[0]
    assert not os.path.exists(removed[0][1]) and _writer_threads() == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_inherits_every_row_written_and_no_writer(tmp_path, paths, held):
    store = ImageStore(tmp_path / "store")
    files = ImageFiles(paths, 16, workers=1, image_store=store)
    files.load(np.arange(12))
    threading.Timer(0.2, held["release"].set).start()
    with warnings.catch_warnings():  # forking a process with threads (3.12+)
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()  # waits for the write queued
    if child == 0:
        ok = len(files.stored) == 12 and not files._pending and not _writer.writer_of(
            store).busy() and len(ImageFiles(paths, 16, workers=1, image_store=store).stored)
        os._exit(0 if ok == 12 else 1)
    assert os.waitpid(child, 0)[1] == 0
    assert held["calls"] == 1 and len(files.stored) == 12


def test_the_interpreter_waits_for_the_writes_before_it_exits(tmp_path, paths):
    script = (
        "import sys, time, numpy as np\n"
        "from imageclef_concepts.images._shelf import Shelf\n"
        "from imageclef_concepts.images._sources import ImageFiles\n"
        "from imageclef_concepts import ImageStore\n"
        "real = Shelf.add\n"
        "Shelf.add = lambda *args: time.sleep(0.5) or real(*args)\n"
        "files = ImageFiles(sys.argv[2:], 16, workers=1, image_store=ImageStore(sys.argv[1]))\n"
        "files.load(np.arange(len(files)))\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "store"), *paths],
                   check=True, timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                       sys.path)})
    assert ImageStore(tmp_path / "store").summary()["16px-bilinear"]["images"] == 12


def test_a_second_store_object_on_the_same_folder_waits_for_the_writes(tmp_path, paths, held):
    # An estimator given a path opens its own ImageStore (and a clone deep-copies one):
    # the rows another object of the same folder queued are read, never decoded twice.
    ImageFiles(paths, 16, workers=1, image_store=ImageStore(tmp_path / "store")).load(
        np.arange(12))
    threading.Timer(0.2, held["release"].set).start()
    again = ImageFiles(paths, 16, workers=1, image_store=ImageStore(str(tmp_path / "store")))
    assert len(again.stored) == 12 and held["calls"] == 1


def test_a_store_sent_to_a_worker_process_waits_for_its_writes(tmp_path, paths, held):
    # A joblib/loky worker gets the store pickled, not forked: it reads the index
    # in another process, so what was queued must be written before it is sent.
    import pickle
    import sqlite3

    from imageclef_concepts.images._store_folder import INDEX

    store = ImageStore(tmp_path / "store")
    ImageFiles(paths, 16, workers=1, image_store=store).load(np.arange(12))
    threading.Timer(0.2, held["release"].set).start()
    sent = pickle.dumps(store)
    with sqlite3.connect(tmp_path / "store" / INDEX) as index:
        assert index.execute("SELECT COUNT(*) FROM images").fetchone() == (12,)
    assert pickle.loads(sent).path == store.path


def test_big_images_wait_for_room_by_their_bytes_not_only_by_batches(tmp_path, paths, held,
                                                                       monkeypatch):
    # Four batches of 1024-px images would hold 400 MB more than training needs:
    # the queue also counts the pixels waiting (one batch always goes in).
    monkeypatch.setattr(_writer, "QUEUE_BYTES", 6 * 16 * 16 * 3, raising=False)
    files = ImageFiles(paths, 16, workers=1, image_store=ImageStore(tmp_path / "store"))
    files.load(np.arange(4))  # 4 images: in the queue, however many bytes
    late = threading.Thread(target=files.load, args=(np.arange(4, 8),))
    late.start()
    late.join(0.3)
    assert late.is_alive()  # 8 images would wait: no room for them
    held["release"].set()
    late.join(10)
    files.flush()
    assert not late.is_alive() and len(files.stored) == 8


def test_a_warning_made_an_error_in_the_writer_is_reported_not_swallowed(tmp_path, paths,
                                                                          monkeypatch):
    # With warnings as errors (python -W error), the store's warning raises in the
    # writer's thread: it is reported as any thread's uncaught error, never lost.
    reported = []
    monkeypatch.setattr(threading, "excepthook", reported.append)
    monkeypatch.setattr(Shelf, "add", lambda *args: 1 / 0)
    files = ImageFiles(paths, 16, workers=1, image_store=ImageStore(tmp_path / "store"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageStoreWarning)
        batch, good = files.load(np.arange(12))
        files.flush()
    assert [hook.exc_type for hook in reported] == [ImageStoreWarning]
    assert str(tmp_path / "store") in str(reported[0].exc_value)
    assert good.all() and np.array_equal(batch, _expected(paths, 16))


def test_an_interrupt_while_waiting_for_room_leaves_no_pending_rows(tmp_path, paths,
                                                                   monkeypatch):
    # Ctrl-C in a full queue's wait: the batch is not queued, so its rows are not
    # kept in memory as pending for good (they are decoded or read again).
    def interrupted(writer, job, n_bytes=0):
        raise KeyboardInterrupt

    monkeypatch.setattr(_writer._Writer, "submit", interrupted)
    files = ImageFiles(paths, 16, workers=1, image_store=ImageStore(tmp_path / "store"))
    with pytest.raises(KeyboardInterrupt):
        files.load(np.arange(4))
    assert files._pending == {}


def test_a_store_object_of_the_same_folder_by_another_path_waits_for_the_writes(tmp_path,
                                                                                paths, held):
    # The writers were keyed by path: through a linked parent folder the second object
    # had a writer of its own, read the index before the first one's rows were in, and
    # decoded and wrote every file again (twice the disk the room check had asked for).
    (tmp_path / "disk").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "disk")
    ImageFiles(paths, 16, workers=1, image_store=ImageStore(tmp_path / "disk" / "store")).load(
        np.arange(12))
    threading.Timer(0.2, held["release"].set).start()
    again = ImageFiles(paths, 16, workers=1, image_store=ImageStore(tmp_path / "link" / "store"))
    assert len(again.stored) == 12 and held["calls"] == 1
