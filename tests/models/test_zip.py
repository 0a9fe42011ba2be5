"""The one zip reader: what a model file's members may inflate to is bounded by what they hold."""

import io
import struct
import zipfile

import numpy as np
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


def _with_central_directory_offset(data, shift):
    """``data`` (a zip) whose end of central directory states its directory ``shift`` bytes
    further on: zipfile then places every member ``shift`` bytes before where it is."""
    import struct

    data = bytearray(data)
    end = data.rfind(b"PK\x05\x06")
    offset = struct.unpack_from("<L", data, end + 16)[0]
    struct.pack_into("<L", data, end + 16, offset + shift)
    return bytes(data)


@pytest.mark.parametrize("shift", [10**6, 40])
def test_a_zip_whose_structures_point_nowhere_is_named_not_a_valid_model_file(tmp_path,
                                                                             shift):
    from imageclef_concepts.cli._main import main
    from imageclef_concepts.recipes._workflows import load_model

    valid = _zip_of({_zip.METADATA_ENTRY: b"{}", "model.weights.h5": bytes(100)})
    path = tmp_path / "bad.keras"
    path.write_bytes(_with_central_directory_offset(valid, shift))
    with pytest.raises(ModelFileError, match=r"bad.keras is not a valid model file"):
        _zip.read_model_record(path)
    with pytest.raises(ModelFileError, match=r"bad.keras is not a valid model file"):
        load_model(path)
    assert main(["info", str(path)]) == 2


def test_a_member_whose_data_cannot_be_read_is_named(tmp_path, monkeypatch):
    # Whatever zipfile raises while inflating (an I/O error, a bad local header) names
    # the file instead of coming out as "[Errno 22] Invalid argument".
    handle = io.BytesIO(_zip_of({"model.weights.h5": bytes(100)}))
    with _zip.ModelZip(handle, "mine.keras") as archive:
        monkeypatch.setattr(archive.archive, "open",
                            lambda *a: (_ for _ in ()).throw(OSError(22, "Invalid argument")))
        with pytest.raises(ModelFileError, match=r"^mine.keras is not a valid model file.*"
                                                 r"Invalid argument"):
            archive.read("model.weights.h5")


def _central_entries(data):
    """Offsets of the zip directory's entries (``PK\\1\\2``) in ``data``."""
    found, start = [], data.find(b"PK\x01\x02")
    while start != -1:
        found.append(start)
        start = data.find(b"PK\x01\x02", start + 1)
    return found


def test_a_directory_that_overstates_stored_bytes_buys_no_inflation(monkeypatch):
    # The budget counted the compressed sizes the directory declares: a member of
    # 8 KiB declaring 1 MiB stored (its data end where the stream ends, which zipfile
    # reads whole) bought 100 MiB, and Keras inflated all 8 MiB of it.
    monkeypatch.setattr(_zip, "INFLATION_FLOOR", 2**20)
    data = bytearray(_padded_bomb(0, 8 * 2**20).getvalue())
    (entry,) = _central_entries(data)
    struct.pack_into("<I", data, entry + 20, 2**20)  # compressed size: 1 MiB
    assert zipfile.ZipFile(io.BytesIO(data)).read("model.weights.h5") == bytes(8 * 2**20)
    with pytest.raises(ModelFileError, match="would inflate to 8.0 MiB.*nothing was inflated"):
        _zip.ModelZip(io.BytesIO(data), "overstated.keras")


