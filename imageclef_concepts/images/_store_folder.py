"""A store's folder: claimed with a marker, and checked to be still its own.

One implementation for every kind of store the library keeps (the image
store, the embedding store): a :class:`StoreKind` names its manifest, format,
own subfolders and error class.

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
from dataclasses import dataclass

from ..files._atomic import (
    file_kind,
    folder_replaced,
    open_regular_file,
    write_atomically,
)
from ._decoding import RESAMPLING

MANIFEST = "imageclef_concepts-image-store.json"
INDEX = "index.sqlite"
_FORMAT = "imageclef_concepts.ImageStore"
_FORMAT_VERSION = 1
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


@dataclass(frozen=True)
class StoreKind:
    """What tells one kind of store from another: its marker, its name in messages, its error.

    ``shelf`` matches the names of the subfolders the store writes into (none
    of which may be a symbolic link).
    """

    manifest: str
    format: str
    label: str
    error: type
    shelf: re.Pattern
    version: int = 1

    @property
    def own_files(self):
        return (self.manifest, INDEX, f"{INDEX}-wal", f"{INDEX}-shm", f"{INDEX}-journal")


def ownership_lost(path, identity, kind=None):
    """Why the folder at ``path`` is no longer the store of ``identity``; None while it is."""
    kind = kind or IMAGE_STORE
    why = folder_replaced(path, identity, kind.manifest)
    if why is not None:
        return why
    # A file of the store's own names turned into a link would be written through.
    linked = [name for name in kind.own_files if os.path.islink(os.path.join(path, name))]
    if linked:
        return f"its {linked[0]} is a symbolic link now"
    return None


def claim_folder(path, create, kind=None):
    """Make ``path`` a store (if ``create``), or check that it is one; refuse anything else.

    Nothing is changed in a folder that is refused. Without the store's
    manifest only an empty folder is taken (or one where another process is
    writing the manifest): a folder holding files of the store's names but
    not its manifest is someone else's.
    """
    kind = kind or IMAGE_STORE
    entries = _folder_entries(path, create, kind)
    if kind.manifest in entries:
        _check_manifest(os.path.join(path, kind.manifest), kind)
    else:
        foreign = sorted(name for name in entries if not _MANIFEST_BEING_WRITTEN.match(name))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise kind.error(
                f"{kind.label} {path} holds {len(foreign)} file(s) that are not an "
                f"{kind.label} of imageclef_concepts ({shown}); it is left as it is. Name a "
                "new or empty folder for the store.")
        if not create:
            raise kind.error(f"{kind.label} {path} is no longer an {kind.label} (its "
                             f"manifest {kind.manifest} is gone); it is left as it is.")
        manifest = json.dumps({"format": kind.format, "version": kind.version}).encode()
        try:
            write_atomically(os.path.join(path, kind.manifest), lambda f: f.write(manifest))
        except OSError as error:
            raise kind.error(f"{kind.label} {path} cannot be written: "
                             f"{error.strerror or error}.") from None
    for name in [*kind.own_files, *filter(kind.shelf.match, entries)]:
        if os.path.islink(os.path.join(path, name)):
            raise kind.error(f"{os.path.join(path, name)} is a symbolic link: an "
                             f"{kind.label} writes only into files and folders of its own.")


def _folder_entries(path, create, kind):
    """The names in the folder ``path`` (created when absent and ``create``), or a clear error."""
    try:
        return os.listdir(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise kind.error(f"{kind.label} {path} is a symbolic link to nothing.") \
                from None
        if not create:
            raise kind.error(f"{kind.label} {path} no longer exists.") from None
    except NotADirectoryError:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            raise kind.error(f"{kind.label} {path} cannot be created: a folder on its "
                             "path is a file.") from None
        described = "a file" if stat.S_ISREG(mode) else file_kind(mode)
        raise kind.error(f"{kind.label} {path} is {described}, not a folder: name a new "
                         f"or empty folder, or an {kind.label}.") from None
    except OSError as error:
        raise kind.error(f"{kind.label} {path} cannot be opened: {error.strerror}.") \
            from None
    try:
        os.makedirs(path)
    except FileExistsError:  # made meanwhile by another process creating the same store
        return _folder_entries(path, False, kind)
    except OSError as error:
        raise kind.error(f"{kind.label} {path} cannot be created: "
                         f"{error.strerror or error}.") from None
    return []


def _check_manifest(path, kind):
    try:
        with open_regular_file(path, f"{kind.label} manifest") as f:
            manifest = json.loads(f.read(4096))
    except (OSError, ValueError, RecursionError) as error:  # RecursionError: "[[[..."
        raise kind.error(f"{path} is not a readable {kind.label} manifest ({error}).") \
            from None
    if not isinstance(manifest, dict) or manifest.get("format") != kind.format:
        raise kind.error(f"{path} is not an {kind.label} manifest of imageclef_concepts.")
    version = manifest.get("version")
    if type(version) is not int or version != kind.version:
        raise kind.error(f"the {kind.label} {os.path.dirname(path)} is of format version "
                         f"{version!r}; this version of the library reads version "
                         f"{kind.version}: name another folder.")


#: The image store's kind (:class:`~imageclef_concepts.ImageStore`).
IMAGE_STORE = StoreKind(MANIFEST, _FORMAT, "image store", ImageStoreError, SHELF_NAME,
                        _FORMAT_VERSION)
