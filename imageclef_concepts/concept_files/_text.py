"""A concept file's text: its bytes read safely, its lines, each line split once.

Shared by every edition's reading (:mod:`._concept_lines`): a file is read
once, as a regular file (a pipe or a device is refused unopened), decoded as
UTF-8, broken into lines as Python's universal newlines break them, and each
line split by a delimiter once, whichever editions then judge it. Problems
are a :class:`ConceptFileError` that names the file and the line.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import re
from collections.abc import Iterable

from ..files._atomic import NotARegularFileError, listing, open_regular_file

SHOWN_PROBLEMS = 10  # problems a ConceptFileError's message lists; .problems holds all


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

    def __init__(self, problems: Iterable[str], summary: str | None = "Invalid concept file"
                 ) -> None:
        self.problems = list(problems)
        if summary is None:  # the problems say it all, one per line
            super().__init__("\n".join(self.problems))
            return
        super().__init__(listing(f"{summary} ({len(self.problems)} problem(s))", self.problems,
                                 SHOWN_PROBLEMS))


@contextlib.contextmanager
def cyclic_gc_paused():
    """Pause Python's cyclic garbage collector while a file's lines are parsed.

    Parsing makes a few objects per line, none in a cycle; with the lines
    kept for every edition, the collector would scan them again and again
    (half the time of a 100k-line read). Reference counting still frees
    everything; the collector resumes, as it was, at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class RawLines(list):
    """A file's lines as read, and what splitting them found (shared by every edition).

    ``bom`` is true when the file started with a UTF-8 byte-order mark (taken
    off line 1 here, judged by each edition in :func:`parse_lines`);
    ``split`` keeps each delimiter's split of every line, ``concepts`` each
    concept field's pieces, and ``clean`` each delimiter's lines that every
    edition reads alike and accepts, so that ``edition="auto"`` splits and
    checks a line once per delimiter, not once per edition.
    """

    def __init__(self, lines, bom=False):
        super().__init__(lines)
        self.bom = bom
        self.split = {}
        self.concepts = {}
        self.clean = {}


def read_lines(path):
    """The file's lines, without their ends; nothing is checked but the encoding."""
    try:
        text = read_bytes(path, "concept file").decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConceptFileError(
            [f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})"],
            f"Cannot read {path}",
        ) from None
    bom = text.startswith("\ufeff")
    # Lines end at \n, \r\n or \r, as Python's universal newlines (the
    # evaluators' open()) end them; any other line-break character inside a
    # line is reported there.
    raw_lines = text[bom:].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if raw_lines[-1] == "":
        raw_lines.pop()  # the end of the last line, not a line
    if not any(line.strip() for line in raw_lines):
        raise ConceptFileError([f"{path}: the file holds no line"], f"Cannot read {path}")
    return RawLines(raw_lines, bom)


def read_bytes(path, what):
    """The bytes of a regular file; a folder, a pipe or a device is refused unopened."""
    try:
        with open_regular_file(path, what) as handle:
            return handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except NotARegularFileError as error:
        raise ConceptFileError([str(error)], f"Cannot read {path}") from None


# Characters that end a line for str.splitlines (\r and \n end lines here),
# and NUL: none may appear inside a field, or a reader (ours, or someone
# else's splitting lines another way) sees other lines.
LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00]")


def split_lines(raw_lines, delimiter):
    """Each line's fields (a list), or why it has none (a str); once per delimiter."""
    cache = getattr(raw_lines, "split", None)
    if cache is not None and delimiter in cache:
        return cache[delimiter]
    search = LINE_BREAKS.search
    split = []
    for text_line in raw_lines:
        if not text_line.strip():
            split.append("blank line (every evaluator refuses it)")
        elif (found := search(text_line)) is not None:
            character = ord(found.group())
            split.append("contains NUL (U+0000)" if not character else
                         f"contains the line-break character U+{character:04X}")
        elif delimiter != ",":
            split.append(text_line.split(delimiter))
        elif '"' not in text_line:  # no quoting: a CSV line is its commas
            split.append(text_line.split(","))
        else:
            try:
                split.append(_csv_fields(text_line))
            except csv.Error as error:
                split.append(f"not a valid CSV line ({error})")
    if cache is not None:
        cache[delimiter] = split
    return split


def _csv_fields(text_line):
    """The fields of one CSV line; an unbalanced quote is an error, long fields are fine."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text_line) + 1))
    try:
        return next(csv.reader([text_line], strict=True), [])
    finally:
        csv.field_size_limit(limit)
