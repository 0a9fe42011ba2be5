"""file_version: what tells the image store (and the fingerprints) that a file changed."""

import os

import numpy as np
import pytest
from PIL import Image

import imageclef_concepts.images._shelf as shelf_module


def _whole_second_stat(monkeypatch, second, paths):
    """os.stat of ``paths`` as a file system of whole-second times gives it: every time on
    ``second`` (os.utime cannot set a status-change time); other files' as they are."""
    real_stat = os.stat
    faked = {os.fspath(path) for path in paths}

    class Status:
        def __init__(self, status):
            self.st_size, self.st_mode, self.st_ino = status.st_size, status.st_mode, status.st_ino
            self.st_mtime_ns = self.st_ctime_ns = second

    def stat(name, *args, **kwargs):
        status = real_stat(name, *args, **kwargs)
        return Status(status) if os.fspath(name) in faked else status

    monkeypatch.setattr(shelf_module.os, "stat", stat)


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symbolic links")
def test_a_link_pointed_at_another_file_of_the_same_size_and_times_is_a_change(
        tmp_path, monkeypatch):
    # Re-pointed within one second between two files of the same size: size and times
    # alike; the other file is another inode.
    for name, value in (("a.png", 0), ("b.png", 255)):
        Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(
            tmp_path / name, compress_level=0)  # stored: the same size
    assert os.path.getsize(tmp_path / "a.png") == os.path.getsize(tmp_path / "b.png")
    link = tmp_path / "image.png"
    link.symlink_to(tmp_path / "a.png")
    second = 1_700_000_000 * 10**9
    _whole_second_stat(monkeypatch, second, [link])
    monkeypatch.setattr(shelf_module.time, "time_ns", lambda: second + 5 * 10**9)  # settled
    before = shelf_module.file_version(link)
    link.unlink()
    link.symlink_to(tmp_path / "b.png")
    after = shelf_module.file_version(link)
    assert before.split(":")[:3] == after.split(":")[:3]  # size and both times alike
    assert before != after and "sha256" not in before + after
    assert shelf_module.file_version(link) == after  # the same file: the same version


def test_rows_added_together_are_written_as_chunks_of_at_most_chunk_rows(tmp_path, monkeypatch):
    # One chunk was one SQLite transaction of any size: at 8 px, prepare wrote 170,000
    # rows' entries at once, all in the log before any reached the index, past what the
    # room check counted (the log's 1,000 pages).
    from imageclef_concepts import ImageStore

    monkeypatch.setattr(shelf_module, "CHUNK_ROWS", 3)
    shelf = ImageStore(tmp_path / "store").shelf(4, "bilinear")
    pixels = np.arange(7 * 4 * 4 * 3, dtype=np.uint8).reshape(7, 4, 4, 3)
    keys = [f"key-{i}".encode() for i in range(7)]
    versions = [f"v{i}" for i in range(7)]
    entries = shelf.add(keys, versions, pixels)
    assert len({chunk for chunk, *_ in entries.values()}) == 3  # 3 + 3 + 1 rows
    assert len(list((tmp_path / "store" / "4px-bilinear").glob("*.npy"))) == 3
    located = shelf.locate(keys, versions)
    batch = np.zeros_like(pixels)
    assert shelf.read_into(batch, list(located.items())) == []
    np.testing.assert_array_equal(batch, pixels)


def test_the_room_asked_counts_one_chunks_transaction_beyond_the_logs_pages():
    from imageclef_concepts.images import _folder_store

    rows, key = 100_000, 40
    entries = rows * (2 * key + _folder_store._ENTRY_BYTES)
    transaction = _folder_store.CHUNK_ROWS * (2 * key + _folder_store._ENTRY_BYTES)
    asked = _folder_store.index_bytes(rows, rows * key)
    assert asked >= entries + _folder_store._LOG_BYTES + transaction
    small = _folder_store.index_bytes(10, 10 * key)  # the log holds no more than the rows
    assert small == 2 * 10 * (2 * key + _folder_store._ENTRY_BYTES) + \
        _folder_store._LOG_HEADER_BYTES
