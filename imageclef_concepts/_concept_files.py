"""ImageCLEF concept files: ground truth and run files in the three layouts.

==========  =========================================  ====================
layout      one image per line                         header
==========  =========================================  ====================
``2019``    ``<id><TAB><CUI>;<CUI>;...``               none
``2022``    ``<id>|<CUI>;<CUI>;...`` (2022 and 2023)   optional ``ID|...``
``2024``    ``<id>,<CUI>;<CUI>;...`` (comma CSV)       ``ID,CUIs``
==========  =========================================  ====================

An id alone (or an id and an empty concept field) means no concepts.
:func:`read_concepts` detects the layout, :func:`write_run` writes the layout
asked for, and :func:`evaluate_run` checks a run against the ground truth
before scoring it exactly as the organisers' script does.
"""

import csv
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

from ._concepts import CONCEPT_SEPARATOR, canonical_concept, split_concepts
from ._metrics import imageclef_f1_score

LAYOUTS = ("2019", "2022", "2024")
_DELIMITERS = {"2019": "\t", "2022": "|", "2024": ","}
_HEADER_2024 = ("ID", "CUIS")
_CUI_PATTERN = re.compile(r"C\d+")


class ConceptFileError(ValueError):
    """A concept or run file that cannot be used, with every problem found.

    Attributes
    ----------
    problems : list of str
        One message per problem, each starting with ``<file>:<line>:``.
    """

    def __init__(self, problems, summary="Invalid concept file"):
        self.problems = list(problems)
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        lines = [f"{summary} ({len(self.problems)} problem(s)):"] + [
            f"  {problem}" for problem in shown
        ]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


class ConceptFile(NamedTuple):
    """The content of a concept file, in the file's order.

    Attributes
    ----------
    ids : list of str
        Image ids.
    concepts : list of tuple of str
        Each image's concepts in canonical (upper-case) form, duplicates within a
        line removed.
    layout : str
        The layout detected: ``"2019"``, ``"2022"`` or ``"2024"``.
    """

    ids: list
    concepts: list
    layout: str


@dataclass
class _Line:
    number: int
    image_id: str
    concepts: tuple
    problems: list = field(default_factory=list)
    duplicate_concepts: tuple = ()


def read_concepts(path):
    r"""Read a ground-truth or run file in any ImageCLEF layout.

    Parameters
    ----------
    path : str or path-like
        The file. Its layout (2019 tab, 2022 pipe, 2024 CSV) is detected.

    Returns
    -------
    ConceptFile
        Named tuple ``(ids, concepts, layout)`` in the file's order.

    Raises
    ------
    ConceptFileError
        Listing every malformed line and duplicate id with its line number.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "concepts.tsv")
    >>> _ = open(path, "w").write("img1\tC0040405;C0817096\nimg2\n")
    >>> read_concepts(path)
    ConceptFile(ids=['img1', 'img2'], concepts=[('C0040405', 'C0817096'), ()], layout='2019')
    """
    lines, layout = _read_valid_lines(path)
    return ConceptFile(
        [line.image_id for line in lines], [line.concepts for line in lines], layout
    )


def _read_valid_lines(path):
    """Parse a file, raising on any malformed line or duplicate id."""
    lines, layout = _parse_file(path)
    problems = _line_problems(path, lines) + _duplicate_id_problems(path, lines)
    if problems:
        raise ConceptFileError(problems, f"Cannot read {path}")
    _warn_duplicate_concepts(path, lines)
    return lines, layout


def write_run(path, ids, concepts, layout="2019"):
    """Write image ids and their concepts as an ImageCLEF run file.

    Parameters
    ----------
    path : str or path-like
        Where to write.
    ids : sequence of str
        Image ids, one per line, in this order.
    concepts : sequence of collections of str or of ``;``-joined strings
        Each image's concepts.
    layout : {"2019", "2022", "2024"}, default="2019"
        ``"2019"`` is ``<id><TAB><CUI>;...``; ``"2022"`` is ``<id>|<CUI>;...``;
        ``"2024"`` is a comma CSV with the header ``ID,CUIs``.
    """
    layout = _check_layout(layout)
    ids = list(ids)
    concepts = list(concepts)
    if len(ids) != len(concepts):
        raise ValueError(
            f"write_run got {len(ids)} ids but {len(concepts)} concept lists."
        )
    delimiter = _DELIMITERS[layout]
    rows = [_run_row(image_id, image_concepts, delimiter)
            for image_id, image_concepts in zip(ids, concepts)]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        if layout == "2024":
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["ID", "CUIs"])
            writer.writerows(rows)
        else:
            handle.writelines(f"{image_id}{delimiter}{joined}\n" for image_id, joined in rows)


