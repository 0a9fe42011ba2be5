"""The library's model archive: a zip of JSON, NumPy arrays and Keras files, read safely.

The parts every model's ``_to_archive`` / ``_from_archive`` write and read
with (:class:`ArchiveWriter`, :class:`ArchiveReader`), how a description's
class is found (:func:`archive_class`), the manifest's checks and the lazy,
size-bounded reading of members. The protocol and the schema are described
in :mod:`imageclef_concepts.models._persistence`.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
import zipfile
from contextlib import contextmanager, nullcontext

import numpy as np
from scipy import sparse

from .._api import ESTIMATORS, PACKAGE, public_object
from ..concepts._targets import ConceptTargets
from ._base import ConceptClassifierMixin
from ._card import ModelFileError, check_targets, expect, misnamed_keras_file
from ._decision import DecisionRule

MANIFEST = "imageclef_concepts.json"
FORMAT = 2  # 1: no sizes; 2: the manifest states each member's size

# Parameters that name a local resource of one run (a folder of prepared
# images): saved as null, and a path read from a file is never used.
RUNTIME_PARAMS = ("image_store", "embedding_store")


class ArchiveWriter:
    """What a model's ``_to_archive`` writes with: each part under the model's own prefix."""

    def __init__(self, entries=None, prefix=""):
        self.entries = {} if entries is None else entries
        self.prefix = prefix

    def describe(self, estimator):
        """The description of ``estimator``, its parts written under this writer's prefix."""
        if type(estimator).__name__ == "FrozenEstimator":  # scikit-learn's fitted wrapper
            estimator = estimator.estimator
        kind = type(estimator)
        if not callable(getattr(estimator, "_to_archive", None)):
            raise TypeError(_unsaveable(kind))
        description = {"class": kind.__name__, "module": kind.__module__,
                       **estimator._to_archive(self)}
        owner = next(cls for cls in kind.__mro__ if "_to_archive" in vars(cls))
        if owner is not kind:  # a subclass saved by its base's pair: is its state all kept?
            check_state_is_saved(estimator, description, self.entries, owner)
        return description

    def estimator(self, name, estimator):
        """A nested model's description, its parts under ``<prefix><name>/``."""
        return ArchiveWriter(self.entries, f"{self.prefix}{name}/").describe(estimator)

    def array(self, name, array):
        """Store ``array`` as ``.npy``; return its entry name."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array), allow_pickle=False)
        return self._put(name + ".npy", buffer.getvalue())

    def csr(self, name, matrix):
        """Store a sparse matrix as three arrays; return their description."""
        matrix = sparse.csr_matrix(matrix)
        return {"data": self.array(name + "data", matrix.data),
                "indices": self.array(name + "indices", matrix.indices),
                "indptr": self.array(name + "indptr", matrix.indptr),
                "shape": list(matrix.shape)}

    def file(self, name, save):
        """Store the file ``save(path)`` writes (``name`` is its file name); return its entry."""
        with tempfile.TemporaryDirectory() as folder:
            file = os.path.join(folder, name)
            save(file)
            with open(file, "rb") as handle:
                return self._put(name, handle.read())

    @staticmethod
    def params(estimator, nested=()):
        """``estimator``'s parameters as JSON values, those in ``nested`` left out."""
        plain = {}
        for name, value in estimator.get_params(deep=False).items():
            if name in nested:
                continue
            plain[name] = None if name in RUNTIME_PARAMS else jsonable(value)
            json.dumps(plain[name])  # refuses what JSON cannot hold, before anything is written
        return plain

    def _put(self, name, data):
        if self.prefix + name in self.entries:  # two parts in one place: one would be lost
            raise ValueError(f"Two parts of the model would be saved as {self.prefix + name!r} "
                             "in the archive (members whose names nest, such as 'a' holding "
                             "'b' and 'a/members/b'); rename a member.")
        self.entries[self.prefix + name] = data
        return self.prefix + name


