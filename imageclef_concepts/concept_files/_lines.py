"""The lines of a concept file, split and checked by one edition's rules.

Where an evaluator would silently drop or mis-read a line (a row skipped
because its id contains ``ID``, an empty ground truth scored as a concept
named ``""``, white space kept inside a concept, a duplicate ground-truth
id overwriting the first), the line is refused with the reason instead.
The library's own checks stay on top: a line-break character (one that
``str.splitlines`` breaks at) or NUL inside a line, a byte that is not
UTF-8, an unbalanced quote. Every refusal names
the file and the line, in a :class:`ConceptFileError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..concepts._lists import CONCEPT_SEPARATOR, CUI_PATTERN
from ._editions import DELIMITER_NAMES, HEADER_2026, HEADER_CELL, MAX_CONCEPTS_PER_IMAGE
from ._text import ConceptFileError, split_lines

_LAYOUT_NAMES = {"\t": "<TAB>", "|": "|", ",": ","}
_HEADER_EXAMPLES = {"\t": "ID<TAB>cuis", "|": "ID|cuis", ",": "ID,CUIs"}





@dataclass
class Line:
    """One line of a concept file as read: its id, concepts and problems."""

    number: int
    image_id: str
    concepts: tuple
    problems: list = field(default_factory=list)
    duplicate_concepts: tuple = ()
    written: tuple = ()  # the concepts as the line writes them (each once), for messages


def checked_lines(path, raw, edition, role, *, max_concepts=None, cui_only=False, limit=None):
    """Parse as ``role`` of ``edition``; raise on any problem, duplicate ids included.

    ``limit``: stop at that many refused lines (only whether the file is
    refused matters, not every reason).
    """
    lines, problems = parse_lines(path, raw, edition, role, limit)
    problems += line_problems(path, lines, max_concepts, cui_only)
    problems += duplicate_id_problems(path, lines)
    if problems:
        what = {"truth": "ground truth", "run": "run",
                "secondary": "secondary ground truth"}[role]
        raise ConceptFileError(problems, f"Cannot read {path} as a {edition.name} {what}")
    return lines


def parse_lines(path, raw_lines, edition, role, limit=None):
    """Split the lines by ``edition``'s rules for ``role``; return (lines, file-level problems).

    With ``limit``, stop at that many problems: the lines read so far.
    """
    truth = role != "run"
    delimiter = edition.truth_delimiter if truth else edition.run_delimiter
    if delimiter == "detect":
        delimiter = "|" if "|" in raw_lines[0] else "\t"
    header = edition.header_rule(role)
    split = split_lines(raw_lines, delimiter)
    problems = []
    first = split[0][0] if isinstance(split[0], list) else None
    skipped = False
    if header == "first":
        # 2022 skips the first line whatever it holds, 2026's check too (its
        # evaluator skips it when it holds "ID"): it must be a header, or an
        # image would vanish. 2022 any case; 2026 "ID", which both skip.
        cell = first if edition.skips_id_rows or first is None else first.upper()
        if cell != HEADER_CELL:
            problems.append(
                f"{path}:1: the {edition.name} evaluator always skips the first line of a "
                f"ground truth as its header, and this one is not a header (its first "
                f"cell is {first!r}, not {HEADER_CELL!r}); add a header line such as "
                f"{_HEADER_EXAMPLES[delimiter]}")
        skipped = True
    elif header == "optional":
        # Skipped by the evaluator when its first cell holds "ID"; a header
        # when it is "ID", an image that would vanish otherwise (refused below).
        skipped = first == HEADER_CELL
    elif header == "exact":
        if isinstance(split[0], str) or tuple(split[0]) != HEADER_2026:
            problems.append(f"{path}:1: expected the header line {','.join(HEADER_2026)} "
                            f"(the {edition.name} submission check requires it)")
        skipped = True
    if getattr(raw_lines, "bom", False) and (not skipped or header == "exact"):
        what = "its header" if header == "exact" else f"the image id {first!r}"
        problems.append(
            f"{path}:1: starts with a UTF-8 byte-order mark (BOM), which the "
            f"{edition.name} evaluator reads as part of {what}, so it refuses the file; "
            "save it as UTF-8 without BOM")
    if limit is not None and len(problems) >= limit:
        return [], problems
    start = 1 if skipped else 0
    clean = clean_lines(raw_lines, delimiter)
    if limit is None:
        lines = [clean[number - 1] or
                 _split_line(number, split[number - 1], delimiter, edition, role, raw_lines)
                 for number in range(start + 1, len(raw_lines) + 1)]
    else:
        lines, refused = [], len(problems)
        for number in range(start + 1, len(raw_lines) + 1):
            line = (clean[number - 1] or
                    _split_line(number, split[number - 1], delimiter, edition, role, raw_lines))
            lines.append(line)
            refused += bool(line.problems)
            if refused >= limit:
                return lines, problems
    if not lines:
        problems.append(f"{path}: the file holds a header and no image")
    return lines, problems


_PLAIN_ID = re.compile(r"[^\s|,]+(?:[^\t|,]*[^\s|,])?")  # no delimiter, no space around


def likeliest_first(groups, first_line):
    """Groups of editions, those whose delimiters the first line holds first (for auto).

    Once one group accepts a file, the others need only be refused, which
    their first refused line settles (``limit=1``).
    """
    def unlikely(group):
        edition = group[0]
        delimiters = {edition.truth_delimiter, edition.run_delimiter}
        if "detect" in delimiters:
            delimiters |= {"|", "\t"}
        return not any(delimiter in first_line for delimiter in delimiters - {"detect"})
    return sorted(groups, key=unlikely)


def clean_lines(raw_lines, delimiter):
    """Per line, its :class:`Line` when every edition reads it alike and accepts it, else None.

    Such a line has an id without delimiters, white space or ``ID``, and a
    concept field of at most 100 distinct CUIs (``C`` and digits) with no
    white space: the strictest edition's rules. Found once per delimiter
    and shared, unchanged, by every edition's reading.
    """
    cache = getattr(raw_lines, "clean", None)
    if cache is not None and delimiter in cache:
        return cache[delimiter]
    cui = CUI_PATTERN.fullmatch
    plain_id = _PLAIN_ID.fullmatch
    clean = []
    for number, fields in enumerate(split_lines(raw_lines, delimiter), start=1):
        line = None
        if type(fields) is list and len(fields) == 2:
            image_id, concept_field = fields
            if (concept_field and plain_id(image_id) and HEADER_CELL not in image_id
                    and image_id.upper() != HEADER_CELL):
                found = _concept_pieces(raw_lines, concept_field, False)
                if (not (found.empty or found.spaced or found.tabbed or found.repeated)
                        and len(found.texts) <= MAX_CONCEPTS_PER_IMAGE
                        and all(cui(text) for text in found.kept)):
                    line = Line(number, image_id, found.concepts, [], found.duplicates)
        clean.append(line)
    if cache is not None:
        cache[delimiter] = clean
    return clean


def _split_line(number, fields, delimiter, edition, role, raw_lines):
    if isinstance(fields, str):
        return Line(number, "", (), [fields])
    image_id = fields[0]
    line = Line(number, image_id, ())
    if len(fields) > 2:
        line.problems.append(
            f"{len(fields)} fields separated by {DELIMITER_NAMES[delimiter]}; expected "
            f"an image id and one concept field (the {edition.name} layout)")
        return line
    _check_image_id(line, delimiter, edition)
    if line.problems:  # a line in another layout: one problem, not one per field
        return line
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
    _check_concepts(line, _concept_pieces(raw_lines, concept_field, edition.strip),
                    edition, role)
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
    elif image_id.upper() == HEADER_CELL:
        where = (f"the {edition.name} evaluator skips a header only when its first cell "
                 f"is {HEADER_CELL!r} exactly" if edition.skips_id_rows and image_id !=
                 HEADER_CELL else f"the {edition.name} layout has no header line here")
        line.problems.append(
            f"a header line where an image is expected (first cell {image_id!r}): {where}, "
            f"so the evaluator would read it as an image called {image_id!r}")
    elif edition.skips_id_rows and HEADER_CELL in image_id:
        line.problems.append(
            f"image id {image_id!r} contains {HEADER_CELL!r}: the {edition.name} evaluator "
            "skips every such row as a header line, so this image would not be scored"
            + (f" (a header line's first cell is {HEADER_CELL!r})" if line.number == 1
               else ""))


_DELIMITER_NOUNS = {"\t": "tab", "|": "'|'", ",": "','"}


def _check_id_alone(line, delimiter, edition, role):
    allowed = edition.run_id_alone if role == "run" else edition.truth_id_alone
    if role == "run" and line.number == 1 and not edition.first_line_id_alone:
        line.problems.append(f"an image id alone on the first line: the {edition.name} "
                             "evaluator fails on it; write the id followed by "
                             f"{DELIMITER_NAMES[delimiter]}")
    elif not allowed:
        what = "ground-truth" if role != "run" else "run"
        line.problems.append(
            f"no {_DELIMITER_NOUNS[delimiter]} after the image id: the {edition.name} "
            f"evaluator refuses a {what} line holding an id alone")


@dataclass(frozen=True)
class _Pieces:
    """A concept field split on ``;``: what every edition's checks need, found once."""

    texts: tuple  # the pieces, stripped when the edition strips
    empty: int  # pieces empty (or white space only)
    spaced: tuple  # pieces with white space around them (not stripped)
    tabbed: tuple  # pieces holding a tab
    repeated: tuple  # pieces (exact text) named twice
    kept: tuple  # the pieces compared, as written (each once)
    concepts: tuple  # canonical concepts, each once, in order
    duplicates: tuple  # pieces repeating a concept in another case


