"""The lines of a concept file, split and checked by one edition's rules.

Where an evaluator would silently drop or mis-read a line (a row skipped
because its id contains ``ID``, an empty ground truth scored as a concept
named ``""``, white space kept inside a concept, a duplicate ground-truth
id overwriting the first), the line is refused with the reason instead.
The library's own checks stay on top: a control or line-break character in
a line, a byte that is not UTF-8, an unbalanced quote. Every refusal names
the file and the line, in a :class:`ConceptFileError`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

from ._atomic_files import NotARegularFileError, open_regular_file
from ._concepts import CONCEPT_SEPARATOR, CUI_PATTERN, canonical_concept
from ._editions import DELIMITER_NAMES, HEADER_2026, HEADER_CELL

_LAYOUT_NAMES = {"\t": "<TAB>", "|": "|", ",": ","}
_HEADER_EXAMPLES = {"\t": "ID<TAB>cuis", "|": "ID|cuis", ",": "ID,CUIs"}


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
    >>> _ = open(path, "w").write("a\tC1\nb\tC2;;C3\n")
    >>> try:
    ...     read_concepts(path, edition="2019")
    ... except ConceptFileError as error:
    ...     print(len(error.problems), "problem, on line", error.problems[0].split(":")[1])
    1 problem, on line 2
    """

    def __init__(self, problems, summary="Invalid concept file"):
        self.problems = list(problems)
        if summary is None:  # the problems say it all, one per line
            super().__init__("\n".join(self.problems))
            return
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        lines = [f"{summary} ({len(self.problems)} problem(s)):"] + [
            f"  {problem}" for problem in shown
        ]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


@dataclass
class Line:
    """One line of a concept file as read: its id, concepts and problems."""

    number: int
    image_id: str
    concepts: tuple
    problems: list = field(default_factory=list)
    duplicate_concepts: tuple = ()


def checked_lines(path, raw, edition, role, *, max_concepts=None, cui_only=False):
    """Parse as ``role`` of ``edition``; raise on any problem, duplicate ids included."""
    lines, problems = parse_lines(path, raw, edition, role)
    problems += line_problems(path, lines, max_concepts, cui_only)
    problems += duplicate_id_problems(path, lines)
    if problems:
        what = {"truth": "ground truth", "run": "run",
                "secondary": "secondary ground truth"}[role]
        raise ConceptFileError(problems, f"Cannot read {path} as a {edition.name} {what}")
    return lines


def read_lines(path):
    """The file's lines, without their ends; nothing is checked but the encoding."""
    try:
        text = read_bytes(path, "concept file").decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConceptFileError(
            [f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})"],
            f"Cannot read {path}",
        ) from None
    # Lines end at \n (or \r\n) only, so that line numbers are the ones an editor
    # shows; any other line-break character inside a line is reported there.
    raw_lines = [line.removesuffix("\r") for line in text.split("\n")]
    if raw_lines[-1] == "":
        raw_lines.pop()  # the end of the last line, not a line
    if not any(line.strip() for line in raw_lines):
        raise ConceptFileError([f"{path}: the file holds no line"], f"Cannot read {path}")
    return raw_lines


def read_bytes(path, what):
    """The bytes of a regular file; a folder, a pipe or a device is refused unopened."""
    try:
        with open_regular_file(path, what) as handle:
            return handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except NotARegularFileError as error:
        raise ConceptFileError([str(error)], f"Cannot read {path}") from None


def parse_lines(path, raw_lines, edition, role):
    """Split the lines by ``edition``'s rules for ``role``; return (lines, file-level problems)."""
    truth = role != "run"
    delimiter = edition.truth_delimiter if truth else edition.run_delimiter
    if delimiter == "detect":
        delimiter = "|" if "|" in raw_lines[0] else "\t"
    header = edition.truth_header if truth else edition.run_header
    numbered = list(enumerate(raw_lines, start=1))
    problems = []
    first = _first_cell(raw_lines[0], delimiter)
    if header == "first":
        # 2022 skips the first line whatever it holds; 2026's evaluator skips it
        # only when it holds "ID" (case and all), while its check always does.
        cell = first if edition.skips_id_rows or first is None else first.upper()
        if cell is None or HEADER_CELL not in cell:
            problems.append(
                f"{path}:1: the {edition.name} evaluator always skips the first line of a "
                f"ground truth as its header, and this one is not a header (its first "
                f"cell is {first!r}); add a header line such as {_HEADER_EXAMPLES[delimiter]}")
        numbered = numbered[1:]
    elif header == "optional" and first is not None and HEADER_CELL in first:
        numbered = numbered[1:]
    elif header == "exact":
        try:
            cells = tuple(_csv_fields(raw_lines[0]))
        except csv.Error:
            cells = ()
        if cells != HEADER_2026:
            problems.append(f"{path}:1: expected the header line {','.join(HEADER_2026)} "
                            f"(the {edition.name} submission check requires it)")
        numbered = numbered[1:]
    lines = [_split_line(number, text_line, delimiter, edition, role)
             for number, text_line in numbered]
    if not lines:
        problems.append(f"{path}: the file holds a header and no image")
    return lines, problems


def _first_cell(text_line, delimiter):
    if delimiter != ",":
        return text_line.split(delimiter, 1)[0]
    try:
        fields = _csv_fields(text_line)
    except csv.Error:
        return None
    return fields[0] if fields else ""