def _unsaveable(kind):
    """Why an estimator of class ``kind`` cannot go into an archive, and what to do instead."""
    if kind.__name__ == "ThresholdTuner":
        return ("A ThresholdTuner is not saved in an archive itself: put its "
                "tuned_estimator() (the estimator carrying the tuned rule as its threshold) "
                "in the ensemble instead, or save the whole model with joblib.dump.")
    if kind.__name__ == "EnsembleTuner":
        return ("An EnsembleTuner is saved as the ensemble it tuned: tuner.save('model.zip') "
                "(or save_model(tuner.ensemble_, 'model.zip')) writes that archive; read it "
                "back with ConceptEnsemble.load or load_model.")
    return (f"{kind.__module__}.{kind.__name__} cannot be saved without pickle: only "
            "estimators with _to_archive and _from_archive (MostFrequentConcepts, "
            "ConceptKNNClassifier, ConceptEnsemble, ConceptSpecialists, ConceptCNNClassifier and "
            "their subclasses) go into the library's archive. Save the whole model with "
            "joblib.dump(model, 'model.joblib') and read it with joblib.load (the command "
            "line: --allow-pickle); "
            "a pickle runs any code it holds, so load only your own.")


def check_state_is_saved(estimator, description, entries, owner):
    """Refuse to save a subclass whose own fitted attributes its base's pair would lose.

    The description is read back in memory, as ``load`` would read it; a
    public fitted attribute (ending in ``_``) of ``estimator`` that the
    loaded model lacks would be an ``AttributeError`` after loading.
    """
    loaded = ArchiveReader(entries, "(in memory)").estimator(description)
    lost = sorted(name for name in vars(estimator)
                  if name.endswith("_") and not name.startswith("_") and not hasattr(loaded, name))
    if lost:
        kind = type(estimator).__name__
        raise TypeError(
            f"{kind} has fitted attribute(s) {', '.join(lost)} that {owner.__name__}'s "
            f"_to_archive does not save: a loaded {kind} would lack them. Override "
            "_to_archive and the classmethod _from_archive to save and restore them (see "
            "the user guide, 'Persistence'), or save it with joblib.dump.")


# Models inside models (an ensemble's members, a k-NN's encoder) at most this deep: far more
# than any model, and far less than Python's recursion limit allows predicting through (an
# archive 300 deep loaded, then predict was a RecursionError).
MAX_NESTING = 32


class ArchiveReader:
    """What a model's ``_from_archive`` reads with: checked parts of one archive."""

    def __init__(self, entries, path, where="the archive's estimator", depth=0):
        self.entries, self.path, self.where, self.depth = entries, path, where, depth

    def estimator(self, description, where=None):
        """The model a description describes, by its class's ``_from_archive``."""
        reader = self if where is None else ArchiveReader(self.entries, self.path, where,
                                                          self.depth + 1)
        if reader.depth > MAX_NESTING:
            raise ModelFileError(f"its models are nested more than {MAX_NESTING} deep (a "
                                 "member of a member of ...): not a model the library can "
                                 "predict with; nothing more was read.")
        cls = archive_class(description.get("class"), description.get("module"), reader.where)
        return cls._from_archive(description, reader)

    def expect(self, description, key, kinds):
        """``description[key]``, of one of ``kinds``, or a ModelFileError naming it."""
        return expect(description, key, kinds, self.where)

    def params(self, cls, description, **given):
        """``cls(**params)``, the saved parameters and ``given`` checked as ``fit`` does."""
        params = dict(self.expect(description, "params", (dict,)))
        params.update((name, None) for name in RUNTIME_PARAMS if name in params)
        if isinstance(params.get("threshold"), dict):
            params["threshold"] = DecisionRule.from_dict(params["threshold"])
        return estimator_from_params(cls, {**params, **given}, self.path)

    def targets(self, description):
        """The saved vocabulary, its structure checked."""
        check_targets(self.expect(description, "targets", (dict,)), f"{self.where}['targets']")
        return ConceptTargets.from_dict(description["targets"])

    def array(self, name, kinds, ndim, what):
        """The ``.npy`` entry ``name``: an ``ndim``-d array whose dtype kind is in ``kinds``."""
        data = self.entries[name]  # a damaged or oversized entry is named as such
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError, MemoryError) as error:  # a shape stated past
            # this machine's memory: NumPy allocates it before finding the data missing
            raise ModelFileError(f"{what} ({name}) is not a NumPy array file ({error})") from None
        if array.dtype.kind not in kinds or array.ndim != ndim:
            raise ModelFileError(f"{what} ({name}) must be a {ndim}-d array of "
                                 f"{'numbers' if 'f' in kinds else 'whole numbers'}; it is "
                                 f"{array.ndim}-d of dtype {array.dtype}")
        return array

    def csr(self, parts, what):
        """The sparse matrix of :meth:`ArchiveWriter.csr`, its structure checked."""
        shape = expect(parts, "shape", (list,), what)
        if len(shape) != 2 or not all(isinstance(n, int) and not isinstance(n, bool)
                                      and n >= 0 for n in shape):
            raise ModelFileError(f"{what}: the shape must be two whole numbers")
        matrix = sparse.csr_matrix(
            (self.array(expect(parts, "data", (str,), what), "biuf", 1, what),
             self.array(expect(parts, "indices", (str,), what), "iu", 1, what),
             self.array(expect(parts, "indptr", (str,), what), "iu", 1, what)),
            shape=tuple(shape))
        matrix.check_format(full_check=True)  # indices within the shape, in order
        return matrix

    def file(self, name, load, suffix=""):
        """``load(file, shown_as)`` on the entry ``name`` written out to a temporary file.

        The temporary file's name is the library's (``entry<suffix>``): the
        entry's own may be ``..``, empty, or too long to be a file name. An
        entry whose name does not end with ``suffix`` (``".keras"``, which
        Keras reads by) is a :class:`ModelFileError` naming it.
        """
        if not name.endswith(suffix) or name.endswith("/" + suffix):
            raise ModelFileError(f"{self.path}: {self.where}'s entry {name!r:.80} is not a "
                                 f"{suffix} file's name.")
        with tempfile.TemporaryDirectory() as folder:
            file = os.path.join(folder, "entry" + suffix)
            with open(file, "wb") as handle:
                handle.write(self.entries[name])
            outer = getattr(self.entries, "archive", None)  # a ModelZip: the budget goes on
            with nullcontext() if outer is None else outer.nested():
                return load(file, f"{self.path} ({name})")


