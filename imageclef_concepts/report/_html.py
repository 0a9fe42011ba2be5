"""A run looked at: one self-contained HTML file of its scores, ceilings, concepts and images.

:func:`write_report` turns a :class:`~imageclef_concepts.RunEvaluation` into
one HTML file that opens offline: no script, no external style sheet, font or
image; figures are PNG files embedded in base64 (matplotlib, the ``plots``
extra) and thumbnails small JPEGs made with Pillow. Every text read from a
file (ids, concepts, paths, messages) is HTML-escaped, and a name whose bytes
are not UTF-8 is shown with them as ``\\xNN``. The figures are drawn
in ``_report_parts``.
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING

import numpy as np

from ..concepts._bounds import oracle_bounds
from ..concepts._lists import as_target, is_concept_lists
from ..concepts._metrics import f1_from_counts, per_image_f1_scores
from ..files._atomic import check_not_an_input, check_writable_target, shown_name, write_atomically
from ._parts import STYLE, figures, thumbnails
from ._per_concept import per_concept_counts

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence

    from .._typing import ImageConcepts, PathLike
    from ..concept_files._evaluation import RunEvaluation
    from ..concepts._bounds import SplitBounds


def write_report(path: PathLike, evaluation: RunEvaluation, *,
                 train_concepts: PathLike | Sequence[ImageConcepts] | None = None,
                 images: PathLike | None = None, n_worst: int = 20, n_concepts: int = 20,
                 bounds: dict[str, SplitBounds] | None = None) -> None:
    """Write one self-contained HTML report of an evaluated run.

    The report holds the primary and secondary scores; the ceilings of the
    split (:func:`oracle_bounds`) when the training concepts are given; each
    concept's precision, recall and F1 against its frequency (a figure, and
    tables of the most frequent and of the worst concepts); the images with
    the lowest F1 with their true and predicted concepts, and their
    thumbnails when ``images`` is given. It opens offline: figures and
    thumbnails are embedded, and there is no script.

    Parameters
    ----------
    path : str or path-like
        The HTML file, written atomically. It may not be a folder, a device,
        a pipe or one of the inputs (the run, the ground truths, the
        training concepts, an image).
    evaluation : RunEvaluation
        What :func:`evaluate_run` returned.
    train_concepts : str, path-like or sequence of concept lists, default=None
        The training concepts (a concept file, or each image's concepts):
        the split's ceilings, and concept frequencies counted in training.
        Without them frequencies are counted in the ground truth.
    images : str or path-like, default=None
        The folder of the run's images (``<id>.png``, ``<id>.jpg``...): a
        thumbnail of each of the worst images. Images that cannot be read
        are named in the report.
    n_worst, n_concepts : int, default=20
        How many images, and how many concepts per table, are shown.
    bounds : dict of SplitBounds, default=None
        The ceilings already computed by :func:`run_bounds` for these
        training concepts (computed when None).

    Raises
    ------
    ValueError
        When ``path`` is one of the inputs; ``NotARegularFileError`` (an
        ``OSError``) when it is a folder, a device or a pipe, and
        ``FileNotFoundError`` for a missing training file or image folder;
        all before any work.

    Warns
    -----
    UserWarning
        Without matplotlib: the report is written without figures, and says
        which extra to install.

    Examples
    --------
    >>> import os, tempfile
    >>> from imageclef_concepts import evaluate_run, write_report, write_run
    >>> folder = tempfile.mkdtemp()
    >>> truth, run = os.path.join(folder, "truth.tsv"), os.path.join(folder, "run.tsv")
    >>> write_run(truth, ["a", "b"], ["C1;C2", "C3"])
    >>> write_run(run, ["a", "b"], ["C1", "C3;C4"])
    >>> report = os.path.join(folder, "report.html")
    >>> write_report(report, evaluate_run(run, truth), train_concepts=["C1;C3", "C1"])
    >>> "Mean F1 score" in open(report, encoding="utf-8").read()
    True
    """
    from ..files._numbers import check_whole_number  # scikit-learn's: not at --help

    for name, value in (("n_worst", n_worst), ("n_concepts", n_concepts)):
        check_whole_number(value, name)  # NumPy's ints taken, a bool refused
    _check_inputs(path, evaluation, train_concepts, images)
    training = _training_lists(train_concepts)
    if bounds is None and training is not None:
        bounds = run_bounds(evaluation, training)
    page = _page(evaluation, training, images, bounds or {}, n_worst, n_concepts)
    write_atomically(path, lambda stream: stream.write(page.encode("utf-8")))


def _training_lists(train_concepts):
    """The training concepts as concept lists: read from a file, or a frame's names."""
    if train_concepts is None:
        return None
    if isinstance(train_concepts, (str, bytes, os.PathLike)):
        from ..concept_files._io import read_concepts

        return read_concepts(train_concepts).concepts
    train_concepts = as_target(train_concepts, "train_concepts")
    if not is_concept_lists(train_concepts):
        raise ValueError("train_concepts must name its concepts (a concept file, concept "
                         "lists or a DataFrame with concept-named columns), as the run "
                         "does; got an indicator matrix.")
    return train_concepts


def run_bounds(evaluation: RunEvaluation, train_concepts: Sequence[ImageConcepts]
               ) -> dict[str, SplitBounds]:
    """The ceilings of an evaluated run's split: ``{"primary": ..., "secondary": ...}``.

    The secondary ceilings, when the run has a secondary score, restrict the
    training concepts and the secondary truth (or the ground truth) to the
    secondary score's concepts.
    """
    found = {"primary": oracle_bounds(train_concepts, evaluation.true_concepts)}
    if evaluation.secondary_concepts is not None:
        truth = evaluation.secondary_true_concepts or evaluation.true_concepts
        found["secondary"] = oracle_bounds(train_concepts, truth,
                                           concepts=evaluation.secondary_concepts)
    return found


def _check_inputs(path, evaluation, train_concepts, images):
    """Refuse, before any work, a target that would destroy something, and missing inputs."""
    check_writable_target(path, "report")
    named = [*evaluation.inputs, images]
    if isinstance(train_concepts, (str, bytes, os.PathLike)):
        if not os.path.isfile(train_concepts):
            raise FileNotFoundError(f"training concept file not found: {train_concepts}")
        named.append(train_concepts)
    if images is not None and not os.path.isdir(images):
        raise FileNotFoundError(f"image folder not found: {images}")
    check_not_an_input(path, named, "report")


def _text(value):
    # A name whose bytes are not UTF-8 (a folder b"d\xe9") is shown with them as \xNN:
    # the page is UTF-8 for people to read, and nothing in it is read back.
    return html.escape(shown_name(str(value)), quote=True)


def _number(value, digits=4):
    return "&ndash;" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _table(header, rows, caption=""):
    head = "".join(f"<th>{_text(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    caption = f"<caption>{_text(caption)}</caption>" if caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(evaluation, train_concepts, images, bounds, n_worst, n_concepts):
    scores, counted = per_image_f1_scores(evaluation.true_concepts,
                                          evaluation.predicted_concepts)
    concepts = _concept_rows(evaluation, counted, train_concepts)
    pictures, missing_matplotlib = figures(scores[counted], concepts,
                                           train_concepts is not None)
    worst = _worst_images(scores, counted, evaluation, n_worst)
    run = evaluation.inputs[0] if evaluation.inputs else "run"
    parts = [f"<h1>Run report: {_text(os.path.basename(run))}</h1>",
             "<p>" + "<br>".join(_text(f"{what}: {name}") for what, name in zip(
                 ("run", "ground truth", "secondary", "secondary"), evaluation.inputs))
             + "</p>",
             _scores_section(evaluation), _bounds_section(evaluation, bounds)]
    if missing_matplotlib:
        parts.append(f'<p class="note">No figures: {_text(missing_matplotlib)}</p>')
    parts.append(_concepts_section(concepts, pictures, n_concepts, train_concepts is not None))
    parts.append(_images_section(worst, scores, evaluation, images))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Run report: {_text(os.path.basename(run))}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts)
            + "\n</body></html>\n")


