"""Every edition read, refused and scored as its published evaluator does.

The property test generates ground truths and runs (ids alone, empty
fields, headers or none, white space, lower case, duplicates, more concepts
than allowed, missing and extra ids, a secondary ground truth) and compares
:func:`evaluate_run` with the independent re-statement of each evaluator in
``official_evaluators.py``: equal scores, to the last digit, on every file pair both
accept, and refusals on exactly the same pairs.

``python -m tests.test_editions [EXAMPLES]`` prints, per edition, how many
generated pairs were tried, accepted with an equal score, refused by the
organisers' evaluator (and the library), and refused by the library alone
on purpose (a line the evaluator would silently drop or mis-read).
"""

import collections
import os
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imageclef_concepts import (
    ConceptFileError,
    evaluate_run,
    imageclef_f1_score,
    read_concepts,
    write_run,
)
from imageclef_concepts.concept_files._editions import EDITIONS

from .official_evaluators import ORGANISERS, PROJECT, Refused, official_scores

_IDS = ["img1", "img2", "img3", "img4", "img5"]
_ODD_IDS = ["xID6", " img7", "img|8", "im,g9"]
_CONCEPTS = ["C1", "C2", "c2", "C0040405", "C0920367", "C0817096", "advert"]
_DELIMITERS = {"\t": "2018-2021", "|": "2022-2023", ",": "2024-2026"}


@st.composite
def _field(draw, clean, cuis_only=False):
    """One concept field: pieces joined by ';', with the usual mistakes unless ``clean``."""
    pool = [c for c in _CONCEPTS if c.startswith("C")] if cuis_only else _CONCEPTS
    pieces = draw(st.lists(st.sampled_from(pool), max_size=4, unique=clean))
    if draw(st.integers(0, 14)) == 0:  # a line at or over a maximum (100; 1286 before 2022)
        sizes = [100] if clean else [100, 101, 1287]
        pieces = [f"C{k}" for k in range(draw(st.sampled_from(sizes)))]
    mistake = draw(st.integers(0, 11)) if not clean else -1
    if mistake == 0 and pieces:
        pieces = [f" {piece} " for piece in pieces]
    elif mistake == 1:
        pieces = [*pieces, ""]  # "C1;" or ""
    elif mistake == 2:
        return " "
    return ";".join(pieces)


@st.composite
def _file(draw, ids, delimiter, header, clean, edition, role):
    rules = EDITIONS[edition]
    run = role == "run"
    lines = [header] if header else []
    for number, image_id in enumerate(ids, start=1):
        shape = draw(st.integers(0, 14))
        alone_ok = (rules.run_id_alone and (number > 1 or rules.first_line_id_alone)
                    if run else rules.truth_id_alone)
        if shape == 0 and (alone_ok or not clean):
            lines.append(image_id)  # an id alone
        elif shape == 1 and not clean:
            lines.append(f"{image_id}{delimiter}{draw(_field(clean))}{delimiter}C9")
        else:
            field = draw(_field(clean, cuis_only=clean and run and rules.strict_run_check))
            if clean and not field and not run and rules.strip:
                field = "C1"  # 2022 on, an empty ground truth is refused
            if clean and rules.strip and draw(st.integers(0, 4)) == 0 and \
                    not (run and rules.strict_run_check):
                field = field.replace(";", " ; ")  # white space the evaluator strips
            lines.append(f"{image_id}{delimiter}{field}")
    if not clean and draw(st.integers(0, 14)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), "")
    return "".join(line + "\n" for line in lines)


def _delimiter(draw, edition, role, clean):
    rules = EDITIONS[edition]
    own = rules.truth_delimiter if role == "truth" else rules.run_delimiter
    own = draw(st.sampled_from(["|", "\t"])) if own == "detect" else own
    return own if clean else draw(st.sampled_from([own] * 8 + ["\t", "|", ","]))


def _header(draw, edition, role, delimiter, clean):
    if not clean:
        return draw(st.sampled_from([None, None, f"ID{delimiter}CUIs", f"ID{delimiter}cuis",
                                     f"id{delimiter}CUIs"]))
    kind = getattr(EDITIONS[edition], f"{role}_header")
    if kind == "none":
        return None
    if kind == "optional" and draw(st.booleans()):
        return None
    return f"ID{delimiter}CUIs"


