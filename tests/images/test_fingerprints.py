"""images_digest: the fingerprint of training images for checkpoints and recipe-2026."""

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
