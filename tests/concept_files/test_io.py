import numpy as np
import pytest

from imageclef_concepts import (
    ConceptFileError,
    evaluate_run,
    read_concepts,
    write_run,
)

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


def test_a_pipe_header_is_skipped_in_2023_and_refused_as_an_image_in_2022(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("ID|cuis\nimg1|C1;C2\nimg2|\n")
    ids, concepts, edition = read_concepts(path, edition="2023")
    assert (ids, concepts, edition) == (["img1", "img2"], [("C1", "C2"), ()], "2023")
    # A 2022 run has no header: its evaluator would read an image called "ID".
    with pytest.raises(ConceptFileError, match=r"2022 run .*\n.*gt.csv:1: a header line "
                                               "where an image"):
        read_concepts(path, edition="2022")
    assert read_concepts(path).edition == "2023"


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


@pytest.mark.parametrize("ids, concepts, shown", [
    (["\udcff"], [["C1"]], "Image id '\\xff'"),  # what os.fsdecode gives for the byte 0xff
    (["caf\udce9"], [["C1"]], "Image id 'caf\\xe9'"),
    (["a"], [["C1\udce9"]], "Concept 'C1\\xe9' of image 'a'"),
])
def test_write_run_refuses_text_that_is_not_utf8_naming_it(tmp_path, ids, concepts, shown):
    # A name os.fsdecode gave from bytes that are not UTF-8 cannot be a line of a
    # run file (UTF-8 text, as every evaluator reads it): refused, nothing written.
    path = tmp_path / "run.tsv"
    with pytest.raises(ValueError, match="not UTF-8") as caught:
        write_run(path, ["ok", *ids], [["C2"], *concepts])
    assert not isinstance(caught.value, UnicodeError)
    assert str(caught.value).startswith(shown)
    assert not path.exists()


def test_ids_given_as_bytes_are_file_names_not_their_repr(tmp_path):
    # Ids from os.listdir(b"...") are bytes: written as os.fsdecode reads them (a name
    # that is not UTF-8 then refused naming it), never as "b'img1'".
    path = tmp_path / "run.tsv"
    write_run(path, [b"img1", np.bytes_(b"img2")], [["C1"], ["C2"]])
    assert path.read_text() == "img1\tC1\nimg2\tC2\n"
    with pytest.raises(ValueError, match="^Image id 'caf\\\\xe9' is not UTF-8"):
        write_run(tmp_path / "other.tsv", [b"caf\xe9"], [["C1"]])
    assert not (tmp_path / "other.tsv").exists()


@pytest.mark.parametrize("name", [b"run.csv", b"caf\xe9-run.csv"])
def test_a_run_file_named_by_bytes_is_written_there(tmp_path, name):
    import os

    from imageclef_concepts import read_concepts, write_run

    path = os.path.join(os.fsencode(tmp_path), name)
    write_run(path, ["img1"], [["C0000001"]], edition="2025")
    assert os.listdir(os.fsencode(tmp_path)) == [name]
    assert read_concepts(path, edition="2025").ids == ["img1"]


@pytest.mark.parametrize(("delimiter", "named"), [("\t", "2019-2021"), ("|", "2022")])
def test_a_file_no_edition_accepts_is_named_by_its_own_layout(tmp_path, delimiter, named):
    # Every edition refuses (images missing from the run); the tab and pipe
    # layouts tie with 2023's detected delimiter, and are named as theirs.
    header = "ID\tcuis\n" if delimiter == "|" else ""  # 2022: a tab truth, a pipe run
    truth = tmp_path / "truth.txt"
    truth.write_text(header + "a\tC1;C2\nb\tC3\nc\tC4\n")
    run = tmp_path / "run.txt"
    run.write_text(f"a{delimiter}C1\n")
    with pytest.raises(ConceptFileError, match=f"read as {named}, the closest"):
        evaluate_run(run, truth)


@pytest.mark.parametrize("layout", ["2019", "2022", "2024"])
@pytest.mark.parametrize("image_id", ["ID", "id"])
def test_an_image_called_id_is_refused_in_every_layout(tmp_path, layout, image_id):
    # Written, it would be read back as a header line (or refused as one): never the same run
    with pytest.raises(ValueError, match=rf"Image id '{image_id}' is a header line's first"):
        write_run(tmp_path / "run", ["a", image_id], [["C1"], ["C2"]], layout=layout)
    assert not (tmp_path / "run").exists()


def test_a_huge_id_in_a_concept_file_problem_is_shown_capped(tmp_path):
    # Review 20 r20b R2: a concept file's problems showed a huge id whole (a 1 MB id twice: a
    # 1,000,161-character message).
    from imageclef_concepts import ConceptFileError, read_concepts

    huge = "x" * 1_000_000
    path = tmp_path / "dup.tsv"
    path.write_text(f"{huge}\tC1\n{huge}\tC2\n")
    with pytest.raises(ConceptFileError) as raised:
        read_concepts(path, edition="2019")
    message = str(raised.value)
    assert len(message) < 2_000 and "duplicate image id 'xxx" in message
    assert message.endswith(" characters)")
