"""The prepare subcommand: sizes beyond the disk refused in one line before any decoding."""

import shutil
from collections import namedtuple

import numpy as np
from PIL import Image

from imageclef_concepts.cli._main import main


def test_prepare_refuses_chunks_beyond_the_free_disk_naming_image_size(tmp_path, capsys,
                                                                        monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(images / f"{i}.png")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**31, 2**31 - 2**30, 2**30))
    code = main(["prepare", "--images", str(images), "--store", str(tmp_path / "store"),
                 "--image-size", "20000", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
    assert "--image-size 20000: storing 2 image(s) at that size takes 2.2 GiB" in error
    assert "free space" in error
    assert not list((tmp_path / "store").glob("*px-*"))
