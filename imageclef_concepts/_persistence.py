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
import zipfile

import numpy as np
from scipy import sparse
from sklearn.utils import Bunch

from ._atomic_files import open_regular_file, write_atomically
from ._decision import DecisionRule
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

    Returns
    -------
    estimator
        Fitted, predicting exactly as the saved one.
    """
    try:
        with open_regular_file(path, "model archive") as handle, \
                zipfile.ZipFile(handle) as archive:
            manifest = _read_manifest(path, archive)
            return _restore(manifest["estimator"], _ArchiveMembers(path, archive, manifest))
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a model archive (not a zip file: empty, truncated "
                         "or another kind of file).") from None


_LARGEST_MANIFEST = 2**26  # 64 MiB of JSON: far more than any vocabulary needs


def _read_manifest(path, archive):
    if _MANIFEST not in archive.namelist():
        raise ValueError(f"{path} was not written by imageclef_concepts.")
    manifest = json.loads(_read_member(path, archive, _MANIFEST, _LARGEST_MANIFEST))
    if manifest.get("format", 0) > _FORMAT:
        raise ValueError(f"{path} was written by a newer imageclef_concepts (archive format "
                         f"{manifest['format']}; this version reads up to {_FORMAT}).")
    stated = manifest.get("members")
    if stated is not None:  # format 2: every member named, with its size
        unnamed = sorted(set(archive.namelist()) - set(stated) - {_MANIFEST})
        if unnamed:
            raise ValueError(f"{path} holds member(s) its manifest does not name "
                             f"({', '.join(unnamed[:5])}): not an archive as the library "
                             "writes it, so it is not read.")
    return manifest


def _read_member(path, archive, name, limit):
    """A member's bytes, decompressing no more than ``limit`` bytes of it."""
    with archive.open(name) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: member {name} is larger than its manifest states "
                         f"({limit} bytes): not an archive as the library writes it.")
    return data


class _ArchiveMembers:
    """An archive's members, each decompressed when a reader asks for it, within its size."""

    def __init__(self, path, archive, manifest):
        self.path, self.archive = path, archive
        self.sizes = manifest.get("members") or {  # format 1 states none: the zip's own
            info.filename: info.file_size for info in archive.infolist()}

    def __getitem__(self, name):
        if name not in self.sizes:
            raise ValueError(f"{self.path}: member {name} is missing from the archive.")
        try:
            return _read_member(self.path, self.archive, name, self.sizes[name])
        except KeyError:
            raise ValueError(f"{self.path}: member {name} is missing from the archive.") \
                from None


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

def _restore(description, entries):
    kind = description["class"]
    reader = _READERS.get(kind)
    if reader is None:
        raise ValueError(f"Unknown estimator {kind!r} in the archive.")
    return reader(description, entries)


def _get_array(entries, name):
    return np.load(io.BytesIO(entries[name]), allow_pickle=False)


def _get_csr(entries, parts):
    return sparse.csr_matrix((_get_array(entries, parts["data"]),
                              _get_array(entries, parts["indices"]),
                              _get_array(entries, parts["indptr"])), shape=parts["shape"])


def _params(description):
    params = dict(description["params"])
    if isinstance(params.get("threshold"), dict):
        params["threshold"] = DecisionRule.from_dict(params["threshold"])
    return params


def _read_cnn(description, entries):
    from .keras import ConceptCNNClassifier

    with tempfile.TemporaryDirectory() as folder:
        file = os.path.join(folder, "model.keras")
        with open(file, "wb") as handle:
            handle.write(entries[description["keras_file"]])
        return ConceptCNNClassifier.load(file)


def _read_knn(description, entries):
    from ._retrieval import ConceptKNNClassifier

    embedding = description["embedding"]
    if isinstance(embedding, dict):
        embedding = _restore(embedding, entries)
    estimator = ConceptKNNClassifier(embedding=embedding, **_params(description))
    estimator.embedding_ = estimator._fitted_embedding(None, None)  # nothing to fit: as saved
    estimator.targets_ = ConceptTargets.from_dict(description["targets"])
    estimator.classes_ = estimator.targets_.classes_
    estimator.embeddings_ = _get_array(entries, description["embeddings"])
    estimator._targets = _get_csr(entries, description["indicator"]).astype(np.float32)
    return estimator


def _read_most_frequent(description, entries):
    from ._baselines import MostFrequentConcepts

    estimator = MostFrequentConcepts(**_params(description))
    estimator.targets_ = ConceptTargets.from_dict(description["targets"])
    estimator.classes_ = estimator.targets_.classes_
    estimator.concept_frequencies_ = _get_array(entries, description["frequencies"])
    estimator.k_ = description["k"]
    ranking = np.argsort(-estimator.concept_frequencies_, kind="stable")
    estimator.top_concepts_ = np.sort(ranking[:estimator.k_])
    estimator.decision_rule_ = estimator._top(estimator.k_)
    return estimator


def _read_ensemble(description, entries):
    from ._ensemble import ConceptEnsemble

    members = [(name, _restore(member, entries)) for name, member in description["members"]]
    estimator = ConceptEnsemble(members, **_params(description))
    estimator.estimators_ = [member for _, member in members]
    estimator.named_estimators_ = Bunch(**dict(members))
    estimator._member_targets = [targets_of(member) for _, member in members]
    estimator.targets_ = ConceptTargets.from_dict(description["targets"])
    estimator.classes_ = estimator.targets_.classes_
    return estimator


_READERS = {
    "ConceptCNNClassifier": _read_cnn,
    "ConceptKNNClassifier": _read_knn,
    "MostFrequentConcepts": _read_most_frequent,
    "ConceptEnsemble": _read_ensemble,
}
