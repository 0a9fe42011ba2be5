"""ImageCLEF concept files: ground truth and run files, read as each edition's evaluator reads them.

Every edition of ImageCLEFmed Caption's concept detection published an
evaluator, and each reads files its own way: the delimiter of the ground
truth and of the run, header lines, an image id alone on a line, white
space, the per-line maximum, the secondary score. :data:`EDITIONS` holds
those rules, one :class:`Edition` per year, with the evaluator each comes
from (the table of ``docs/concept_files.rst``). :func:`read_concepts`,
:func:`evaluate_run` and :func:`write_run` take ``edition=``; ``"auto"``
tries every edition and keeps the one reading that fits.

Where an evaluator would silently drop or mis-read a line (a row skipped
because its id contains ``ID``, an empty ground truth scored as a concept
named ``""``, white space kept inside a concept, a duplicate ground-truth
id overwriting the first), the line is refused with the reason instead.
The library's own checks stay on top: a control or line-break character in
a line, a byte that is not UTF-8, an unbalanced quote. Every refusal names
the file and the line.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

from ._atomic_files import NotARegularFileError, open_regular_file, write_atomically
from ._concepts import CONCEPT_SEPARATOR, CUI_PATTERN, canonical_concept, split_concepts

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Collection, Sequence

    from ._typing import ImageConcepts, PathLike


# ------------------------------------------------------------- the editions

MAX_CONCEPTS_PER_IMAGE = 100
"""The per-line maximum of run files from 2022 on (``max_num_concepts``)."""

_MAX_CONCEPTS_2018 = 1286  # the 2018 evaluator's max_num_concepts (the largest ground truth)

SECONDARY_CUIS = frozenset({
    "C0000726", "C0002978", "C0006141", "C0023216", "C0024485",
    "C0030797", "C0032743", "C0037303", "C0037949", "C0040405",
    "C0041618", "C0817096", "C0920367", "C1140618", "C1306645",
})
"""The 15 CUIs of the 2025 and 2026 secondary score (``allowed_concepts``)."""

# The 2024 list is the 2025 one before the OCT CUI was added ("new OCT cui",
# taubsity/clef-caption-evaluation db68dc8, 2025-02-13).
_SECONDARY_CUIS_2024 = SECONDARY_CUIS - {"C0920367"}

_HEADER_CELL = "ID"  # 2023+: a row whose first cell contains this is skipped as a header
_HEADER_2026 = ("ID", "CUIs")  # the 2026 submission check's exact header


@dataclass(frozen=True)
class Edition:
    """How one year's published evaluator reads and scores concept files.

    Attributes
    ----------
    name : str
        The year.
    truth_delimiter, run_delimiter : str
        ``"\\t"``, ``"|"`` or ``","`` (a comma CSV with quoting); ``"detect"``
        is ``"|"`` when the file's first line holds one, else a tab (2023).
    truth_header, run_header : {"none", "first", "optional", "exact"}
        ``"first"``: the first line is always skipped (it must be a header);
        ``"optional"``: skipped when its first cell contains ``ID``;
        ``"exact"``: the header ``ID,CUIs`` is required.
    skips_id_rows : bool
        The evaluator skips *every* row whose first cell contains ``ID``;
        such a row after the first is refused here (an image would vanish).
    truth_id_alone, run_id_alone : bool
        Whether a line holding only an image id is accepted.
    first_line_id_alone : bool
        False when the evaluator crashes on a run whose first line is an id
        alone (2018: its duplicate check reads an unset variable).
    strip : bool
        Concepts are stripped of white space before comparing (2022 on);
        before that, white space around a concept is refused here, since the
        evaluator would compare it as part of the concept.
    duplicates_refused : bool
        A run line naming the same concept twice (exact text) is refused.
    max_concepts : int
        The most concepts a run line may hold.
    strict_run_check : bool
        The 2026 submission check: run concepts must be ``C`` followed by
        digits, with no white space around the concept field.
    run_in_truth_order : bool
        The run lists the images in the ground truth's order (2026).
    secondary_cuis : frozenset of str or None
        The fixed concepts of the secondary score, against a second ground
        truth (2024 on); None when the evaluator has none.
    source : str
        Where the rules come from.
    """

    name: str
    truth_delimiter: str
    run_delimiter: str
    truth_header: str
    run_header: str
    skips_id_rows: bool
    truth_id_alone: bool
    run_id_alone: bool
    first_line_id_alone: bool
    strip: bool
    duplicates_refused: bool
    max_concepts: int
    strict_run_check: bool
    run_in_truth_order: bool
    secondary_cuis: frozenset | None
    source: str = field(compare=False)

    def rules(self):
        """The reading and scoring rules alone: editions with equal rules read files alike."""
        return replace(self, name="")

    @property
    def run_layout(self):
        """The delimiter :func:`write_run` writes for this edition."""
        return "|" if self.run_delimiter == "detect" else self.run_delimiter


_CROWDAI_2018 = Edition(
    name="2018", truth_delimiter="\t", run_delimiter="\t", truth_header="none",
    run_header="none", skips_id_rows=False, truth_id_alone=True, run_id_alone=True,
    first_line_id_alone=False, strip=False, duplicates_refused=True,
    max_concepts=_MAX_CONCEPTS_2018, strict_run_check=False, run_in_truth_order=False,
    secondary_cuis=None,
    source="crowdAI/CLEF_evaluators_2018, concept_detection/concept_detection_evaluator.py",
)
_ASSUMED_2019 = replace(
    _CROWDAI_2018, name="2019", first_line_id_alone=True,
    source="assumed: the 2018 crowdAI checks (the 2019 grader is unpublished) without "
           "their first-line crash; scored as evaluate-f1.py (2019) scores",
)
_AICROWD_2022 = Edition(
    name="2022", truth_delimiter="\t", run_delimiter="|", truth_header="first",
    run_header="none", skips_id_rows=False, truth_id_alone=False, run_id_alone=True,
    first_line_id_alone=True, strip=True, duplicates_refused=True,
    max_concepts=MAX_CONCEPTS_PER_IMAGE, strict_run_check=False, run_in_truth_order=False,
    secondary_cuis=None,
    source="the AIcrowd 2022 evaluator (copy: icrto/ImageClefMedical, "
           "concept_detection/multilabel_baseline/evaluator.py)",
)
_EVALUATOR_2023 = replace(
    _AICROWD_2022, name="2023", truth_delimiter="detect", run_delimiter="detect",
    truth_header="optional", run_header="optional", skips_id_rows=True,
    source="the 2023 evaluator (copy: TiagoFilipeSousaGoncalves/ImageCLEFmedical2023VCMI, "
           "concept_detection/evaluator.py)",
)
_EVALUATOR_2024 = replace(
    _EVALUATOR_2023, name="2024", truth_delimiter=",", run_delimiter=",",
    secondary_cuis=_SECONDARY_CUIS_2024,
    source="assumed: taubsity/clef-caption-evaluation at its first commit (720c808, "
           "2024-11-29, the evaluator carried over from 2024)",
)
_EVALUATOR_2025 = replace(
    _EVALUATOR_2024, name="2025", secondary_cuis=SECONDARY_CUIS,
    source="taubsity/clef-caption-evaluation, concept_detection/evaluator.py",
)
_EVALUATOR_2026 = replace(
    _EVALUATOR_2025, name="2026", truth_header="first", run_header="exact",
    run_id_alone=False, strict_run_check=True, run_in_truth_order=True,
    source="taubsity/clef-caption-evaluation-2026, concept_detection/evaluator.py and "
           "submission_check.py",
)

EDITIONS = {edition.name: edition for edition in (
    _CROWDAI_2018,
    _ASSUMED_2019,
    replace(_ASSUMED_2019, name="2020", source="assumed: as 2019 (no evaluator published)"),
    replace(_ASSUMED_2019, name="2021", source="assumed: as 2019 (no evaluator published)"),
    _AICROWD_2022,
    _EVALUATOR_2023,
    _EVALUATOR_2024,
    _EVALUATOR_2025,
    _EVALUATOR_2026,
)}
"""Every edition's rules, by year (:class:`Edition`)."""

