"""ConceptSpecialists: models for one kind of image, run where a base model sees that kind.

UACH (ImageCLEF 2024) ran sub-models for ultrasonography, the cranium,
angiograms and the lower extremity only on the images whose base prediction
held that parent concept; AUEB (2025) fine-tuned a separate ultrasonography
model. A specialist learns from the images of its kind alone, so its
concepts are not drowned by the rest of the data.

Each model (the base and every specialist) is read through a one-member
:class:`~imageclef_concepts.ConceptEnsemble` fitted as it is (``prefit``):
the ensemble's public methods give its decisions and probabilities on the
concepts it names, as the contract (:mod:`imageclef_concepts.models._base`) says,
and save it; :func:`~imageclef_concepts.concepts._targets.align_columns` puts them on
the specialists' shared columns.
"""

from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch, _safe_indexing
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import _check_method_params, check_is_fitted

from ..concepts._lists import as_binary_csr, as_target, canonical_concept, is_concept_lists
from ..concepts._targets import ConceptTargets, align_columns, split_concepts
from ..files._numbers import WholeNumber
from ..images._shared import shares_decoding
from ..models._base import BaseConceptClassifier, RoutingMixin, visual_block
from ..models._card import ModelFileError
from ..models._persistence import ArchivedModel
from ._ensemble import ConceptEnsemble
from ._members import check_member_names, rows_of, united_classes

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence
    from typing import Any

    from numpy.typing import NDArray
    from typing_extensions import Self

    from .._typing import Estimator, FloatArray, Images, Merge, Targets

MERGES = ("union", "replace")


