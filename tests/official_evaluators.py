"""Each edition's published evaluator, re-stated independently, for the tests.

:func:`official_scores` reads a ground truth and a run the way that year's
evaluator reads them -- Python's ``csv`` module with the evaluator's
delimiter and quoting, its header handling, its checks in its order -- and
scores them with its per-image loop. It returns ``(score, secondary)`` or
raises :class:`Refused`:

- ``by="organisers"`` when the evaluator itself refuses the files (an
  exception, a crash, a failed submission check);
- ``by="project"`` when the evaluator would score them but the library
  refuses on purpose: a line the evaluator would silently drop or mis-read
  (``docs/concept_files.rst`` lists these), or one of the library's own
  checks.

The evaluators (read, not copied): crowdAI ``CLEF_evaluators_2018``
``concept_detection_evaluator.py`` (2018; 2019-2021 assumed the same but for
its first-line crash), the AIcrowd 2022 evaluator, the 2023 one, the
``clef-caption-evaluation`` repositories (2024 at its first commit, 2025;
2026 with ``submission_check.py``).
"""

import csv
import io
import re

ORGANISERS, PROJECT = "organisers", "project"

SECONDARY_2025 = {
    "C0000726", "C0002978", "C0006141", "C0023216", "C0024485", "C0030797", "C0032743",
    "C0037303", "C0037949", "C0040405", "C0041618", "C0817096", "C0920367", "C1140618",
    "C1306645",
}
SECONDARY_2024 = SECONDARY_2025 - {"C0920367"}


class Refused(Exception):
    """The files are refused, by the organisers' evaluator or by the project."""

    def __init__(self, by, reason):
        super().__init__(f"{by}: {reason}")
        self.by = by
        self.reason = reason


def official_scores(edition, truth_text, run_text, secondary_text=None):
    """``(score, secondary)`` as ``edition``'s evaluator gives them, or :class:`Refused`."""
    year = int(edition)
    if year <= 2021:
        return _crowdai(truth_text, run_text, first_line_crashes=year == 2018)
    return _aicrowd_and_later(year, truth_text, run_text, secondary_text)


# ------------------------------------------------------------- 2018-2021

def _crowdai(truth_text, run_text, first_line_crashes):
    def rows(text):
        return list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))

    truth = {}
    for row in rows(truth_text):
        if len(row) not in (1, 2):
            raise Refused(ORGANISERS, "answer file format")
        truth[row[0]] = row[1] if len(row) == 2 else ""
    run, seen, concepts = {}, [], None
    for number, row in enumerate(rows(run_text), start=1):
        if len(row) < 1 or len(row) > 2:
            raise Refused(ORGANISERS, f"line {number}: tokens")
        if row[0] not in truth:
            raise Refused(ORGANISERS, f"line {number}: unknown id")
        if len(row) > 1:
            concepts = row[1].split(";")
            if len(concepts) > 1286:
                raise Refused(ORGANISERS, f"line {number}: too many concepts")
        elif concepts is None and first_line_crashes:
            raise Refused(ORGANISERS, "the duplicate check reads an unset variable")
        if concepts is not None and len(concepts) != len(set(concepts)):
            raise Refused(ORGANISERS, f"line {number}: duplicate concept")
        if row[0] in seen:
            raise Refused(ORGANISERS, f"line {number}: duplicate id")
        seen.append(row[0])
        run[row[0]] = row[1] if len(row) == 2 else ""
    if len(seen) != len(truth):
        raise Refused(ORGANISERS, "not every image")

    for text in (truth_text, run_text):
        _project_checks_tab(rows(text))
    if len(rows(truth_text)) != len(truth):
        raise Refused(PROJECT, "duplicate ground-truth id")

    pairs = [(_pieces_upper(truth[key]), _pieces_upper(run[key])) for key in run]
    try:
        return _mean_f1(pairs), None
    except ZeroDivisionError:
        raise Refused(ORGANISERS, "no image has a concept: division by zero") from None


def _pieces_upper(text):
    text = text.upper()
    return [] if text.strip() == "" else text.split(";")