EDITION_CHOICES = ("auto", *EDITIONS)

# When several editions read a file alike, the one named: the project's
# historical layout names first (tab 2019, pipe 2022, comma 2024).
_PREFERRED = ("2019", "2022", "2024")
_DELIMITER_NAMES = {"\t": "a tab", "|": "'|'", ",": "','"}
_LAYOUT_NAMES = {"\t": "<TAB>", "|": "|", ",": ","}
_HEADER_EXAMPLES = {"\t": "ID<TAB>cuis", "|": "ID|cuis", ",": "ID,CUIs"}


def _edition(name):
    """The :class:`Edition` of a name, or a clear error."""
    name = str(name)
    if name not in EDITIONS:
        raise ValueError(f"Unknown edition {name!r}; expected 'auto' or one of "
                         f"{', '.join(EDITIONS)}.")
    return EDITIONS[name]


# ------------------------------------------------------------------ errors

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


class ConceptFile(NamedTuple):
    """The content of a concept file, in the file's order.

    Attributes
    ----------
    ids : list of str
        Image ids.
    concepts : list of tuple of str
        Each image's concepts in canonical (upper-case) form, duplicates within a
        line removed.
    edition : str
        The edition the file was read as (with ``edition="auto"``, the one
        picked). ``layout`` is an older name for it.

    Examples
    --------
    >>> from imageclef_concepts import ConceptFile
    >>> ConceptFile(["img1"], [("C1",)], "2019").edition
    '2019'
    """

    ids: list
    concepts: list
    edition: str

    @property
    def layout(self):
        """The edition (the name this field had before editions)."""
        return self.edition


