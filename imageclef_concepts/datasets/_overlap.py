"""Which image files of one split are files of another: the same file, or a copy of it.

A file is first known by its device and inode (``os.stat``, through symbolic
links): a hard link (``cp -al``) or a link to a training image costs nothing
to find. Among the others, only files of a size the other split also holds
can be copies; of those, the SHA-256 of the first :data:`PREFIX_BYTES` bytes
picks the candidates, and the digest of the whole file confirms them, so
that a large dataset is not read whole: most images have a size of their
own, and most of the rest differ within their first bytes. What is not a
regular file (a pipe, a broken link) is never read: the image check names it.
"""

import os
import stat

from ..files._atomic import content_digest

PREFIX_BYTES = 4096  # a JPEG's or PNG's headers and its first compressed data


def shared_files(files, others):
    """The files of ``files`` that are files of ``others``, or copies of them.

    Parameters
    ----------
    files, others : iterable of path-like
        Two splits' image files (as :func:`~._imageclef.image_files_by_id` lists them).

    Returns
    -------
    list of path-like
        The files of ``files`` that are one of ``others`` (the same device and inode) or
        hold the same bytes as one of them, in their order.
    """
    mine, theirs = _regular_files(files), _regular_files(others)
    inodes = {inode for inode, _ in theirs.values()}
    shared = {path for path, (inode, _) in mine.items() if inode in inodes}
    sizes = {size for _, size in theirs.values() if size}  # an empty file is no image
    candidates = {path: size for path, (inode, size) in mine.items()
                  if path not in shared and size in sizes}
    if candidates:
        wanted = set(candidates.values())
        beginnings = {}  # (size, digest of the first bytes): their files
        for path, (_, size) in theirs.items():
            beginning = content_digest(path, PREFIX_BYTES) if size in wanted else None
            if beginning is not None:  # None: not readable, left to the image check
                beginnings.setdefault((size, beginning), []).append(path)
        wholes = {}  # (size, first bytes' digest): the whole digests of theirs, read once
        for path, size in candidates.items():
            group = (size, content_digest(path, PREFIX_BYTES))
            if group not in beginnings:
                continue
            if size > PREFIX_BYTES:  # the first bytes are not the whole file
                if group not in wholes:  # a set: files of one size and start (uncompressed
                    wholes[group] = {content_digest(other) for other in beginnings[group]}
                if content_digest(path) not in wholes[group] - {None}:  # scans) compared
                    continue  # at once, not pair by pair
            shared.add(path)
    return [path for path in mine if path in shared]


def _regular_files(paths):
    """``{path: ((device, inode), size)}`` of the regular files of ``paths`` (through symbolic
    links); what cannot be looked at, or is no regular file, is left out."""
    found = {}
    for path in paths:
        try:
            status = os.stat(path)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(status.st_mode):
            found[path] = ((status.st_dev, status.st_ino), status.st_size)
    return found