@st.composite
def file_sets(draw, edition):
    """``(truth, run, secondary or None)`` texts for ``edition``: half clean, half with mistakes."""
    clean = draw(st.booleans())
    ids = _IDS if clean else _IDS + _ODD_IDS[:1] * 2
    truth_ids = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4))
    if clean or draw(st.integers(0, 9)):
        truth_ids = list(dict.fromkeys(truth_ids))  # mostly no duplicate
    run_ids = list(dict.fromkeys(truth_ids))
    change = draw(st.integers(0, 9))
    if change == 0 and not clean:
        run_ids = run_ids[1:]  # a missing id
    elif change == 1 and not clean:
        run_ids.append(draw(st.sampled_from(_IDS + _ODD_IDS)))  # extra or repeated
    elif change == 2 and not EDITIONS[edition].run_in_truth_order:
        run_ids.reverse()
    delimiter = _delimiter(draw, edition, "truth", clean)
    truth = draw(_file(truth_ids, delimiter, _header(draw, edition, "truth", delimiter, clean),
                       clean, edition, "truth"))
    run_delimiter = _delimiter(draw, edition, "run", clean)
    run = draw(_file(run_ids, run_delimiter,
                     _header(draw, edition, "run", run_delimiter, clean), clean, edition,
                     "run"))
    secondary = None
    if EDITIONS[edition].secondary_cuis is not None and draw(st.booleans()):
        second_ids = list(dict.fromkeys(truth_ids))
        if not clean and draw(st.integers(0, 5)) == 0:
            second_ids = second_ids[1:] + ["img5"]
        cuis = st.lists(st.sampled_from(["C0040405", "C0920367", "C0817096", "C1"]),
                        max_size=3, unique=True)
        lines = ["ID,CUIs"] + [f"{image_id},{';'.join(draw(cuis))}" for image_id in second_ids]
        secondary = "".join(line + "\n" for line in lines)
    return truth, run, secondary


def _library(edition, truth, run, secondary):
    """``(score, secondary)`` from evaluate_run, or the ConceptFileError."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, text in (("truth", truth), ("run", run), ("second", secondary)):
            if text is not None:
                paths[name] = os.path.join(folder, name)
                with open(paths[name], "w", encoding="utf-8", newline="") as handle:
                    handle.write(text)
        try:
            result = evaluate_run(paths["run"], paths["truth"], edition=edition,
                                  secondary_truth=paths.get("second"))
        except ConceptFileError as error:
            return error
        return result.score, result.secondary_score


def compare(edition, truth, run, secondary):
    """The outcome's kind: "equal", "organisers" or "project"; AssertionError on a difference."""
    try:
        expected = official_scores(edition, truth, run, secondary)
    except Refused as refusal:
        expected = refusal
    got = _library(edition, truth, run, secondary)
    files = f"edition {edition}\ntruth={truth!r}\nrun={run!r}\nsecondary={secondary!r}"
    if isinstance(expected, Refused):
        assert isinstance(got, ConceptFileError), f"{files}\nrefused ({expected}) but scored {got}"
        return expected.by
    assert not isinstance(got, ConceptFileError), f"{files}\nscored {expected} but refused:\n{got}"
    assert got == expected, files  # to the last digit: the evaluators' own summation

    return "equal"


@pytest.mark.parametrize("edition", list(EDITIONS))
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_scores_and_refusals_match_the_evaluator(edition, data):
    compare(edition, *data.draw(file_sets(edition)))


def tally(edition, examples):
    """Counts of outcome kinds over ``examples`` generated file sets."""
    counts = collections.Counter()

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(files=file_sets(edition))
    def run(files):
        counts[compare(edition, *files)] += 1

    run()
    return counts


# ------------------------------------------------ each year's evaluator, by hand