@dataclass
class _Line:
    number: int
    image_id: str
    concepts: tuple
    problems: list = field(default_factory=list)
    duplicate_concepts: tuple = ()


# ---------------------------------------------------------------- reading

def read_concepts(path: PathLike, *, edition: str = "auto") -> ConceptFile:
    r"""Read a ground-truth or run file as an ImageCLEF edition's evaluator reads it.

    Parameters
    ----------
    path : str or path-like
        The file.
    edition : {"auto", "2018", ..., "2026"}, default="auto"
        Whose rules to read by (the table of the page on concept files in the
        documentation); the file is accepted when
        it is a valid ground truth or run of that edition. ``"auto"`` tries
        every edition: when the ones that accept the file read it alike, the
        result names one of them; when they read it differently, a
        :class:`ConceptFileError` names them and asks for ``edition=``.

    Returns
    -------
    ConceptFile
        Named tuple ``(ids, concepts, edition)`` in the file's order.

    Raises
    ------
    ConceptFileError
        Listing every malformed line and duplicate id with its line number.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "concepts.tsv")
    >>> _ = open(path, "w").write("img1\tC0040405;c0817096\nimg2\n")
    >>> read_concepts(path)
    ConceptFile(ids=['img1', 'img2'], concepts=[('C0040405', 'C0817096'), ()], edition='2019')
    """
    chosen_edition = None if edition == "auto" else _edition(edition)
    raw = _raw_lines(path)
    if chosen_edition is not None:
        lines = _read_either(path, raw, chosen_edition)
        _warn_duplicate_concepts(path, lines)
        return _concept_file(lines, chosen_edition.name)
    outcomes, lines_of = {}, {}
    for group in _rule_groups():
        try:
            lines_of[group] = _read_either(path, raw, group[0])
            outcomes[group] = _concept_file(lines_of[group], "")
        except ConceptFileError as error:
            outcomes[group] = error
    chosen = _choose(outcomes, path, describe=lambda content: "")
    group = _chosen_group(outcomes, chosen)
    _warn_duplicate_concepts(path, next(lines_of[g] for g in lines_of if g[0] in group))
    return chosen._replace(edition=_named(group))


def _concept_file(lines, edition):
    return ConceptFile([line.image_id for line in lines], [line.concepts for line in lines],
                       edition)


def _read_either(path, raw, edition):
    """The file as a ground truth of ``edition`` or, failing that, as a run."""
    try:
        lines = _checked_lines(path, raw, edition, "truth")
    except ConceptFileError as as_truth:
        try:
            lines = _checked_lines(path, raw, edition, "run")
        except ConceptFileError:
            raise as_truth from None
    return lines