def _scores_section(evaluation):
    rows = [["Mean F1 score (primary)", f"<b>{evaluation.score!r}</b>"]]
    if evaluation.secondary_score is not None:
        rows.append(["Secondary F1 score", repr(evaluation.secondary_score)])
    rows += [["Images scored", f"{evaluation.n_scored} of {evaluation.n_images} (the others "
              "have no true concept and are left out of the mean)"],
             ["Edition", _text(evaluation.edition_note or evaluation.edition)]]
    notes = "".join(f"<li>{_text(note)}</li>" for note in evaluation.warnings)
    return ("<h2>Scores</h2>" + _table(["", "value"], rows)
            + (f"<p>Warnings:</p><ul>{notes}</ul>" if notes else ""))


def _bounds_section(evaluation, bounds):
    if not bounds:
        return ("<h2>The ceiling of the split</h2><p class=\"note\">Not computed: give the "
                "training concepts (<code>--bounds TRAIN_CONCEPTS</code>).</p>")
    names = list(bounds)
    run_scores = {"primary": evaluation.score, "secondary": evaluation.secondary_score}
    rows = [["this run", *(_number(run_scores[name]) for name in names)]]
    for label, key in (("a perfect model on the training vocabulary", "vocabulary_f1"),
                       ("the best single training image copied", "retrieval_f1"),
                       ("the best fixed top-k frequent concepts list", "top_k_f1")):
        rows.append([label, *(_number(getattr(bounds[name], key)) for name in names)])
    rows.append(["k of that list (chosen on the test set: an oracle)",
                 *(str(bounds[name].k) for name in names)])
    first = bounds[names[0]]
    return ("<h2>The ceiling of the split</h2>" + _table(["", *names], rows)
            + f"<p>{first.unseen_concepts:.1%} of the test concepts never occur in "
            f"training; {first.images_with_unseen:.1%} of the scored images have one, and on "
            f"{first.images_all_unseen:.1%} none of the concepts was seen in training (every "
            "model scores 0 there). A run cannot pass the first line without predicting "
            "concepts it never saw.</p>")