def _run_row(image_id, image_concepts, delimiter):
    image_id = str(image_id)
    if not image_id.strip() or any(c in image_id for c in (delimiter, "\n", "\r")):
        raise ValueError(
            f"Image id {image_id!r} is empty or contains the layout's delimiter "
            f"{delimiter!r} or a line break."
        )
    names = list(dict.fromkeys(split_concepts(image_concepts)))
    for name in names:
        if delimiter in name or "\n" in name:
            raise ValueError(
                f"Concept {name!r} of image {image_id!r} contains the layout's "
                f"delimiter {delimiter!r} or a line break."
            )
    return image_id, CONCEPT_SEPARATOR.join(names)


@dataclass
class RunEvaluation:
    """The official score of a run file and what was counted.

    Attributes
    ----------
    score : float
        The mean per-image F1, as the organisers' ``evaluate-f1.py`` prints.
    n_images : int
        Images in the run (and in the ground truth).
    n_scored : int
        Images with at least one true concept, the ones averaged.
    warnings : list of str
        Problems that did not stop scoring (duplicate concepts in a line,
        counted once).
    secondary_score : float or None
        The secondary F1 of the 2022+ editions (both sets restricted to the
        ``secondary_concepts``), when they were given.
    """

    score: float
    n_images: int
    n_scored: int
    warnings: list
    secondary_score: float = None

    def __float__(self):
        return self.score


