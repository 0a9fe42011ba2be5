"""The digest that fingerprints large data: images, concepts, weights, a run's settings.

Standard library only (the command line fingerprints before anything heavy is imported).
"""

import hashlib


def digest(*parts):
    """A short hex digest of texts and byte buffers: the fingerprint of large data.

    A text is hashed as its UTF-8 bytes; a file name's bytes that are not UTF-8
    (lone surrogates from ``os.fsdecode``) as themselves, as ``os.fsencode`` gives them;
    other lone surrogates (``"\ud800"``, which no file name gives) as UTF-8 would write them.
    """
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, str):
            try:
                part = part.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                part = part.encode("utf-8", "surrogatepass")
        hasher.update(part)
        hasher.update(b"\0")
    return hasher.hexdigest()