def _project_checks_tab(rows):
    for row in rows:
        _project_id_checks(row[0])
        if len(row) == 2 and row[1].strip():
            for piece in row[1].split(";"):
                if piece == "" or piece != piece.strip():
                    raise Refused(PROJECT, f"concept {piece!r}")


def _project_id_checks(image_id):
    if not image_id.strip() or image_id != image_id.strip():
        raise Refused(PROJECT, f"image id {image_id!r}")
    if image_id.upper() == "ID":
        raise Refused(PROJECT, "a header line read as an image called 'ID'")
    if any(character in image_id for character in "\t|,"):
        raise Refused(PROJECT, f"a delimiter in image id {image_id!r}")


# ------------------------------------------------------------- 2022 on

def _reader(year, text):
    if year >= 2024:
        return list(csv.reader(io.StringIO(text)))
    delimiter = "|" if "|" in text.split("\n", 1)[0] else "\t"
    return list(csv.reader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_NONE))


def _load_truth(year, text):
    """The evaluators' ``load_gt``: ``(truth, rows it kept)``."""
    if year == 2022:
        rows = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
        kept = rows[1:]  # next(reader): the header, whatever it holds
    else:
        rows = _reader(year, text)
        kept = []
        for row in rows:
            if "ID" not in row[0]:  # a blank line: IndexError
                kept.append(row)
    truth = {}
    for row in kept:
        if len(row) <= 1:
            raise Refused(ORGANISERS, "answer file format")
        truth[row[0]] = tuple(piece.strip() for piece in row[1].split(";"))
    return truth, rows, kept


def _aicrowd_and_later(year, truth_text, run_text, secondary_text):
    try:
        if year == 2026:
            _submission_check_2026(truth_text, run_text, secondary_text)
        truth, truth_rows, truth_kept = _load_truth(year, truth_text)
        second = None
        if secondary_text is not None:
            second, second_rows, second_kept = _load_truth(year, secondary_text)
        run_rows = (list(csv.reader(io.StringIO(run_text), delimiter="|",
                                    quoting=csv.QUOTE_NONE))
                    if year == 2022 else _reader(year, run_text))
        predictions, run_kept = {}, []
        for row in run_rows:
            if year != 2022 and "ID" in row[0]:
                continue
            run_kept.append(row)
            if not 1 <= len(row) <= 2:
                raise Refused(ORGANISERS, "tokens")
            if row[0] not in truth:
                raise Refused(ORGANISERS, f"unknown id {row[0]!r}")
            if row[0] in predictions:
                raise Refused(ORGANISERS, "duplicate id")
            concepts = ()
            if len(row) > 1:
                concepts = tuple(piece.strip() for piece in row[1].split(";"))
                if len(concepts) > 100:
                    raise Refused(ORGANISERS, "too many concepts")
            if len(concepts) != len(set(concepts)):
                raise Refused(ORGANISERS, "duplicate concept")
            predictions[row[0]] = concepts
        if len(predictions) != len(truth):
            raise Refused(ORGANISERS, "not every image")
        pairs = [(truth[key], predictions[key]) for key in predictions]
        score = _mean_f1([([c.upper() for c in t], [c.upper() for c in p]) for t, p in pairs])
        secondary = None
        if second is not None:
            allowed = SECONDARY_2024 if year == 2024 else SECONDARY_2025
            restricted, denominator = [], len(second)
            for key in predictions:
                kept_true = [c.upper() for c in second[key] if c.upper() in allowed]
                kept_pred = [c.upper() for c in predictions[key] if c.upper() in allowed]
                if kept_true:
                    restricted.append((kept_true, kept_pred))
                else:
                    denominator -= 1
            secondary = _mean_f1(restricted, denominator)
    except (IndexError, KeyError, ZeroDivisionError) as crash:
        raise Refused(ORGANISERS, f"the evaluator fails: {crash!r}") from None

    # What the evaluator accepted; the library refuses these on purpose.
    _project_checks_later(year, truth_rows, truth_kept, "truth")
    _project_checks_later(year, run_rows, run_kept, "run")
    if secondary_text is not None:
        _project_checks_later(year, second_rows, second_kept, "secondary")
        if set(second) - set(truth):
            raise Refused(PROJECT, "secondary ids outside the ground truth count as zeros")
    return score, secondary


