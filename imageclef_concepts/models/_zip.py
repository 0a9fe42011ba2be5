"""Model files read within bounds: the library's one zip reader, and a file's record.

Every zip the library reads (``.keras`` files and archives, for ``info``,
``load``, ``load_model``, ``predict`` and the recipe) is read through
:class:`ModelZip`, which bounds what its members may inflate to, so that a
small file cannot make the library inflate gigabytes into memory or onto disk.
"""

import contextvars
import io
import json
import math
import os
import struct
import warnings
import zipfile
import zlib
from contextlib import contextmanager, nullcontext

from ..files._atomic import check_regular_file, open_regular_file
from ..files._sizes import in_bytes
from ._card import METADATA_ENTRY, ModelFileError

# A record holds parameters, a vocabulary and a history: 64 MiB of JSON is far
# more than any needs.
_LARGEST_RECORD = 2**26
# What parsing a JSON member may allocate, estimated before parsing it: JSON's
# values become Python objects of up to about 25 times their text ("{}," is 3 bytes,
# an empty dict and its pointer 72), so a record within its size, or Keras'
# config.json within the file's budget, could still take gigabytes. Each value
# (a comma, colon or opening bracket, and one more) is counted as _VALUE_BYTES.
LARGEST_PARSED = 2**28  # 256 MiB: millions of values, far more than any network's config
_VALUE_BYTES = 64
# What a model file's members may inflate to, all of them together: INFLATION_RATIO
# times the file's own size, and at least INFLATION_FLOOR. Keras stores its members
# as they are (1:1), the archives' arrays and JSON deflate a few times, and deflate
# cannot exceed about 1032:1: only a decompression bomb goes past 100:1 (Keras' own
# guard uses the same ratio). The floor lets a small file hold compressible JSON.
INFLATION_RATIO = 100
INFLATION_FLOOR = 2**28  # 256 MiB
_READ_CHUNK = 2**20
# The methods the library and Keras write, which zipfile inflates a bounded chunk at a
# time. It hands bzip2 and LZMA data to their decompressors whole: 722 bytes of bzip2
# are 1 GB of zeros in one read, before any size is compared.
BOUNDED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}
_LOCAL_HEADER = 30  # the fixed part of a member's local header
# The archive whose member is being read as a model file of its own (a network's
# .keras inside an ensemble archive): the inner file's budget comes out of it.
_OUTER = contextvars.ContextVar("imageclef_concepts outer model zip", default=None)


def read_model_record(path, shown_as=None):
    """The JSON record inside a model file written by the library (``.keras`` or archive).

    ``path`` may be a file object (a network inside an archive), named in
    errors as ``shown_as``.

    Raises
    ------
    ModelFileError
        When the file is not a zip archive, carries no record, or the record
        is not a JSON object.
    """
    source, path = path, path if shown_as is None else shown_as
    opened = (open_regular_file(source, "model file") if isinstance(source, (str, os.PathLike))
              else nullcontext(source))  # a pipe would block: regular files only
    try:
        with opened as handle, ModelZip(handle, path) as archive:
            if METADATA_ENTRY not in archive:
                raise ModelFileError(f"{path} was not written by imageclef_concepts (no "
                                     f"{METADATA_ENTRY} inside).")
            record = archive.read_json(  # never decompress a bomb whole
                METADATA_ENTRY, _LARGEST_RECORD, "any record needs to be")
    except zipfile.BadZipFile:
        raise not_a_zip(path) from None
    except (ValueError, RuntimeError, NotImplementedError) as error:  # bad JSON, zip quirks
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(f"{path}: its record cannot be read ({error}).") from None
    if not isinstance(record, dict):
        raise ModelFileError(f"{path}: its record is a JSON {type(record).__name__}, not an "
                             "object.")
    return record


def not_a_zip(path, kind=None):
    """The error for a model file ``path`` that is no zip file (``zipfile.BadZipFile`` on
    opening it; a member whose data are damaged is named by :meth:`ModelZip.read`)."""
    kind = kind or (".keras model file" if str(path).endswith(".keras") else "model file")
    return ModelFileError(f"{path} is not a {kind} (not a zip file: empty, truncated or "
                          "another kind of file).")