def _write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# A real line of each year's published files, header included where it had one:
# 2018 the concept-detection example of the task page, 2019 a ROCO_CLEF line
# quoted by a participant, 2022 the header (ID<TAB>cuis) and the ids of the
# published files, 2024-2026 the evaluators' README.
_REAL = {
    "2018": ("1743-422X-4-12-1-4\tC0021853;C0037791;C0542346\n",
             "1743-422X-4-12-1-4\tC0021853;C0037791\n"),
    "2019": ("ROCO_CLEF_41341\tC0033785;C0035561\n", "ROCO_CLEF_41341\tC0033785\n"),
    "2022": ("ID\tcuis\nImageCLEFmedCaption_2022_valid_084006\tC0040405;C0817096\n",
             "ImageCLEFmedCaption_2022_valid_084006|C0040405\n"),
    "2025": ("ID,CUIs\nImageCLEFmedical_Caption_2024_valid_000001,C0040405;C0856747\n",
             "ID,CUIs\nImageCLEFmedical_Caption_2024_valid_000001,C0040405\n"),
}


@pytest.mark.parametrize("year", list(_REAL))
def test_a_real_line_of_each_year_is_read_as_that_year(tmp_path, year):
    truth = _write(tmp_path, "truth", _REAL[year][0])
    run = _write(tmp_path, "run", _REAL[year][1])
    result = evaluate_run(run, truth, edition=year)
    assert result.score == pytest.approx(official_scores(year, *_REAL[year])[0])
    assert result.score == pytest.approx(2 / 3 if year != "2018" else 0.8)
    auto = evaluate_run(run, truth)
    assert auto.score == result.score and year in auto.edition_note + auto.edition


def test_2019_ground_truth_with_an_id_alone(tmp_path):
    truth = _write(tmp_path, "truth.tsv", "img1\tC1;C2\nimg2\n")
    assert read_concepts(truth).concepts == [("C1", "C2"), ()]
    run = _write(tmp_path, "run.tsv", "img1\tC1\nimg2\n")
    result = evaluate_run(run, truth)
    assert (result.score, result.n_scored) == (pytest.approx(2 / 3), 1)
    assert result.edition == "2019" and "2018" in result.edition_note


def test_2018_fails_on_an_id_alone_on_the_first_run_line(tmp_path):
    truth = _write(tmp_path, "truth.tsv", "img1\tC1\nimg2\tC2\n")
    run = _write(tmp_path, "run.tsv", "img1\nimg2\tC2\n")
    with pytest.raises(ConceptFileError, match=r"run.tsv:1: an image id alone on the first"):
        evaluate_run(run, truth, edition="2018")
    assert evaluate_run(run, truth, edition="2019").score == 0.5


def test_2022_header_skipped_id_alone_and_white_space(tmp_path):
    truth = _write(tmp_path, "truth.tsv", "ID\tcuis\nimg1\tC1;C2\nimg2\tC3\n")
    run = _write(tmp_path, "run.txt", "img1| C1 ;c2\nimg2\n")
    result = evaluate_run(run, truth)
    assert result.score == 0.5 and result.edition == "2022"
    headless = _write(tmp_path, "headless.tsv", "img1\tC1;C2\nimg2\tC3\n")
    with pytest.raises(ConceptFileError, match=r"headless.tsv:1: .*always skips the first line"):
        evaluate_run(run, headless, edition="2022")


def test_2025_header_optional_and_an_id_containing_ID_refused(tmp_path):
    truth = _write(tmp_path, "truth.csv", "img1,C1;C2\nimg2,C3\n")
    run = _write(tmp_path, "run.csv", "ID,CUIs\nimg1,C1\nimg2\n")
    assert evaluate_run(run, truth, edition="2025").score == pytest.approx(1 / 3)
    truth = _write(tmp_path, "truth.csv", "ID,CUIs\nimg1,C1;C2\nPMC_ID_2,C3\n")
    with pytest.raises(ConceptFileError, match=r"truth.csv:3: image id 'PMC_ID_2' contains 'ID'"):
        evaluate_run(run, truth, edition="2025")


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_a_repeated_concept_is_refused_in_every_edition(tmp_path, edition):
    delimiter = EDITIONS[edition].run_layout
    header = "ID,CUIs\n" if delimiter == "," else ""
    truth_text = {"2022": "ID\tcuis\nimg1\tC1\n"}.get(
        edition, header + "img1" + ("," if header else "\t") + "C1\n")
    truth = _write(tmp_path, "truth", truth_text)
    run = _write(tmp_path, "run", f"{header}img1{delimiter}C1;C1\n")
    with pytest.raises(ConceptFileError, match="named twice"):
        evaluate_run(run, truth, edition=edition)


