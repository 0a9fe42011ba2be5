"""Model files without pickle: one zip archive of JSON, NumPy arrays and Keras files.

A fitted concept estimator is written as plain parts: its parameters and
vocabulary as JSON, its arrays as ``.npy`` (read back with
``allow_pickle=False``), a network as Keras' native ``.keras`` file, and an
ensemble's members as the same parts under their names. Loading executes
nothing from the file. The archive is written to a temporary file beside
the destination and moved into place, so a failed or interrupted save never
damages the file that was there.
"""

import io
import json
import os
import tempfile
import warnings
import zipfile
from contextlib import contextmanager

import numpy as np
from scipy import sparse
from sklearn.utils import Bunch

from ._atomic_files import open_regular_file, write_atomically
from ._decision import DecisionRule
from ._model_card import ModelFileError, check_targets, expect, read_model_record
from ._targets import ConceptTargets, targets_of

_MANIFEST = "imageclef_concepts.json"
_FORMAT = 2  # 2: the manifest states each member's size


def save_estimator(estimator, path):
    """Write a fitted concept estimator to ``path`` as one archive, atomically.

    Parameters
    ----------
    estimator : ConceptEnsemble, ConceptKNNClassifier, MostFrequentConcepts or ConceptCNNClassifier
        Fitted.
    path : str or path-like
    """
    from . import __version__

    entries = {}
    description = _describe(estimator, "", entries)  # fails before any file is touched
    manifest = {"format": _FORMAT, "library_version": __version__, "estimator": description,
                "members": {name: len(data) for name, data in entries.items()}}
    entries[_MANIFEST] = json.dumps(manifest).encode()
    write_atomically(path, lambda handle: _write_zip(handle, entries))


def load_estimator(path):
    """Read an archive written by :func:`save_estimator`.

    Every parameter goes through its estimator's own checks and every array
    through a check of its type and shape, as when the model was fitted.

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
    manifest = read_model_record(path)
    try:
        with open_regular_file(path, "model archive") as handle, \
                zipfile.ZipFile(handle) as archive:
            _check_manifest(path, manifest, archive)
            entries = _ArchiveMembers(path, archive, manifest)
            with model_file_errors(path):
                check_description(manifest.get("estimator"), entries, "the archive's estimator")
                return _restore(manifest["estimator"], entries, path)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as error:
        raise ModelFileError(f"{path}: the archive cannot be read ({error}).") from None


def _check_manifest(path, manifest, archive):
    if "estimator" not in manifest and "params" in manifest:
        raise ModelFileError(f"{path} is a ConceptCNNClassifier's .keras file, not an archive: "
                             "give it its .keras name.")
    format_ = manifest.get("format", 0)
    if not isinstance(format_, int) or isinstance(format_, bool):
        raise ModelFileError(f"{path}: the archive's format is {format_!r}, not a number.")
    if format_ > _FORMAT:
        raise ModelFileError(f"{path} was written by a newer imageclef_concepts (archive "
                             f"format {format_}; this version reads up to {_FORMAT}).")
    stated = manifest.get("members")
    if format_ >= 2:  # every member named, with its size
        if not isinstance(stated, dict) or not all(
                isinstance(size, int) and not isinstance(size, bool) and size >= 0
                for size in stated.values()):
            raise ModelFileError(f"{path}: the manifest's 'members' must map each member to "
                                 "its size in bytes.")
        unnamed = sorted(set(archive.namelist()) - set(stated) - {_MANIFEST})
        if unnamed:
            raise ModelFileError(f"{path} holds member(s) its manifest does not name "
                                 f"({', '.join(unnamed[:5])}): not an archive as the library "
                                 "writes it, so it is not read.")


def _read_member(path, archive, name, limit):
    """A member's bytes, decompressing no more than ``limit`` bytes of it."""
    with archive.open(name) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"{path}: member {name} is larger than its manifest states "
                             f"({limit} bytes): not an archive as the library writes it.")
    return data


class _ArchiveMembers:
    """An archive's members, each decompressed when a reader asks for it, within its size.

    Format 1 archives state no sizes: the zip directory's own are the limit.
    """

    def __init__(self, path, archive, manifest):
        self.path, self.archive = path, archive
        present = set(archive.namelist())
        stated = manifest.get("members") if manifest.get("format", 0) >= 2 else {
            info.filename: info.file_size for info in archive.infolist()}
        self.sizes = {name: size for name, size in stated.items() if name in present}

    def __contains__(self, name):
        return name in self.sizes

    def __getitem__(self, name):
        if name not in self.sizes:
            raise ModelFileError(f"{self.path}: member {name} is missing from the archive.")
        return _read_member(self.path, self.archive, name, self.sizes[name])


