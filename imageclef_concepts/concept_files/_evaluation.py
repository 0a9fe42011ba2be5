"""Scoring a run file against the ground truth, as an edition's evaluator does.

:func:`evaluate_run` reads both files (and a secondary ground truth) by an
edition's rules (``_editions``, ``_concept_lines``), refuses what that
evaluator refuses, and returns the official mean per-image F1 and the
secondary score in a :class:`RunEvaluation`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..concepts._lists import canonical_concept
from ._editions import edition_of, reported_name, rule_groups
from ._io import agreeing_editions, choose_reading
from ._lines import duplicate_id_problems, likeliest_first, line_problems, parse_lines
from ._text import ConceptFileError, cyclic_gc_paused, read_bytes, read_lines

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Collection

    from .._typing import PathLike


@dataclass
class RunEvaluation:
    """The official score of a run file and what was counted.

    Attributes
    ----------
    score : float
        The mean per-image F1, as the edition's evaluator returns it.
    n_images : int
        Images in the run (and in the ground truth).
    n_scored : int
        Images with at least one true concept, the ones averaged.
    warnings : list of str
        Problems that did not stop scoring (a concept repeated in another
        case, counted once).
    secondary_score : float or None
        The secondary F1, when a secondary ground truth or concept list was
        given.
    edition : str or None
        The edition the files were scored as.
    edition_note : str
        With ``edition="auto"``, how that edition was picked.
    image_ids, true_concepts, predicted_concepts : list
        What was scored, image by image in the run's order: each image's id,
        true concepts and predicted concepts (tuples of canonical concepts).
    secondary_true_concepts : list or None
        Each image's concepts in the secondary ground truth, when one was
        given (the secondary score restricts them to ``secondary_concepts``).
    secondary_concepts : frozenset of str or None
        The concepts the secondary score kept, when there is one.
    inputs : tuple of str
        The files read (run, ground truth, secondary truth and concept list):
        what a report on this evaluation must not overwrite.

    Examples
    --------
    >>> from imageclef_concepts import RunEvaluation
    >>> float(RunEvaluation(score=0.5, n_images=4, n_scored=3, warnings=[]))
    0.5
    """

    score: float
    n_images: int
    n_scored: int
    warnings: list
    secondary_score: float | None = None
    edition: str | None = None
    edition_note: str = ""
    # What was scored, for reports: long, so left out of the repr.
    image_ids: list = field(default_factory=list, repr=False)
    true_concepts: list = field(default_factory=list, repr=False)
    predicted_concepts: list = field(default_factory=list, repr=False)
    secondary_true_concepts: list | None = field(default=None, repr=False)
    secondary_concepts: frozenset | None = field(default=None, repr=False)
    inputs: tuple = field(default=(), repr=False)

    def __float__(self):
        return self.score


def evaluate_run(run: PathLike, ground_truth: PathLike, *, edition: str = "auto",
                 secondary_truth: PathLike | None = None,
                 secondary_concepts: PathLike | Collection[str] | None = None,
                 max_concepts: int | None = None, cui_only: bool = False) -> RunEvaluation:
    """Check a run file against the ground truth and score it as an edition's evaluator does.

    Parameters
    ----------
    run, ground_truth : str or path-like
        The files, in the edition's layouts (2022: a tab-separated ground
        truth with a header line, a ``|``-separated run).
    edition : {"auto", "2018", ..., "2026"}, default="auto"
        Whose rules to read, refuse and score by (the table of the page on
        concept files in the documentation).
        ``"auto"`` tries every edition: the editions that accept the files
        must score them alike, and ``edition`` of the result names one;
        when they score differently a :class:`ConceptFileError` names them.
    secondary_truth : str or path-like, default=None
        The second ground truth of the secondary score (secondary F1
        reported from 2022, computed by the published evaluators 2024-2026,
        against ``concepts_manual.csv``, the manually validated concepts), in the
        ground truth's layout and with the same images. The run is scored
        against it with both sides restricted to ``secondary_concepts``, by
        default the edition's fixed list (15 CUIs in 2025 and 2026, 14 in 2024).
    secondary_concepts : str, path-like or collection of str, default=None
        The concepts of the secondary score: a file with one concept per
        line, or the concepts. Without ``secondary_truth``, the ground truth
        itself is restricted to them.
    max_concepts : int, default=None
        Also refuse lines with more concepts than this (the edition's own
        maximum always applies).
    cui_only : bool, default=False
        Also refuse concepts that are not UMLS CUIs (``C`` followed by digits).

    Returns
    -------
    RunEvaluation
        ``score`` is what the official script returns; ``float()`` gives it.

    Raises
    ------
    ConceptFileError
        Listing, with file and line, every line the edition refuses: malformed
        lines, duplicate image ids, images of the ground truth missing from
        the run and images of the run unknown to the ground truth.

    Examples
    --------
    >>> import os, tempfile
    >>> from imageclef_concepts import evaluate_run, write_run
    >>> folder = tempfile.mkdtemp()
    >>> truth, run = os.path.join(folder, "truth.tsv"), os.path.join(folder, "run.tsv")
    >>> write_run(truth, ["a", "b"], ["C1;C2", "C3"])
    >>> write_run(run, ["a", "b"], ["C1", "C3;C4"])
    >>> result = evaluate_run(run, truth, secondary_concepts=["C1", "C2"])
    >>> round(result.score, 4), result.n_scored, round(result.secondary_score, 4)
    (0.6667, 2, 0.6667)
    >>> result.edition
    '2019'
    """
    if max_concepts is not None:  # nan checked nothing, True refused a second concept
        from ..files._numbers import check_whole_number  # scikit-learn's: not at --help

        max_concepts = check_whole_number(max_concepts, "max_concepts")
    with cyclic_gc_paused():
        result = _evaluate(run, ground_truth, edition, secondary_truth, secondary_concepts,
                           max_concepts, cui_only)
    # Paths given as bytes (a name that is not UTF-8, from os.listdir(b"...")) are
    # inputs too: a report must never be written over them.
    result.inputs = tuple(os.fsdecode(path) for path in (run, ground_truth, secondary_truth,
                                                         secondary_concepts)
                          if isinstance(path, (str, bytes, os.PathLike)))
    return result


def _evaluate(run, ground_truth, edition, secondary_truth, secondary_concepts, max_concepts,
              cui_only):
    chosen_edition = None if edition == "auto" else edition_of(edition)
    texts = {"run": read_lines(run), "truth": read_lines(ground_truth),
             "secondary": None if secondary_truth is None else read_lines(secondary_truth)}
    subset = _concept_subset(secondary_concepts)
    options = dict(run=run, ground_truth=ground_truth, secondary_truth=secondary_truth,
                   subset=subset, max_concepts=max_concepts, cui_only=cui_only, texts=texts)
    if chosen_edition is not None:
        return _evaluate_as(chosen_edition, **options)
    found: dict = {}
    for group in likeliest_first(rule_groups(), texts["truth"][0]):
        # Once one group scores the files, the others need only be refused.
        accepted = any(not isinstance(outcome, ConceptFileError) for outcome in found.values())
        try:
            found[group] = _evaluate_as(group[0], **options, limit=1 if accepted else None)
        except ConceptFileError as error:
            found[group] = error
        except ValueError as error:  # no secondary list for this edition
            found[group] = ConceptFileError([str(error)])
    outcomes = {group: found[group] for group in rule_groups()}
    chosen = choose_reading(outcomes, f"{run} against {ground_truth}", key=_scored_alike,
                     describe=lambda result: f": {result.score:.6g}" + (
                         "" if result.secondary_score is None
                         else f", secondary {result.secondary_score:.6g}"))
    group = agreeing_editions(outcomes, chosen, key=_scored_alike)
    name = reported_name(group)
    others = [edition.name for edition in group if edition.name != name]
    refused = [edition.name for editions, outcome in outcomes.items()
               if isinstance(outcome, ConceptFileError) for edition in editions]
    reasons = ["picked by auto"]
    if others:
        reasons.append(f"{', '.join(others)} score these files alike")
    if refused:
        reasons.append(f"{', '.join(refused)} refuse them")
    chosen.edition, chosen.edition_note = name, f"{name} ({'; '.join(reasons)})"
    return chosen


def _scored_alike(result):
    """What two editions must agree on for a run: its scores."""
    return result.score, result.secondary_score, result.n_scored


def _evaluate_as(edition, *, run, ground_truth, secondary_truth, subset, max_concepts,
                 cui_only, texts, limit=None):
    """The evaluation of ``edition``: a RunEvaluation, or a ConceptFileError with every problem.

    With ``limit``, the error may stop at that many problems (only whether
    the edition refuses the files matters).
    """
    refused = f"Run {run} cannot be scored as the {edition.name} edition"
    truth_lines, problems = _truth_lines(ground_truth, texts["truth"], edition, limit)
    if limit is not None and len(problems) >= limit:
        raise ConceptFileError(problems, refused)
    run_lines, run_problems = parse_lines(run, texts["run"], edition, "run", limit)
    problems += run_problems + line_problems(run, run_lines, max_concepts, cui_only)
    problems += duplicate_id_problems(run, run_lines)
    problems += _id_set_problems(run, run_lines, ground_truth, truth_lines)
    if edition.run_in_truth_order and not problems:
        problems += _order_problems(run, run_lines, truth_lines, edition)
    if secondary_truth is not None:
        second_lines, second_problems = _secondary_lines(
            secondary_truth, texts["secondary"], edition, subset, ground_truth, truth_lines)
        problems += second_problems
    if problems:
        raise ConceptFileError(problems, f"Run {run} cannot be scored as the {edition.name} "
                               "edition")
    # The evaluators' order: the run file's (each loops over the run's images).
    truth_of = {line.image_id: line.concepts for line in truth_lines}
    predictions = [line.concepts for line in run_lines]
    true_concepts = [truth_of[line.image_id] for line in run_lines]
    n_scored = sum(1 for concepts in true_concepts if concepts)
    if not n_scored:
        raise ConceptFileError([_no_concept(ground_truth, edition)],
                               f"Run {run} cannot be scored as the {edition.name} edition")
    score = official_mean_f1(true_concepts, predictions)
    secondary = second_true = None
    if secondary_truth is not None:
        second = {line.image_id: line.concepts for line in second_lines}
        second_true = [second[line.image_id] for line in run_lines]
        subset = edition.secondary_cuis if subset is None else subset
        secondary = _secondary_score(second_true, predictions, subset, secondary_truth, run,
                                     edition)
    elif subset is not None:
        secondary = _secondary_score(true_concepts, predictions, subset, ground_truth, run,
                                     edition)
    notes = [
        f"{run}:{line.number}: concept(s) {', '.join(line.duplicate_concepts)} repeated in "
        "another case, counted once"
        for line in run_lines if line.duplicate_concepts
    ]
    return RunEvaluation(score, len(truth_lines), n_scored, notes, secondary, edition.name,
                         image_ids=[line.image_id for line in run_lines],
                         true_concepts=true_concepts, predicted_concepts=predictions,
                         secondary_true_concepts=second_true,
                         secondary_concepts=None if subset is None else frozenset(subset))


def check_ground_truth(ground_truth: PathLike, *, edition: str,
                       secondary_truth: PathLike | None = None) -> None:
    """Refuse, before a run is made, a ground truth no run could be scored against.

    What :func:`evaluate_run` checks of the ground truth (and of the
    secondary ground truth) alone, by ``edition``'s rules: every line, the
    ids of the two files, some image with a concept (and with one of the
    edition's secondary concepts). A :class:`ConceptFileError` names each
    file and line, as :func:`evaluate_run` would once the run is written.
    """
    chosen = edition_of(edition)
    with cyclic_gc_paused():
        truth_lines, problems = _truth_lines(ground_truth, read_lines(ground_truth), chosen)
        second_lines = None
        if secondary_truth is not None:
            second_lines, second_problems = _secondary_lines(
                secondary_truth, read_lines(secondary_truth), chosen, None, ground_truth,
                truth_lines)
            problems += second_problems
    if not problems and not any(line.concepts for line in truth_lines):
        problems.append(_no_concept(ground_truth, chosen))
    if not problems and second_lines is not None and not any(
            set(line.concepts) & chosen.secondary_cuis for line in second_lines):
        problems.append(_no_secondary_concept(secondary_truth))
    if problems:
        raise ConceptFileError(problems, f"No run can be scored against {ground_truth} as the "
                               f"{chosen.name} edition")


def _truth_lines(ground_truth, text, edition, limit=None):
    """The ground truth's lines by ``edition``'s rules, and every problem (``limit``: some)."""
    truth_lines, problems = parse_lines(ground_truth, text, edition, "truth", limit)
    problems += line_problems(ground_truth, truth_lines)
    problems += duplicate_id_problems(ground_truth, truth_lines)
    return truth_lines, problems


def _secondary_lines(secondary_truth, text, edition, subset, ground_truth, truth_lines):
    """The secondary ground truth's lines, and its problems (its ids against the truth's)."""
    if subset is None and edition.secondary_cuis is None:
        raise ValueError(f"the {edition.name} evaluator has no secondary ground truth; "
                         "give the secondary concepts too (secondary_concepts=)")
    second_lines, problems = parse_lines(secondary_truth, text, edition, "secondary")
    problems += line_problems(secondary_truth, second_lines)
    problems += duplicate_id_problems(secondary_truth, second_lines)
    problems += _secondary_id_problems(secondary_truth, second_lines, ground_truth, truth_lines)
    return second_lines, problems


def _no_concept(ground_truth, edition):
    return f"{ground_truth}: no image has a concept; the {edition.name} evaluator divides by zero"


def _no_secondary_concept(truth_path):
    return (f"{truth_path}: no image has one of the secondary concepts; the secondary score "
            "divides by zero")


def official_mean_f1(true_concepts, predictions):
    """The evaluators' mean per-image F1, summed as they sum it, to the last digit.

    Each evaluator adds one image's F1 at a time, in the run file's order,
    to a float, leaves out the images without a true concept, then divides
    by the number of the others; the vectorised
    :func:`~imageclef_concepts.imageclef_f1_score` (a numpy mean) may differ
    in the last digit. ``true_concepts`` and ``predictions`` are in the run's
    order, each image's concepts distinct and canonical.
    """
    total, count = 0.0, len(true_concepts)
    for true, predicted in zip(true_concepts, predictions):
        if not true:
            count -= 1
            continue
        correct = len(set(true).intersection(predicted))
        if correct:
            total += 2 * correct / (len(true) + len(predicted))
    return total / count


def _secondary_score(true_concepts, predictions, subset, truth_path, run, edition):
    kept_true = [tuple(c for c in concepts if c in subset) for concepts in true_concepts]
    if not any(kept_true):
        raise ConceptFileError([_no_secondary_concept(truth_path)],
                               f"Run {run} cannot be scored as the {edition.name} edition")
    kept_predicted = [tuple(c for c in concepts if c in subset) for concepts in predictions]
    return official_mean_f1(kept_true, kept_predicted)


def _id_set_problems(run, run_lines, ground_truth, truth_lines):
    known = {line.image_id for line in truth_lines}
    in_run = {line.image_id for line in run_lines}
    problems = [
        f"{run}:{line.number}: image id {line.image_id!r} is not in the ground truth"
        for line in run_lines
        if line.image_id not in known and not line.problems
    ]
    if any(line.problems and not line.image_id for line in run_lines):
        return problems  # the run's unreadable lines may hold the images not found
    missing = [line for line in truth_lines
               if line.image_id not in in_run and not line.problems]
    if len(missing) > _MISSING_LISTED:
        shown = ", ".join(f"{line.image_id!r} (line {line.number})"
                          for line in missing[:_MISSING_LISTED])
        return problems + [f"{ground_truth}: {len(missing)} images of the ground truth are "
                           f"missing from the run: {shown}, ..."]
    return problems + [
        f"{ground_truth}:{line.number}: image id {line.image_id!r} is missing from the run"
        for line in missing
    ]


_MISSING_LISTED = 5  # images missing from a run listed one by one, at most


def _order_problems(run, run_lines, truth_lines, edition):
    for run_line, truth_line in zip(run_lines, truth_lines):
        if run_line.image_id != truth_line.image_id:
            return [f"{run}:{run_line.number}: image {run_line.image_id!r} where the ground "
                    f"truth has {truth_line.image_id!r}: the {edition.name} submission check "
                    "wants the ground truth's order"]
    return []


def _secondary_id_problems(secondary_truth, second_lines, ground_truth, truth_lines):
    primary = {line.image_id for line in truth_lines}
    second = {line.image_id for line in second_lines}
    problems = [
        f"{secondary_truth}:{line.number}: image id {line.image_id!r} is not in the ground "
        f"truth {ground_truth} (the evaluator would count it as a zero)"
        for line in second_lines if line.image_id not in primary and not line.problems
    ]
    problems += [
        f"{ground_truth}:{line.number}: image id {line.image_id!r} is missing from the "
        f"secondary ground truth {secondary_truth}"
        for line in truth_lines if line.image_id not in second and not line.problems
    ]
    return problems


def _concept_subset(concepts):
    """The secondary score's concepts, from a file (one per line) or a collection."""
    if concepts is None:
        return None
    if isinstance(concepts, (str, bytes, os.PathLike)):  # bytes: a path, not a collection
        path = os.fsdecode(concepts)
        try:
            lines = read_bytes(path, "concept list").decode("utf-8-sig").split("\n")
        except UnicodeDecodeError as error:
            raise ConceptFileError([f"{path}: not a UTF-8 text file ({error.reason})"],
                                   f"Cannot read {path}") from None
        concepts = [line.strip() for line in lines if line.strip()]
        if not concepts:
            raise ConceptFileError([f"{path}: no concept in the file"], f"Cannot read {path}")
    return frozenset(canonical_concept(concept) for concept in concepts)



__all__ = ["RunEvaluation", "evaluate_run"]