def test_the_2025_secondary_score_uses_the_second_truth_and_the_15_cuis(tmp_path):
    truth = _write(tmp_path, "concepts.csv", "ID,CUIs\na,C0040405;C1\nb,C0817096\n")
    manual = _write(tmp_path, "concepts_manual.csv", "ID,CUIs\na,C0040405;C0920367\nb,\n")
    run = _write(tmp_path, "run.csv", "ID,CUIs\na,C0040405\nb,C0817096\n")
    result = evaluate_run(run, truth, edition="2025", secondary_truth=manual)
    # a: T={C0040405, C0920367} P={C0040405} -> 2/3; b: no true concept, left out
    assert result.secondary_score == pytest.approx(2 / 3)
    # 2024's list lacks C0920367: a: T={C0040405} P={C0040405} -> 1
    assert evaluate_run(run, truth, edition="2024", secondary_truth=manual).secondary_score == 1
    with pytest.raises(ConceptFileError, match="editions read it differently"):
        evaluate_run(run, truth, secondary_truth=manual)


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_write_read_score_is_the_identity(tmp_path, edition):
    ids = ["a", "b", "c"]
    concepts = [["C0040405", "c0817096"], [], ["C0040405"]]
    path = tmp_path / "run"
    write_run(path, ids, concepts, edition=edition)
    read = read_concepts(path, edition=edition)
    assert read.ids == ids and read.edition == edition
    assert read.concepts == [("C0040405", "C0817096"), (), ("C0040405",)]
    # ... and scored against a ground truth of the same edition, as written.
    delimiter = {",": ",", "|": "\t"}.get(EDITIONS[edition].run_layout, "\t")
    header = {"2022": "ID\tcuis\n", "2023": "ID\tcuis\n"}.get(
        edition, "ID,CUIs\n" if delimiter == "," else "")
    truth = tmp_path / "truth"
    truth.write_text(header + "".join(f"{i}{delimiter}{c}\n" for i, c in
                                      zip(ids, ["C0040405", "C0817096", "C0040405"])))
    expected = imageclef_f1_score([["C0040405"], ["C0817096"], ["C0040405"]], read.concepts)
    assert evaluate_run(path, truth, edition=edition).score == pytest.approx(expected, abs=1e-12)


def test_an_ambiguous_edition_is_a_one_line_error_saying_how_they_differ(tmp_path):
    truth = _write(tmp_path, "concepts.csv", "ID,CUIs\na,C0040405\nb,C0920367\n")
    run = _write(tmp_path, "run.csv", "ID,CUIs\na,C0040405\nb,C0040405\n")
    with pytest.raises(ConceptFileError) as caught:
        evaluate_run(run, truth, secondary_truth=truth)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and "pass edition=" in message
    # 2024's list lacks C0920367: only image a counts for its secondary score.
    assert "2024: 0.5, secondary 1; 2025-2026: 0.5, secondary 0.5" in message


def test_write_run_refuses_what_the_edition_would_refuse(tmp_path):
    with pytest.raises(ValueError, match="at most 100"):
        write_run(tmp_path / "r", ["a"], [[f"C{k}" for k in range(101)]], edition="2022")
    write_run(tmp_path / "r", ["a"], [[f"C{k}" for k in range(101)]], edition="2019")
    with pytest.raises(ValueError, match="contains 'ID'"):
        write_run(tmp_path / "r", ["PMC_ID_1"], [["C1"]], edition="2025")
    with pytest.raises(ValueError, match="not a UMLS CUI"):
        write_run(tmp_path / "r", ["a"], [["advert"]], edition="2026")


def main(argv):
    examples = int(argv[0]) if argv else 300
    print(f"{'edition':8} {'tried':>6} {'equal':>6} {'refused by both':>16} "
          f"{'refused by the library alone':>29}")
    for edition in EDITIONS:
        counts = tally(edition, examples)
        print(f"{edition:8} {sum(counts.values()):6d} {counts['equal']:6d} "
              f"{counts[ORGANISERS]:16d} {counts[PROJECT]:29d}")


if __name__ == "__main__":
    main(sys.argv[1:])
