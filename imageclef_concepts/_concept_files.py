"""ImageCLEF concept files: ground truth and run files in the three layouts.

==========  =========================================  ====================
layout      one image per line                         header
==========  =========================================  ====================
``2019``    ``<id><TAB><CUI>;<CUI>;...``               none
``2022``    ``<id>|<CUI>;<CUI>;...`` (2022 and 2023)   optional ``ID|...``
``2024``    ``<id>,<CUI>;<CUI>;...`` (comma CSV)       ``ID,CUIs``
==========  =========================================  ====================

An id and an empty concept field (``img1<TAB>``) mean no concepts; a line
without the layout's delimiter is an error, as is a file with no line.
Lines end at ``\n`` or ``\r\n`` only; other line-break characters inside a
line are reported with its number.
:func:`read_concepts` detects the layout, :func:`write_run` writes the layout
asked for, and :func:`evaluate_run` checks a run against the ground truth
before scoring it exactly as the organisers' script does.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from ._atomic_files import open_regular_file, write_atomically
from ._concepts import CONCEPT_SEPARATOR, CUI_PATTERN, canonical_concept, split_concepts

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence

    from ._typing import ImageConcepts, PathLike

LAYOUTS = ("2019", "2022", "2024")
_DELIMITERS = {"2019": "\t", "2022": "|", "2024": ","}
_HEADER_2024 = ("ID", "CUIS")


class ConceptFileError(ValueError):
    r"""A concept or run file that cannot be used, with every problem found.

    Attributes
    ----------
    problems : list of str
        One message per problem, each starting with ``<file>:<line>:``.

    Examples
    --------
    >>> import os, tempfile
    >>> from imageclef_concepts import ConceptFileError, read_concepts
    >>> path = os.path.join(tempfile.mkdtemp(), "truth.tsv")
    >>> _ = open(path, "w").write("a\tC1\nb C2\n")
    >>> try:
    ...     read_concepts(path)
    ... except ConceptFileError as error:
    ...     print(len(error.problems), "problem, on line", error.problems[0].split(":")[1])
    1 problem, on line 2
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

    Examples
    --------
    >>> from imageclef_concepts import ConceptFile
    >>> ConceptFile(["img1"], [("C1",)], "2019").layout
    '2019'
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


def read_concepts(path: PathLike) -> ConceptFile:
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
    >>> _ = open(path, "w").write("img1\tC0040405;c0817096\nimg2\t\n")
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


