"""Issue 21's hostile findings (F0-F8): each as a test that failed before its fix."""

import pytest

from imageclef_concepts import (
    ConceptFileError,
    evaluate_run,
    load_imageclef,
    make_concept_images,
    read_concepts,
    write_run,
)
from imageclef_concepts.cli._main import main
from imageclef_concepts.concept_files._editions import rule_groups
from imageclef_concepts.concept_files._io import ConceptFile, _how_readings_differ, choose_reading

from .official_evaluators import official_scores


def _write(folder, name, text):
    path = folder / name
    path.write_bytes(text.encode("utf-8"))
    return path


# ------------------------------------------------------ F0/F4: an exact header


def test_a_2019_file_whose_ids_hold_valid_is_read_as_2019(tmp_path):
    path = _write(tmp_path, "valid_concepts.tsv", "valid_000\tC1;C2\nvalid_001\tC3\n")
    assert read_concepts(path).edition == "2019"


def test_a_2022_first_line_that_is_an_image_is_refused_not_dropped(tmp_path):
    truth = _write(tmp_path, "truth.tsv", "ImageCLEFmedCaption_2022_valid_084258\tC1;C2\n"
                                          "img2\tC3\n")
    with pytest.raises(ConceptFileError, match=r"truth.tsv:1: .*not a header.*not 'ID'"):
        read_concepts(truth, edition="2022")


@pytest.mark.parametrize("first", ["ID", "id", "Id"])
def test_a_2022_header_is_id_in_any_case(tmp_path, first):
    truth = _write(tmp_path, "truth.tsv", f"{first}\tcuis\nimg1\tC1\n")
    assert read_concepts(truth, edition="2022").ids == ["img1"]


# ------------------------------------------ F1: the official 2022/2023 layouts


@pytest.mark.parametrize(("text", "edition"), [("ID\tcuis\nimg1\tC1;C2\nimg2\tC3\n", "2022"),
                                               ("ID|cuis\nimg1|C1;C2\nimg2|C3\n", "2023")])
def test_the_official_2022_and_2023_ground_truths_read_with_auto(tmp_path, text, edition):
    path = _write(tmp_path, "gt", text)
    read = read_concepts(path)
    assert (read.ids, read.concepts, read.edition) == (
        ["img1", "img2"], [("C1", "C2"), ("C3",)], edition)


def test_an_image_called_id_is_refused_where_a_header_is_not_skipped(tmp_path):
    path = _write(tmp_path, "gt.tsv", "ID\tcuis\nimg1\tC1\n")
    with pytest.raises(ConceptFileError, match=r"gt.tsv:1: a header line where an image"):
        read_concepts(path, edition="2019")


def test_load_imageclef_and_train_take_the_edition(tmp_path):
    data = make_concept_images(n_samples=2, random_state=0, directory=tmp_path)
    truth = _write(tmp_path, "gt.tsv", "ID\tcuis\n" + "".join(
        f"{i}\t{';'.join(c) or 'C1'}\n" for i, c in zip(data.ids, data.concepts)))
    assert load_imageclef(tmp_path / "images", truth, edition="2022").ids == data.ids
    with pytest.raises(ConceptFileError, match="as a 2019 ground truth"):
        load_imageclef(tmp_path / "images", truth, edition="2019")
    from imageclef_concepts.cli._main import _build_parser

    args = _build_parser().parse_args(["train", "--images", "i", "--concepts", "c",
                                       "--output", "m.keras", "--edition", "2022"])
    assert args.edition == "2022"