def _project_checks_later(year, rows, kept, role):
    if role != "run" and year == 2022 and (not rows[0] or rows[0][0].upper() != "ID"):
        raise Refused(PROJECT, "the 2022 header line is not a header (first cell 'ID')")
    if role == "truth" and year == 2026 and (not rows[0] or rows[0][0] != "ID"):
        # The 2026 check always skips a ground truth's first line (its ids),
        # the evaluator only a row holding "ID": the library wants the header.
        raise Refused(PROJECT, "a 2026 ground truth without its header")
    skipped = [row for row in rows if not any(row is other for other in kept)]
    if year >= 2023 and (len(skipped) > 1 or (skipped and skipped[0] is not rows[0])
                         or (skipped and skipped[0][0] != "ID")):
        raise Refused(PROJECT, "a row skipped for the 'ID' in its id")
    ids = [row[0] for row in kept]
    if role != "run" and len(ids) != len(set(ids)):
        raise Refused(PROJECT, "duplicate ground-truth id")
    for row in kept:
        _project_id_checks(row[0])
        if role != "run" and len(row) > 2:
            raise Refused(PROJECT, "extra ground-truth fields")
        if len(row) < 2:
            continue
        if not row[1].strip():
            if role == "truth":
                raise Refused(PROJECT, "an empty ground truth scored as the concept ''")
            continue
        for piece in row[1].split(";"):
            if not piece.strip() and role != "secondary":  # '' is not a secondary concept
                raise Refused(PROJECT, "an empty concept")
            if "\t" in piece:
                raise Refused(PROJECT, "a tab in a concept")


def _submission_check_2026(truth_text, run_text, secondary_text):
    lines = run_text.splitlines()
    if any(not line.strip() for line in lines if line != lines[0]):
        raise Refused(ORGANISERS, "blank line")
    rows = list(csv.reader(io.StringIO(run_text)))
    if not rows or rows[0] != ["ID", "CUIs"]:
        raise Refused(ORGANISERS, "header")
    expected = []
    for text in (truth_text, *([secondary_text] if secondary_text is not None else [])):
        for row in list(csv.reader(io.StringIO(text)))[1:]:
            if row and row[0].strip() not in expected:
                expected.append(row[0].strip())
    seen = []
    for row in rows[1:]:
        if len(row) != 2:
            raise Refused(ORGANISERS, "two columns")
        image_id, cuis = row
        if image_id != image_id.strip() or cuis != cuis.strip():
            raise Refused(ORGANISERS, "white space")
        if image_id in seen or len(seen) >= len(expected) or image_id != expected[len(seen)]:
            raise Refused(ORGANISERS, "id order")
        seen.append(image_id)
        if cuis.strip():
            parts = [part.strip() for part in cuis.split(";")]
            if any(not part for part in parts) or len(set(parts)) != len(parts):
                raise Refused(ORGANISERS, "empty or repeated CUI")
            if any(not re.fullmatch(r"C\d+", part) for part in parts):
                raise Refused(ORGANISERS, "not a CUI")
    if set(expected) - set(seen):
        raise Refused(ORGANISERS, "missing ids")


# ------------------------------------------------------------- the score

def _mean_f1(pairs, denominator=None):
    """The evaluators' loop: per-image F1 over the union, images without truth left out."""
    total, count = 0.0, len(pairs) if denominator is None else denominator
    for true_concepts, predicted in pairs:
        true_set, predicted_set = set(true_concepts), set(predicted)
        if not true_set:
            count -= 1 if denominator is None else 0
            continue
        correct = len(true_set & predicted_set)
        total += 2 * correct / (len(true_set) + len(predicted_set)) if correct else 0.0
    return total / count
