"""The library's workflows, written once for the command line, the demo and the examples.

* :func:`train_and_tune`: train the CNN on a dataset, and with validation
  data keep its best epoch and tune its decision rule there;
* :func:`predict_folder`: the concepts of every image of a folder, ready for
  a run file;
* :func:`save_model` / :func:`load_model`: a model's native ``.keras`` file
  (its decision rule included), joblib only when asked.
"""

from pathlib import Path

from ._atomic_files import check_regular_file
from ._datasets import image_files_by_id


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
    from .keras import ConceptCNNClassifier

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
    from ._thresholds import ThresholdTuner

    tuner = ThresholdTuner(model, cv="prefit", refit=False).fit(validation.paths,
                                                                validation.concepts)
    say(f"Tuned threshold on {len(validation.paths)} validation images: "
        f"{tuner.best_threshold_:.3f} (official F1 {tuner.best_score_:.4f})")
    return tuner.tuned_estimator()


def predict_folder(model, images_dir, *, batch_size=256, progress=True):
    """The concepts a model predicts for every image of a folder.

    Parameters
    ----------
    model : fitted concept estimator
        Anything with ``predict_concepts``.
    images_dir : str or path-like
        A folder of ``<image id>.<ext>`` files.
    batch_size : int, default=256
        Images decoded and predicted at a time (memory stays bounded).
    progress : bool, default=True
        Show one progress bar.

    Returns
    -------
    ids : list of str
        Image ids (file names without extension), sorted.
    concepts : list of tuple of str
    """
    from tqdm import tqdm

    files = image_files_by_id(images_dir)
    if not files:
        raise ValueError(f"no image file in {images_dir}")
    ids = sorted(files)
    paths = [str(sorted(files[image_id])[0]) for image_id in ids]
    concepts = []
    with tqdm(total=len(paths), unit="image", desc="predicting", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            concepts += model.predict_concepts(chunk)
            bar.update(len(chunk))
    return ids, concepts


MODEL_SUFFIXES = (".keras", ".joblib")


def save_model(model, path):
    """Save a fitted model: ``.keras`` natively (with its rule), ``.joblib`` by pickle.

    Both are written to a temporary file in the same folder and moved into
    place, so a failed save never damages the file already at ``path``. The
    model's training checkpoint, if it has one, is removed only once the
    file is written: a failed save leaves the training resumable.
    """
    path = Path(path)
    if path.suffix == ".keras":
        model.save(path)
    elif path.suffix == ".joblib":
        import joblib

        from ._atomic_files import replaced_atomically

        with replaced_atomically(path) as temporary:
            joblib.dump(model, temporary)
    else:
        raise ValueError(f"model file {path} must end in {' or '.join(MODEL_SUFFIXES)}.")
    if hasattr(model, "remove_checkpoint"):
        model.remove_checkpoint()


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
        from .keras import ConceptCNNClassifier

        return ConceptCNNClassifier.load(path)
    if path.suffix == ".zip":
        from ._persistence import load_estimator

        return load_estimator(path)
    if path.suffix == ".joblib":
        if not allow_pickle:
            raise ValueError(f"{path} is a pickle, which can run any code it holds: load it "
                             "only if you made it yourself, with allow_pickle=True "
                             "(--allow-pickle on the command line).")
        import joblib

        try:
            return joblib.load(path)
        except Exception as error:  # a corrupt pickle raises anything
            raise ValueError(f"{path} cannot be loaded: {type(error).__name__}: {error}") \
                from None
    raise ValueError(f"model file {path} must end in .keras, .zip or .joblib.")