def _checked_lines(path, raw, edition, role, *, max_concepts=None, cui_only=False):
    """Parse as ``role`` of ``edition``; raise on any problem, duplicate ids included."""
    lines, problems = _parse(path, raw, edition, role)
    problems += _line_problems(path, lines, max_concepts, cui_only)
    problems += _duplicate_id_problems(path, lines)
    if problems:
        what = {"truth": "ground truth", "run": "run",
                "secondary": "secondary ground truth"}[role]
        raise ConceptFileError(problems, f"Cannot read {path} as a {edition.name} {what}")
    return lines


def _rule_groups():
    """Editions grouped by equal rules, oldest first: each group reads files alike."""
    groups = {}
    for edition in EDITIONS.values():
        groups.setdefault(edition.rules(), []).append(edition)
    return [tuple(group) for group in groups.values()]


def _named(group):
    """The name reported for a group of editions that read the files alike."""
    names = [edition.name for edition in group]
    return next((name for name in _PREFERRED if name in names), names[-1])


def _chosen_group(outcomes, chosen):
    """Every edition whose outcome equals ``chosen`` (the editions that read alike)."""
    return tuple(edition for group, outcome in outcomes.items()
                 if not isinstance(outcome, ConceptFileError) and _same(outcome, chosen)
                 for edition in group)


def _same(first, second):
    if isinstance(first, RunEvaluation):
        return (first.score, first.secondary_score, first.n_scored) == \
            (second.score, second.secondary_score, second.n_scored)
    return first[:2] == second[:2]


def _choose(outcomes, what, describe):
    """The outcome of ``edition="auto"``: the accepted reading, if the accepting editions agree."""
    accepted = {group: outcome for group, outcome in outcomes.items()
                if not isinstance(outcome, ConceptFileError)}
    if not accepted:
        # Every edition refuses: report the one with the fewest problems, the
        # likeliest intended (the newest among equals).
        group, error = min(outcomes.items(),
                           key=lambda item: (len(item[1].problems), -int(item[0][-1].name)))
        names = ", ".join(edition.name for edition in group)
        raise ConceptFileError(
            error.problems,
            f"No edition accepts {what}; read as {names}, the closest (pass edition= to "
            "choose)")
    readings = []
    for group, outcome in accepted.items():
        for reading in readings:
            if _same(reading[1], outcome):
                reading[0].extend(group)
                break
        else:
            readings.append(([*group], outcome))
    if len(readings) > 1:
        shown = "; ".join(f"{', '.join(e.name for e in editions)}{describe(outcome)}"
                          for editions, outcome in readings)
        raise ConceptFileError(
            [f"{what}: editions read it differently ({shown}); pass edition= "
             "(--edition) to say which"],
            summary=None)
    return readings[0][1]


def _raw_lines(path):
    """The file's lines, without their ends; nothing is checked but the encoding."""
    try:
        text = _read_bytes(path, "concept file").decode("utf-8-sig")
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


def _read_bytes(path, what):
    """The bytes of a regular file; a folder, a pipe or a device is refused unopened."""
    try:
        with open_regular_file(path, what) as handle:
            return handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except NotARegularFileError as error:
        raise ConceptFileError([str(error)], f"Cannot read {path}") from None


def _parse(path, raw_lines, edition, role):
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
        if cell is None or _HEADER_CELL not in cell:
            problems.append(
                f"{path}:1: the {edition.name} evaluator always skips the first line of a "
                f"ground truth as its header, and this one is not a header (its first "
                f"cell is {first!r}); add a header line such as {_HEADER_EXAMPLES[delimiter]}")
        numbered = numbered[1:]
    elif header == "optional" and first is not None and _HEADER_CELL in first:
        numbered = numbered[1:]
    elif header == "exact":
        try:
            cells = tuple(_csv_fields(raw_lines[0]))
        except csv.Error:
            cells = ()
        if cells != _HEADER_2026:
            problems.append(f"{path}:1: expected the header line {','.join(_HEADER_2026)} "
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
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00]")


