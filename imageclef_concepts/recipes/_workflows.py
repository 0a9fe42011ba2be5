"""The library's workflows, written once for the command line, the demo and the reproduction.

* :func:`coarse_to_fine_search`: rounds of grid search scored by the
  official F1, each grid refined around the last best;
* :func:`train_and_tune`: train the CNN on a dataset, and with validation
  data keep its best epoch and tune its decision rule there;
* :func:`tune_rule`: tune a fitted model's decision rule on held-out data;
* :func:`concepts_at_thresholds`: a fitted model's concepts at several
  thresholds, from one prediction;
* :func:`predict_folder`: the concepts of the images of a folder, ready for
  a run file;
* :func:`save_model` / :func:`load_model`: a model's native ``.keras`` file
  (its decision rule included), joblib only when asked;
* :func:`use_image_store`: a fitted model's every image reader pointed at a
  store of prepared images.
"""

from pathlib import Path

from ..datasets._imageclef import image_files_by_id, image_path
from ..files._atomic import check_regular_file


def coarse_to_fine_search(estimator, first_grid, X, y, *, n_rounds=2, say=print,
                          **search_params):
    """Rounds of ``GridSearchCV`` scored by the official F1, each grid refined around the best.

    Parameters
    ----------
    estimator : estimator
        What each round searches over (a concept estimator, or a
        :class:`~imageclef_concepts.ThresholdTuner` around one).
    first_grid : dict
        The first round's grid; :func:`~imageclef_concepts.refine_grid` makes
        each next one.
    X, y
        The images and their concepts.
    n_rounds : int, default=2
    say : callable, default=print
        Where a line per round goes (the grid, then the best and its score).
    **search_params
        ``GridSearchCV`` parameters (``cv``, ``refit``, ``verbose``...).

    Returns
    -------
    list of GridSearchCV
        Each round's fitted search; the last holds the final best.
    """
    import numpy as np
    from sklearn.model_selection import GridSearchCV

    from ..concepts._metrics import imageclef_f1
    from ..tuning._refine import refine_grid

    grid, searches = dict(first_grid), []
    for round_number in range(1, n_rounds + 1):
        n_configurations = int(np.prod([len(values) for values in grid.values()]))
        say(f"Round {round_number} of the coarse-to-fine search: {n_configurations} "
            f"configuration(s) {grid}")
        search = GridSearchCV(estimator, grid, scoring=imageclef_f1, **search_params)
        searches.append(_fitted(search, X, y))
        say(f"  best {search.best_params_}: official F1 {search.best_score_:.4f} on the "
            "search's validation folds")
        if round_number < n_rounds:
            grid = refine_grid(search)
    return searches


def _fitted(search, X, y):
    """``search`` fitted, its failed fits said in one line with the first error: scikit-learn's
    "All the 27 fits failed" (and its FitFailedWarning) holds each failure's whole
    traceback, which reached the command line as its error (or warning) line."""
    import re
    import warnings

    from sklearn.exceptions import FitFailedWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # each is given again below, under the caller's
            search.fit(X, y)                 # filters
    except ValueError as error:
        failed = re.match(r"\s*All the (\d+) fits failed", str(error))
        if failed is None:
            raise
        raise ValueError(f"every configuration of the coarse-to-fine search failed "
                         f"({failed.group(1)} fit(s)); the first error: "
                         f"{_first_error(str(error))}") from None
    for warning in caught:
        text = str(warning.message)
        failed = re.match(r"\s*(\d+) fits failed out of a total of (\d+)", text)
        if warning.category is FitFailedWarning and failed is not None:
            warning.message = FitFailedWarning(
                f"{failed.group(1)} of the {failed.group(2)} fits of the coarse-to-fine search "
                f"failed and score nan; the first error: {_first_error(text)}")
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno, source=warning.source)
    return search


def _first_error(text):
    """The first error of scikit-learn's message about failed fits, as ``Kind: message``."""
    first = text.split("fits failed with the following error:\n", 1)[-1]
    first = first.split("\n" + "-" * 80, 1)[0].rstrip().splitlines()
    # The exception's own lines follow the traceback's last indented (frame) line.
    frames = [number for number, line in enumerate(first) if line.startswith(" ")]
    kind, colon, message = " ".join(first[frames[-1] + 1 if frames else 0:]).partition(": ")
    kind = kind if " " in kind else kind.rsplit(".", 1)[-1]  # the class, not its module
    return f"{kind}{colon}{message}"