def archive_class(name, module=None, where="the archive's estimator", load=True):
    """The class an archive names: one implementing the contract, found by name and module.

    The classes searched are :class:`~imageclef_concepts.models._base.ConceptClassifierMixin`
    and its subclasses that have ``_from_archive``, a user's own included,
    among those already loaded; the library's public estimators
    (:data:`~imageclef_concepts._api.ESTIMATORS`) are imported on first use for it, and no other
    name is imported (a file naming ``BackboneEmbedding`` is refused before
    TensorFlow loads). Nothing named in the file is imported.

    ``module`` is the module the class was defined in when it was saved. A
    class of that name from that module must be loaded: a user's class
    (``__main__.MostFrequentConcepts``, ``mypackage.MyCNN``) is never
    replaced by the library's class of the same name; the message says to
    import its module first. Only a class of the library's own package may
    have moved between its private modules since (the public class is used).

    ``load=False`` (a model card) imports nothing: a public estimator of the
    library named as such is accepted by its name, and None returned.
    """
    if not isinstance(name, str) or not isinstance(module, (str, type(None))):
        raise ModelFileError(f"{where}: unknown estimator class {name!r:.80} "
                             f"(module {module!r:.80})")
    own = module is None or module.split(".")[0] == PACKAGE
    if not load and name in ESTIMATORS and own:
        return None  # the library's own class, by name: not imported (TensorFlow for a CNN)
    public = public_object(name) if name in ESTIMATORS and load else None
    candidates = [cls for cls in subclasses(ConceptClassifierMixin)
                  if cls.__name__ == name and callable(getattr(cls, "_from_archive", None))]
    if module is None:  # a description without its module: the public class settles it
        chosen = [cls for cls in candidates if cls is public] or candidates
    else:
        chosen = [cls for cls in candidates if cls.__module__ == module]
        if not chosen and public in candidates and module.split(".")[0] == PACKAGE:
            chosen = [public]  # the library's own class, moved between its modules since
    if len(chosen) == 1:
        return chosen[0]
    if chosen:
        raise ModelFileError(f"{where}: the class {name} is ambiguous (defined in "
                             f"{', '.join(sorted(c.__module__ for c in chosen))})")
    if module is not None and module.split(".")[0] != PACKAGE:
        loaded = (f" (the loaded classes of that name are from "
                  f"{', '.join(sorted({c.__module__ for c in candidates}))})"
                  if candidates else "")
        raise ModelFileError(
            f"{where} is a {module}.{name:.80}, which is not loaded{loaded}: "
            + ("define it first, as the script that saved the file did" if module == "__main__"
               else f"import it first (from {module} import {name})")
            + ", then load the file again. A model file's "
            "module is never imported, and another class of the same name is never used "
            "instead.")
    raise ModelFileError(f"{where}: unknown estimator class {name!r:.80}"
                         + (f" (module {module!r:.80})" if module else "")
                         + ": not a concept estimator that saves itself")