# Characters that end a line for str.splitlines: none may appear inside a field,
# or a reader (ours with another splitter, or someone else's) sees other lines.
LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00]")


def _split_line(number, text_line, delimiter, edition, role):
    line = Line(number, "", ())
    if not text_line.strip():
        line.problems.append("blank line (every evaluator refuses it)")
        return line
    found = LINE_BREAKS.search(text_line)
    if found:
        line.problems.append(f"contains the control or line-break character "
                             f"U+{ord(found.group()):04X}")
        return line
    try:
        fields = _csv_fields(text_line) if delimiter == "," else text_line.split(delimiter)
    except csv.Error as error:
        line.problems.append(f"not a valid CSV line ({error})")
        return line
    line.image_id = fields[0]
    if len(fields) > 2:
        line.problems.append(
            f"{len(fields)} fields separated by {DELIMITER_NAMES[delimiter]}; expected "
            f"an image id and one concept field (the {edition.name} layout)")
        return line
    _check_image_id(line, delimiter, edition)
    if len(fields) == 1:
        _check_id_alone(line, delimiter, edition, role)
        return line
    concept_field = fields[1]
    if role == "run" and edition.strict_run_check and concept_field != concept_field.strip():
        line.problems.append("white space around the concept field (the "
                             f"{edition.name} submission check refuses it)")
    if not concept_field.strip():
        if role == "truth" and edition.strip:
            line.problems.append(
                f"an empty concept field: the {edition.name} evaluator would score this "
                "image as having one concept named '' and count it in the mean (only the "
                "2018-2021 evaluators leave images without concepts out); give its "
                "concepts or leave the image out")
        return line
    _check_concepts(line, concept_field.split(CONCEPT_SEPARATOR), edition, role)
    return line


def _check_image_id(line, delimiter, edition):
    image_id = line.image_id
    if not image_id.strip():
        line.problems.append("empty image id")
    elif image_id != image_id.strip():
        line.problems.append(f"white space around image id {image_id!r}")
    elif any(character in image_id for character in DELIMITER_NAMES):
        found = next(c for c in DELIMITER_NAMES if c in image_id)
        line.problems.append(
            f"image id {image_id!r} contains {DELIMITER_NAMES[found]}: the line is not in "
            f"the {edition.name} layout, <id>{_LAYOUT_NAMES[delimiter]}<concepts>")
    elif edition.skips_id_rows and HEADER_CELL in image_id:
        line.problems.append(
            f"image id {image_id!r} contains {HEADER_CELL!r}: the {edition.name} evaluator "
            "skips every such row as a header line, so this image would not be scored")


def _check_id_alone(line, delimiter, edition, role):
    allowed = edition.run_id_alone if role == "run" else edition.truth_id_alone
    if role == "run" and line.number == 1 and not edition.first_line_id_alone:
        line.problems.append(f"an image id alone on the first line: the {edition.name} "
                             "evaluator fails on it; write the id followed by "
                             f"{DELIMITER_NAMES[delimiter]}")
    elif not allowed:
        what = "ground-truth" if role != "run" else "run"
        line.problems.append(
            f"no {DELIMITER_NAMES[delimiter]} after the image id: the {edition.name} "
            f"evaluator refuses a {what} line holding an id alone")


def _csv_fields(text_line):
    """The fields of one CSV line; an unbalanced quote is an error, long fields are fine."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text_line) + 1))
    try:
        return next(csv.reader([text_line], strict=True), [])
    finally:
        csv.field_size_limit(limit)


def _check_concepts(line, pieces, edition, role):
    run = role == "run"
    seen, exact, duplicates = {}, set(), []
    for piece in pieces:
        text = piece.strip() if edition.strip else piece
        if not text.strip():
            line.problems.append(
                "empty concept (two ';' in a row, or one at an end): the evaluator would "
                "count a concept named ''")
            continue
        if text != text.strip():
            line.problems.append(
                f"white space around concept {piece!r}: the {edition.name} evaluator "
                "compares concepts with their white space")
            continue
        if "\t" in text:
            line.problems.append(f"concept {text!r} contains a tab: the line is not in the "
                                 f"{edition.name} layout")
            continue
        if run and edition.strict_run_check and not CUI_PATTERN.fullmatch(text):
            line.problems.append(f"{text!r} is not a UMLS CUI (C followed by digits), "
                                 f"which the {edition.name} submission check requires")
        if run and edition.duplicates_refused and text in exact:
            line.problems.append(f"concept {text!r} named twice: the {edition.name} "
                                 "evaluator refuses a run line that repeats a concept")
        exact.add(text)
        concept = canonical_concept(text)
        if concept in seen:
            duplicates.append(text)
        else:
            seen[concept] = concept
    if run and len(pieces) > edition.max_concepts:
        line.problems.append(f"{len(pieces)} concepts; the {edition.name} evaluator allows "
                             f"at most {edition.max_concepts}")
    line.concepts = tuple(seen.values())
    line.duplicate_concepts = tuple(duplicates)


def line_problems(path, lines, max_concepts=None, cui_only=False):
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


def duplicate_id_problems(path, lines):
    first_line = {}
    problems = []
    for line in lines:
        if line.problems:
            continue
        if line.image_id in first_line:
            problems.append(
                f"{path}:{line.number}: duplicate image id {line.image_id!r} "
                f"(first on line {first_line[line.image_id]})"
            )
        else:
            first_line[line.image_id] = line.number
    return problems
