"""The types a skops file of the library's estimators holds: one list to trust.

skops (``skops.io``) writes an estimator as the plain values of its state and,
loading it, builds only the types its caller trusts, beyond scikit-learn's,
NumPy's and SciPy's common ones. MLflow's scikit-learn flavour writes models
with skops by default. Every estimator of the library goes through skops as
through pickle: its state holds arrays, lists and the library's small
objects (the vocabulary, the decision rule, the count model), and a Keras
network as the bytes of its ``.keras`` file, read back in Keras' safe mode
(:func:`~imageclef_concepts.keras._model_file.keras_free_state`).
:func:`skops_trusted_types` names every type they hold, for
``skops.io.load(..., trusted=...)`` and MLflow's ``skops_trusted_types``.
"""

from __future__ import annotations

from scipy import sparse
from sklearn.utils import Bunch

from .._api import ESTIMATORS, public_object
from ..concepts._targets import ConceptTargets

#: The public classes of the library a skops file may hold: its estimators, the
#: tuners and transformers around them, their rules and count models.
SKOPS_CLASSES = (*ESTIMATORS, "BackboneEmbedding", "ConceptCountRegressor", "ConceptEncoder",
                 "DecisionRule", "EnsembleTuner", "ImageLoader")
#: What their states hold besides: the vocabulary, and the types of Python,
#: SciPy and scikit-learn that skops does not trust unless told (a frozenset of
#: concepts, a sparse indicator, an ensemble's members by name).
_HELD = (ConceptTargets, frozenset, sparse.csr_matrix, Bunch)


def skops_trusted_types() -> list[str]:
    """The types to trust when loading a skops file of the library's estimators.

    Every estimator of the library (the Keras estimator, k-NN, baselines,
    ensembles, specialists, tuners) saves with ``skops.io.dump`` as with
    pickle; ``skops.io.load`` builds it again only from types its caller
    trusts. This is that list, the one place that names them: the library's
    classes and the few common types of Python, SciPy and scikit-learn that
    skops does not trust by default. A network is held as the bytes of its
    ``.keras`` file and read back in Keras' safe mode, checked as
    :meth:`ConceptCNNClassifier.load <imageclef_concepts.ConceptCNNClassifier.load>`
    checks a model file.

    Trust only what you trust: a skops file also keeps the estimator's
    parameters as they were, the paths of ``image_store`` and
    ``checkpoint_dir`` included, which ``fit`` and ``predict`` write to (the
    library's own files never keep them). Types of your own (a member
    estimator, a scorer) are yours to add.

    Returns
    -------
    list of str
        Type names as skops writes them (``"module.Class"``), sorted.
        Computing them imports TensorFlow (they name the Keras estimator).

    Examples
    --------
    >>> import skops.io
    >>> from imageclef_concepts import MostFrequentConcepts, skops_trusted_types
    >>> model = MostFrequentConcepts(k=1).fit([[0], [0]], ["C1;C2", "C1"])
    >>> loaded = skops.io.loads(skops.io.dumps(model), trusted=skops_trusted_types())
    >>> loaded.predict([[0]])
    array([('C1',)], dtype=object)

    With MLflow (whose scikit-learn flavour writes skops files by default):
    ``mlflow.sklearn.log_model(model, name="model",
    skops_trusted_types=skops_trusted_types())``.
    """
    classes = {public_object(name) for name in SKOPS_CLASSES} | set(_HELD)
    # The Keras estimator's vocabulary is its own subclass, which it names as its
    # target encoder (scikeras' public extension point).
    classes.add(type(public_object("ConceptCNNClassifier")().target_encoder))
    return sorted(f"{kind.__module__}.{kind.__qualname__}" for kind in classes)
