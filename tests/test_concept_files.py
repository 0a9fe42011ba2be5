import pytest

from imageclef_concepts import (
    ConceptFileError,
    evaluate_run,
    read_concepts,
    write_run,
)

from .official_f1 import official_mean_f1

IDS = ["img1", "img2", "img3", "img4"]
CONCEPTS = [("C0040405", "C0817096"), ("C0441633",), (), ("C0040405",)]


@pytest.mark.parametrize("layout", ["2019", "2022", "2024"])
def test_round_trip_every_layout(tmp_path, layout):
    path = tmp_path / f"run_{layout}.txt"
    write_run(path, IDS, CONCEPTS, layout=layout)
    ids, concepts, detected = read_concepts(path)
    assert ids == IDS
    assert concepts == CONCEPTS
    assert detected == layout


def test_written_lines_follow_the_layouts(tmp_path):
    for layout, expected_first in [("2019", "img1\tC0040405;C0817096"),
                                   ("2022", "img1|C0040405;C0817096"),
                                   ("2024", "ID,CUIs")]:
        path = tmp_path / layout
        write_run(path, IDS, CONCEPTS, layout=layout)
        assert path.read_text().splitlines()[0] == expected_first


def test_semicolon_strings_and_file_order(tmp_path):
    path = tmp_path / "run.tsv"
    write_run(path, ["b", "a"], ["C2;C1", ""])
    assert path.read_text() == "b\tC2;C1\na\t\n"
    assert read_concepts(path).ids == ["b", "a"]


def test_an_empty_concept_field_and_an_id_alone_mean_no_concepts(tmp_path):
    path = tmp_path / "gt.tsv"
    path.write_text("img2\t\nimg3\tC1\nimg4\n")
    assert read_concepts(path).concepts == [(), ("C1",), ()]
    path.write_text("img1\tC1\nimg2|C2\nimg3\n")  # a line in another layout
    with pytest.raises(ConceptFileError) as caught:
        read_concepts(path, edition="2019")
    assert [p.split(": ", 1)[0] for p in caught.value.problems] == [f"{path}:2"]
    assert "image id 'img2|C2' contains '|'" in caught.value.problems[0]