class ConceptSpecialists(RoutingMixin, ArchivedModel, BaseConceptClassifier):
    """A base model, and specialists run only on the images where the base sees their concept.

    ``fit`` fits the base on every image and each specialist on the training
    images whose true concepts hold its trigger concept. ``predict`` runs the
    base on every image and each specialist only on the images for which the
    base predicts its trigger (the base's decision, never the truth, never
    another specialist's), then merges their concepts by ``merge``.

    Parameters
    ----------
    base : estimator
        Any concept estimator (see :mod:`imageclef_concepts.models._base`); cloned
        and fitted on all the images.
    specialists : list of (str, str or int, estimator)
        ``(name, trigger, estimator)``: the trigger is a concept (compared
        stripped and upper-cased) for concept lists, a column number for an
        indicator ``y``. Names are unique, not ``"base"`` nor another
        parameter's, and without ``__``; parameters are reachable as
        ``<name>__<parameter>`` (and the base's as ``base__<parameter>``)
        for ``GridSearchCV``. Several specialists may share a trigger.
    merge : {"union", "replace"}, default="union"
        For an image on which specialists run: ``"union"``, the base's
        concepts and every such specialist's; ``"replace"``, the concepts
        these specialists know (their ``classes_``) as they decide them (any
        of them), the other concepts as the base decides them. Either way the
        triggers stay: the base decided them. Other images: the base's
        concepts.
    min_images : int, default=10
        Training images a trigger must be on for its specialist to be
        fitted; fewer is an error naming the concept and the count.

    Attributes
    ----------
    base_ : estimator
        The fitted base.
    specialists_ : list of estimator
        The fitted specialists, in the order given.
    named_specialists_ : Bunch
        The fitted specialists by name.
    n_trigger_images_ : dict of str to int
        Training images each specialist was fitted on, by name.
    classes_ : ndarray
        The union of the base's and the specialists' concepts (by name).
    targets_ : ConceptTargets

    Notes
    -----
    Each model decides by its own rule (tune the members' thresholds:
    ``base__threshold``, ``<name>__threshold``), so ``decide`` is not one
    threshold on ``predict_proba`` (``decides_by_threshold`` is False).
    ``predict_proba`` is the same merge on probabilities: the base's, and on
    an image where specialists run, the largest of the base's and theirs
    (``"union"``), or theirs (the largest) on the concepts they know but
    the triggers (``"replace"``); a concept a model does not know is 0 for
    it. When every model decides by one threshold ``t`` (no
    ``min_concepts``/``max_concepts``), ``predict_proba >= t`` is
    exactly ``decide``. ``predict_proba`` runs the base twice (its
    decisions choose the images for the specialists).

    ``fit`` parameters that hold one value per image (``sample_weight``)
    go to the base whole and to each specialist cut to its images, as
    ``GridSearchCV`` cuts them; ``validation_data=(X_val, y_val)`` goes to
    the base whole and to each specialist cut to the validation images
    holding its trigger (none: the specialist holds out its own); any other
    goes to every model as given. With scikit-learn's metadata routing
    enabled, each model gets only what it requested (``set_fit_request``),
    cut the same way.

    Examples
    --------
    The base (a 1-nearest-neighbour model) gives each training image its own
    concepts; the ultrasound specialist predicts the two concepts most
    frequent on ultrasound images (``US`` and ``C2``), and runs on images
    0-2 only:

    >>> import numpy as np
    >>> from imageclef_concepts import (ConceptKNNClassifier, ConceptSpecialists,
    ...                                 MostFrequentConcepts)
    >>> X = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    >>> y = ["US;C1", "US;C2", "US;C2", "XR;C3", "XR;C3", "XR;C4"]
    >>> model = ConceptSpecialists(
    ...     ConceptKNNClassifier(1, pixel_size=8),
    ...     [("ultrasound", "US", MostFrequentConcepts(k=2))], min_images=3).fit(X, y)
    >>> model.predict_concepts(X[[0, 3]])
    [('C1', 'C2', 'US'), ('C3', 'XR')]
    >>> model.set_params(merge="replace").predict_concepts(X[[0, 3]])
    [('C2', 'US'), ('C3', 'XR')]
    """

    _parameter_constraints = {
        "base": [HasMethods(["fit"])],
        "specialists": [list],
        "merge": [StrOptions(set(MERGES))],
        "min_images": [WholeNumber(1)],
    }

    def __init__(self, base: Estimator, specialists: Sequence[tuple[str, str | int, Estimator]],
                 *, merge: Merge = "union", min_images: int = 10) -> None:
        self.base = base
        self.specialists = specialists
        self.merge = merge
        self.min_images = min_images

    # ------------------------------------------------------------ parameters

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters, and with ``deep`` the base's and each specialist's by name."""
        params = super().get_params(deep=deep)
        if deep:
            for name, estimator in self._named_estimators():
                params[name] = estimator
                if hasattr(estimator, "get_params"):
                    params.update({f"{name}__{key}": value for key, value
                                   in estimator.get_params(deep=True).items()})
        return params

    def set_params(self, **params: Any) -> Self:
        """Set parameters: ``specialists`` first, then a specialist by name, then the rest
        (``base__<parameter>``, ``<name>__<parameter>``)."""
        if "specialists" in params:
            self.specialists = params.pop("specialists")
        names = dict(self._named_estimators())
        replaced = {name: params.pop(name) for name in list(params) if name in names}
        if replaced:
            self.specialists = [(name, trigger, replaced.get(name, estimator))
                                for name, trigger, estimator in self.specialists]
        return super().set_params(**params)

    def _inner_estimators(self):
        return {"base": self.base, **dict(self._named_estimators())}

    def _named_estimators(self):
        """(name, estimator) of well-formed specialists (the rest is refused at fit)."""
        entries = self.specialists if isinstance(self.specialists, (list, tuple)) else []
        return [(entry[0], entry[2]) for entry in entries
                if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[0], str)]

    def _sk_visual_block_(self):
        """scikit-learn's HTML repr: the base, then each specialist by name and trigger."""
        return visual_block([("base", self.base)], [
            (f"{name}: trigger {trigger}", estimator)
            for name, trigger, estimator in self.specialists])

    def _check_specialists(self):
        """The specialists' structure and names, before anything is fitted."""
        if not self.specialists:
            raise ValueError("specialists is empty: give at least one (name, trigger, "
                             "estimator).")
        for position, entry in enumerate(self.specialists):
            if not (isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[0], str)
                    and hasattr(entry[2], "fit")):
                raise ValueError(f"specialists[{position}] must be (name, trigger concept, "
                                 f"estimator); got {entry!r:.120}.")
        names = [name for name, _, _ in self.specialists]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"Specialist names must be unique; {repeated} are repeated.")
        taken = sorted(set(names) & set(self.get_params(deep=False)))
        if taken or any("__" in name for name in names):
            raise ValueError(f"Specialist names may not be a parameter's ({taken}) nor hold "
                             f"'__' (nested parameters): {names}.")
        check_member_names(names, "specialists")

    # ------------------------------------------------------------------- fit

    @shares_decoding
    def _fit(self, X: Images, y: Targets, **fit_params: Any) -> None:
        """Find each trigger's images, fit the base, then each specialist on its images."""
        self._check_specialists()
        triggers = [trigger for _, trigger, _ in self.specialists]
        carriers = [self._training_images(y, name, trigger) for name, trigger, _ in
                    self.specialists]  # before any fitting: a bad trigger fails at once
        routed = self._routed_fit_params(fit_params)
        base = clone(self.base).fit(X, y, **routed.base.fit)
        views = [_view(base, X, y)]
        for name, trigger in zip(self._names(), triggers):
            _check_known(views[0].classes_, trigger, f"The base ({type(base).__name__})",
                         f"the trigger of specialist {name!r}")
        for (name, trigger, estimator), rows in zip(self.specialists, carriers):
            X_rows, y_rows = rows_of(X, rows), _safe_indexing(y, np.flatnonzero(rows))
            fitted = clone(estimator).fit(
                X_rows, y_rows, **_specialist_params(X, routed[name].fit, rows, trigger))
            views.append(_view(fitted, X_rows, y_rows))
        on_concepts = is_concept_lists(y)
        classes = united_classes([view.targets_ for view in views], on_concepts)
        self._set_fitted(views, triggers,
                         ConceptTargets.from_classes(classes) if on_concepts
                         else ConceptTargets().fit(y),
                         [int(rows.sum()) for rows in carriers])

    def _names(self):
        return [name for name, _, _ in self.specialists]

    def _training_images(self, y, name, trigger):
        """Which training images carry ``trigger``; an error when it is absent or rare."""
        rows = _carriers(y, trigger, name)
        if not rows.any():
            raise ValueError(f"Specialist {name!r}: its trigger concept {trigger!r} is on no "
                             "training image (absent from y): there is nothing to fit it on.")
        if rows.sum() < self.min_images:
            raise ValueError(f"Specialist {name!r}: only {int(rows.sum())} training images "
                             f"carry its trigger concept {trigger!r}, fewer than "
                             f"min_images={self.min_images}.")
        return rows

    def _set_fitted(self, views, triggers, targets, counts):
        """The fitted attributes, from the models' views (the base's first), the triggers
        and how many training images carried each."""
        self._views, self._triggers = list(views), list(triggers)
        self.n_trigger_images_ = dict(zip(self._names(), counts))
        self.base_ = views[0].estimators_[0]
        self.specialists_ = [view.estimators_[0] for view in views[1:]]
        self.named_specialists_ = Bunch(**dict(zip(self._names(), self.specialists_)))
        self.targets_, self.classes_ = targets, targets.classes_
        self._trigger_columns = [
            _check_known(self.classes_, trigger, "The model", "a trigger") for trigger in triggers]

    # --------------------------------------------------------------- predict

    @property
    def decides_by_threshold(self) -> bool:
        """False: each model decides by its own rule (see Notes)."""
        return False

    @shares_decoding
    def decide(self, X: Images) -> NDArray[np.bool_]:
        """The concepts decided for each image, as a boolean indicator over ``classes_``.

        The base's decisions, merged with each specialist's on the images
        where the base decided its trigger (``merge``).

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of bool, shape (n_images, n_concepts)
        """
        return self._merged(X, "decide") > 0

    @shares_decoding
    def predict_proba(self, X: Images) -> FloatArray:
        """The base's probabilities, merged with the specialists' where they run (see Notes).

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
        """
        return self._merged(X, "predict_proba")

    def _merged(self, X, method):
        """The base's ``method`` output, merged with the specialists' where they run."""
        check_is_fitted(self, "_views")
        base_view = self._views[0]
        decided = self._on_classes(base_view, base_view.decide(X)) > 0
        merged = (decided.astype(np.float32) if method == "decide"
                  else self._on_classes(base_view, base_view.predict_proba(X), fill=0.0))
        theirs = np.zeros_like(merged)  # the largest specialist value (0: none runs)
        known = np.zeros(merged.shape, dtype=bool)  # concepts a running specialist knows
        ran = np.zeros(len(merged), dtype=bool)
        for view, column in zip(self._views[1:], self._trigger_columns):
            rows = decided[:, column]
            if not rows.any():
                continue
            ran |= rows
            values = self._on_classes(view, getattr(view, method)(rows_of(X, rows)), fill=0.0)
            theirs[rows] = np.fmax(theirs[rows], values)
            known[np.ix_(rows, np.isin(self.classes_, view.classes_))] = True
        for view, column in zip(self._views[1:], self._trigger_columns):
            known[decided[:, column], column] = False  # a trigger stays the base's
        if self.merge == "union":
            merged[ran] = np.fmax(merged[ran], theirs[ran])
        else:
            merged[known] = theirs[known]
        return merged

    def _on_classes(self, view, values, fill=0.0):
        """A view's decisions or scores on our columns (scores keep their float type)."""
        values = np.asarray(values)
        if values.dtype.kind != "f":
            values = values.astype(np.float32)
        return align_columns(values, view.classes_, self.classes_, fill=fill)

    # ----------------------------------------------------------------- files

    def _to_archive(self, writer):
        members = [[name, writer.estimator(f"members/{name}", view)]
                   for name, view in zip(["base", *self.named_specialists_], self._views)]
        return {"params": writer.params(self, nested=("base", "specialists")),
                "triggers": [trigger if isinstance(trigger, str) else int(trigger)
                             for trigger in self._triggers],
                "n_trigger_images": list(self.n_trigger_images_.values()),
                "members": members, "targets": self.targets_.to_dict()}

    @classmethod
    def _from_archive(cls, description, reader):
        members = reader.expect(description, "members", (list,))
        triggers = reader.expect(description, "triggers", (list,))
        counts = reader.expect(description, "n_trigger_images", (list,))
        views = [reader.estimator(view, f"{reader.where}['members'][{position}]")
                 for position, (_, view) in enumerate(members)]
        if [name for name, _ in members[:1]] != ["base"] or \
                not len(triggers) == len(counts) == len(views) - 1 \
                or not all(isinstance(view, ConceptEnsemble) and len(view.estimators_) == 1
                           for view in views):
            raise ModelFileError("the members must be the base, then one per trigger")
        if not all(isinstance(t, str) or _is_count(t) for t in triggers) or \
                not all(_is_count(count) for count in counts):
            raise ModelFileError("a trigger must be a concept or a column number, and the "
                                 "images that carried it a count")
        specialists = [(name, trigger, view.estimators_[0])
                       for (name, _), trigger, view in zip(members[1:], triggers, views[1:])]
        model = reader.params(cls, description, base=views[0].estimators_[0],
                              specialists=specialists)
        model._check_specialists()
        model._set_fitted(views, triggers, reader.targets(description), counts)
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if hasattr(self.base, "__sklearn_tags__"):
            tags.input_tags = self.base.__sklearn_tags__().input_tags
        return tags


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _view(fitted, X, y):
    """A fitted model read through the contract: a one-member ensemble, fitted as it is."""
    return ConceptEnsemble([("model", fitted)], combine="union", prefit=True).fit(X, y)