def evaluate_run(run, ground_truth, *, max_concepts=None, cui_only=False,
                 secondary_concepts=None):
    """Check a run file against the ground truth and give its official score.

    Parameters
    ----------
    run, ground_truth : str or path-like
        The files, each in any layout.
    max_concepts : int, default=None
        Refuse lines with more concepts than this (100 in the 2022+ editions).
    cui_only : bool, default=False
        Refuse concepts that are not UMLS CUIs (``C`` followed by digits), as
        the 2022+ editions do.
    secondary_concepts : str, path-like or collection of str, default=None
        The concepts of the secondary score (from 2022 on, the manually
        validated ones): a file with one concept per line, or the concepts.
        The run is then also scored on them (``secondary_score``).

    Returns
    -------
    RunEvaluation
        ``score`` is what the official script returns; ``float()`` gives it.

    Raises
    ------
    ConceptFileError
        Listing, with line numbers, every malformed line, duplicate image id,
        image of the ground truth missing from the run and image of the run
        unknown to the ground truth.
    """
    truth_lines, _ = _read_valid_lines(ground_truth)
    run_lines, _ = _parse_file(run)
    problems = _line_problems(run, run_lines, max_concepts, cui_only)
    problems += _duplicate_id_problems(run, run_lines)
    problems += _id_set_problems(run, run_lines, ground_truth, truth_lines)
    if problems:
        raise ConceptFileError(problems, f"Run {run} cannot be scored")
    predicted = {line.image_id: line.concepts for line in run_lines}
    true_concepts = [line.concepts for line in truth_lines]
    predictions = [predicted[line.image_id] for line in truth_lines]
    subset = _concept_subset(secondary_concepts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an all-empty truth scores 0.0 as officially
        score = imageclef_f1_score(true_concepts, predictions)
        secondary = (None if subset is None
                     else imageclef_f1_score(true_concepts, predictions, concepts=subset))
    n_scored = sum(1 for concepts in true_concepts if concepts)
    notes = [
        f"{run}:{line.number}: duplicate concept(s) {', '.join(line.duplicate_concepts)} "
        "counted once"
        for line in run_lines if line.duplicate_concepts
    ]
    return RunEvaluation(score, len(truth_lines), n_scored, notes, secondary)


def _concept_subset(concepts):
    """The secondary score's concepts, from a file (one per line) or a collection."""
    if concepts is None:
        return None
    if isinstance(concepts, (str, os.PathLike)):
        path = concepts
        try:
            with open(path, encoding="utf-8-sig") as handle:
                lines = handle.read().split("\n")
        except FileNotFoundError:
            raise FileNotFoundError(f"Concept list not found: {path}") from None
        concepts = [line.strip() for line in lines if line.strip()]
        if not concepts:
            raise ConceptFileError([f"{path}: no concept in the file"], f"Cannot read {path}")
    return {canonical_concept(concept) for concept in concepts}


def _check_layout(layout):
    layout = str(layout)
    if layout == "2023":
        return "2022"
    if layout not in LAYOUTS:
        raise ValueError(
            f"Unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)} "
            "(2023 is the same as 2022)."
        )
    return layout


def _parse_file(path):
    """Split a concept file into lines, detecting its layout; nothing is checked yet."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"Concept file not found: {path}") from None
    except UnicodeDecodeError as error:
        raise ConceptFileError(
            [f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})"],
            f"Cannot read {path}",
        ) from None
    raw_lines = text.splitlines()
    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()  # blank lines at the very end carry nothing
    layout = _detect_layout(raw_lines)
    numbered = list(enumerate(raw_lines, start=1))
    if numbered and _is_header(numbered[0][1], layout):
        numbered = numbered[1:]
    elif layout == "2024":
        raise ConceptFileError(
            [f"{path}:1: a comma-separated concept file must start with the header ID,CUIs"],
            f"Cannot read {path}",
        )
    return [_split_line(path, number, text_line, layout) for number, text_line in numbered], layout


def _detect_layout(raw_lines):
    if raw_lines and _is_header(raw_lines[0], "2024"):
        return "2024"
    for text_line in raw_lines:
        if "\t" in text_line:
            return "2019"
        if "|" in text_line:
            return "2022"
        if "," in text_line:
            return "2024"
    return "2019"  # ids alone: no concepts anywhere


def _is_header(text_line, layout):
    if layout == "2024":
        fields = next(csv.reader([text_line]), [])
        return tuple(f.strip().upper() for f in fields) == _HEADER_2024
    if layout == "2022":
        return text_line.split("|", 1)[0].strip().upper() == "ID"
    return False


def _split_line(path, number, text_line, layout):
    if layout == "2024":
        fields = next(csv.reader([text_line]), [])
    else:
        fields = text_line.split(_DELIMITERS[layout])
    line = _Line(number, fields[0] if fields else "", ())
    if not text_line.strip():
        line.problems.append("blank line")
        return line
    if len(fields) > 2:
        line.problems.append(
            f"{len(fields)} fields separated by {_DELIMITERS[layout]!r}; expected "
            "an image id and at most one concept field"
        )
        return line
    if not line.image_id.strip():
        line.problems.append("empty image id")
    elif line.image_id != line.image_id.strip():
        line.problems.append(f"white space around image id {line.image_id!r}")
    raw_concepts = fields[1].split(CONCEPT_SEPARATOR) if len(fields) == 2 and fields[1] else []
    _check_concepts(line, raw_concepts)
    return line


def _check_concepts(line, raw_concepts):
    seen, duplicates = {}, []
    for raw in raw_concepts:
        if not raw.strip():
            line.problems.append("empty concept (two ';' in a row, or one at an end)")
            continue
        if raw != raw.strip():
            line.problems.append(f"white space around concept {raw!r}")
        concept = canonical_concept(raw)
        if concept in seen:
            duplicates.append(raw.strip())
        else:
            seen[concept] = concept
    line.concepts = tuple(seen.values())
    line.duplicate_concepts = tuple(duplicates)


def _line_problems(path, lines, max_concepts=None, cui_only=False):
    problems = []
    for line in lines:
        messages = list(line.problems)
        if max_concepts is not None and len(line.concepts) > max_concepts:
            messages.append(
                f"{len(line.concepts)} concepts; at most {max_concepts} are allowed"
            )
        if cui_only:
            bad = [c for c in line.concepts if not _CUI_PATTERN.fullmatch(c.upper())]
            if bad:
                messages.append(f"not UMLS CUIs: {', '.join(bad)}")
        problems += [f"{path}:{line.number}: {message}" for message in messages]
    return problems


def _duplicate_id_problems(path, lines):
    first_line = {}
    problems = []
    for line in lines:
        if line.image_id in first_line:
            problems.append(
                f"{path}:{line.number}: duplicate image id {line.image_id!r} "
                f"(first on line {first_line[line.image_id]})"
            )
        else:
            first_line[line.image_id] = line.number
    return problems


def _id_set_problems(run, run_lines, ground_truth, truth_lines):
    known = {line.image_id for line in truth_lines}
    in_run = {line.image_id for line in run_lines}
    problems = [
        f"{run}:{line.number}: image id {line.image_id!r} is not in the ground truth"
        for line in run_lines
        if line.image_id not in known and not line.problems
    ]
    problems += [
        f"{ground_truth}:{line.number}: image id {line.image_id!r} is missing from the run"
        for line in truth_lines
        if line.image_id not in in_run
    ]
    return problems


def _warn_duplicate_concepts(path, lines):
    affected = [line for line in lines if line.duplicate_concepts]
    if affected:
        shown = ", ".join(str(line.number) for line in affected[:10])
        warnings.warn(
            f"{path}: {len(affected)} line(s) repeat a concept (lines {shown}"
            f"{', ...' if len(affected) > 10 else ''}); each is counted once.",
            UserWarning,
            stacklevel=3,
        )


__all__ = [
    "ConceptFile",
    "ConceptFileError",
    "RunEvaluation",
    "evaluate_run",
    "read_concepts",
    "write_run",
]
