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


def _zip_of(members):
    handle = io.BytesIO()
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return handle.getvalue()


def test_files_inside_an_archive_inflate_within_the_archives_budget(monkeypatch):
    # An ensemble archive of .keras networks: each inner file alone is under the
    # floor, together they inflate past what the archive itself may inflate to.
    monkeypatch.setattr(_zip, "INFLATION_FLOOR", 2**20)
    network = _zip_of({"model.weights.h5": bytes(600 * 2**10)})  # 600 KiB each
    outer = io.BytesIO(_zip_of({"a.keras": network, "b.keras": network}))
    with _zip.ModelZip(outer, "ensemble.zip") as archive:
        inner = [archive.read(name) for name in ("a.keras", "b.keras")]
        with archive.nested():
            _zip.ModelZip(io.BytesIO(inner[0]), "ensemble.zip (a.keras)").archive.close()
            with pytest.raises(ModelFileError, match=r"\(b.keras\).*left of the budget of "
                                                     "ensemble.zip"):
                _zip.ModelZip(io.BytesIO(inner[1]), "ensemble.zip (b.keras)")
    for data in inner:  # each alone, read on its own, is within its floor
        with _zip.ModelZip(io.BytesIO(data), "a.keras") as alone:
            assert len(alone.read("model.weights.h5")) == 600 * 2**10
