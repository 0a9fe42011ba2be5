"""ImageCLEF concept files: ground truth and run files, read and written edition by edition.

:func:`read_concepts` and :func:`write_run` take ``edition=`` (the rules of
``_editions``); ``"auto"`` tries every edition and keeps the one reading
that fits, here for reading and in ``_run_evaluation`` for scoring.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

from ..concepts._lists import CONCEPT_SEPARATOR, split_concepts
from ..files._atomic import is_utf8_text, shown_name, write_atomically
from ._editions import (
    DELIMITER_NAMES,
    EDITIONS,
    HEADER_2026,
    HEADER_CELL,
    edition_of,
    reported_name,
    rule_groups,
    span,
)
from ._lines import checked_lines, cui_problem, likeliest_first, run_concept_problems
from ._text import LINE_BREAKS, ConceptFileError, cyclic_gc_paused, read_lines

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence

    from .._typing import ImageConcepts, PathLike


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
    with cyclic_gc_paused():
        return _read_concepts(path, edition)


def _read_concepts(path, edition):
    chosen_edition = None if edition == "auto" else edition_of(edition)
    raw = read_lines(path)
    if chosen_edition is not None:
        lines = _read_either(path, raw, chosen_edition)
        _warn_duplicate_concepts(path, lines)
        return _concept_file(lines, chosen_edition.name)
    found: dict = {}
    lines_of: dict = {}
    for group in likeliest_first(rule_groups(), raw[0]):
        limit = 1 if lines_of else None  # one accepted: the others need only be refused
        try:
            lines_of[group] = _read_either(path, raw, group[0], limit)
            found[group] = _concept_file(lines_of[group], "")
        except ConceptFileError as error:
            found[group] = error
    outcomes = {group: found[group] for group in rule_groups()}
    chosen = choose_reading(outcomes, path, describe=lambda content: "", key=_read_alike,
                            explain=_how_readings_differ)
    group = agreeing_editions(outcomes, chosen, key=_read_alike)
    _warn_duplicate_concepts(path, next(lines_of[g] for g in lines_of if g[0] in group))
    return chosen._replace(edition=reported_name(group))


def _read_alike(content):
    """What two editions must agree on for a file: its ids and concepts."""
    return content[:2]


def _how_readings_differ(first_names, first, second_names, second):
    """Where two readings of one file part, in words."""
    first_names, second_names = span(first_names), span(second_names)
    if first.ids[1:] == second.ids:
        return (f"line 1 is an image ({first.ids[0]!r}) for {first_names}, a header for "
                f"{second_names}")
    if second.ids[1:] == first.ids:
        return (f"line 1 is an image ({second.ids[0]!r}) for {second_names}, a header for "
                f"{first_names}")
    pairs = zip(zip(first.ids, first.concepts), zip(second.ids, second.concepts))
    index = next((k for k, (a, b) in enumerate(pairs) if a != b),
                 min(len(first.ids), len(second.ids)))
    def image(reading):
        if index >= len(reading.ids):
            return "no image"
        return f"{reading.ids[index]!r} with {';'.join(reading.concepts[index]) or 'no concept'}"
    return (f"image {index + 1} is {image(first)} for {first_names}, {image(second)} for "
            f"{second_names}")


def concepts_no_run_holds(path: PathLike, edition: str) -> list:
    """``<file>:<line>: ...`` for each concept of a concept file that ``edition``'s runs
    cannot hold (from 2026, one that is not a UMLS CUI): what a model trained on the file
    could predict, and no run file write. The file is read as :func:`read_concepts` reads it.
    """
    chosen = edition_of(edition)
    with cyclic_gc_paused():
        lines = _read_either(path, read_lines(path), chosen)
    return run_concept_problems(path, lines, chosen)


def lines_without_concepts(path: PathLike, edition: str) -> list:
    """The numbers of a concept file's lines that give an image no concept (an empty concept
    field, or an id alone), the file read as :func:`read_concepts` reads it as ``edition``."""
    with cyclic_gc_paused():
        lines = _read_either(path, read_lines(path), edition_of(edition))
    return [line.number for line in lines if not line.concepts]


def _concept_file(lines, edition):
    return ConceptFile([line.image_id for line in lines], [line.concepts for line in lines],
                       edition)


def _read_either(path, raw, edition, limit=None):
    """The file as a ground truth of ``edition`` or, failing that, as a run.

    When it is neither, the reading with fewer problems is reported (the
    ground truth's among equals): the likelier meant.
    """
    try:
        lines = checked_lines(path, raw, edition, "truth", limit=limit)
    except ConceptFileError as as_truth:
        try:
            lines = checked_lines(path, raw, edition, "run", limit=limit)
        except ConceptFileError as as_run:
            closest = as_run if len(as_run.problems) < len(as_truth.problems) else as_truth
            raise closest from None
    return lines


# ------------------------------------------------------- edition="auto"

def agreeing_editions(outcomes, chosen, key):
    """Every edition whose outcome has ``chosen``'s ``key`` (the editions that agree)."""
    return tuple(edition for group, outcome in outcomes.items()
                 if not isinstance(outcome, ConceptFileError) and key(outcome) == key(chosen)
                 for edition in group)


def choose_reading(outcomes, what, describe, key, explain=None):
    """The outcome of ``edition="auto"``: the accepted one, if the accepting editions agree.

    ``outcomes`` maps each group of editions (:func:`rule_groups`) to its
    outcome or its :class:`ConceptFileError`; two outcomes agree when their
    ``key`` is equal (the same ids and concepts, the same scores).
    ``describe(outcome)`` follows each group's names in an ambiguity error,
    ``explain(names, outcome, other_names, other)`` says how the first two
    readings differ.
    """
    accepted = {group: outcome for group, outcome in outcomes.items()
                if not isinstance(outcome, ConceptFileError)}
    if not accepted:
        # Every edition refuses: report the one with the fewest problems, the
        # likeliest intended; among equals, the problems most editions find
        # (a tab file's duplicate id, not 2022's missing header), then an
        # edition whose layout is fixed before 2023's detected one (a tab file
        # is reported as 2019, a pipe file as 2022), then the newest.
        support = Counter(tuple(error.problems) for group, error in outcomes.items()
                          for _ in group)
        group, error = min(outcomes.items(),
                           key=lambda item: (len(item[1].problems),
                                             -support[tuple(item[1].problems)],
                                             item[0][-1].run_delimiter == "detect",
                                             -int(item[0][-1].name)))
        names = span(edition.name for edition in group)
        raise ConceptFileError(
            error.problems,
            f"No edition accepts {what}; read as {names}, the closest (pass edition= to "
            "choose another)")
    readings = []
    for group, outcome in accepted.items():
        for reading in readings:
            if key(reading[1]) == key(outcome):
                reading[0].extend(group)
                break
        else:
            readings.append(([*group], outcome))
    if len(readings) > 1:
        shown = "; ".join(f"{span(e.name for e in editions)}{describe(outcome)}"
                          for editions, outcome in readings)
        if explain is not None:
            (first_group, first), (second_group, second) = readings[:2]
            shown += ": " + explain([e.name for e in first_group], first,
                                    [e.name for e in second_group], second)
        raise ConceptFileError(
            [f"{what}: editions read it differently ({shown}); pass edition= to say which"],
            summary=None)
    return readings[0][1]



def _warn_duplicate_concepts(path, lines):
    affected = [line for line in lines if line.duplicate_concepts]
    if affected:
        shown = ", ".join(str(line.number) for line in affected[:10])
        warnings.warn(
            f"{path}: {len(affected)} line(s) repeat a concept (lines {shown}"
            f"{', ...' if len(affected) > 10 else ''}); each is counted once.",
            UserWarning,
            stacklevel=5,
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
        the edition allows, an id ``ID`` (any case), an id containing ``ID``
        from 2023 on, a concept that is not a CUI in 2026, an id or concept
        that is not UTF-8 text (a file name's bytes ``os.fsdecode`` could not
        decode, shown as ``\\xNN``: no evaluator reads them). Nothing is
        written then.

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
    chosen = edition_of(edition if edition is not None else layout if layout is not None
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
        writer.writerow(HEADER_2026)
        writer.writerows(rows)
    else:
        buffer.writelines(f"{image_id}{delimiter}{joined}\n" for image_id, joined in rows)
    text = buffer.getvalue().encode("utf-8")
    write_atomically(path, lambda handle: handle.write(text))


def run_id_problems(ids, edition):
    """``(id, message)`` for each image id :func:`write_run` would refuse for ``edition``.

    For a check before the predictions are made (the ids of a folder's image
    files): the writer's own rules, so that it cannot refuse them later.
    """
    chosen = edition_of(edition)
    return [(image_id, f"image id {_quoted(str(image_id))} {problem}") for image_id in ids
            if (problem := _id_problem(str(image_id), chosen)) is not None]


def model_concept_problems(concepts, edition):
    """A message for each concept :func:`write_run` would refuse for ``edition``.

    For a check before predicting (a model's ``classes_``): the writer's own rules.
    """
    chosen = edition_of(edition)
    problems = []
    for name in map(str, concepts):
        problem = _concept_problem(name, chosen)
        problem = problem and f"{_quoted(name)} {problem}" or cui_problem(name, chosen)
        if problem:
            problems.append(f"concept {problem}")
    return problems


def _concept_problem(name, edition):
    """Why ``name`` cannot be a field of ``edition``'s run file, or None (CUIs apart)."""
    problem = _field_problem(name, edition.run_layout)
    if problem is None and CONCEPT_SEPARATOR in name:
        problem = f"contains the concept separator {CONCEPT_SEPARATOR!r}"
    return problem


def _id_problem(image_id, edition):
    """Why ``image_id`` cannot be an image id of ``edition``'s run file, or None."""
    problem = _field_problem(image_id, edition.run_layout, is_id=True)
    if problem is None and image_id != image_id.strip():
        problem = "has white space at an end"
    if problem is None and image_id.upper() == HEADER_CELL:
        problem = ("is a header line's first cell: the line would be read as a header, "
                   "or refused as one")
    if problem is None and edition.skips_id_rows and HEADER_CELL in image_id:
        problem = (f"contains {HEADER_CELL!r}: the {edition.name} evaluator skips such "
                   "rows as headers")
    return problem


def _quoted(text):
    """``repr(text)``, or for text holding bytes that are not UTF-8, those shown as ``\\xNN``."""
    return repr(text) if is_utf8_text(text) else f"'{shown_name(text)}'"


def _run_row(image_id, image_concepts, edition):
    # An id given as bytes is a file name's (os.listdir(b"...")): read as os.fsdecode
    # reads it (what is not UTF-8 is then refused below), never written as "b'...'".
    image_id = os.fsdecode(image_id) if isinstance(image_id, bytes) else str(image_id)
    problem = _id_problem(image_id, edition)
    if problem:
        raise ValueError(f"Image id {_quoted(image_id)} {problem}.")
    names = list(dict.fromkeys(split_concepts(image_concepts)))
    for name in names:
        problem = _concept_problem(name, edition)
        if problem:
            raise ValueError(f"Concept {_quoted(name)} of image {_quoted(image_id)} {problem}.")
        problem = cui_problem(name, edition)
        if problem:
            raise ValueError(f"Image {_quoted(image_id)}: {problem}.")
    if len(names) > edition.max_concepts:
        raise ValueError(f"Image {image_id!r} has {len(names)} concepts; the "
                         f"{edition.name} evaluator allows at most {edition.max_concepts}.")
    return image_id, CONCEPT_SEPARATOR.join(names)


def _field_problem(text, delimiter, is_id=False):
    """Why ``text`` cannot be written as one field of a run file, or None."""
    if not text.strip():
        return "is empty"
    if not is_utf8_text(text):
        return ("is not UTF-8 text (its bytes shown as \\xNN: a file name that is not "
                "UTF-8 gives them): a run file is UTF-8 text, as every evaluator reads it, "
                "and no ground truth can hold it")
    if is_id and any(character in text for character in DELIMITER_NAMES):
        return "contains a tab, '|' or ',' (an image id of no layout)"
    if delimiter in text:
        return f"contains the delimiter {delimiter!r}"
    if "\t" in text:  # the 2018-2021 delimiter: the file would read differently
        return "contains a tab"
    found = LINE_BREAKS.search(text)
    if found:
        return f"contains the line-break character or NUL U+{ord(found.group()):04X}"
    return None


def _refuse_duplicate_ids(ids):
    seen = set()
    duplicates = [image_id for image_id in ids if image_id in seen or seen.add(image_id)]
    if duplicates:
        raise ValueError(f"{len(duplicates)} duplicate image id(s), e.g. "
                         f"{', '.join(map(repr, duplicates[:5]))}: a run has one line per image.")



__all__ = ["ConceptFile", "ConceptFileError", "EDITIONS", "read_concepts", "write_run"]