def archive_holds(manifest, cls):
    """Whether the archive's ``manifest`` names ``cls`` (or a subclass) as its estimator."""
    named = manifest["estimator"].get("class") if isinstance(manifest["estimator"], dict) \
        else None
    return named in {kind.__name__ for kind in (cls, *subclasses(cls))}


def subclasses(root):
    """Every subclass of ``root``, however deep."""
    found, stack = [], [root]
    while stack:
        for subclass in stack.pop().__subclasses__():
            if subclass not in found:
                found.append(subclass)
                stack.append(subclass)
    return found


def check_manifest(path, manifest, archive):
    if "estimator" not in manifest and "params" in manifest:
        if not os.fsdecode(path).endswith(".keras"):
            raise misnamed_keras_file(path)
        raise ModelFileError(f"{path} is a ConceptCNNClassifier's .keras file, not an archive: "
                             "load it with ConceptCNNClassifier.load (predict reads both).")
    format_ = manifest.get("format", 0)
    if not isinstance(format_, int) or isinstance(format_, bool):
        raise ModelFileError(f"{path}: the archive's format is {format_!r}, not a number.")
    if format_ > FORMAT:
        raise ModelFileError(f"{path} was written by a newer imageclef_concepts (archive "
                             f"format {format_}; this version reads up to {FORMAT}).")
    stated = manifest.get("members")
    if format_ >= 2:  # every member named, with its size
        if not isinstance(stated, dict) or not all(
                isinstance(size, int) and not isinstance(size, bool) and size >= 0
                for size in stated.values()):
            raise ModelFileError(f"{path}: the manifest's 'members' must map each member to "
                                 "its size in bytes.")
        unnamed = sorted(set(archive.namelist()) - set(stated) - {MANIFEST})
        if unnamed:
            raise ModelFileError(f"{path} holds member(s) its manifest does not name "
                                 f"({', '.join(unnamed[:5])}): not an archive as the library "
                                 "writes it, so it is not read.")


def stated_sizes(manifest, archive):
    """``{member: size}`` as the manifest states them, for the members ``archive`` holds.

    ``archive`` is a :class:`~imageclef_concepts.models._zip.ModelZip`. Format
    1 archives state no sizes: the zip directory's own are the limit.
    """
    present = archive.sizes()
    stated = manifest.get("members") if manifest.get("format", 0) >= 2 else present
    return {name: size for name, size in stated.items() if name in present}


class ArchiveMembers:
    """An archive's members, each decompressed when a reader asks for it, within its size.

    ``archive`` is a :class:`~imageclef_concepts.models._zip.ModelZip`: no
    member inflates past the size the manifest states, nor the whole file
    past its budget. Each member is read once: the library writes each part's
    own (``ArchiveWriter._put``), and members all naming one network were each
    built (a 17 KB archive naming one .keras 2,500 times: 350 s, 1.6 GB).
    """

    def __init__(self, path, archive, manifest):
        self.path, self.archive = path, archive
        self.sizes = stated_sizes(manifest, archive)
        self.read = set()

    def __contains__(self, name):
        return name in self.sizes

    def __getitem__(self, name):
        if name not in self.sizes:
            raise ModelFileError(f"{self.path}: member {name} is missing from the archive.")
        if name in self.read:
            raise ModelFileError(f"{self.path}: its entry {name} is named by two parts of the "
                                 "model, which the library never writes (each part has its "
                                 "own): not an archive as the library writes it.")
        self.read.add(name)
        return self.archive.read(name, self.sizes[name], "its manifest states")


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


def write_zip(handle, entries):
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
