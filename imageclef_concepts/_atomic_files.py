"""Files written atomically: a temporary file beside the target, then ``os.replace``.

Every file the library writes (models, archives, run files, plots, model
cards, checkpoints) goes through here, so that a failed or interrupted
write never damages what was at the path. Standard library only: the
command line imports it before anything heavy.
"""

import os
import tempfile
from contextlib import contextmanager


@contextmanager
def replaced_atomically(path):
    """Yield a temporary file name beside ``path``; move the file onto ``path`` on success.

    For writers that want a file name (Keras, joblib, matplotlib): if the
    block fails or is interrupted, the temporary file is removed and ``path``
    is as it was. The name keeps ``path``'s extension, which some writers read.
    """
    path = os.fspath(path)
    handle, temporary = tempfile.mkstemp(suffix=os.path.splitext(path)[1], prefix=".saving-",
                                         dir=os.path.dirname(os.path.abspath(path)))
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_atomically(path, write):
    """Call ``write(binary_handle)`` on a temporary file beside ``path``, then move it there."""
    with replaced_atomically(path) as temporary, open(temporary, "wb") as stream:
        write(stream)