class ModelZip:
    """A model file's zip, its members inflated within bounds: the library's one zip reader.

    ``.keras`` files and archives are read through it by ``info``, ``load``,
    ``load_model``, the command line and the recipe:

    * before anything is inflated, the zip directory is checked: each member
      name ``allowed`` (when given), and the sizes the members declare, all
      together, within the file's budget (:attr:`budget`: ``INFLATION_RATIO``
      times the bytes its members are stored in, no more than the file holds, at least
      ``INFLATION_FLOOR``; bytes outside any member, such as a padded prefix, buy
      nothing, nor do stored sizes the directory overstates or entries sharing data);
    * while reading, every byte inflated counts: a member stops at the size
      the directory declares or at the caller's ``limit`` (a manifest's),
      whichever is less, and the file at its budget however often its
      members are read (an archive that names one member again and again).
      A member whose data inflate past its declared size is caught there
      (``zipfile`` also stops at that size, and the member's CRC then fails).

    Parameters
    ----------
    handle : binary file object
        Seekable, open for reading (a regular file, or ``io.BytesIO``).
    shown : str or path-like
        How errors name the file.
    allowed : callable, default=None
        ``allowed(name)`` is True for each member the file may hold; None
        takes any name.
    kind : str, default="a model file"
        What the file is, for errors.

    Raises
    ------
    ModelFileError
        A member not ``allowed``, or members declaring more than the budget.
    zipfile.BadZipFile
        Not a zip file.
    """

    def __init__(self, handle, shown, allowed=None, kind="a model file"):
        handle.seek(0, os.SEEK_END)
        self.file_size = handle.tell()
        handle.seek(0)
        self.shown, self.kind = shown, kind
        self.inflated = 0
        try:
            self.archive = zipfile.ZipFile(handle)
        except zipfile.BadZipFile:
            raise
        except (OSError, EOFError, ValueError, struct.error, IndexError) as error:
            raise self._not_valid(error) from None
        # The budget counts the members' stored bytes, not the file's size: bytes
        # outside any member (a padded prefix) would otherwise buy inflation. Those
        # the directory declares, at most the file's size: a directory overstating
        # them, or entries sharing one member's data, would otherwise buy it.
        self.stored = min(self.file_size,
                          sum(info.compress_size for info in self.archive.infolist()))
        self.budget = max(INFLATION_FLOOR, INFLATION_RATIO * self.stored)
        # A file read out of another (``nested``) gets no floor of its own: what
        # its members may inflate to is carved out of what the outer file has left.
        self.outer = _OUTER.get()
        if self.outer is not None:
            self.budget = min(self.budget, self.outer.budget - self.outer.inflated)
        try:
            self._check_directory(allowed)
        except BaseException:
            self.archive.close()
            raise
        if self.outer is not None:  # all it may inflate (here or in Keras) counts there
            self.outer.inflated += sum(info.file_size for info in self.archive.infolist())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.archive.close()

    def __contains__(self, name):
        return name in self.archive.NameToInfo

    def namelist(self):
        return self.archive.namelist()

    def sizes(self):
        """``{name: size}`` as the zip directory declares them."""
        return {info.filename: info.file_size for info in self.archive.infolist()}

    @contextmanager
    def nested(self):
        """While open, a model file read out of this one (a member written to a
        temporary file or held in memory) is bounded by what this one has left."""
        token = _OUTER.set(self)
        try:
            yield
        finally:
            _OUTER.reset(token)

    def _not_valid(self, error):
        """A zip whose structures point nowhere (a bad end of central directory, zip64
        locator or member offset): named, and said not to be a valid model file."""
        return ModelFileError(f"{self.shown} is not a valid model file: its zip structure "
                              f"cannot be read ({error}).")

    def _check_directory(self, allowed):
        infos = self.archive.infolist()
        outside = [info for info in infos
                   if not 0 <= info.header_offset <= self.file_size - _LOCAL_HEADER]
        if outside:  # zipfile would seek before the file's start, or past its end
            raise self._not_valid(f"member {outside[0].filename} starts at "
                                  f"{outside[0].header_offset}, outside the file's "
                                  f"{self.file_size} bytes")
        if why := unbounded_member(self.archive):
            raise ModelFileError(f"{self.shown}: {why}: not {self.kind} as the library writes "
                                 "it; nothing was inflated.")
        if allowed is not None:
            unexpected = sorted({info.filename for info in infos if not allowed(info.filename)})
            if unexpected:
                shown = ", ".join(unexpected[:5]) + (", ..." if len(unexpected) > 5 else "")
                raise ModelFileError(
                    f"{self.shown} holds {len(unexpected)} member(s) that {self.kind} does "
                    f"not ({shown}): not a file as the library writes it, so nothing in it "
                    "is read.")
        total = sum(info.file_size for info in infos)
        if total > self.budget:
            largest = max(infos, key=lambda info: info.file_size)
            raise ModelFileError(
                f"{self.shown}: its members would inflate to {in_bytes(total)}, "
                f"{largest.filename} alone {in_bytes(largest.file_size, exact=False)}: more "
                f"than {self._budget_rule()}: a decompression bomb, not {self.kind} as the "
                "library writes it; nothing was inflated.")

    def _budget_rule(self):
        if self.outer is not None:
            return (f"the {in_bytes(self.budget)} left of the budget of {self.outer.shown}, "
                    "the file it is read from")
        return (f"the {in_bytes(self.budget)} members stored in "
                f"{in_bytes(self.stored, False)} may inflate to ({INFLATION_RATIO} times that, "
                "at least "
                f"{in_bytes(INFLATION_FLOOR, exact=False)})")

    def read(self, name, limit=None, limit_text=None):
        """Member ``name``'s bytes, inflating no more than ``limit`` bytes of it.

        ``limit_text`` says where the limit comes from (``"its manifest
        states"``), for the error.

        Raises
        ------
        KeyError
            No such member.
        ModelFileError
            The member is larger than ``limit`` (said by the directory, or
            found while inflating it), damaged (its data are not what the
            directory states), or the file's budget is spent.
        """
        info = self.archive.getinfo(name)
        cap = info.file_size if limit is None else min(limit, info.file_size)
        if limit is not None and info.file_size > limit:
            raise self._too_large(name, limit, limit_text)
        data = bytearray()
        try:
            return self._inflate(info, name, cap, limit_text, data)
        except ModelFileError:
            raise
        except zipfile.BadZipFile as error:  # a bad CRC: it inflates past its stated size
            raise ModelFileError(f"{self.shown} is damaged: member {name} does not hold what "
                                 f"the zip directory states ({error}).") from None
        except (OSError, EOFError, ValueError, struct.error, zlib.error) as error:
            raise self._not_valid(error) from None

    def read_json(self, name, limit=None, limit_text=None):
        """Member ``name`` parsed as JSON, read as :meth:`read` reads it, and parsed only
        when what parsing it allocates is estimated within ``LARGEST_PARSED``.

        Raises
        ------
        ModelFileError
            Its values would take more than ``LARGEST_PARSED`` once parsed.
        ValueError
            Not JSON (``json.JSONDecodeError``).
        """
        data = self.read(name, limit, limit_text)
        check_json_values(data, f"{self.shown}: member {name}", self.kind)
        return json.loads(data)

    def check_json_members(self, names):
        """Refuse, unparsed, any member of ``names`` it holds whose JSON values would take
        more than ``LARGEST_PARSED`` once parsed (:func:`check_json_values`): members
        another reader (Keras) parses whole."""
        for name in names:
            if name in self:
                check_json_values(self.read(name), f"{self.shown}: member {name}", self.kind)

    def check_hdf5_member(self, name):
        """Refuse, before its reader (Keras) reads it, an HDF5 member (``model.weights.h5``)
        whose datasets hold more bytes than the member: HDF5 compresses datasets, which
        Keras reads whole (its own guard starts at 4 GiB a dataset, and at 1,000 times
        what is stored), before comparing their shapes with the network's; a 370 KB file
        made it allocate 1.9 GB. Keras writes its datasets uncompressed."""
        if name not in self:
            return
        held = hdf5_datasets_bytes(io.BytesIO(self.read(name)))
        if held > self.archive.getinfo(name).file_size:
            raise ModelFileError(
                f"{self.shown}: member {name} holds datasets of {in_bytes(held)} in "
                f"{in_bytes(self.archive.getinfo(name).file_size, False)}: compressed, not "
                f"{self.kind} as Keras writes it; nothing in it was read.")

    def _inflate(self, info, name, cap, limit_text, data):
        with self.archive.open(info) as member:
            while True:
                chunk = member.read(min(_READ_CHUNK, cap + 1 - len(data)))
                if not chunk:
                    return data  # a bytearray: no copy of a large member
                self.spend(len(chunk))
                data += chunk
                if len(data) > cap:
                    raise self._too_large(name, cap, limit_text or "the zip directory states")

    def spend(self, n_bytes, what="reading its members inflates"):
        """Count ``n_bytes`` made out of the file (inflated, or built from its
        members: a tensor copied out of its storage) against its budget.

        Raises
        ------
        ModelFileError
            When the file's budget is spent; ``what`` says what spent it.
        """
        self.inflated += n_bytes
        if self.inflated > self.budget:
            raise ModelFileError(f"{self.shown}: {what} more than {self._budget_rule()}: not "
                                 f"{self.kind} as the library writes it.")

    def _too_large(self, name, limit, limit_text):
        return ModelFileError(f"{self.shown}: member {name} is larger than "
                              f"{limit_text or 'allowed'}, {in_bytes(limit)}: not "
                              f"{self.kind} as the library writes it.")