def write_run(path: PathLike, ids: Sequence[str], concepts: Sequence[ImageConcepts],
              layout: str = "2019") -> None:
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

    Raises
    ------
    ValueError
        For anything that would not read back identically: an id or concept
        with a line break, a tab, NUL or the delimiter, a ``;`` inside a
        concept, a duplicate id. Nothing is written then.

    Examples
    --------
    >>> import os, tempfile
    >>> from imageclef_concepts import write_run
    >>> path = os.path.join(tempfile.mkdtemp(), "run.csv")
    >>> write_run(path, ["img1", "img2"], [["C0040405", "c0817096"], []], layout="2024")
    >>> print(open(path).read(), end="")
    ID,CUIs
    img1,C0040405;C0817096
    img2,
    """
    layout = _check_layout(layout)
    ids = list(ids)
    concepts = list(concepts)
    if len(ids) != len(concepts):
        raise ValueError(
            f"write_run got {len(ids)} ids but {len(concepts)} concept lists."
        )
    delimiter = _DELIMITERS[layout]
    rows = [_run_row(image_id, image_concepts, delimiter, layout)
            for image_id, image_concepts in zip(ids, concepts)]
    _refuse_duplicate_ids([image_id for image_id, _ in rows])
    buffer = io.StringIO(newline="")
    if layout == "2024":
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["ID", "CUIs"])
        writer.writerows(rows)
    else:
        buffer.writelines(f"{image_id}{delimiter}{joined}\n" for image_id, joined in rows)
    text = buffer.getvalue().encode("utf-8")
    write_atomically(path, lambda handle: handle.write(text))


# Characters that end a line for str.splitlines: none may appear inside a field,
# or a reader (ours with another splitter, or someone else's) sees other lines.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00]")


def _run_row(image_id, image_concepts, delimiter, layout):
    image_id = str(image_id)
    problem = _field_problem(image_id, delimiter)
    if problem is None and image_id != image_id.strip():
        problem = "has white space at an end"
    if problem is None and layout == "2022" and image_id.strip().upper() == "ID":
        problem = "would be read as the optional header line of the 2022 layout"
    if problem:
        raise ValueError(f"Image id {image_id!r} {problem}.")
    names = list(dict.fromkeys(split_concepts(image_concepts)))
    for name in names:
        problem = _field_problem(name, delimiter)
        if problem is None and CONCEPT_SEPARATOR in name:
            problem = f"contains the concept separator {CONCEPT_SEPARATOR!r}"
        if problem:
            raise ValueError(f"Concept {name!r} of image {image_id!r} {problem}.")
    return image_id, CONCEPT_SEPARATOR.join(names)


def _field_problem(text, delimiter):
    """Why ``text`` cannot be written as one field of a run file, or None."""
    if not text.strip():
        return "is empty"
    if delimiter in text:
        return f"contains the layout's delimiter {delimiter!r}"
    if "\t" in text:  # the 2019 delimiter: the layout would be detected wrongly
        return "contains a tab"
    found = _LINE_BREAKS.search(text)
    if found:
        return f"contains the control or line-break character U+{ord(found.group()):04X}"
    return None


def _refuse_duplicate_ids(ids):
    seen = set()
    duplicates = [image_id for image_id in ids if image_id in seen or seen.add(image_id)]
    if duplicates:
        raise ValueError(f"{len(duplicates)} duplicate image id(s), e.g. "
                         f"{', '.join(map(repr, duplicates[:5]))}: a run has one line per image.")


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

    def __float__(self):
        return self.score


def evaluate_run(run: PathLike, ground_truth: PathLike, *, max_concepts: int | None = None,
                 cui_only: bool = False,
                 secondary_concepts: PathLike | None = None) -> RunEvaluation:
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
    """
    # Here, not at the top: the command line imports this module for its
    # option choices, and --help should not wait for scikit-learn.
    from ._metrics import imageclef_f1_score

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
            with open_regular_file(path, "concept list") as handle:  # a pipe would block
                lines = handle.read().decode("utf-8-sig").split("\n")
        except UnicodeDecodeError as error:
            raise ConceptFileError([f"{path}: not a UTF-8 text file ({error.reason})"],
                                   f"Cannot read {path}") from None
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
    _check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConceptFileError(
            [f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})"],
            f"Cannot read {path}",
        ) from None
    # Lines end at \n (or \r\n) only, so that line numbers are the ones an editor
    # shows; any other line-break character inside a line is reported there.
    raw_lines = [line.removesuffix("\r") for line in text.split("\n")]
    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()  # blank lines at the very end carry nothing
    if not raw_lines:
        raise ConceptFileError([f"{path}: the file holds no line"], f"Cannot read {path}")
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


def _check_regular_file(path):
    """Refuse folders, pipes and devices before opening (a pipe would block)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"Concept file not found: {path}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe or a device)"
        raise ConceptFileError([f"{path}: {kind}, not a concept file"], f"Cannot read {path}")


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
        try:
            fields = _csv_fields(text_line)
        except csv.Error:
            return False
        return tuple(f.strip().upper() for f in fields) == _HEADER_2024
    if layout == "2022":
        return text_line.split("|", 1)[0].strip().upper() == "ID"
    return False


def _split_line(path, number, text_line, layout):
    delimiter = _DELIMITERS[layout]
    line = _Line(number, "", ())
    if not text_line.strip():
        line.problems.append("blank line")
        return line
    found = _LINE_BREAKS.search(text_line)
    if found:
        line.problems.append(f"contains the control or line-break character "
                             f"U+{ord(found.group()):04X}")
        return line
    try:
        fields = _csv_fields(text_line) if layout == "2024" else text_line.split(delimiter)
    except csv.Error as error:
        line.problems.append(f"not a valid CSV line ({error})")
        return line
    line.image_id = fields[0] if fields else ""
    if len(fields) < 2:
        line.problems.append(f"no {delimiter!r} after the image id: expected "
                             f"<id>{delimiter}<concepts> (the {layout} layout)")
        return line
    if len(fields) > 2:
        line.problems.append(
            f"{len(fields)} fields separated by {delimiter!r}; expected "
            "an image id and one concept field"
        )
        return line
    if not line.image_id.strip():
        line.problems.append("empty image id")
    elif line.image_id != line.image_id.strip():
        line.problems.append(f"white space around image id {line.image_id!r}")
    raw_concepts = fields[1].split(CONCEPT_SEPARATOR) if fields[1] else []
    _check_concepts(line, raw_concepts)
    return line


def _csv_fields(text_line):
    """The fields of one CSV line; an unbalanced quote is an error, long fields are fine."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text_line) + 1))
    try:
        return next(csv.reader([text_line], strict=True), [])
    finally:
        csv.field_size_limit(limit)


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
            bad = [c for c in line.concepts if not CUI_PATTERN.fullmatch(c.upper())]
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
