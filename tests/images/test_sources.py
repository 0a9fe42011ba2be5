import io

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils import Bunch

from imageclef_concepts import (
    ConceptCNNClassifier,
    ImageDecodeError,
    SkippedImagesWarning,
    decode_image,
    imageclef_f1,
)
from imageclef_concepts.images._sources import ImageFiles
from imageclef_concepts.keras._batches import ImageBatches

from ..conftest import TINY


def _save(image, path, **kwargs):
    image.save(path, **kwargs)
    return str(path)


def _grey_ramp(size=16):
    return np.tile(np.arange(size, dtype=np.uint8) * (255 // (size - 1)), (size, 1))


# ---------------------------------------------------------------- bad files

@pytest.fixture
def files_with_bad_ones(tmp_path):
    """Eight images whose grey level encodes their index, and four bad files."""
    paths = []
    for index in range(8):
        paths.append(_save(Image.fromarray(np.full((16, 16), index * 30, np.uint8)),
                           tmp_path / f"good{index}.png"))
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG")  # mostly scan data: cut, the header stays
    (tmp_path / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    bad = {
        "missing": str(tmp_path / "missing.png"),
        "empty": str(tmp_path / "empty.png"),
        "text": str(tmp_path / "text.png"),
        "truncated": str(tmp_path / "truncated.jpg"),
    }
    return paths, bad


@pytest.mark.parametrize("kind, message", [
    ("missing", "missing.png: file not found"),
    ("empty", "empty.png: empty file"),
    ("text", "text.png: not a readable image"),
])
def test_raise_checks_every_file_before_training(files_with_bad_ones, kind, message):
    paths, bad = files_with_bad_ones
    X = paths[:4] + [bad[kind]] + paths[4:]
    y = np.eye(9, dtype=int)
    model = ConceptCNNClassifier(**{**TINY, "image_size": 16, "filters": (4,)})
    with pytest.raises(ImageDecodeError, match=message):
        model.fit(X, y)
    assert not hasattr(model, "model_")  # nothing was built or trained


def test_raise_names_a_truncated_file_when_decoded(files_with_bad_ones):
    paths, bad = files_with_bad_ones
    model = ConceptCNNClassifier(**{**TINY, "image_size": 16, "filters": (4,),
                                    "validation_fraction": None})
    with pytest.raises(ImageDecodeError, match="truncated.jpg: cannot decode"):
        model.fit(paths + [bad["truncated"]], np.eye(9, dtype=int))


def test_skip_keeps_labels_aligned_and_says_which(files_with_bad_ones):
    paths, bad = files_with_bad_ones
    X = np.array([bad["missing"], paths[0], bad["empty"], paths[1], paths[2], bad["text"],
                  paths[3], bad["truncated"], *paths[4:]])
    labels = np.arange(len(X))  # label = position in X
    with pytest.warns(SkippedImagesWarning, match="3 of 12 image file") as caught:
        files = ImageFiles(X, 16, on_error="skip")
    message = str(caught[0].message)
    assert all(bad[kind] in message for kind in ("missing", "empty", "text"))
    batches = ImageBatches(files, indices=files.usable_indices(), targets=np.eye(12)[labels],
                           batch_size=4)
    seen = []
    for index in range(len(batches)):
        x, y = batches.batch(batches.indices, index)
        for image, target in zip(x, y):
            position = int(np.argmax(target))
            good_index = paths.index(X[position])  # grey level encodes the good index
            assert image[0, 0, 0] == good_index * 30
            seen.append(position)
    # the truncated file leaves with its label, found only when decoded
    assert bad["truncated"] in files.failures[7]
    assert sorted(seen) == [1, 3, 4, 6, 8, 9, 10, 11]


def test_skip_in_fit_and_predict(files_with_bad_ones):
    paths, bad = files_with_bad_ones
    X = paths[:4] + [bad["missing"], bad["truncated"]] + paths[4:]
    model = ConceptCNNClassifier(**{**TINY, "image_size": 16, "filters": (4,),
                                    "validation_fraction": None, "on_error": "skip"})
    with pytest.warns(SkippedImagesWarning) as caught:
        model.fit(X, np.eye(10, dtype=int))
    messages = " ".join(str(w.message) for w in caught)
    assert "missing.png" in messages and "truncated.jpg" in messages
    with pytest.warns(SkippedImagesWarning):
        proba = model.predict_proba(X)
    assert proba.shape == (10, 10)
    assert np.isnan(proba[[4, 5]]).all() and np.isfinite(proba[[0, 1, 2, 3, 6]]).all()
    with pytest.warns(SkippedImagesWarning):  # each call warns (never a stray warning)
        assert model.predict(X)[4].sum() == 0


# ------------------------------------------------------------- path input

@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_paths_give_the_same_model_as_decoded_arrays(tmp_path, tiny_images, tiny_indicator):
    paths = [_save(Image.fromarray(image), tmp_path / f"{i}.png")
             for i, image in enumerate(tiny_images.images)]
    from_paths = ConceptCNNClassifier(**TINY).fit(paths, tiny_indicator)
    from_arrays = ConceptCNNClassifier(**TINY).fit(tiny_images.images, tiny_indicator)
    np.testing.assert_allclose(from_paths.predict_proba(paths),
                               from_arrays.predict_proba(tiny_images.images), atol=1e-5)


# Slow by nature: a grid search of CNNs reading files (run by `pytest -m slow`).
@pytest.mark.slow
def test_path_input_through_grid_search(tmp_path, tiny_images):
    from pathlib import Path

    paths = np.array([Path(_save(Image.fromarray(image), tmp_path / f"{i}.jpg"))
                      for i, image in enumerate(tiny_images.images)], dtype=object)
    y = np.array([";".join(c) for c in tiny_images.concepts], dtype=object)
    search = GridSearchCV(ConceptCNNClassifier(**{**TINY, "epochs": 1}),
                          {"threshold": [0.1, 0.5]}, cv=KFold(2), scoring=imageclef_f1)
    search.fit(paths, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert len(search.predict(paths[:3])) == 3


def test_decoded_images_are_cached_within_the_budget(tmp_path, tiny_images, monkeypatch):
    import imageclef_concepts.images._sources as images_module

    paths = [_save(Image.fromarray(image), tmp_path / f"{i}.png")
             for i, image in enumerate(tiny_images.images)]
    decoded = []
    real_decode = images_module.decode_image
    monkeypatch.setattr(images_module, "decode_image",
                        lambda path, *args: decoded.append(path) or real_decode(path, *args))
    one_image_mb = 32 * 32 * 3 / 2**20
    for cache_mb, expected_decodes in [(0, 80), (100 * one_image_mb, 40),
                                       (10.5 * one_image_mb, 40 + 30)]:
        decoded.clear()
        files = ImageFiles(paths, 32, workers=2, cache_mb=cache_mb)
        passes = [np.concatenate([files.load(np.arange(start, min(start + 16, 40)))[0]
                                  for start in range(0, 40, 16)]) for _ in range(2)]
        # Both passes give every image, in order, whether it came from the cache or not.
        for batch in passes:
            np.testing.assert_array_equal(batch, tiny_images.images)
        assert len(decoded) == expected_decodes, cache_mb


def test_arrays_and_files_are_resized_by_the_same_pillow_filter(tmp_path):
    from PIL import Image

    from imageclef_concepts.images._sources import ImageArray

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    for resample in ("nearest", "bilinear", "lanczos"):
        from_array = ImageArray(pixels, 16, resample).load(np.arange(2))[0]
        path = tmp_path / f"{resample}.png"
        Image.fromarray(pixels[0]).save(path)
        from_file = decode_image(path, 16, resample)
        np.testing.assert_array_equal(from_array[0], from_file)
        assert from_array.dtype == np.uint8
    nearest = ImageArray(pixels, 16, "nearest").load(np.arange(2))[0]
    bilinear = ImageArray(pixels, 16, "bilinear").load(np.arange(2))[0]
    assert not np.array_equal(nearest, bilinear)  # resample is honoured, not ignored


def test_a_same_second_rewrite_on_a_whole_second_file_system_is_another_version(
        tmp_path, monkeypatch):
    """A file system of 1-second times: a rewrite of the same size within the same
    second keeps every time (set here with os.utime, the status-change time rounded
    down as such a file system keeps it); the content then tells the versions apart."""
    import os
    import time

    import imageclef_concepts.images._shelf as shelf_module

    pixels = np.stack([_grey_ramp()] * 3, axis=-1)
    path = _save(Image.fromarray(pixels), tmp_path / "a.png", compress_level=0)
    second = (time.time_ns() // 10**9) * 10**9
    real_stat = os.stat

    def whole_seconds(name, *args, **kwargs):
        status = real_stat(name, *args, **kwargs)
        if os.fspath(name) != str(path):
            return status
        return type("Status", (), {"st_size": status.st_size, "st_mtime_ns": second,
                                   "st_ctime_ns": second, "st_mode": status.st_mode,
                                   "st_ino": status.st_ino})()

    os.utime(path, ns=(second, second))
    monkeypatch.setattr(shelf_module.os, "stat", whole_seconds)
    before = shelf_module.file_version(path)
    monkeypatch.setattr(shelf_module.os, "stat", real_stat)
    Image.fromarray(255 - pixels).save(path, compress_level=0)  # the same size
    os.utime(path, ns=(second, second))
    monkeypatch.setattr(shelf_module.os, "stat", whole_seconds)
    after = shelf_module.file_version(path)
    assert before.split(":")[:3] == after.split(":")[:3]  # every time and the size alike
    assert before != after
    # Settled (past its second and the margin), a file is its size and times alone.
    monkeypatch.setattr(shelf_module.time, "time_ns", lambda: second + 3 * 10**9)
    assert shelf_module.file_version(path) == \
        f"{os.path.getsize(path)}:{second}:{second}:{os.stat(path).st_ino}"


@pytest.mark.parametrize("integer", [np.int32, np.int64])
def test_numpy_integer_image_sizes_are_checked_without_overflowing(integer):
    # A grid's np.arange gives NumPy integers: image_size=np.int32(65536) squared
    # overflowed to 0 and passed the check (36 GiB then allocated for 3 images), and
    # np.int64(2**32) too.
    from imageclef_concepts.images._sources import check_image_size

    with pytest.raises(ValueError, match=r"^image_size=.*65536.*: decoding one image"):
        check_image_size(integer(65536))
    with pytest.raises(ValueError, match=r"^image_size=.*20000.*: holding 1000 images"):
        check_image_size(integer(20000), 1000)
    if integer is np.int64:
        with pytest.raises(ValueError, match=r"one image at that size takes 218103808.0 TiB"):
            check_image_size(integer(2**32))
    check_image_size(integer(64), 10)


def test_decoding_one_image_counts_the_batch_and_the_rows_queued_for_the_store(monkeypatch):
    # prepare_images decodes one large image at a time into a batch while the one before
    # waits for the store's writer: 12.1 bytes a pixel measured at 6,000 px, not the 7 of
    # Pillow's and NumPy's copies alone (image_size=46341 passed on a 23.5 GiB machine and
    # the process was killed for want of memory).
    from imageclef_concepts.files import _sizes
    from imageclef_concepts.images._sources import check_image_size

    monkeypatch.setattr(_sizes, "memory_limit", lambda: 12 * 1000**2)
    with pytest.raises(ValueError, match=r"^image_size=1000: decoding one image at that size "
                                         r"takes 12.4 MiB \(13,000,000 bytes\)"):
        check_image_size(1000)
    check_image_size(960)  # 11,980,800 bytes


def test_the_image_cache_is_sized_within_memory_and_without_overflow(tmp_path, monkeypatch):
    # image_cache_mb sizes a cache filled as training decodes: np.float16(1) (or 1e308)
    # overflowed to infinity and raised OverflowError naming nothing, and a cache larger than
    # memory filled it image by image during the first epoch.
    from imageclef_concepts.files import _sizes

    paths = [_save(Image.fromarray(np.zeros((8, 8, 3), np.uint8)), tmp_path / f"{i}.png")
             for i in range(4)]
    for cache_mb in (np.float16(1), 1e308):
        assert ImageFiles(paths, 32, cache_mb=cache_mb)._cache_room == 4
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 3500)  # 4 images of 16 px: 3 KiB
    ImageFiles(paths, 16, cache_mb=1e308)
    with pytest.raises(ValueError, match=r"^image_cache_mb=1e\+308: caching the decoded "
                                         r"images \(8 at 16 px\) takes 6.0 KiB"):
        ImageFiles(paths * 2, 16, cache_mb=1e308)


def test_a_listed_problem_is_shown_capped_with_its_full_length(tmp_path):
    # Review 20 r20b R2: a test truth ending in one 50 MB line (an id without an image) gave a
    # 50,000,088-character message: the terminal got 50 MB.
    from imageclef_concepts.datasets._split_checks import check_split_lines

    huge = "x" * 50_000_000
    (tmp_path / "test").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "test" / "a.jpg")
    (tmp_path / "truth.tsv").write_text(f"a\tC1\n{huge}\tC2\n")
    with pytest.raises(ValueError) as raised:
        check_split_lines("test", Bunch(images=tmp_path / "test", concepts=tmp_path / "truth.tsv"),
                          learned=False, edition="2019")
    assert len(str(raised.value)) < 2_000 and "(50,000,000 characters)" in str(raised.value)