def _split_line(number, text_line, delimiter, edition, role):
    line = _Line(number, "", ())
    if not text_line.strip():
        line.problems.append("blank line (every evaluator refuses it)")
        return line
    found = _LINE_BREAKS.search(text_line)
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
            f"{len(fields)} fields separated by {_DELIMITER_NAMES[delimiter]}; expected "
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
    elif any(character in image_id for character in _DELIMITER_NAMES):
        found = next(c for c in _DELIMITER_NAMES if c in image_id)
        line.problems.append(
            f"image id {image_id!r} contains {_DELIMITER_NAMES[found]}: the line is not in "
            f"the {edition.name} layout, <id>{_LAYOUT_NAMES[delimiter]}<concepts>")
    elif edition.skips_id_rows and _HEADER_CELL in image_id:
        line.problems.append(
            f"image id {image_id!r} contains {_HEADER_CELL!r}: the {edition.name} evaluator "
            "skips every such row as a header line, so this image would not be scored")


def _check_id_alone(line, delimiter, edition, role):
    allowed = edition.run_id_alone if role == "run" else edition.truth_id_alone
    if role == "run" and line.number == 1 and not edition.first_line_id_alone:
        line.problems.append(f"an image id alone on the first line: the {edition.name} "
                             "evaluator fails on it; write the id followed by "
                             f"{_DELIMITER_NAMES[delimiter]}")
    elif not allowed:
        what = "ground-truth" if role != "run" else "run"
        line.problems.append(
            f"no {_DELIMITER_NAMES[delimiter]} after the image id: the {edition.name} "
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


def _warn_duplicate_concepts(path, lines):
    affected = [line for line in lines if line.duplicate_concepts]
    if affected:
        shown = ", ".join(str(line.number) for line in affected[:10])
        warnings.warn(
            f"{path}: {len(affected)} line(s) repeat a concept (lines {shown}"
            f"{', ...' if len(affected) > 10 else ''}); each is counted once.",
            UserWarning,
            stacklevel=4,
        )


# ---------------------------------------------------------------- writing

def write_run(path: PathLike, ids: Sequence[str], concepts: Sequence[ImageConcepts],
              edition: str | None = None, *, layout: str | None = None) -> None:
    """Write image ids and their concepts as a run file an edition's evaluator accepts.

    Parameters
    ----------
    path : str or path-like
        Where to write.
    ids : sequence of str
        Image ids, one per line, in this order (the 2026 evaluator wants the
        ground truth's order).
    concepts : sequence of collections of str or of ``;``-joined strings
        Each image's concepts.
    edition : {"2018", ..., "2026"}, default="2019"
        2018-2021 write ``<id><TAB><CUI>;...``; 2022 and 2023
        ``<id>|<CUI>;...``; 2024 on a comma CSV with the header ``ID,CUIs``.
        An image without concepts keeps an empty concept field.
    layout : str, default=None
        The older name of ``edition`` (``"2019"``, ``"2022"``, ``"2024"``).

    Raises
    ------
    ValueError
        For anything the edition's evaluator would refuse or read back
        differently: an id or concept with a line break, a tab, NUL or the
        delimiter, a ``;`` inside a concept, a duplicate id, more concepts than
        the edition allows, an id containing ``ID`` from 2023 on, a concept
        that is not a CUI in 2026. Nothing is written then.

    Examples
    --------
    >>> import os, tempfile
    >>> from imageclef_concepts import write_run
    >>> path = os.path.join(tempfile.mkdtemp(), "run.csv")
    >>> write_run(path, ["img1", "img2"], [["C0040405", "c0817096"], []], edition="2025")
    >>> print(open(path).read(), end="")
    ID,CUIs
    img1,C0040405;C0817096
    img2,
    """
    if edition is not None and layout is not None and str(edition) != str(layout):
        raise ValueError(f"write_run got edition={edition!r} and layout={layout!r}; give one.")
    chosen = _edition(edition if edition is not None else layout if layout is not None
                      else "2019")
    ids = list(ids)
    concepts = list(concepts)
    if len(ids) != len(concepts):
        raise ValueError(
            f"write_run got {len(ids)} ids but {len(concepts)} concept lists."
        )
    rows = [_run_row(image_id, image_concepts, chosen)
            for image_id, image_concepts in zip(ids, concepts)]
    _refuse_duplicate_ids([image_id for image_id, _ in rows])
    delimiter = chosen.run_layout
    buffer = io.StringIO(newline="")
    if delimiter == ",":
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_HEADER_2026)
        writer.writerows(rows)
    else:
        buffer.writelines(f"{image_id}{delimiter}{joined}\n" for image_id, joined in rows)
    text = buffer.getvalue().encode("utf-8")
    write_atomically(path, lambda handle: handle.write(text))


