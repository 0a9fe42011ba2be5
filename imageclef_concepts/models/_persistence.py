"""Model files without pickle: one zip archive of JSON, NumPy arrays and Keras files.

Each model saves and loads itself through one pair of methods, as skorch's
``save_params`` / ``load_params`` sit on the class:

``_to_archive(self, writer) -> dict``
    The model's JSON description: its parameters (``writer.params``), its
    vocabulary (``targets_.to_dict()``) and the names of the parts it puts in
    the archive (``writer.array``, ``writer.csr``, ``writer.file``,
    ``writer.estimator`` for a nested model).
``_from_archive(cls, description, reader)`` (a classmethod)
    The fitted model again, every value checked as ``fit`` checks it: the
    parameters through ``reader.params`` (the class's own
    ``_validate_params``), arrays through ``reader.array`` (their kind and
    shape), anything else wrong as a :class:`ModelFileError`.

:class:`ArchivedModel` gives a class with that pair public ``save`` and
``load``. The archive (schema below, format 2) has one JSON manifest,
``imageclef_concepts.json``: ``{"format": 2, "library_version": ...,
"estimator": <description>, "members": {entry name: size in bytes}}``; a
description is ``{"class": <class name>, "module": <its module>, ...}`` plus
what ``_to_archive`` returned. The class is found among the classes that
implement the contract (:class:`~imageclef_concepts.models._base.ConceptClassifierMixin`
and its subclasses, a user's own included) by name: nothing in the file is
imported or executed, and there is no table of class names to keep.

Arrays are ``.npy`` (read back with ``allow_pickle=False``), a network is
Keras' native ``.keras`` file. Every member is decompressed lazily and no
further than the size the manifest states, and the whole file no further
than its budget (:class:`~imageclef_concepts.models._zip.ModelZip`). The
archive is written to a temporary file beside the destination and moved
into place, so a failed or interrupted save never damages the file that was
there.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import TYPE_CHECKING

from sklearn.utils.validation import check_is_fitted

from ..files._atomic import open_regular_file, write_atomically
from ._archive import (
    FORMAT,
    MANIFEST,
    ArchiveMembers,
    ArchiveReader,
    ArchiveWriter,
    archive_class,
    check_manifest,
    estimator_from_params,
    jsonable,
    model_file_errors,
    write_zip,
)
from ._card import ModelFileError, check_targets, expect
from ._decision import DecisionRule
from ._zip import ModelZip, read_model_record

if TYPE_CHECKING:  # names for annotations only
    from typing_extensions import Self

    from .._typing import PathLike

# Read from here by the Keras estimator's own file (``.keras`` + record).
__all__ = ["ArchivedModel", "check_description", "estimator_from_params", "jsonable",
           "load_estimator", "model_file_errors", "save_estimator"]


class ArchivedModel:
    """``save`` and ``load`` for a model that writes itself into the library's archive.

    The class implements ``_to_archive`` and the classmethod ``_from_archive``
    (see :mod:`imageclef_concepts.models._persistence`); this mixin does the rest.
    """

    def save(self, path: PathLike) -> None:
        """Save the fitted model as one archive of JSON, NumPy arrays and Keras files.

        Nothing is pickled; the file is written atomically.

        Parameters
        ----------
        path : str or path-like
        """
        check_is_fitted(self)
        save_estimator(self, path)

    @classmethod
    def load(cls, path: PathLike) -> Self:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        estimator
            Fitted, predicting exactly as the saved one.

        Raises
        ------
        ModelFileError
            Naming the file and what is wrong with it: every parameter and
            array is checked as ``fit`` checks it.
        """
        return load_estimator(path, cls)


