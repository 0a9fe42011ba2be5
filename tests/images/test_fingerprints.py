"""images_digest: the fingerprint of training images for checkpoints and recipe-2026."""

import os

import numpy as np
from PIL import Image

from .test_sources import _grey_ramp, _save


def test_a_file_rewritten_in_place_with_its_times_put_back_is_another_version(
        tmp_path, monkeypatch):
    """Same size, same modification time, other pixels: a change all the same.

    The digest that fingerprints a checkpoint's and recipe-2026's images asks
    the image store's own question, :func:`file_version` (whose status-change
    time no program can set back).
    """
    import os
    import time

    import imageclef_concepts.images._fingerprints as images_module

    pixels = np.stack([_grey_ramp()] * 3, axis=-1)
    path = _save(Image.fromarray(pixels), tmp_path / "a.png", compress_level=0)
    before, digest = os.stat(path), images_module.images_digest([path])
    time.sleep(0.05)  # past a coarse file system clock's tick
    Image.fromarray(255 - pixels).save(path, compress_level=0)  # stored: the same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert images_module.images_digest([path]) != digest
    versions = iter(["one version", "another"])
    monkeypatch.setattr(images_module, "file_version", lambda name: next(versions))
    assert images_module.images_digest([path]) != images_module.images_digest([path])


class _Clock:
    """time.time_ns and time.sleep of a test: sleeping moves the clock on."""

    def __init__(self, now):
        self.now, self.sleeps = now, []

    def time_ns(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += int(seconds * 1e9)


def test_files_fingerprinted_right_after_writing_give_the_settled_fingerprint(
        tmp_path, monkeypatch):
    """On a file system of whole-second times a file changed in the last 2 s is versioned
    with its content; a checkpoint or a recipe plan made then must still match once the
    files have settled (when their version is their times): the digest waits for them."""
    import time

    import imageclef_concepts.images._fingerprints as images_module

    from .test_shelf import _whole_second_stat

    paths = [_save(Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)), tmp_path / f"{i}.png")
             for i in range(3)]
    second = 1_700_000_000 * 10**9
    clock = _Clock(second + 3 * 10**8)  # 0.3 s after the files' (whole) second
    _whole_second_stat(monkeypatch, second, paths)
    monkeypatch.setattr(time, "time_ns", clock.time_ns)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    right_after = images_module.images_digest(paths)
    assert len(clock.sleeps) == 1 and 1.6 < clock.sleeps[0] < 1.8  # once, for all of them
    clock.now += 60 * 10**9
    assert images_module.images_digest(paths) == right_after
    assert len(clock.sleeps) == 1  # settled: no wait


def test_files_that_never_settle_are_waited_for_a_bounded_time_and_fingerprinted_exactly(
        tmp_path, monkeypatch):
    import time

    import imageclef_concepts.images._fingerprints as images_module
    import imageclef_concepts.images._shelf as shelf_module

    path = _save(Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)), tmp_path / "a.png")
    clock = _Clock(1_700_000_000 * 10**9)
    real_stat = os.stat

    class Rewritten:  # changed again at every look, on the current whole second
        def __init__(self, status):
            self.st_size, self.st_mode, self.st_ino = status.st_size, status.st_mode, status.st_ino
            self.st_mtime_ns = self.st_ctime_ns = clock.now // 10**9 * 10**9

    monkeypatch.setattr(shelf_module.os, "stat", lambda name, *args, **kwargs: (
        Rewritten if os.fspath(name) == path else lambda status: status)(
        real_stat(name, *args, **kwargs)))
    monkeypatch.setattr(time, "time_ns", clock.time_ns)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    images_module.images_digest([path])
    assert len(clock.sleeps) == images_module._SETTLE_ROUNDS
    assert "sha256=" in shelf_module.file_version(path)  # unsettled: its content counts


def test_a_url_rewritten_with_its_modification_time_put_back_is_another_version(monkeypatch):
    # A plain HTTP server (python -m http.server) reports the size and a Last-Modified of
    # whole seconds, the file's: bytes rewritten with the time put back kept both, so a
    # checkpoint resumed and recipe-2026 loaded its members on other pixels.
    import io

    import fsspec

    import imageclef_concepts.images._fingerprints as images_module

    served = {"content": b"pixels one"}

    class Server:
        def info(self, path):
            return {"size": len(served["content"]),
                    "Last-Modified": "Mon, 07 Dec 2026 01:39:48 GMT"}

        def open(self, path, mode):
            return io.BytesIO(served["content"])

    monkeypatch.setattr(fsspec.core, "url_to_fs", lambda url: (Server(), url))
    url = "http://127.0.0.1:8765/a.png"
    before = images_module.images_digest([url])
    assert images_module.images_digest([url]) == before  # the same bytes: the same
    served["content"] = b"pixels two"  # same size, same time
    assert images_module.images_digest([url]) != before