@contextmanager
def model_file_errors(path):
    """Anything wrong found while reading ``path`` as one :class:`ModelFileError` naming it."""
    try:
        yield
    except ModelFileError as error:
        message = str(error)
        raise ModelFileError(message if message.startswith(str(path)) else
                             f"{path}: {message}") from None
    except KeyError as error:
        raise ModelFileError(f"{path}: damaged, {error} is missing.") from None
    except (ValueError, TypeError, IndexError, AttributeError, OverflowError) as error:
        raise ModelFileError(f"{path}: damaged or not written by imageclef_concepts "
                             f"({type(error).__name__}: {error})") from None


def estimator_from_params(cls, params, path):
    """``cls(**params)`` from a model file, checked as ``fit`` checks parameters.

    Parameters this version does not know (a newer minor version of the same
    format wrote them) are dropped with a warning naming them; every other
    value goes through the estimator's ``_validate_params`` (its
    ``_parameter_constraints`` and, for a ``threshold``, the decision rule's
    range). A bad value is a :class:`ModelFileError` naming the file.
    """
    if not isinstance(params, dict):
        raise ModelFileError(f"{path}: the parameters of a {cls.__name__} are a "
                             f"{type(params).__name__}, not an object.")
    known = set(cls._get_param_names())
    unknown = sorted(set(params) - known)
    if unknown:
        warnings.warn(f"{path}: the {cls.__name__} parameter(s) {', '.join(unknown)} are "
                      "unknown to this version of imageclef_concepts (a newer version wrote "
                      "the file?) and were ignored.", UserWarning, stacklevel=3)
    estimator = cls(**{name: value for name, value in params.items() if name in known})
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as error:  # scikit-learn's InvalidParameterError is both
        raise ModelFileError(f"{path}: {error}") from None
    return estimator


def check_description(description, entries, where):
    """The structure of an archive's estimator description, before anything is built.

    Used to load an archive and to print its card (``imageclef-concepts info``):
    the class, the parameters' container, a decision rule, the vocabulary,
    the members and the embedding, and that each array it names is in the
    archive (``entries``: the archive's entry names, or None not to check).
    """
    if not isinstance(description, dict):
        raise ModelFileError(f"{where} is a {type(description).__name__}, not an object")
    kind = description.get("class")
    if not isinstance(kind, str) or kind not in _READERS:
        raise ModelFileError(f"{where}: unknown estimator class {kind!r:.80}")
    if kind == "ConceptCNNClassifier":
        _entry(description, "keras_file", entries, where)
        return
    params = expect(description, "params", (dict,), where)
    if isinstance(params.get("threshold"), dict):
        DecisionRule.from_dict(params["threshold"])
    check_targets(expect(description, "targets", (dict,), where), f"{where}['targets']")
    if kind == "ConceptKNNClassifier":
        embedding = expect(description, "embedding", (str, dict), where)
        if isinstance(embedding, dict):
            check_description(embedding, entries, f"{where}['embedding']")
        _entry(description, "embeddings", entries, where)
        indicator = expect(description, "indicator", (dict,), where)
        for part in ("data", "indices", "indptr"):
            _entry(indicator, part, entries, f"{where}['indicator']")
        shape = expect(indicator, "shape", (list,), f"{where}['indicator']")
        if len(shape) != 2 or not all(isinstance(n, int) and not isinstance(n, bool)
                                      and n >= 0 for n in shape):
            raise ModelFileError(f"{where}['indicator']['shape'] must be two whole numbers")
    elif kind == "MostFrequentConcepts":
        _entry(description, "frequencies", entries, where)
        expect(description, "k", (int,), where)
    else:
        members = expect(description, "members", (list,), where)
        if not members:
            raise ModelFileError(f"{where} has no members")
        for position, member in enumerate(members):
            if not (isinstance(member, list) and len(member) == 2
                    and isinstance(member[0], str)):
                raise ModelFileError(f"{where}['members'][{position}] must be [name, member]")
            check_description(member[1], entries, f"{where}['members'][{position}]")


def _entry(description, key, entries, where):
    name = expect(description, key, (str,), where)
    if entries is not None and name not in entries:
        raise ModelFileError(f"{where}[{key!r}] names {name!r}, which the archive lacks")
    return name


def jsonable(value):
    """A parameter or result as JSON-ready values: arrays and tuples as lists, numpy
    scalars as numbers, paths as strings, a DecisionRule as its dict.
    """
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, DecisionRule):
        return value.to_dict()
    if isinstance(value, np.random.RandomState):
        raise ValueError("A model with a RandomState random_state cannot be saved as JSON; "
                         "use an int or None.")
    return value


def _write_zip(handle, entries):
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


# ------------------------------------------------------------------ writing

