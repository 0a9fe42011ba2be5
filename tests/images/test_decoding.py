"""decode_image: every mode to RGB uint8, orientation, resampling, draft mode, bombs."""


import numpy as np
import pytest
from PIL import Image

from imageclef_concepts import ImageDecodeError, decode_image

from ..images.test_sources import _grey_ramp, _save


@pytest.mark.parametrize("mode, suffix", [
    ("L", "png"), ("LA", "png"), ("P", "png"), ("P", "gif"), ("RGB", "jpg"), ("RGB", "png"),
    ("RGBA", "png"), ("CMYK", "jpg"), ("1", "png"),
])
def test_every_8bit_mode_becomes_rgb_uint8(tmp_path, mode, suffix):
    source = Image.fromarray(_grey_ramp()).convert(mode)
    path = _save(source, tmp_path / f"image.{suffix}")
    pixels = decode_image(path, 16)
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8
    expected = np.asarray(Image.open(path).convert("RGB"))
    tolerance = 12 if suffix == "jpg" else 0
    assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= tolerance


@pytest.mark.parametrize("mode, dtype, suffix", [
    ("I;16", np.uint16, "png"), ("I", np.int32, "tif"), ("F", np.float32, "tif"),
])
def test_high_depth_grey_is_scaled_from_its_own_range(tmp_path, mode, dtype, suffix):
    values = np.linspace(1000, 3000, 16 * 16).reshape(16, 16).astype(dtype)
    image = Image.fromarray(values)
    assert image.mode == mode
    path = _save(image, tmp_path / f"image.{suffix}")
    pixels = decode_image(path, 16)
    assert pixels.dtype == np.uint8 and pixels.shape == (16, 16, 3)
    assert pixels.min() == 0 and pixels.max() == 255  # the range is used, not clipped
    expected = np.round((values.astype(float) - 1000) / 2000 * 255)
    np.testing.assert_allclose(pixels[..., 0], expected, atol=1)
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((16, 32), dtype=np.uint8)
    pixels[:, :16] = 255  # left half white
    image = Image.fromarray(pixels).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(image, tmp_path / "rotated.jpg", exif=exif, quality=100)
    decoded = decode_image(path, 32)
    # displayed upright the image is 32 high x 16 wide with the white half on top
    top, bottom = decoded[:12].mean(), decoded[-12:].mean()
    assert top > 200 and bottom < 50


def test_resampling_is_a_parameter(tmp_path):
    rng = np.random.default_rng(0)
    path = _save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
                 tmp_path / "noise.png")
    nearest = decode_image(path, 16, "nearest")
    lanczos = decode_image(path, 16, "lanczos")
    assert nearest.shape == lanczos.shape == (16, 16, 3)
    assert not np.array_equal(nearest, lanczos)
    np.testing.assert_array_equal(nearest, np.asarray(
        Image.open(path).resize((16, 16), Image.Resampling.NEAREST)))


def test_large_jpeg_uses_draft_mode_and_matches_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (16, 16, 3)), np.ones((64, 64, 1))).astype(np.uint8)
    path = _save(Image.fromarray(smooth), tmp_path / "large.jpg", quality=95)
    with Image.open(path) as image:
        image.draft("RGB", (64, 64))
        assert image.size[0] < 1024  # Pillow does support DCT scaling for this file
    fast = decode_image(path, 64).astype(int)
    full = np.asarray(Image.open(path).convert("RGB").resize((64, 64),
                                                             Image.Resampling.BILINEAR))
    assert np.abs(fast - full.astype(int)).mean() < 3


def test_decompression_bomb_guard_names_the_file(tmp_path, monkeypatch):
    path = _save(Image.fromarray(_grey_ramp(64)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)
    with pytest.raises(ImageDecodeError, match="bomb.png: refused by Pillow's decompression"):
        decode_image(path, 16)


@pytest.mark.parametrize("image_size, error, message", [
    (10**6, ValueError, r"^image_size=1000000: decoding one image at that size takes"),
    (0, ValueError, r"^image_size=0: image_size must be a whole number of pixels, at least 1"),
    (-3, ValueError, r"^image_size=-3: image_size must be a whole number"),
    ("16", TypeError, r"^image_size='16': image_size must be a whole number"),
])
def test_decode_image_checks_its_image_size_before_reading(tmp_path, image_size, error,
                                                           message):
    # The public decode_image did not check image_size: 10**6 grew to 21 GB before the
    # kernel killed the process, 10**5 was a bare MemoryError, 0 and '16' blamed the file
    # ("cannot decode the image (ZeroDivisionError ...)") and -3 was Pillow's ValueError.
    path = _save(Image.fromarray(_grey_ramp(16)), tmp_path / "ramp.png")
    with pytest.raises(error, match=message):
        decode_image(path, image_size)


def test_decoding_threads_default_to_the_cores_this_process_may_use(monkeypatch):
    import joblib

    from imageclef_concepts.images._decoding import MAX_DECODING_THREADS, decoding_threads
    from imageclef_concepts.images._sources import ImageFiles

    # joblib reads the CPU set and a container's CPU quota, which the machine's count is not
    monkeypatch.setattr(joblib, "cpu_count", lambda: 3)
    assert decoding_threads() == 3 and decoding_threads(7) == 7
    assert ImageFiles([_save_one()], 8).workers == 3
    monkeypatch.setattr(joblib, "cpu_count", lambda: 200)
    assert decoding_threads() == MAX_DECODING_THREADS == 32


def test_the_usable_cores_are_a_containers_cpu_quota_not_the_hosts_cores(monkeypatch, tmp_path):
    # A container given 1 core of a 64-core host (cgroup v2's cpu.max): joblib reads the quota
    import os

    from joblib.externals.loky.backend import context

    from imageclef_concepts.images._decoding import usable_cores

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(context, "_cpu_count_cgroup", lambda os_cpu_count: 1)
    assert usable_cores() == 1


def _save_one():
    import tempfile

    path = tempfile.mkdtemp() + "/one.png"
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(path)
    return path
