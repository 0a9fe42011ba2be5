"""An image store's folder: claimed with a marker, and checked to be still its own.

The library writes only into a new or empty folder, or one it marked with its
manifest, and never deletes anything; a live store checks before each write
that the folder at its path is still the one it claimed (same device and
inode, its manifest present), so that a folder deleted or replaced meanwhile
is never written into nor re-created.
"""

import json
import os
import re
import stat

from ..files._atomic import file_kind, open_regular_file, write_atomically
from ._decoding import RESAMPLING

MANIFEST = "imageclef_concepts-image-store.json"
INDEX = "index.sqlite"
_FORMAT = "imageclef_concepts.ImageStore"
_FORMAT_VERSION = 1
# The store's own files, none of which may be a symbolic link (SQLite would
# write through it): the index with its journals, and the manifest.
_OWN_FILES = (MANIFEST, INDEX, f"{INDEX}-wal", f"{INDEX}-shm", f"{INDEX}-journal")
# The temporary file of a manifest being written by another process creating the store.
_MANIFEST_BEING_WRITTEN = re.compile(r"^\.saving-[^/]*\.json$")
SHELF_NAME = re.compile(r"^[1-9][0-9]*px-(" + "|".join(RESAMPLING) + r")$")


class ImageStoreError(ValueError):
    """A folder that cannot be used as an image store, with the reason.

    Examples
    --------
    >>> from imageclef_concepts import ImageStoreError
    >>> issubclass(ImageStoreError, ValueError)
    True
    """


def folder_identity(path):
    """What tells the folder at ``path`` from another put there later: (device, inode)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def ownership_lost(path, identity):
    """Why the folder at ``path`` is no longer the store of ``identity``; None while it is."""
    now = folder_identity(path)
    if now is None:
        return "it was deleted"
    if now != identity:
        return "another folder is at its path now"
    try:
        if not stat.S_ISREG(os.lstat(os.path.join(path, MANIFEST)).st_mode):
            return f"its manifest {MANIFEST} is not a file"
    except OSError:
        return f"its manifest {MANIFEST} is gone"
    # A file of the store's own names turned into a link would be written through.
    linked = [name for name in _OWN_FILES if os.path.islink(os.path.join(path, name))]
    if linked:
        return f"its {linked[0]} is a symbolic link now"
    return None


def claim_folder(path, create):
    """Make ``path`` a store (if ``create``), or check that it is one; refuse anything else.

    Nothing is changed in a folder that is refused. Without the store's
    manifest only an empty folder is taken (or one where another process is
    writing the manifest): a folder holding files of the store's names but
    not its manifest is someone else's.
    """
    entries = _folder_entries(path, create)
    if MANIFEST in entries:
        _check_manifest(os.path.join(path, MANIFEST))
    else:
        foreign = sorted(name for name in entries if not _MANIFEST_BEING_WRITTEN.match(name))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ImageStoreError(
                f"image store {path} holds {len(foreign)} file(s) that are not an image store "
                f"of imageclef_concepts ({shown}); it is left as it is. Name a new or empty "
                "folder for the store.")
        if not create:
            raise ImageStoreError(f"image store {path} is no longer an image store (its "
                                  f"manifest {MANIFEST} is gone); it is left as it is.")
        manifest = json.dumps({"format": _FORMAT, "version": _FORMAT_VERSION}).encode()
        try:
            write_atomically(os.path.join(path, MANIFEST), lambda f: f.write(manifest))
        except OSError as error:
            raise ImageStoreError(f"image store {path} cannot be written: "
                                  f"{error.strerror or error}.") from None
    for name in [*_OWN_FILES, *filter(SHELF_NAME.match, entries)]:
        if os.path.islink(os.path.join(path, name)):
            raise ImageStoreError(f"{os.path.join(path, name)} is a symbolic link: an image "
                                  "store writes only into files and folders of its own.")


def _folder_entries(path, create):
    """The names in the folder ``path`` (created when absent and ``create``), or a clear error."""
    try:
        return os.listdir(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageStoreError(f"image store {path} is a symbolic link to nothing.") \
                from None
        if not create:
            raise ImageStoreError(f"image store {path} no longer exists.") from None
    except NotADirectoryError:
        try:
            kind = os.stat(path).st_mode
        except OSError:
            raise ImageStoreError(f"image store {path} cannot be created: a folder on its "
                                  "path is a file.") from None
        described = "a file" if stat.S_ISREG(kind) else file_kind(kind)
        raise ImageStoreError(f"image store {path} is {described}, not a folder: name a new "
                              "or empty folder, or an image store.") from None
    except OSError as error:
        raise ImageStoreError(f"image store {path} cannot be opened: {error.strerror}.") \
            from None
    try:
        os.makedirs(path)
    except FileExistsError:  # made meanwhile by another process creating the same store
        return _folder_entries(path, create=False)
    except OSError as error:
        raise ImageStoreError(f"image store {path} cannot be created: "
                              f"{error.strerror or error}.") from None
    return []


def _check_manifest(path):
    try:
        with open_regular_file(path, "image store manifest") as f:
            manifest = json.loads(f.read(4096))
    except (OSError, ValueError) as error:
        raise ImageStoreError(f"{path} is not a readable image store manifest ({error}).") \
            from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise ImageStoreError(f"{path} is not an image store manifest of imageclef_concepts.")
    version = manifest.get("version")
    if type(version) is not int or version != _FORMAT_VERSION:
        raise ImageStoreError(f"the image store {os.path.dirname(path)} is of format version "
                              f"{version!r}; this version of the library reads version "
                              f"{_FORMAT_VERSION}: name another folder.")