def _describe(estimator, prefix, entries):
    """JSON description of ``estimator``; its binary parts go into ``entries``."""
    if type(estimator).__name__ == "FrozenEstimator":  # scikit-learn's wrapper of a fitted model
        estimator = estimator.estimator
    kind = type(estimator).__name__
    writer = _WRITERS.get(kind)
    if writer is None:
        raise TypeError(f"{kind} cannot be saved without pickle; the library's concept "
                        f"estimators can ({', '.join(sorted(_WRITERS))}).")
    return {"class": kind, **writer(estimator, prefix, entries)}


def _put_array(entries, name, array):
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    entries[name] = buffer.getvalue()
    return name


def _put_csr(entries, prefix, matrix):
    matrix = sparse.csr_matrix(matrix)
    return {"data": _put_array(entries, prefix + "data.npy", matrix.data),
            "indices": _put_array(entries, prefix + "indices.npy", matrix.indices),
            "indptr": _put_array(entries, prefix + "indptr.npy", matrix.indptr),
            "shape": list(matrix.shape)}


def _plain_params(estimator, nested=()):
    plain = {}
    for name, value in estimator.get_params(deep=False).items():
        if name in nested:
            continue
        plain[name] = jsonable(value)
        json.dumps(plain[name])  # refuses what JSON cannot hold, before anything is written
    return plain


def _cnn(estimator, prefix, entries):
    with tempfile.TemporaryDirectory() as folder:
        file = os.path.join(folder, "model.keras")
        estimator.save(file)
        with open(file, "rb") as handle:
            entries[prefix + "model.keras"] = handle.read()
    return {"keras_file": prefix + "model.keras"}


def _knn(estimator, prefix, entries):
    embedding = estimator.embedding_
    if embedding is None or isinstance(estimator.embedding, str):
        saved_embedding = estimator.embedding  # "pixels" or a backbone name: rebuilt on load
    elif type(embedding).__name__ == "ConceptCNNClassifier":
        saved_embedding = _describe(embedding, prefix + "embedding/", entries)
    else:
        raise TypeError(f"A ConceptKNNClassifier with embedding={embedding!r} cannot be saved "
                        "without pickle: use a name or a ConceptCNNClassifier.")
    return {"params": _plain_params(estimator, nested=("embedding",)),
            "embedding": saved_embedding,
            "targets": estimator.targets_.to_dict(),
            "embeddings": _put_array(entries, prefix + "embeddings.npy", estimator.embeddings_),
            "indicator": _put_csr(entries, prefix + "indicator_", estimator._targets)}


def _most_frequent(estimator, prefix, entries):
    return {"params": _plain_params(estimator),
            "targets": estimator.targets_.to_dict(),
            "frequencies": _put_array(entries, prefix + "frequencies.npy",
                                      estimator.concept_frequencies_),
            "k": int(estimator.k_)}


def _ensemble(estimator, prefix, entries):
    members = [[name, _describe(member, f"{prefix}members/{name}/", entries)]
               for name, member in zip(estimator._member_names(), estimator.estimators_)]
    return {"params": _plain_params(estimator, nested=("estimators",)),
            "members": members,
            "targets": estimator.targets_.to_dict()}


_WRITERS = {
    "ConceptCNNClassifier": _cnn,
    "ConceptKNNClassifier": _knn,
    "MostFrequentConcepts": _most_frequent,
    "ConceptEnsemble": _ensemble,
}


# ------------------------------------------------------------------ reading
# The structure was checked by check_description; these check values and shapes.

def _restore(description, entries, path):
    return _READERS[description["class"]](description, entries, path)