def _concept_rows(evaluation, counted, train_concepts):
    """Per concept of the scored images: name, frequency, support, predicted, P, R, F1."""
    true = [t for t, keep in zip(evaluation.true_concepts, counted) if keep]
    predicted = [p for p, keep in zip(evaluation.predicted_concepts, counted) if keep]
    names, n_both, n_true, n_pred = per_concept_counts(true, predicted)
    if train_concepts is not None:
        from collections import Counter

        from ..concepts._lists import split_concepts

        counts = Counter(c for image in train_concepts for c in set(split_concepts(image)))
        frequency = np.array([counts.get(name, 0) for name in names])
    else:
        frequency = n_true
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, n_both / np.maximum(n_pred, 1), np.nan)
        recall = np.where(n_true > 0, n_both / np.maximum(n_true, 1), np.nan)
    return {"name": names, "frequency": frequency, "support": n_true, "predicted": n_pred,
            "precision": precision, "recall": recall,
            "f1": f1_from_counts(n_both, n_true, n_pred)}


def _concepts_section(concepts, pictures, n_concepts, from_training):
    present = np.flatnonzero(concepts["support"] > 0)
    by_support = present[np.lexsort((present, -concepts["support"][present]))][:n_concepts]
    worst = present[np.lexsort((present, -concepts["support"][present],
                                concepts["f1"][present]))][:n_concepts]
    header = ["concept", "training images" if from_training else "images (ground truth)",
              "true", "predicted", "precision", "recall", "F1"]

    def rows(indices):
        return [[_text(concepts["name"][i]), str(concepts["frequency"][i]),
                 str(concepts["support"][i]), str(concepts["predicted"][i]),
                 *(_number(concepts[key][i], 3) for key in ("precision", "recall", "f1"))]
                for i in indices]
    wrong = np.flatnonzero((concepts["support"] == 0) & (concepts["predicted"] > 0))
    wrong = wrong[np.lexsort((wrong, -concepts["predicted"][wrong]))]
    listed = ", ".join(f"{_text(concepts['name'][i])} ({concepts['predicted'][i]})"
                       for i in wrong[:n_concepts])
    figure = "".join(pictures)
    return (f"<h2>Concepts</h2>{figure}<p>Over the scored images, {len(present)} concept(s) "
            f"are true in some image; {len(wrong)} concept(s) are predicted but never true"
            + (f", the most often predicted (images): {listed}" if listed else "") + ".</p>"
            + _table(header, rows(by_support), f"The {len(by_support)} concepts true in the "
                     "most images")
            + _table(header, rows(worst), f"The {len(worst)} worst concepts (lowest F1, the "
                     "most frequent first)"))


def _worst_images(scores, counted, evaluation, n_worst):
    """The scored images of lowest F1; among equals, the larger true sets, then file order."""
    rows = np.flatnonzero(counted)
    sizes = np.array([len(evaluation.true_concepts[i]) for i in rows])
    return rows[np.lexsort((rows, -sizes, scores[rows]))][:n_worst]


def _images_section(rows_shown, scores, evaluation, images):
    ids = [evaluation.image_ids[i] for i in rows_shown]
    shown, problems = thumbnails(images, ids) if images is not None else ({}, [])
    header = ["image", "F1", "true concepts (found in bold)", "predicted (wrong in italics)"]
    if images is not None:
        header.insert(1, "thumbnail")
    rows = []
    for row in rows_shown:
        image_id = evaluation.image_ids[row]
        true = evaluation.true_concepts[row]
        predicted = evaluation.predicted_concepts[row]
        cells = [_text(image_id), _number(scores[row]),
                 ", ".join(f"<b>{_text(c)}</b>" if c in predicted else _text(c) for c in true),
                 ", ".join(_text(c) if c in true else f"<i>{_text(c)}</i>" for c in predicted)
                 or "&ndash;"]
        if images is not None:
            picture = shown.get(image_id)
            cells.insert(1, f'<img alt="{_text(image_id)}" src="data:image/jpeg;base64,'
                            f'{picture}">' if picture else "not readable")
        rows.append(cells)
    unread = "".join(f"<li>{_text(problem)}</li>" for problem in problems)
    return (f"<h2>The {len(rows)} images with the lowest F1</h2>" + _table(header, rows)
            + (f"<p>Thumbnails that could not be made:</p><ul>{unread}</ul>" if unread
               else ""))


__all__ = ["run_bounds", "write_report"]