def unbounded_member(archive):
    """Why the open ``zipfile.ZipFile`` ``archive`` holds a member that zipfile would inflate
    whole (compressed otherwise than stored or deflated: bzip2, LZMA), or None."""
    for info in archive.infolist():
        if info.compress_type not in BOUNDED_METHODS:
            method = _METHOD_NAMES.get(info.compress_type, "another method")
            return (f"member {info.filename} is compressed with {method} (zip method "
                    f"{info.compress_type}), which the library never writes and zipfile "
                    "inflates whole")
    return None


def check_weights_file(path):
    """Refuse, before Keras reads it, a weights file (``weights=``: a ``.keras`` or HDF5 file)
    that is not a regular file or would inflate beyond what it holds: Keras reads a .keras
    with zipfile (bzip2 whole) and an HDF5 file's datasets whole. A 1,123-byte .keras whose
    weights were 1 GiB of bzip2 took 2 GB, then 'file signature not found'. Anything else
    is refused: Keras reads a sharded ``.weights.json``'s shards, files never checked."""
    check_regular_file(path, "weights file")  # a pipe or a device is never opened
    shown = os.fspath(path)
    with open_regular_file(path, "weights file") as handle:
        if zipfile.is_zipfile(handle):
            with ModelZip(handle, shown, kind="a weights file") as archive:
                archive.check_hdf5_member("model.weights.h5")
            return
        if not _is_hdf5(handle):  # a 2 GiB gzip dataset in a shard took 9 GB
            raise ModelFileError(
                f"{shown}: its weights cannot be loaded: neither a .keras file nor an HDF5 "
                "file (.weights.h5, .h5); Keras' sharded weights (a .weights.json) are not "
                "read: save them as one .weights.h5 file. Nothing in it was read.")
        held, size = hdf5_datasets_bytes(handle), os.fstat(handle.fileno()).st_size
    if held > size:  # Keras writes its datasets uncompressed
        raise ModelFileError(f"{shown} holds datasets of {in_bytes(held)} in "
                             f"{in_bytes(size, False)}: compressed, not a weights file as "
                             "Keras writes it; nothing in it was read.")