def _run_row(image_id, image_concepts, edition):
    image_id = str(image_id)
    delimiter = edition.run_layout
    problem = _field_problem(image_id, delimiter, is_id=True)
    if problem is None and image_id != image_id.strip():
        problem = "has white space at an end"
    if problem is None and edition.skips_id_rows and _HEADER_CELL in image_id:
        problem = (f"contains {_HEADER_CELL!r}: the {edition.name} evaluator skips such "
                   "rows as headers")
    if problem:
        raise ValueError(f"Image id {image_id!r} {problem}.")
    names = list(dict.fromkeys(split_concepts(image_concepts)))
    for name in names:
        problem = _field_problem(name, delimiter)
        if problem is None and CONCEPT_SEPARATOR in name:
            problem = f"contains the concept separator {CONCEPT_SEPARATOR!r}"
        if problem is None and edition.strict_run_check and not CUI_PATTERN.fullmatch(name):
            problem = f"is not a UMLS CUI, which the {edition.name} submission check requires"
        if problem:
            raise ValueError(f"Concept {name!r} of image {image_id!r} {problem}.")
    if len(names) > edition.max_concepts:
        raise ValueError(f"Image {image_id!r} has {len(names)} concepts; the "
                         f"{edition.name} evaluator allows at most {edition.max_concepts}.")
    return image_id, CONCEPT_SEPARATOR.join(names)


def _field_problem(text, delimiter, is_id=False):
    """Why ``text`` cannot be written as one field of a run file, or None."""
    if not text.strip():
        return "is empty"
    if is_id and any(character in text for character in _DELIMITER_NAMES):
        return "contains a tab, '|' or ',' (an image id of no layout)"
    if delimiter in text:
        return f"contains the delimiter {delimiter!r}"
    if "\t" in text:  # the 2018-2021 delimiter: the file would read differently
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


# ---------------------------------------------------------------- scoring

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
        The second ground truth of the secondary score (2024 on:
        ``concepts_manual.csv``, the manually validated concepts), in the
        ground truth's layout and with the same images. The run is scored
        against it with both sides restricted to ``secondary_concepts``, by
        default the edition's fixed list (15 CUIs from 2025, 14 in 2024).
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
    chosen_edition = None if edition == "auto" else _edition(edition)
    texts = {"run": _raw_lines(run), "truth": _raw_lines(ground_truth),
             "secondary": None if secondary_truth is None else _raw_lines(secondary_truth)}
    subset = _concept_subset(secondary_concepts)
    options = dict(run=run, ground_truth=ground_truth, secondary_truth=secondary_truth,
                   subset=subset, max_concepts=max_concepts, cui_only=cui_only, texts=texts)
    if chosen_edition is not None:
        return _evaluate_as(chosen_edition, **options)
    outcomes = {}
    for group in _rule_groups():
        try:
            outcomes[group] = _evaluate_as(group[0], **options)
        except ConceptFileError as error:
            outcomes[group] = error
        except ValueError as error:  # no secondary list for this edition
            outcomes[group] = ConceptFileError([str(error)])
    chosen = _choose(outcomes, f"{run} against {ground_truth}",
                     describe=lambda result: f": {result.score:.6g}" + (
                         "" if result.secondary_score is None
                         else f", secondary {result.secondary_score:.6g}"))
    group = _chosen_group(outcomes, chosen)
    name = _named(group)
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