def test_directory_entries_sharing_stored_bytes_buy_no_inflation(monkeypatch):
    # Many directory entries naming one member's data (an overlapping zip): each
    # counted its stored bytes again, so that N entries bought N budgets.
    monkeypatch.setattr(_zip, "INFLATION_FLOOR", 2**20)
    rng = np.random.default_rng(0)
    member = bytearray(2**20)
    member[::40] = rng.integers(0, 256, len(member[::40]), dtype=np.uint8).tobytes()
    data = _zip_of({"model.weights.h5": bytes(member)})
    with _zip.ModelZip(io.BytesIO(data), "one.zip") as archive:  # alone: within its budget
        assert archive.read("model.weights.h5") == member
    (entry,) = _central_entries(data)
    end = data.find(b"PK\x05\x06")
    eocd = bytearray(data[end:])
    struct.pack_into("<HHI", eocd, 8, 300, 300, 300 * (end - entry))
    shared = data[:entry] + data[entry:end] * 300 + bytes(eocd)
    with zipfile.ZipFile(io.BytesIO(shared)) as archive:
        assert len(archive.infolist()) == 300
        assert archive.read("model.weights.h5") == member
    with pytest.raises(ModelFileError, match="would inflate to 300.0 MiB.*nothing was inflated"):
        _zip.ModelZip(io.BytesIO(shared), "shared.zip")


def test_a_record_of_many_small_values_is_refused_before_parsing(monkeypatch):
    # 9 MiB of "{}," (9 KiB deflated) is within any record's size, but parsed it is
    # 3 million dicts: about 220 MiB, and a 64 MiB record 1.6 GB, from a 64 KiB file.
    def parse(*args, **kwargs):
        raise AssertionError("parsed")

    record = b"[" + b"{}," * (3 * 2**20) + b"{}]"
    handle = io.BytesIO(_zip_of({"imageclef_concepts.json": record}))
    monkeypatch.setattr(_zip.json, "loads", parse)
    with pytest.raises(ModelFileError, match=r"imageclef_concepts.json holds about "
                                             "6,291,459 JSON values.*nothing in it was parsed"):
        _zip.read_model_record(handle, "many.zip")


@pytest.mark.slow
def test_a_keras_config_of_many_small_values_is_refused_before_keras_parses_it(tmp_path):
    # Keras parses config.json whole; within the file's budget (256 MiB) it could
    # hold some 90 million values, gigabytes once parsed.
    from imageclef_concepts.keras._model_file import check_keras_members

    path = tmp_path / "many.keras"
    path.write_bytes(_zip_of({"config.json": b"[" + b"[]," * (5 * 2**20) + b"[]]",
                              "metadata.json": b"{}", "model.weights.h5": b""}))
    with pytest.raises(ModelFileError, match="config.json holds about 10,485,763 JSON values"):
        check_keras_members(path)
    path.write_bytes(_zip_of({"config.json": b"[" + b"[]," * 2**20 + b"[]]"}))
    check_keras_members(path)  # a million values: read


def _weights_h5(**dataset):
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as weights:
        weights.create_dataset("layers/dense/vars/0", data=np.zeros((512, 512), np.float32),
                               **dataset)
    return buffer.getvalue()


def test_compressed_hdf5_weights_are_refused_before_keras_reads_them():
    # Keras reads a weights dataset whole before comparing its shape with the network's,
    # and guards only datasets of 4 GiB and 1,000 times what is stored: a 370 KB .keras
    # whose dataset gzip held 288 MiB of zeros made loading allocate 1.9 GB.
    bomb = _weights_h5(compression="gzip", chunks=(64, 512))
    with _zip.ModelZip(io.BytesIO(_zip_of({"model.weights.h5": bomb})), "bomb.keras") as archive:
        with pytest.raises(ModelFileError, match=r"bomb.keras: member model.weights.h5 holds "
                                                 r"datasets of 1.0 MiB .* compressed"):
            archive.check_hdf5_member("model.weights.h5")
    plain = _weights_h5()
    with _zip.ModelZip(io.BytesIO(_zip_of({"model.weights.h5": plain, "x": b"junk"})),
                       "plain.keras") as archive:
        archive.check_hdf5_member("model.weights.h5")  # as Keras writes it
        archive.check_hdf5_member("x")  # not HDF5: left to Keras
        archive.check_hdf5_member("missing")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
