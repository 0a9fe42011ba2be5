"""A ``.keras`` model file's members, checked before anything reads them: no TensorFlow.

``info`` (which imports no TensorFlow) and ``load`` run the same checks
(:func:`check_keras_zip`), so that the card is printed only of a file that
loads; ``load`` then checks the network's variables against its weights, which
needs Keras (:func:`~imageclef_concepts.keras._model_file.check_keras_members`).
"""

import os
import zipfile
from contextlib import nullcontext

from ..files._atomic import open_regular_file
from ._card import METADATA_ENTRY
from ._zip import ModelZip, not_a_zip

# What a .keras model file holds: Keras' own three members (the weights as .h5, as the library
# writes them; Keras reads .npz weights' members inflated, as lists) and the library's record.
# Keras would also write a layer's files under assets/ (none of the library's networks has any)
# and extract the whole file to read them: a file holding anything else is refused unread.
KERAS_MEMBERS = frozenset({"metadata.json", "config.json", "model.weights.h5", METADATA_ENTRY})


def check_keras_zip(path, shown=None):
    """Refuse, before anything is inflated, a ``.keras`` file holding other members than
    :data:`KERAS_MEMBERS`, members declaring more than its budget (``ModelZip``), JSON
    members (Keras parses them whole) of too many values (``check_json_members``) or
    compressed weights (``check_hdf5_member``).

    Keras reads the file through ``zipfile``, which inflates no member past the size the zip
    directory declares: the directory checked here bounds what loading it inflates.

    Parameters
    ----------
    path : str, path-like or binary file object
        A file object is a network read out of an archive, named ``shown``.
    shown : str, default=None
        How errors name the file; ``path`` when None.

    Returns
    -------
    config : bytes or None
        The ``config.json`` member, for the checks that build the network.
    stored : int
        The bytes its weights members declare.

    Raises
    ------
    ModelFileError
        Naming the file (``shown``) and what is wrong.
    """
    shown = path if shown is None else shown
    opened = (open_regular_file(path, "model file") if isinstance(path, (str, os.PathLike))
              else nullcontext(path))
    try:
        with opened as handle, ModelZip(handle, shown, allowed=KERAS_MEMBERS.__contains__,
                                        kind="a .keras model file") as archive:
            archive.check_json_members(("metadata.json", "config.json"))  # Keras parses
            archive.check_hdf5_member("model.weights.h5")  # Keras reads its datasets whole
            config = archive.read("config.json") if "config.json" in archive else None
            return config, sum(size for name, size in archive.sizes().items()
                               if name.startswith("model.weights."))
    except zipfile.BadZipFile:
        raise not_a_zip(shown, ".keras model file") from None