def save_estimator(estimator, path):
    """Write a fitted concept estimator to ``path`` as one archive, atomically.

    Parameters
    ----------
    estimator : estimator with ``_to_archive``
        Fitted (scikit-learn's ``FrozenEstimator`` around one is unwrapped).
    path : str or path-like
    """
    from .._version import __version__

    writer = ArchiveWriter()
    description = writer.describe(estimator)  # fails before any file is touched
    manifest = {"format": FORMAT, "library_version": __version__, "estimator": description,
                "members": {name: len(data) for name, data in writer.entries.items()}}
    entries = {**writer.entries, MANIFEST: json.dumps(manifest).encode()}
    write_atomically(path, lambda handle: write_zip(handle, entries))


def load_estimator(path, cls=None, manifest=None):
    """Read an archive written by :func:`save_estimator`.

    Every parameter goes through its estimator's own checks and every array
    through a check of its type and shape, as when the model was fitted.

    Parameters
    ----------
    path : str or path-like
    cls : type, default=None
        The class the estimator must be an instance of (the class whose
        ``load`` reads it); None takes any.
    manifest : dict, default=None
        The archive's record, when the caller has read it (to tell an archive
        from a ``.keras`` file): not read again.

    Returns
    -------
    estimator
        Fitted, predicting exactly as the saved one.

    Raises
    ------
    ModelFileError
        Naming the file and what is wrong with it. Parameters unknown to this
        version (written by a newer one) are dropped with a warning naming them.
    """
    path = os.fsdecode(path)  # bytes: a name that is not UTF-8, as os.listdir(b"") gives it
    manifest = read_model_record(path) if manifest is None else manifest
    try:
        with open_regular_file(path, "model archive") as handle, \
                ModelZip(handle, path, kind="an archive") as archive:
            check_manifest(path, manifest, archive)
            entries = ArchiveMembers(path, archive, manifest)
            with model_file_errors(path):
                check_description(manifest.get("estimator"), entries, "the archive's estimator")
                estimator = ArchiveReader(entries, path).estimator(manifest["estimator"])
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as error:
        raise ModelFileError(f"{path}: the archive cannot be read ({error}).") from None
    if cls is not None and not isinstance(estimator, cls):
        raise ModelFileError(f"{path} holds a {type(estimator).__name__}, not a "
                             f"{cls.__name__}.")
    return estimator


def check_description(description, entries, where, load=True):
    """The structure an archive's descriptions share, before anything is built.

    Used to load an archive and to print its card (``imageclef-concepts info``):
    the class, the parameters' container and decision rule, the vocabulary,
    the nested descriptions (``embedding``, ``members``) and, for a network,
    that its ``keras_file`` is in the archive (``entries``: the archive's entry
    names, or None not to check). What is each class's own is checked by its
    ``_from_archive``. ``load=False`` (for the card) imports no class
    (:func:`~imageclef_concepts.models._archive.archive_class`).
    """
    if not isinstance(description, dict):
        raise ModelFileError(f"{where} is a {type(description).__name__}, not an object")
    archive_class(description.get("class"), description.get("module"), where, load)
    if "keras_file" in description:
        name = expect(description, "keras_file", (str,), where)
        if entries is not None and name not in entries:
            raise ModelFileError(f"{where}['keras_file'] names {name!r}, which the archive "
                                 "lacks")
    params = expect(description, "params", (dict,), where, required=False, default={})
    if isinstance(params.get("threshold"), dict):
        DecisionRule.from_dict(params["threshold"])
    if "targets" in description:
        check_targets(expect(description, "targets", (dict,), where), f"{where}['targets']")
    embedding = expect(description, "embedding", (str, dict, type(None)), where, required=False)
    if isinstance(embedding, dict):
        check_description(embedding, entries, f"{where}['embedding']", load)
    if "members" in description:
        members = expect(description, "members", (list,), where)
        if not members:
            raise ModelFileError(f"{where} has no members")
        for position, member in enumerate(members):
            if not (isinstance(member, list) and len(member) == 2
                    and isinstance(member[0], str)):
                raise ModelFileError(f"{where}['members'][{position}] must be [name, member]")
            check_description(member[1], entries, f"{where}['members'][{position}]", load)