def _get_array(entries, name, kinds, ndim, what):
    try:
        array = np.load(io.BytesIO(entries[name]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ModelFileError(f"{what} ({name}) is not a NumPy array file ({error})") from None
    if array.dtype.kind not in kinds or array.ndim != ndim:
        raise ModelFileError(f"{what} ({name}) must be a {ndim}-d array of "
                             f"{'numbers' if 'f' in kinds else 'whole numbers'}; it is "
                             f"{array.ndim}-d of dtype {array.dtype}")
    return array


def _get_csr(entries, parts, what):
    matrix = sparse.csr_matrix((_get_array(entries, parts["data"], "biuf", 1, what),
                                _get_array(entries, parts["indices"], "iu", 1, what),
                                _get_array(entries, parts["indptr"], "iu", 1, what)),
                               shape=tuple(parts["shape"]))
    matrix.check_format(full_check=True)  # indices within the shape, in order
    return matrix


def _params(description):
    params = dict(description["params"])
    if isinstance(params.get("threshold"), dict):
        params["threshold"] = DecisionRule.from_dict(params["threshold"])
    return params


def _read_cnn(description, entries, path):
    from .keras._cnn_classifier import load_keras_file

    with tempfile.TemporaryDirectory() as folder:
        file = os.path.join(folder, "model.keras")
        with open(file, "wb") as handle:
            handle.write(entries[description["keras_file"]])
        return load_keras_file(file, shown_as=f"{path} ({description['keras_file']})")


def _read_knn(description, entries, path):
    from ._retrieval import ConceptKNNClassifier

    embedding = description["embedding"]
    if isinstance(embedding, dict):
        embedding = _restore(embedding, entries, path)
    estimator = estimator_from_params(ConceptKNNClassifier,
                                      {**_params(description), "embedding": embedding}, path)
    estimator.embedding_ = estimator._fitted_embedding(None, None)  # nothing to fit: as saved
    estimator.targets_ = ConceptTargets.from_dict(description["targets"])
    estimator.classes_ = estimator.targets_.classes_
    estimator.embeddings_ = _get_array(entries, description["embeddings"], "f", 2,
                                       "the k-NN's embeddings")
    indicator = _get_csr(entries, description["indicator"], "the k-NN's concepts")
    n_train, n_concepts = len(estimator.embeddings_), len(estimator.classes_)
    if indicator.shape != (n_train, n_concepts):
        raise ModelFileError(f"the k-NN's concepts are a {indicator.shape} matrix for "
                             f"{n_train} training images and {n_concepts} concepts")
    if not np.isfinite(estimator.embeddings_).all():
        raise ModelFileError("the k-NN's embeddings hold NaN or infinite values")
    if estimator.n_neighbors > n_train:
        raise ModelFileError(f"n_neighbors={estimator.n_neighbors} is more than the {n_train} "
                             "training images")
    if estimator.embedding == "pixels" and \
            estimator.embeddings_.shape[1] != 3 * estimator.pixel_size ** 2:
        raise ModelFileError(f"the k-NN's embeddings have {estimator.embeddings_.shape[1]} "
                             f"dimensions, not 3 x pixel_size^2 = {3 * estimator.pixel_size ** 2}")
    estimator._targets = indicator.astype(np.float32)
    return estimator


def _read_most_frequent(description, entries, path):
    from ._baselines import MostFrequentConcepts

    estimator = estimator_from_params(MostFrequentConcepts, _params(description), path)
    estimator.targets_ = ConceptTargets.from_dict(description["targets"])
    estimator.classes_ = estimator.targets_.classes_
    frequencies = _get_array(entries, description["frequencies"], "f", 1,
                             "the concept frequencies")
    if len(frequencies) != len(estimator.classes_) or not (
            (frequencies >= 0) & (frequencies <= 1)).all():
        raise ModelFileError(f"the concept frequencies must be {len(estimator.classes_)} "
                             "shares in [0, 1], one per concept")
    k = description["k"]
    if not 1 <= k <= len(estimator.classes_):
        raise ModelFileError(f"k={k} is not between 1 and the {len(estimator.classes_)} "
                             "concepts")
    estimator.concept_frequencies_ = frequencies
    estimator.k_ = k
    ranking = np.argsort(-estimator.concept_frequencies_, kind="stable")
    estimator.top_concepts_ = np.sort(ranking[:estimator.k_])
    estimator.decision_rule_ = estimator._top(estimator.k_)
    return estimator


def _read_ensemble(description, entries, path):
    from ._ensemble import ConceptEnsemble

    members = [(name, _restore(member, entries, path)) for name, member in description["members"]]
    estimator = estimator_from_params(ConceptEnsemble,
                                      {**_params(description), "estimators": members}, path)
    estimator._check_members()  # weights, fallback and votes against the members
    estimator.estimators_ = [member for _, member in members]
    estimator.named_estimators_ = Bunch(**dict(members))
    estimator._member_targets = [targets_of(member) for _, member in members]
    estimator.targets_ = ConceptTargets.from_dict(description["targets"])
    estimator.classes_ = estimator.targets_.classes_
    if estimator.targets_.on_concepts:  # the union of the members' concepts, by name
        expected = np.array(sorted(set().union(*(set(t.classes_)
                                                 for t in estimator._member_targets))),
                            dtype=object)
    else:
        widths = {len(t.classes_) for t in estimator._member_targets}
        expected = estimator.classes_ if widths == {len(estimator.classes_)} else None
    if expected is None or not np.array_equal(expected, estimator.classes_):
        raise ModelFileError("the ensemble's concepts are not those of its members")
    return estimator


_READERS = {
    "ConceptCNNClassifier": _read_cnn,
    "ConceptKNNClassifier": _read_knn,
    "MostFrequentConcepts": _read_most_frequent,
    "ConceptEnsemble": _read_ensemble,
}
