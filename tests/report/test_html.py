"""A run's HTML report, and evaluate --bounds / --report / --images on the command line."""

import base64
import io
import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imageclef_concepts import evaluate_run, oracle_bounds, write_report
from imageclef_concepts.cli._main import main

HOSTILE = "<script>alert(1)</script>"


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes, and its visible text."""

    def __init__(self, page):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def files(tmp_path):
    """A ground truth, a run with a hostile concept, a secondary list, training concepts."""
    truth = tmp_path / "truth.tsv"
    truth.write_text("a\tC1;C2\nb\tC1\nc\tC3;C4\nd\n")
    run = tmp_path / "run.tsv"
    run.write_text(f"a\tC1\nb\tC1;{HOSTILE}\nc\tC5\nd\tC1\n")
    secondary = tmp_path / "kept.txt"
    secondary.write_text("C1\nC3\n")
    train = tmp_path / "train.tsv"
    train.write_text("t1\tC1;C2\nt2\tC1\nt3\tC3\n")
    return {"truth": truth, "run": run, "secondary": secondary, "train": train,
            "folder": tmp_path}


def _report(files, **options):
    evaluation = evaluate_run(files["run"], files["truth"], secondary_concepts=files["secondary"])
    path = files["folder"] / "report.html"
    write_report(path, evaluation, **options)
    return evaluation, path.read_text(encoding="utf-8")


def test_the_report_holds_the_scores_and_the_ceilings(files):
    evaluation, page = _report(files, train_concepts=files["train"])
    assert f"<b>{evaluation.score!r}</b>" in page
    assert repr(evaluation.secondary_score) in page
    primary = oracle_bounds(["C1;C2", "C1", "C3"], [("C1", "C2"), ("C1",), ("C3", "C4"), ()])
    secondary = oracle_bounds(["C1;C2", "C1", "C3"], [("C1", "C2"), ("C1",), ("C3", "C4"), ()],
                              concepts=["C1", "C3"])
    row = ("<tr><td>a perfect model on the training vocabulary</td>"
           f"<td>{primary.vocabulary_f1:.4f}</td><td>{secondary.vocabulary_f1:.4f}</td></tr>")
    assert row in page
    assert f"<td>{primary.retrieval_f1:.4f}</td>" in page
    assert "3 of 4" in page  # images scored


def test_the_report_tables_concepts_and_the_worst_images(files):
    _, page = _report(files)
    # C2: true in a, never predicted: no precision, recall 0. Frequency: the truth's (1).
    assert ("<tr><td>C2</td><td>1</td><td>1</td><td>0</td><td>&ndash;</td><td>0.000</td>"
            "<td>0.000</td></tr>") in page
    # C1: true in a and b, predicted in a and b (and d, which has no truth: not scored).
    assert "<tr><td>C1</td><td>2</td><td>2</td><td>2</td><td>1.000</td><td>1.000</td>" in page
    # The worst images: c (F1 0), then a (2/3), then b (2/3, but a has more true concepts).
    worst = page.split("images with the lowest F1")[1]
    assert worst.index("<td>c</td>") < worst.index("<td>a</td>") < worst.index("<td>b</td>")
    assert "<td>d</td>" not in worst  # no true concept: left out, as the score leaves it
    assert "<b>C1</b>, C2" in worst and "<i>C5</i>" in worst
    assert "Not computed: give the training concepts" in page


def test_the_report_escapes_text_and_embeds_nothing_external(files):
    _, page = _report(files, train_concepts=files["train"])
    parsed = _Tags(page)
    names = [tag for tag, _ in parsed.tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    assert all(attrs["src"].startswith("data:image/") for tag, attrs in parsed.tags
               if "src" in attrs)
    assert not any("href" in attrs for _, attrs in parsed.tags)
    assert "<script" not in page.lower() and 'src="http' not in page
    assert HOSTILE.upper() in "".join(parsed.text)  # shown as text, not run
    assert page.count("data:image/png;base64,") == 2  # the figures


def test_a_hostile_image_id_is_shown_as_text(tmp_path):
    truth, run = tmp_path / "truth.tsv", tmp_path / "run.tsv"
    truth.write_text(f"{HOSTILE}\tC1\n")
    run.write_text(f"{HOSTILE}\tC2\n")
    write_report(tmp_path / "r.html", evaluate_run(run, truth), images=tmp_path)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script" not in page and f"<td>{HOSTILE.replace('<', '&lt;').replace('>', '&gt;')}" \
        in page
    assert "no image file named &lt;script&gt;" in page


def test_thumbnails_are_embedded_and_unreadable_images_named(files):
    images = files["folder"] / "images"
    images.mkdir()
    Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8)).save(images / "a.png")
    (images / "c.jpg").write_bytes(b"not a jpeg at all")
    (images / "b.png").write_bytes(b"")
    _, page = _report(files, images=images)
    assert page.count('src="data:image/jpeg;base64,') == 1
    thumbnail = page.split('alt="a" src="data:image/jpeg;base64,')[1].split('"')[0]
    assert Image.open(io.BytesIO(base64.b64decode(thumbnail))).size == (128, 128)
    unread = page.split("Thumbnails that could not be made")[1]
    assert "c.jpg" in unread and "b.png: the file is empty (0 bytes)" in unread
    assert "BufferedReader" not in unread  # the file is named, not Python's file object


def _not_utf8(folder, name=b"d\xe9"):
    """A new folder in ``folder`` whose name is bytes that are not UTF-8 (``d\\xe9``)."""
    made = os.fsdecode(os.path.join(os.fsencode(folder), name))
    os.mkdir(made)
    return Path(made)


def test_a_folder_name_that_is_not_utf8_is_shown_as_its_bytes(tmp_path):
    # The run, the truth and the images in a folder named b"d\xe9" (which os.fsdecode
    # gives as "d\udce9"): the report names them with the byte as \xe9, in UTF-8.
    folder = _not_utf8(tmp_path)
    (folder / "truth.tsv").write_text("a\tC1;C2\nb\tC3\n")
    (folder / "run.tsv").write_text("a\tC1\nb\tC4\n")
    evaluation = evaluate_run(folder / "run.tsv", folder / "truth.tsv")
    write_report(folder / "report.html", evaluation, images=folder)
    page = (folder / "report.html").read_bytes().decode("utf-8")  # all of it UTF-8
    shown = os.path.join(os.fsdecode(tmp_path), "d\\xe9")
    assert f"run: {shown}/run.tsv" in page and f"ground truth: {shown}/truth.tsv" in page
    assert f"no image file named a.* in {shown}" in page


def test_evaluate_report_and_images_in_a_folder_not_named_in_utf8(tmp_path, monkeypatch):
    folder = _not_utf8(tmp_path)
    (folder / "truth.tsv").write_text("a\tC1;C2\nb\tC3\n")
    (folder / "run.tsv").write_text("a\tC1\nb\tC4\n")
    report = folder / "report.html"
    # Standard output as a strict UTF-8 terminal's (LANG=en_US.UTF-8): the path printed.
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["evaluate", str(folder / "run.tsv"), str(folder / "truth.tsv"),
                 "--report", str(report), "--images", str(folder)]) == 0
    stdout.flush()
    printed = stdout.buffer.getvalue()
    assert b"Report: " + os.fsencode(report) + b"\n" in printed  # the path's own bytes
    assert stdout.errors == "strict"  # as it was
    assert "in " + os.path.join(os.fsdecode(tmp_path), "d\\xe9") in report.read_bytes().decode()


def test_without_matplotlib_the_report_says_which_extra(files, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.warns(UserWarning, match=r"imageclef_concepts\[plots\]"):
        _, page = _report(files)
    assert "No figures: figures need matplotlib: pip install" in page
    assert "data:image/png" not in page and "<tr><td>C1</td>" in page


def test_the_report_refuses_to_replace_an_input_or_a_folder(files):
    evaluation = evaluate_run(files["run"], files["truth"])
    before = files["run"].read_bytes()
    with pytest.raises(ValueError, match="is also an input"):
        write_report(files["run"], evaluation)
    with pytest.raises(ValueError, match="is also an input"):
        write_report(files["train"], evaluation, train_concepts=files["train"])
    with pytest.raises(OSError, match="is a folder"):
        write_report(files["folder"], evaluation)
    assert files["run"].read_bytes() == before
    assert sorted(path.name for path in files["folder"].iterdir()) == \
        ["kept.txt", "run.tsv", "train.tsv", "truth.tsv"]


def test_evaluate_prints_the_ceilings_and_writes_the_report(files, capsys):
    report = files["folder"] / "out.html"
    assert main(["evaluate", str(files["run"]), str(files["truth"]), "--bounds",
                 str(files["train"]), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    bounds = oracle_bounds(["C1;C2", "C1", "C3"], ["C1;C2", "C1", "C3;C4"])
    for line in bounds.lines():
        assert f"  {line}\n" in out
    assert "Ceilings of the split (primary score" in out and f"Report: {report}" in out
    assert "Mean F1 score" in report.read_text(encoding="utf-8")


@pytest.mark.parametrize("options, message", [
    (["--report", "{truth}"], "is also an input"),
    (["--report", "{folder}"], "is a folder"),
    (["--bounds", "{folder}/missing.tsv"], "training concept file not found"),
    (["--images", "{folder}"], "--images is for the thumbnails of --report"),
    (["--report", "{folder}/r.html", "--images", "{folder}/none"], "image folder not found"),
])
def test_evaluate_refuses_bad_report_options_in_one_line(files, capsys, options, message):
    before = files["truth"].read_bytes()
    options = [option.format(**files) for option in options]
    assert main(["evaluate", str(files["run"]), str(files["truth"]), *options]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err
    assert files["truth"].read_bytes() == before
    assert not (files["folder"] / "r.html").exists()


def test_evaluate_names_a_missing_run_in_one_line(files, capsys):
    assert main(["evaluate", str(files["folder"] / "nothing.tsv"), str(files["truth"]),
                 "--report", str(files["folder"] / "r.html")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "nothing.tsv" in err


def test_training_concepts_may_be_lists_or_a_frame_but_must_name_concepts(files):
    import pandas as pd

    from_file = _report(files, train_concepts=files["train"], n_worst=1)[1]
    frame = pd.DataFrame([[1, 1, 0], [1, 0, 0], [0, 0, 1]], columns=["C1", "C2", "C3"])
    assert _report(files, train_concepts=frame, n_worst=1)[1] == from_file
    assert _report(files, train_concepts=["C1;C2", "c1", "C3"], n_worst=1)[1] == from_file
    assert from_file.count("<td>a</td>") == 0 and "<td>c</td>" in from_file  # n_worst=1
    with pytest.raises(ValueError, match="must name its concepts"):
        _report(files, train_concepts=frame.to_numpy())
    with pytest.raises(ValueError, match="n_worst must be a whole number, at least 1"):
        _report(files, n_worst=0)


@pytest.mark.parametrize("name", ["n_worst", "n_concepts"])
def test_the_report_counts_are_whole_numbers_not_bools_numpy_ones_taken(files, name):
    # n_worst=True listed one image, silently, and np.int64(5) was refused (review 16).
    import numpy as np

    with pytest.raises(TypeError, match=rf"^{name}=True: {name} must be a whole number, at "
                                        "least 1 \\(not a bool\\)"):
        _report(files, **{name: True})
    assert _report(files, **{name: np.int64(1)})[1] == _report(files, **{name: 1})[1]


@pytest.mark.parametrize("name", [b"report.html", b"caf\xe9.html"])
def test_a_report_named_by_bytes_is_written_there(tmp_path, name):
    truth, run = tmp_path / "truth.csv", tmp_path / "run.csv"
    truth.write_text("ID,CUIs\nimg1,C0000001\nimg2,C0000002\n")
    run.write_text("ID,CUIs\nimg1,C0000001\nimg2,C0000001\n")
    evaluation = evaluate_run(run, truth, edition="2025")
    write_report(os.path.join(os.fsencode(tmp_path), name), evaluation)
    assert name in os.listdir(os.fsencode(tmp_path))
    page = open(os.path.join(os.fsencode(tmp_path), name), "rb").read().decode("utf-8")
    assert "<html" in page.lower()


def test_inputs_named_by_bytes_are_never_replaced_by_the_report(files):
    # A name that is not UTF-8 comes as bytes (os.listdir(b"...")): the run, the truth and
    # the training concepts named so are inputs all the same (they were overwritten).
    run, truth, train = (os.fsencode(files[name]) for name in ("run", "truth", "train"))
    evaluation = evaluate_run(run, truth)
    before = {name: files[name].read_bytes() for name in ("run", "truth", "train")}
    for target in (run, files["truth"]):
        with pytest.raises(ValueError, match="is also an input"):
            write_report(target, evaluation)
    with pytest.raises(ValueError, match="is also an input"):
        write_report(files["train"], evaluation, train_concepts=train)
    assert {name: files[name].read_bytes() for name in before} == before