def train_and_tune(train, validation=None, *, say=print, **params):
    """Train :class:`~imageclef_concepts.ConceptCNNClassifier`; tune its rule on validation.

    Parameters
    ----------
    train : Bunch
        ``paths`` and ``concepts`` (what :func:`~imageclef_concepts.load_imageclef`
        returns).
    validation : Bunch, default=None
        Validation images and concepts. When given, the best epoch is picked
        on them and the decision threshold is tuned on them for the official
        F1 (the paper's procedure); the model carries the tuned rule.
    say : callable, default=print
        Where progress lines go.
    **params
        :class:`~imageclef_concepts.ConceptCNNClassifier` parameters; the
        estimator's own defaults for the rest.

    Returns
    -------
    ConceptCNNClassifier
        Fitted; with validation data its ``threshold`` is the tuned
        :class:`~imageclef_concepts.DecisionRule`.
    """
    from ..keras import ConceptCNNClassifier

    if validation is not None:
        params.setdefault("validation_fraction", None)
    model = ConceptCNNClassifier(**params)
    say(f"Training on {len(train.paths)} images for {model.epochs} epoch(s)")
    model.fit(train.paths, train.concepts,
              validation_data=None if validation is None else (validation.paths,
                                                               validation.concepts))
    # One progress display: Keras' bar for training only (not for the tuning
    # predictions below), and a saved model that predicts quietly.
    model.set_params(verbose=0)
    if validation is None:
        return model
    tuner = tune_rule(model, validation.paths, validation.concepts)
    say(f"Tuned threshold on {len(validation.paths)} validation images: "
        f"{tuner.best_threshold_:.3f} (official F1 {tuner.best_score_:.4f})")
    return tuner.tuned_estimator()


def tune_rule(model, X, y, **tuner_params):
    """A :class:`~imageclef_concepts.ThresholdTuner` fitted on held-out data around a fitted model.

    Parameters
    ----------
    model : fitted concept estimator
        Used as it is (``cv="prefit"``), never trained again.
    X, y
        Held-out images and their concepts, not seen in training.
    **tuner_params
        Other :class:`~imageclef_concepts.ThresholdTuner` parameters
        (``thresholds``, ``store_cv_results``...).

    Returns
    -------
    ThresholdTuner
        Fitted: ``best_threshold_``, ``best_score_`` and, for the model with
        the tuned rule, ``tuned_estimator()``.
    """
    from ..tuning._thresholds import ThresholdTuner

    return ThresholdTuner(model, cv="prefit", refit=False, **tuner_params).fit(X, y)


def concepts_at_thresholds(model, X, thresholds):
    """A fitted model's concepts for ``X`` at each threshold, from one prediction.

    Returns
    -------
    dict
        ``{threshold: list of tuple of str}``, one list per threshold.
    """
    from ..models._decision import DecisionRule

    probabilities = model.predict_proba(X)
    return {threshold: model.targets_.concepts_of(DecisionRule(threshold).apply(probabilities))
            for threshold in thresholds}