@pytest.mark.parametrize("stated", ["true sizes", "a few bytes stated"])
def test_members_zipfile_would_inflate_whole_are_refused_before_inflating(method, stated):
    # zipfile inflates deflate a bounded chunk at a time, but hands bzip2 and LZMA data to
    # the decompressor whole: 722 bytes of bzip2 are 1 GB of zeros in one call. A .keras
    # whose config.json was 500 MB of bzip2 with its size stated as 3000 bytes took 1 GB
    # more to predict before it was refused as "not a zip file"
    handle = io.BytesIO()
    with zipfile.ZipFile(handle, "w") as archive:
        archive.writestr("imageclef_concepts.json", b"{}", compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("config.json", b"{}" + bytes(2**16), compress_type=method)
    data = bytearray(handle.getvalue())
    if stated != "true sizes":  # the local header's and the directory's uncompressed size
        local = data.index(b"PK\x03\x04config.json"[:4], data.index(b"config.json") - 30)
        struct.pack_into("<I", data, local + 22, 3)
        central = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)
        struct.pack_into("<I", data, central + 24, 3)
    with pytest.raises(ModelFileError, match=r"^bomb.keras: member config.json is compressed "
                                             r"with (bzip2|LZMA)"):
        _zip.ModelZip(io.BytesIO(bytes(data)), "bomb.keras")


def test_sharded_weights_are_refused_before_keras_reads_their_shards(tmp_path):
    # weights='x.weights.json' (Keras' sharded weights) was neither a zip nor HDF5, so the
    # check let it through, and Keras read the shards it names unchecked: a shard of 11 MB
    # holding a 2 GiB gzip dataset took 9 GB of memory for 72 s, then a shape error.
    import json

    (tmp_path / "w_00000.weights.h5").write_bytes(_weights_h5(compression="gzip",
                                                               chunks=(64, 512)))
    sharded = tmp_path / "w.weights.json"
    sharded.write_text(json.dumps({"metadata": {}, "weight_map": {
        "/layers/dense/vars": ["w_00000.weights.h5"]}}))
    for path in (sharded, tmp_path / "empty.weights.h5"):
        path.touch()
        with pytest.raises(ModelFileError, match=rf"^{path}: its weights cannot be loaded: "
                                                 r"neither a \.keras file nor an HDF5 file"):
            _zip.check_weights_file(path)
    plain = tmp_path / "plain.weights.h5"
    plain.write_bytes(_weights_h5())
    _zip.check_weights_file(plain)  # as Keras writes it


def _lying(members, target, stated=1000):
    """A zip of ``members`` (deflated) whose directory and local header state ``stated``
    bytes for ``target``, which inflates to more."""
    data = bytearray(_zip_of(members))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(target)
    struct.pack_into("<I", data, info.header_offset + 22, stated)  # the local header's
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(target)] != target.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, stated)  # the directory's
    return bytes(data)


@pytest.mark.parametrize("target", ["config.json", "imageclef_concepts.json"])
def test_a_member_inflating_past_its_stated_size_is_named_damaged(tmp_path, target):
    # config.json padded with 300 MiB of spaces, both sizes patched to 1,000 bytes, was
    # refused as "not a zip file: empty, truncated or another kind of file": it is a zip
    # file, one of whose members does not hold what its directory states.
    from imageclef_concepts.keras._model_file import check_keras_members

    members = {"imageclef_concepts.json": b"{}" + b" " * 2**16,
               "config.json": b"{}" + b" " * 2**16, "metadata.json": b"{}"}
    path = tmp_path / "lying.keras"
    path.write_bytes(_lying(members, target))
    damaged = rf"^{path} is damaged: member {target} "
    with pytest.raises(ModelFileError, match=damaged) as raised:
        _zip.read_model_record(path) if target != "config.json" else check_keras_members(path)
    assert "not a zip file" not in str(raised.value)
    with _zip.ModelZip(io.BytesIO(path.read_bytes()), str(path)) as archive, \
            pytest.raises(ModelFileError, match=damaged):
        archive.read(target)
