"""The one zip reader: what a model file's members may inflate to is bounded by what they hold."""

import io
import zipfile

import pytest

from imageclef_concepts import ModelFileError
from imageclef_concepts.models import _zip


def _padded_bomb(prefix_bytes, member_bytes):
    """A zip whose one member inflates to ``member_bytes`` of zeros, after a padded prefix."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.weights.h5", bytes(member_bytes))
    return io.BytesIO(bytes(prefix_bytes) + inner.getvalue())


def test_a_padded_prefix_buys_no_inflation(monkeypatch):
    monkeypatch.setattr(_zip, "INFLATION_FLOOR", 2**20)
    # 8 MiB of zeros deflate to about 8 KiB: a hundred times that is under 1 MiB,
    # whatever the megabyte of padding before the member would have allowed.
    handle = _padded_bomb(2**20, 8 * 2**20)
    with pytest.raises(ModelFileError, match="would inflate to 8.0 MiB.*nothing was inflated"):
        _zip.ModelZip(handle, "padded.zip")


def test_members_within_a_hundred_times_their_stored_bytes_are_read(monkeypatch):
    monkeypatch.setattr(_zip, "INFLATION_FLOOR", 2**20)
    handle = _padded_bomb(2**20, 2**19)  # half a MiB: under the floor
    with _zip.ModelZip(handle, "small.zip") as archive:
        assert archive.read("model.weights.h5") == bytes(2**19)