def load_weights_file(network, path):
    """Load the weights file ``path`` (that :func:`check_weights_file` took) into the Keras
    ``network``; what Keras cannot read in it (not a weights file, another network's) is
    one error naming the file, not h5py's alone. Keras' warnings of a failed load (one a
    nested container: 131 lines for a classifier's weights) are left out, and its list of
    every layer it could not load (8 KB): the first line of Keras' error says it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            network.load_weights(path)
        except Exception as error:  # noqa: BLE001 (h5py's, Keras' own: none names the file)
            said = " ".join(str(error).split("List of objects that could not be")[0].split())
            raise ModelFileError(f"{os.fspath(path)}: its weights cannot be loaded into "
                                 f"{network.name} ({type(error).__name__}: {said:.300}).") \
                from None
    for warning in caught:  # a load that worked: what Keras said is said
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)


def _is_hdf5(handle):
    """Whether h5py opens the binary file ``handle`` (its superblock only is read)."""
    import h5py

    try:
        with h5py.File(handle, "r"):
            return True
    except (OSError, ValueError, TypeError):
        return False


def hdf5_datasets_bytes(source):
    """The bytes the datasets of the HDF5 file ``source`` (a path or a binary file) take
    once read, from their shapes and dtypes (nothing is read); 0 when h5py cannot open it
    (its reader then says what is wrong). More than the file's own size: compressed, or
    stated and never written, which Keras does not write and reads whole."""
    import h5py

    datasets = []
    try:
        with h5py.File(source, "r") as weights:
            weights.visititems(lambda _, item: datasets.append(
                math.prod(item.shape or ()) * item.dtype.itemsize)
                if isinstance(item, h5py.Dataset) else None)
    except (OSError, ValueError, TypeError):
        return 0
    return sum(datasets)


def check_json_values(data, shown, kind="a model file"):
    """Refuse JSON text (bytes) whose values would take more than ``LARGEST_PARSED`` once
    parsed: estimated, before any parsing, by its commas, colons and opening brackets.

    Raises
    ------
    ModelFileError
        Naming ``shown`` and the estimate.
    """
    values = 1 + sum(data.count(mark) for mark in (b",", b":", b"[", b"{"))
    if values * _VALUE_BYTES > LARGEST_PARSED:
        raise ModelFileError(f"{shown} holds about {values:,} JSON values, which would take "
                             f"about {in_bytes(values * _VALUE_BYTES, exact=False)} once parsed, "
                             f"more than {in_bytes(LARGEST_PARSED, exact=False)}: not {kind} "
                             "as the library writes it; nothing in it was parsed.")