def _carriers(y, trigger, name):
    """Boolean mask of the rows of ``y`` (concept lists or an indicator) holding ``trigger``."""
    y = as_target(y)
    if is_concept_lists(y):
        if not isinstance(trigger, str):
            raise ValueError(f"Specialist {name!r}: y is concept lists, so its trigger must be "
                             f"a concept name; got {trigger!r}.")
        wanted = canonical_concept(trigger)
        return np.array([wanted in split_concepts(row) for row in y], dtype=bool)
    indicator = as_binary_csr(y, "y")
    if not isinstance(trigger, Integral) or isinstance(trigger, bool) or \
            not 0 <= trigger < indicator.shape[1]:
        raise ValueError(f"Specialist {name!r}: y is an indicator matrix of "
                         f"{indicator.shape[1]} columns, so its trigger must be a column "
                         f"number below that; got {trigger!r}.")
    return indicator[:, int(trigger)].toarray().ravel() > 0


def _check_known(classes, trigger, who, what):
    """The column of ``trigger`` among ``classes``, or a ValueError: ``who`` does not know it."""
    wanted = canonical_concept(trigger) if isinstance(trigger, str) else trigger
    found = np.flatnonzero(np.asarray(classes, dtype=object) == wanted)
    if not len(found):
        raise ValueError(f"{who} does not know {trigger!r}, {what}: it is not among its "
                         "classes_ (left out by min_count or max_labels?), so it can never "
                         "be predicted.")
    return int(found[0])


def _specialist_params(X, fit_params, rows, trigger):
    """``fit_params`` for the specialist of ``trigger``, fitted on the images ``rows``."""
    params = dict(fit_params)
    validation = params.pop("validation_data", None)
    params = _check_method_params(X, params, indices=np.flatnonzero(rows))
    if validation is not None:
        X_val, y_val = validation
        keep = _carriers(y_val, trigger, "validation_data")
        if keep.any():
            params["validation_data"] = (rows_of(X_val, keep),
                                         _safe_indexing(y_val, np.flatnonzero(keep)))
    return params