def test_a_pipe_header_is_skipped_in_2023_and_an_image_in_2022(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("ID|cuis\nimg1|C1;C2\nimg2|\n")
    ids, concepts, edition = read_concepts(path, edition="2023")
    assert (ids, concepts, edition) == (["img1", "img2"], [("C1", "C2"), ()], "2023")
    assert read_concepts(path, edition="2022").ids == ["ID", "img1", "img2"]
    with pytest.raises(ConceptFileError, match="editions read it differently .*2022.*2023"):
        read_concepts(path)


def test_2024_quoted_csv(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text('ID,CUIs\r\n"img1","C1;C2"\r\nimg2,\r\n')
    assert read_concepts(path) == (["img1", "img2"], [("C1", "C2"), ()], "2024")


def test_unknown_edition_name(tmp_path):
    with pytest.raises(ValueError, match="Unknown edition '2017'"):
        write_run(tmp_path / "run", ["a"], ["C1"], layout="2017")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="Unknown edition '2017'"):
        read_concepts(tmp_path / "nowhere", edition="2017")  # before looking for the file
    with pytest.raises(ValueError, match="Unknown edition '2017'"):
        evaluate_run(tmp_path / "nowhere", tmp_path / "nowhere", edition="2017")


def test_write_rejects_delimiter_in_id(tmp_path):
    with pytest.raises(ValueError, match="'a\\\\tb'"):
        write_run(tmp_path / "r", ["a\tb"], ["C1"])


@pytest.mark.parametrize(
    "content, message",
    [
        ("img1\tC1\n\nimg2\tC2\n", ":2: blank line"),
        ("img1\tC1\timg2\n", ":1: 3 fields"),
        ("img1\tC1;;C2\n", ":1: empty concept"),
        ("img1\tC1; C2\n", ":1: white space around concept ' C2'"),
        ("\tC1\n", ":1: empty image id"),
        ("img1\tC1\nimg2\tC2\nimg1\tC3\n", ":3: duplicate image id 'img1' \\(first on line 1\\)"),
    ],
)
def test_malformed_ground_truth_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "gt.tsv"
    path.write_text(content)
    with pytest.raises(ConceptFileError, match=message) as caught:
        read_concepts(path, edition="2019")
    assert str(path) in str(caught.value)


def test_the_csv_header_is_optional_until_2026(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("img1,C1\nimg2,C2\n")
    assert read_concepts(path, edition="2025").ids == ["img1", "img2"]
    path.write_text("ID,concepts\nimg1,C1\n")  # any first cell holding ID is a header
    assert read_concepts(path, edition="2025").ids == ["img1"]
    run = tmp_path / "run.csv"
    run.write_text("img1,C1\n")
    with pytest.raises(ConceptFileError, match="run.csv:1: expected the header line ID,CUIs"):
        evaluate_run(run, path, edition="2026")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.tsv"):
        read_concepts(tmp_path / "nowhere.tsv")


def test_duplicate_concepts_warn_and_count_once(tmp_path):
    path = tmp_path / "gt.tsv"
    path.write_text("img1\tC1;C2;c1\n")
    with pytest.warns(UserWarning, match="1 line\\(s\\) repeat a concept \\(lines 1\\)"):
        assert read_concepts(path).concepts == [("C1", "C2")]


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_evaluate_run_matches_official_script(tmp_path):
    truth = ["C1;C2", "C3", "", "C4;C5;C6"]
    predicted = ["C1", "C3;C7", "C9", "c4;C5"]
    gt = _write(tmp_path / "gt.tsv", [f"i{k}\t{c}" for k, c in enumerate(truth)])
    # the run in another order
    run = tmp_path / "run.tsv"
    write_run(run, ["i3", "i0", "i2", "i1"],
              [predicted[3], predicted[0], predicted[2], predicted[1]], edition="2019")
    result = evaluate_run(run, gt)
    assert result.score == pytest.approx(official_mean_f1(truth, predicted))
    assert float(result) == result.score
    assert (result.n_images, result.n_scored) == (4, 3)


def test_evaluate_run_lists_every_problem_with_line_numbers(tmp_path):
    gt = _write(tmp_path / "gt.tsv", ["a\tC1", "b\tC2", "c\tC3"])
    run = _write(tmp_path / "run.tsv", ["a\tC1", "a\tC2", "x\tC1", "d\tC1\tC2", "e\tC1;;C2"])
    with pytest.raises(ConceptFileError) as caught:
        evaluate_run(run, gt)
    problems = caught.value.problems
    assert f"{run}:2: duplicate image id 'a' (first on line 1)" in problems
    assert f"{run}:3: image id 'x' is not in the ground truth" in problems
    assert any(p.startswith(f"{run}:4: 3 fields") for p in problems)
    assert any(p.startswith(f"{run}:5: empty concept") for p in problems)
    assert f"{gt}:2: image id 'b' is missing from the run" in problems
    assert f"{gt}:3: image id 'c' is missing from the run" in problems


def test_evaluate_run_refuses_a_repeated_concept_and_counts_a_case_variant_once(tmp_path):
    gt = _write(tmp_path / "gt.tsv", ["a\tC1;C2"])
    run = _write(tmp_path / "run.tsv", ["a\tC1;C1"])
    with pytest.raises(ConceptFileError, match="run.tsv:1: concept 'C1' named twice"):
        evaluate_run(run, gt)
    run = _write(tmp_path / "run.tsv", ["a\tC1;c1"])
    result = evaluate_run(run, gt)
    assert result.score == pytest.approx(2 / 3)
    assert result.warnings == [f"{run}:1: concept(s) c1 repeated in another case, counted once"]


def test_evaluate_run_strict_options(tmp_path):
    gt = _write(tmp_path / "gt.tsv", ["a\tC1", "b\tC2"])
    run = _write(tmp_path / "run.tsv", ["a\tC1;C2;C3", "b\tC2;advertisement"])
    assert evaluate_run(run, gt).score == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(ConceptFileError, match=":1: 3 concepts; at most 2"):
        evaluate_run(run, gt, max_concepts=2)
    with pytest.raises(ConceptFileError, match=":2: not UMLS CUIs: ADVERTISEMENT"):
        evaluate_run(run, gt, cui_only=True)


def test_secondary_score_on_a_file_of_concepts(tmp_path):
    gt = _write(tmp_path / "gt.tsv", ["a\tC1;C2", "b\tC3", "c\tC2"])
    run = _write(tmp_path / "run.tsv", ["a\tC1", "b\tC3", "c\tC1"])
    subset = _write(tmp_path / "validated.txt", ["c2", "C3", ""])
    result = evaluate_run(run, gt, secondary_concepts=subset)
    assert result.score == pytest.approx((2 / 3 + 1 + 0) / 3)
    # On {C2, C3}: a: T={C2} P={} -> 0; b: 1; c: T={C2} P={} -> 0.
    assert result.secondary_score == pytest.approx(1 / 3)
    assert evaluate_run(run, gt).secondary_score is None
    empty = _write(tmp_path / "empty.txt", [""])
    with pytest.raises(ConceptFileError, match="no concept in the file"):
        evaluate_run(run, gt, secondary_concepts=empty)