def predict_folder(model, images_dir, *, ids=None, batch_size=256, progress=True):
    """The concepts a model predicts for the images of a folder.

    Parameters
    ----------
    model : fitted concept estimator
        Anything with ``predict_concepts``.
    images_dir : str or path-like
        A folder of ``<image id>.<ext>`` files.
    ids : sequence of str, default=None
        The images to predict, in this order (a ground truth's ids, say);
        every one must have a file. By default every image of the folder.
    batch_size : int, default=256
        Images decoded and predicted at a time (memory stays bounded).
    progress : bool, default=True
        Show one progress bar.

    Returns
    -------
    ids : list of str
        Image ids (file names without extension): ``ids`` when given, else
        every image of the folder, sorted.
    concepts : list of tuple of str
    """
    from tqdm.auto import tqdm  # a widget in a notebook with ipywidgets, text elsewhere

    files = image_files_by_id(images_dir)
    if not files:
        raise ValueError(f"no image file in {images_dir}")
    if ids is None:
        ids = sorted(files)
    missing = [image_id for image_id in ids if image_id not in files]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) have no file in {images_dir}, "
                                f"e.g. {missing[:3]}")
    ids = list(ids)
    paths = [image_path(files, image_id) for image_id in ids]
    concepts = []
    with tqdm(total=len(paths), unit="image", desc="predicting", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            concepts += model.predict_concepts(chunk)
            bar.update(len(chunk))
    return ids, concepts


MODEL_SUFFIXES = (".keras", ".joblib", ".zip")


def check_run_ids_of_folder(images_dir, edition):
    """Refuse, before any prediction, the image files whose names a run file cannot hold.

    An image's id is its file name less the extension; :func:`write_run`
    refuses, for ``edition``, an id it cannot write as the evaluator would
    read it (a delimiter, ``ID`` from 2023 on, bytes that are not UTF-8...).
    Found here, each file is named (a ValueError) before the model is loaded.
    """
    from ..concept_files._io import run_id_problems
    from ..files._atomic import listing, shown_name

    files = image_files_by_id(images_dir)
    refused = [f"{shown_name(image_path(files, image_id))}: {problem}"
               for image_id, problem in run_id_problems(sorted(files), edition)]
    if refused:
        raise ValueError(listing(
            f"{len(refused)} image file(s) of {shown_name(images_dir)} have a name that a "
            f"{edition} run file cannot hold as an image id; rename them", refused))


def save_model(model, path):
    """Save a fitted model: ``.keras`` natively (with its rule), ``.zip`` archive, ``.joblib``.

    ``.keras`` is a network's native file; ``.zip`` the library's archive
    without pickle, for any of its concept estimators (ensembles, k-NN,
    baselines, networks), as :func:`load_model` and ``predict`` read it;
    ``.joblib`` a pickle. All are written to a temporary file in the same
    folder and moved into place, so a failed save never damages the file
    already at ``path``. The model's training checkpoint, if it has one, is
    removed only once the file is written: a failed save leaves the training
    resumable.
    """
    path = Path(path)
    if path.suffix == ".keras":
        model.save(path)
    elif path.suffix == ".zip":
        from sklearn.utils.validation import check_is_fitted

        from ..models._persistence import save_estimator

        check_is_fitted(model)
        save_estimator(model, path)
    elif path.suffix == ".joblib":
        import joblib

        from ..files._atomic import replaced_atomically

        if why := _not_a_model(model):  # load_model would refuse the file
            raise ValueError(f"{path}: {why}; nothing is written.")

        # A store is a folder of this machine, never saved: as in .keras and .zip files.
        stores = [(part, part.image_store) for part in image_readers(model)]
        try:
            use_image_store(model, None)
            with replaced_atomically(path) as temporary:
                joblib.dump(model, temporary)
        finally:
            for part, store in stores:
                part.set_params(image_store=store)
    else:
        raise ValueError(f"model file {path} must end in {' or '.join(MODEL_SUFFIXES)}.")
    if hasattr(model, "remove_checkpoint"):
        model.remove_checkpoint()


def _not_a_model(model):
    """Why ``model`` is not a model :func:`load_model` serves (a class, not an estimator of
    the library, one never fitted), or None."""
    if isinstance(model, type) or not all(hasattr(model, name) for name in (
            "predict_concepts", "get_params", "fit")):
        held = f"the class {model.__name__}" if isinstance(model, type) else \
            f"a {type(model).__name__}"
        return f"{held}, not a model (an estimator of the library, as save_model writes one)"
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        return f"a {type(model).__name__} that was never fitted: save a fitted model"
    return None


def load_model(path, *, allow_pickle=False):
    """Load a model file written by :func:`save_model` (or an ensemble's ``.zip`` archive).

    ``.keras`` files are read in Keras' safe mode, ``.zip`` archives
    (:meth:`ConceptEnsemble.save <imageclef_concepts.ConceptEnsemble.save>`)
    without pickle. A ``.joblib`` file is a
    pickle, which can run any code it holds: it is loaded only with
    ``allow_pickle=True``, for files you made yourself.
    """
    path = Path(path)
    check_regular_file(path, "model file")  # a pipe or a device is named, not "not found"
    if path.suffix == ".keras":
        from ..keras import ConceptCNNClassifier

        return ConceptCNNClassifier.load(path)
    if path.suffix == ".zip":
        from ..models._persistence import load_estimator

        return load_estimator(path)
    if path.suffix == ".joblib":
        if not allow_pickle:
            raise ValueError(f"{path} is a pickle, which can run any code it holds: load it "
                             "only if you made it yourself, with allow_pickle=True "
                             "(--allow-pickle on the command line).")
        import joblib

        try:
            model = joblib.load(path)
        except Exception as error:  # a corrupt pickle raises anything
            raise ValueError(f"{path} cannot be loaded: {type(error).__name__}: {error}") \
                from None
        if why := _not_a_model(model):
            raise ValueError(f"{path} holds {why}.")
        return model
    raise ValueError(f"model file {path} must end in {' or '.join(MODEL_SUFFIXES)}.")


def image_readers(model):
    """Every part of ``model`` that reads image files: those with an ``image_store`` parameter.

    An ensemble's members (fitted or not), a tuner's estimators and a k-NN's
    embedding network included.
    """
    readers, seen, pending = [], set(), [model]
    while pending:
        part = pending.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        if "image_store" in getattr(part, "get_params", dict)(deep=False):
            readers.append(part)
        for value in vars(part).values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                item = item[-1] if isinstance(item, tuple) and item else item  # (name, member)
                if hasattr(item, "get_params") and not isinstance(item, type):
                    pending.append(item)
    return readers


def use_image_store(model, image_store):
    """Point every part of a fitted ``model`` that reads image files at ``image_store``.

    Only their ``image_store`` parameter is set (see :func:`image_readers`).
    Returns how many parts read images: 0 means the store cannot help this model.
    """
    readers = image_readers(model)
    for part in readers:
        part.set_params(image_store=image_store)
    return len(readers)