def _concept_pieces(raw_lines, concept_field, strip):
    cache = getattr(raw_lines, "concepts", None)
    key = (concept_field, strip)
    if cache is not None and key in cache:
        return cache[key]
    pieces = concept_field.split(CONCEPT_SEPARATOR)
    texts = [piece.strip() for piece in pieces] if strip else pieces
    empty, spaced, tabbed, repeated, duplicates = 0, [], [], [], []
    seen, exact = {}, {}
    for piece, text in zip(pieces, texts):
        if not text.strip():
            empty += 1
            continue
        if text != text.strip():
            spaced.append(piece)
            continue
        if "\t" in text:
            tabbed.append(text)
            continue
        if text in exact:
            repeated.append(text)
        exact[text] = None
        concept = text.upper()
        if concept in seen:
            duplicates.append(text)
        else:
            seen[concept] = concept
    found = _Pieces(tuple(texts), empty, tuple(spaced), tuple(tabbed), tuple(repeated),
                    tuple(exact), tuple(seen), tuple(duplicates))
    if cache is not None:
        cache[key] = found
    return found


def _check_concepts(line, found, edition, role):
    run = role == "run"
    problems = line.problems
    if found.empty and role != "secondary":
        # The secondary score keeps only its list's concepts: '' is dropped.
        problems.append(
            "empty concept (two ';' in a row, or one at an end): the evaluator would "
            "count a concept named ''")
    problems += [f"white space around concept {piece!r}: the {edition.name} evaluator "
                 "compares concepts with their white space" for piece in found.spaced]
    problems += [f"concept {text!r} contains a tab: the line is not in the {edition.name} "
                 "layout" for text in found.tabbed]
    if run:
        problems += [problem for text in found.kept
                     if (problem := cui_problem(text, edition)) is not None]
    if run and edition.duplicates_refused:
        problems += [f"concept {text!r} named twice: {edition.refuser} refuse(s) a run line "
                     "that repeats a concept" for text in found.repeated]
    if run and len(found.texts) > edition.max_concepts:
        problems.append(f"{len(found.texts)} concepts; {edition.refuser} allow(s) at most "
                        f"{edition.max_concepts}")
    line.concepts = found.concepts
    line.duplicate_concepts = found.duplicates
    line.written = found.kept


def cui_problem(concept, edition, written=None):
    """Why a run of ``edition`` cannot hold ``concept``, or None: from 2026 on a concept
    must be a UMLS CUI. The one rule of the run reader, the run writer and the checks
    made before training on concepts a run will hold. ``written``: the text a file holds
    for it, quoted (a user searches the file for it), with what it is read as."""
    if edition.strict_run_check and not CUI_PATTERN.fullmatch(concept):
        shown = repr(concept) if written in (None, concept) else \
            f"{written!r} (read as {concept!r})"
        return (f"{shown} is not a UMLS CUI (C followed by digits), which the "
                f"{edition.name} submission check requires")
    return None


def run_concept_problems(path, lines, edition):
    """``<file>:<line>: ...`` for each concept of ``lines`` a run of ``edition`` cannot hold
    (:func:`cui_problem`): the training concepts a model would learn (in canonical form),
    then predict; each quoted as the line writes it."""
    problems = []
    for line in lines:
        for concept in line.concepts:
            if cui_problem(concept, edition) is not None:  # the text looked up only then
                written = next((text for text in line.written if text.upper() == concept),
                               concept)
                problems.append(f"{path}:{line.number}: {cui_problem(concept, edition, written)}")
    return problems


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