def test_a_url_whose_http_etag_is_made_of_times_is_versioned_by_its_content(tmp_path):
    # nginx's ETag is the file's modification time and size in hex (Apache's adds the
    # inode): it was taken for a content hash, so bytes rewritten with the time put back
    # kept the version over a real HTTP server, and the fingerprint with it.
    import functools
    import http.server
    import threading

    import imageclef_concepts.images._fingerprints as images_module

    path = tmp_path / "a.png"
    path.write_bytes(b"pixels one")

    class Nginx(http.server.SimpleHTTPRequestHandler):
        def end_headers(self):
            status = os.stat(path)
            self.send_header("ETag", f'"{int(status.st_mtime):x}-{status.st_size:x}"')
            super().end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Nginx, directory=tmp_path))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/a.png"
        before = images_module.images_digest([url])
        status = os.stat(path)
        path.write_bytes(b"pixels two")  # same size, its time put back
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
        assert images_module.images_digest([url]) != before
    finally:
        server.shutdown()
        server.server_close()


def _files_an_hour_ahead(tmp_path, monkeypatch):
    """Two files of a whole-second file system whose times are an hour ahead of the clock:
    the paths, the clock (``time.time_ns`` and ``time.sleep``) and their second."""
    import time

    from .test_shelf import _whole_second_stat

    paths = [_save(Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)), tmp_path / f"{i}.png")
             for i in range(2)]
    second = 1_700_000_000 * 10**9
    clock = _Clock(second - 3600 * 10**9)
    _whole_second_stat(monkeypatch, second, paths)
    monkeypatch.setattr(time, "time_ns", clock.time_ns)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    return paths, clock, second


def test_files_whose_times_are_ahead_of_the_clock_are_not_waited_for(tmp_path, monkeypatch):
    # A FAT stick written on a machine whose clock was an hour ahead: every file's
    # whole-second status-change time is an hour away, and the digest slept that hour
    # (a day ahead, a day) waiting for them to settle. They are settled (a rewrite here sets
    # their times to this clock's, behind theirs).
    import imageclef_concepts.images._fingerprints as images_module

    paths, clock, second = _files_an_hour_ahead(tmp_path, monkeypatch)
    digest = images_module.images_digest(paths)
    assert sum(clock.sleeps) < 3
    assert images_module.images_digest(paths) == digest


def test_files_whose_times_are_ahead_of_the_clock_keep_their_fingerprint_when_it_catches_up(
        tmp_path, monkeypatch):
    # Their versions carried their content while the clock was behind, and not once it had
    # passed their times: the same files gave another fingerprint an hour later, and a
    # checkpoint's or recipe-2026's rerun was refused as another run's data. A rewrite here
    # sets the status-change time to this clock's, behind theirs: a change whatever the size.
    import imageclef_concepts.images._fingerprints as images_module

    paths, clock, second = _files_an_hour_ahead(tmp_path, monkeypatch)
    digest = images_module.images_digest(paths)
    clock.now = second + 7200 * 10**9  # two hours later: the clock has passed their times
    assert images_module.images_digest(paths) == digest


def test_a_weights_file_is_known_by_its_path_and_version_as_an_image_is(tmp_path):
    # The one rule of a checkpoint, recipe-2026's plan and the embedding store for a
    # backbone's weights: another file at the same path is other weights.
    from imageclef_concepts.images._fingerprints import file_identity, weights_identity

    assert weights_identity(None) is None and weights_identity("imagenet") == "imagenet"
    path = tmp_path / "b.weights.h5"
    path.write_bytes(b"weights")
    first = weights_identity(path)
    assert first == weights_identity(str(path)) == file_identity(str(path))
    (tmp_path / "new").write_bytes(b"weights")
    os.replace(tmp_path / "new", path)
    assert weights_identity(path) != first
    assert weights_identity(tmp_path / "none.h5") == str(tmp_path / "none.h5")  # refused later