def _evaluate_as(edition, *, run, ground_truth, secondary_truth, subset, max_concepts,
                 cui_only, texts):
    """The evaluation of ``edition``: a RunEvaluation, or a ConceptFileError with every problem."""
    # Here, not at the top: the command line imports this module for its
    # option choices, and --help should not wait for scikit-learn.
    from ._metrics import imageclef_f1_score

    truth_lines, problems = _parse(ground_truth, texts["truth"], edition, "truth")
    problems += _line_problems(ground_truth, truth_lines)
    problems += _duplicate_id_problems(ground_truth, truth_lines)
    run_lines, run_problems = _parse(run, texts["run"], edition, "run")
    problems += run_problems + _line_problems(run, run_lines, max_concepts, cui_only)
    problems += _duplicate_id_problems(run, run_lines)
    problems += _id_set_problems(run, run_lines, ground_truth, truth_lines)
    if edition.run_in_truth_order and not problems:
        problems += _order_problems(run, run_lines, truth_lines, edition)
    if secondary_truth is not None:
        if subset is None and edition.secondary_cuis is None:
            raise ValueError(f"the {edition.name} evaluator has no secondary ground truth; "
                             "give the secondary concepts too (secondary_concepts=)")
        second_lines, second_problems = _parse(secondary_truth, texts["secondary"], edition,
                                               "secondary")
        problems += second_problems + _line_problems(secondary_truth, second_lines)
        problems += _duplicate_id_problems(secondary_truth, second_lines)
        problems += _secondary_id_problems(secondary_truth, second_lines, ground_truth,
                                           truth_lines)
    if problems:
        raise ConceptFileError(problems, f"Run {run} cannot be scored as the {edition.name} "
                               "edition")
    predicted = {line.image_id: line.concepts for line in run_lines}
    true_concepts = [line.concepts for line in truth_lines]
    predictions = [predicted[line.image_id] for line in truth_lines]
    n_scored = sum(1 for concepts in true_concepts if concepts)
    if not n_scored:
        raise ConceptFileError(
            [f"{ground_truth}: no image has a concept; the {edition.name} evaluator divides "
             "by zero"], f"Run {run} cannot be scored as the {edition.name} edition")
    score = imageclef_f1_score(true_concepts, predictions)
    secondary = None
    if secondary_truth is not None:
        second = {line.image_id: line.concepts for line in second_lines}
        second_true = [second[line.image_id] for line in truth_lines]
        secondary = _secondary_score(second_true, predictions,
                                     edition.secondary_cuis if subset is None else subset,
                                     secondary_truth, run, edition)
    elif subset is not None:
        secondary = _secondary_score(true_concepts, predictions, subset, ground_truth, run,
                                     edition)
    notes = [
        f"{run}:{line.number}: concept(s) {', '.join(line.duplicate_concepts)} repeated in "
        "another case, counted once"
        for line in run_lines if line.duplicate_concepts
    ]
    return RunEvaluation(score, len(truth_lines), n_scored, notes, secondary, edition.name)


def _secondary_score(true_concepts, predictions, subset, truth_path, run, edition):
    from ._metrics import imageclef_f1_score

    if not any(subset.intersection(concepts) for concepts in true_concepts):
        raise ConceptFileError(
            [f"{truth_path}: no image has one of the secondary concepts; the secondary "
             "score divides by zero"],
            f"Run {run} cannot be scored as the {edition.name} edition")
    return imageclef_f1_score(true_concepts, predictions, concepts=subset)


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
        if line.image_id not in in_run and not line.problems
    ]
    return problems


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
    if isinstance(concepts, (str, os.PathLike)):
        path = concepts
        try:
            lines = _read_bytes(path, "concept list").decode("utf-8-sig").split("\n")
        except UnicodeDecodeError as error:
            raise ConceptFileError([f"{path}: not a UTF-8 text file ({error.reason})"],
                                   f"Cannot read {path}") from None
        concepts = [line.strip() for line in lines if line.strip()]
        if not concepts:
            raise ConceptFileError([f"{path}: no concept in the file"], f"Cannot read {path}")
    return frozenset(canonical_concept(concept) for concept in concepts)


__all__ = [
    "EDITIONS",
    "ConceptFile",
    "ConceptFileError",
    "Edition",
    "RunEvaluation",
    "evaluate_run",
    "read_concepts",
    "write_run",
]