def test_train_help_speaks_of_editions(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "2019, 2022 or 2024 layout" not in help_text
    assert "--edition" in help_text and "any edition" in help_text


def test_an_ambiguity_says_how_the_readings_differ():
    groups = rule_groups()
    with_image = ConceptFile(["ID", "img1"], [("CUIS",), ("C1",)], "")
    without = ConceptFile(["img1"], [("C1",)], "")
    outcomes = {group: (with_image if group[0].name < "2022" else without)
                for group in groups}
    with pytest.raises(ConceptFileError) as caught:
        choose_reading(outcomes, "gt", describe=lambda outcome: "", key=lambda c: c[:2],
                       explain=_how_readings_differ)
    message = str(caught.value)
    assert "line 1 is an image ('ID') for 2018-2021, a header for 2022-2026" in message
    assert "pass edition=" in message


# ----------------------------------------------------- F2: exact to the digit


def test_scores_are_summed_in_the_run_order_as_the_evaluators_do(tmp_path):
    truth = _write(tmp_path, "truth.tsv", "img1\tC1\nimg2\tC2\nimg3\tC3\n")
    run = _write(tmp_path, "run.tsv", "img3\tC3;C4;C5;C6;C7\nimg2\tC2\nimg1\tC1\n")
    official = official_scores("2019", truth.read_text(), run.read_text())[0]
    assert official == 0.7777777777777777
    assert evaluate_run(run, truth).score == official


def test_the_secondary_score_is_summed_in_the_run_order(tmp_path):
    cuis = ["C0000726", "C0002978", "C0006141", "C0023216", "C0024485", "C0030797"]
    truth = _write(tmp_path, "truth.csv", "ID,CUIs\n" + "".join(
        f"img{k},{cuis[k % 6]}\n" for k in range(3)))
    second = _write(tmp_path, "second.csv", "ID,CUIs\nimg0,C0000726\nimg1,C0002978\n"
                                            "img2,C0006141\n")
    run = _write(tmp_path, "run.csv", "ID,CUIs\nimg2," + ";".join([*cuis[2:], "C0037303"]) +
                 "\nimg1,C0002978\nimg0,C0000726\n")
    expected = official_scores("2025", truth.read_text(), run.read_text(),
                               second.read_text())
    result = evaluate_run(run, truth, edition="2025", secondary_truth=second)
    assert (result.score, result.secondary_score) == expected
    assert expected[1] == 0.7777777777777777


# -------------------------------------------------------------- F3: the BOM


@pytest.mark.parametrize(("edition", "truth", "run", "refused"), [
    ("2018", "\ufeffimg1\tC1\n", "img1\tC1\n", "truth"),
    ("2019", "img1\tC1\n", "\ufeffimg1\tC1\n", "run"),
    ("2022", "\ufeffID\tcuis\nimg1\tC1\n", "img1|C1\n", None),
    ("2022", "ID\tcuis\nimg1\tC1\n", "\ufeffimg1|C1\n", "run"),
    ("2023", "ID|cuis\nimg1|C1\n", "\ufeffimg1|C1\n", "run"),
    ("2023", "ID|cuis\nimg1|C1\n", "\ufeffID|cuis\nimg1|C1\n", None),
    ("2025", "ID,CUIs\nimg1,C1\n", "\ufeffimg1,C1\n", "run"),
    ("2025", "ID,CUIs\nimg1,C1\n", "\ufeffID,CUIs\nimg1,C1\n", None),
    ("2026", "\ufeffID,CUIs\nimg1,C1\n", "ID,CUIs\nimg1,C1\n", None),
    ("2026", "ID,CUIs\nimg1,C1\n", "\ufeffID,CUIs\nimg1,C1\n", "run"),
])
def test_a_bom_is_refused_unless_on_a_skipped_header(tmp_path, edition, truth, run, refused):
    paths = {"truth": _write(tmp_path, "truth", truth), "run": _write(tmp_path, "run", run)}
    if refused is None:
        assert evaluate_run(paths["run"], paths["truth"], edition=edition).score == 1
        return
    with pytest.raises(ConceptFileError, match=rf"{refused}:1: starts with a UTF-8 "
                                               "byte-order mark"):
        evaluate_run(paths["run"], paths["truth"], edition=edition)


# --------------------------------------------- F5: what the evaluators score


@pytest.mark.parametrize("edition", ["2024", "2025", "2026"])
def test_an_empty_secondary_concept_and_a_2026_secondary_without_header(tmp_path, edition):
    truth = _write(tmp_path, "truth.csv", "ID,CUIs\nimg1,C0000726;C5\nimg2,C0006141\n")
    run = _write(tmp_path, "run.csv", "ID,CUIs\nimg1,C0000726\nimg2,C0006141\n")
    for text in ("ID,CUIs\nimg1,C0000726;\nimg2,C0006141\n",
                 "img1,C0000726\nimg2,C0006141\n"):
        second = _write(tmp_path, "second.csv", text)
        result = evaluate_run(run, truth, edition=edition, secondary_truth=second)
        assert (result.score, result.secondary_score) == official_scores(
            edition, truth.read_text(), run.read_text(), text)
        assert result.secondary_score == 1.0


def test_bare_cr_line_endings_are_lines(tmp_path):
    truth = _write(tmp_path, "truth.tsv", "img1\tC1;C2\rimg2\tC3\r")
    run = _write(tmp_path, "run.tsv", "img1\tC1\rimg2\tC3;C4\r")
    assert evaluate_run(run, truth, edition="2019").score == pytest.approx(2 / 3)


# -------------------------------------------------------------- F6: messages


def test_write_run_says_auto_cannot_be_written(tmp_path):
    with pytest.raises(ValueError, match="name an edition"):
        write_run(tmp_path / "r", ["a"], [["C1"]], edition="auto")


def test_the_command_line_names_its_own_options(tmp_path, capsys):
    truth = _write(tmp_path, "gt.txt", "ID|cuis\nimg1|C1\n")
    run = _write(tmp_path, "run.txt", "img1|C1\n")
    second = _write(tmp_path, "s.csv", "ID|cuis\nimg1|C1\n")
    assert main(["evaluate", str(run), str(truth), "--secondary-truth", str(second),
                 "--edition", "2023"]) == 2
    err = capsys.readouterr().err
    assert "--secondary-concepts" in err and "secondary_concepts=" not in err
    bad = _write(tmp_path, "bad.txt", "img1 C1\n")
    assert main(["evaluate", str(bad), str(truth)]) == 2
    err = capsys.readouterr().err
    assert "--edition" in err and "edition=" not in err


@pytest.mark.parametrize("value", ["0", "-1"])
def test_max_concepts_must_be_positive(tmp_path, capsys, value):
    with pytest.raises(SystemExit):
        main(["evaluate", "r", "t", "--max-concepts", value])
    assert "expected a number >= 1" in capsys.readouterr().err


def test_an_id_alone_message_and_one_problem_for_a_wrong_layout(tmp_path):
    truth = _write(tmp_path, "gt.tsv", "ID\tcuis\nimg1\n")
    with pytest.raises(ConceptFileError, match="no tab after the image id"):
        read_concepts(truth, edition="2022")
    truth = _write(tmp_path, "gt.txt", "ID|cuis\nimg1|C1\nimg2\tC2\n")
    with pytest.raises(ConceptFileError) as caught:
        read_concepts(truth, edition="2023")
    assert len(caught.value.problems) == 1


def test_2019_refusals_say_they_follow_the_2018_grader(tmp_path):
    truth = _write(tmp_path, "gt.tsv", "img1\tC1\n")
    run = _write(tmp_path, "run.tsv", "img1\tC1;C1\n")
    with pytest.raises(ConceptFileError, match="the 2018 grader's checks"):
        evaluate_run(run, truth, edition="2019")


def test_a_bad_run_against_a_large_truth_lists_few_problems(tmp_path):
    truth = _write(tmp_path, "gt.tsv", "".join(f"img{k}\tC1\n" for k in range(2000)))
    run = _write(tmp_path, "run.tsv", "".join(f"img{k}\tC1;;C2\n" for k in range(100)))
    with pytest.raises(ConceptFileError) as caught:
        evaluate_run(run, truth, edition="2019")
    problems = caught.value.problems
    assert len(problems) == 101  # each bad line, and one line for the 1,900 missing
    assert "1900 images of the ground truth are missing" in problems[-1]
    assert len(str(caught.value).splitlines()) <= 12
