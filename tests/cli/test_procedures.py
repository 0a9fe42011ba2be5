"""The command line's procedures and scores: evaluate, demo (reproduce-2019: test_reproduce)."""

import json
import re
import shlex
import subprocess
import sys

import pytest

from imageclef_concepts import (
    imageclef_f1_score,
    read_concepts,
)
from imageclef_concepts.cli._main import main


def test_evaluate_prints_official_score(tmp_path, capsys):
    gt = tmp_path / "gt.tsv"
    gt.write_text("a\tC1;C2\nb\tC3\nc\t\n")
    run = tmp_path / "run.tsv"
    run.write_text("a\tC1\nb\tC3\nc\tC4\n")
    assert main(["evaluate", str(run), str(gt)]) == 0
    out = capsys.readouterr().out
    assert "Mean F1 score: 0.8333333333333333" in out
    assert "2 of 3 images" in out


def test_evaluate_prints_the_secondary_score_when_asked(tmp_path, capsys):
    gt = tmp_path / "gt.tsv"
    gt.write_text("a\tC1;C2\nb\tC3\n")
    run = tmp_path / "run.tsv"
    run.write_text("a\tC1\nb\tC3\n")
    subset = tmp_path / "validated.txt"
    subset.write_text("C2\nC3\n")
    assert main(["evaluate", str(run), str(gt), "--secondary-concepts", str(subset)]) == 0
    out = capsys.readouterr().out
    assert "Mean F1 score: 0.8333333333333333" in out
    assert "Secondary F1 score: 0.5" in out  # a: T={C2}, P={} -> 0; b: 1


def test_evaluate_says_which_edition_it_picked_and_takes_one(tmp_path, capsys):
    gt = tmp_path / "gt.tsv"
    gt.write_text("img1\tC1;C2\nimg2\n")  # a 2019 ground truth: an image without concepts
    run = tmp_path / "run.tsv"
    run.write_text("img1\tC1\nimg2\n")
    assert main(["evaluate", str(run), str(gt)]) == 0
    out = capsys.readouterr().out
    assert ("Edition: 2019 (picked by auto; 2018, 2020, 2021 score these files alike; 2022, 2023"
            in out) and "Mean F1 score: 0.666" in out
    assert main(["evaluate", str(run), str(gt), "--edition", "2023"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "gt.tsv:2:" in err


def test_evaluate_asks_for_the_edition_when_two_score_differently(tmp_path, capsys):
    gt = tmp_path / "concepts.csv"
    gt.write_text("ID,CUIs\na,C0040405\nb,C0817096\n")
    manual = tmp_path / "concepts_manual.csv"
    manual.write_text("ID,CUIs\na,C0040405;C0920367\nb,C0817096\n")
    run = tmp_path / "run.csv"
    run.write_text("ID,CUIs\na,C0040405\nb,C0817096\n")
    assert main(["evaluate", str(run), str(gt), "--secondary-truth", str(manual)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "2024" in err and "2025" in err
    assert "--edition" in err
    assert main(["evaluate", str(run), str(gt), "--secondary-truth", str(manual),
                 "--edition", "2025"]) == 0
    out = capsys.readouterr().out
    assert "Mean F1 score: 1.0" in out and "Secondary F1 score: 0.8333333333333333" in out


def test_evaluate_bad_run_is_one_clear_error_without_traceback(tmp_path):
    gt = tmp_path / "gt.tsv"
    gt.write_text("a\tC1\nb\tC2\n")
    run = tmp_path / "run.tsv"
    run.write_text("a\tC1\na\tC2\n")
    done = subprocess.run(
        [sys.executable, "-m", "imageclef_concepts", "evaluate", str(run), str(gt)],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{run}:2: duplicate image id 'a'" in done.stderr
    assert f"{gt}:2: image id 'b' is missing from the run" in done.stderr


def test_evaluate_missing_file(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.tsv"), str(tmp_path / "gt.tsv")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("content, problem", [
    (b"", "the file holds no line"), (b"\xff\xfe\x00bin", "not a UTF-8 text file"),
    (b"a\tC1\na\tC2\n", "duplicate image id 'a'")])
def test_a_bad_bounds_file_is_the_only_output(tmp_path, capsys, content, problem):
    gt, run, train = tmp_path / "gt.tsv", tmp_path / "run.tsv", tmp_path / "train.tsv"
    gt.write_text("a\tC1;C2\nb\tC3\n")
    run.write_text("a\tC1\nb\tC3\n")
    train.write_bytes(content)
    assert main(["evaluate", str(run), str(gt), "--bounds", str(train),
                 "--report", str(tmp_path / "r.html")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no score printed before the error
    assert problem in captured.err and "train.tsv" in captured.err
    assert not (tmp_path / "r.html").exists()


@pytest.fixture
def tiny_demo(monkeypatch):
    from imageclef_concepts.recipes import _demo

    tiny_size = _demo.DemoSize(n_images=120, n_concepts=4, image_size=16, filters=(4,),
                               epochs=2, learning_rates=(1e-3, 3e-3))
    monkeypatch.setattr(_demo, "QUICK", tiny_size)
    return tiny_size


@pytest.mark.slow
def test_demo_writes_everything_and_prints_the_table(tmp_path, capsys, tiny_demo):
    output = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    for row in ("most frequent concepts", "CNN, threshold 0.5", "CNN, the paper's threshold 0.1",
                "CNN, tuned threshold"):
        assert row in printed
    # each round says how many fits it runs, then one line per fit with its time
    assert "Fitting 2 folds for each of 2 candidates, totalling 4 fits" in printed
    assert "[CV 1/2] END" in printed and "total time=" in printed
    for name in ("run.tsv", "test_concepts.tsv", "model.keras", "summary.json",
                 "concept_frequencies.png", "threshold_curve.png", "training_history.png",
                 "per_concept_f1.png"):
        assert (output / name).is_file(), name
    ids, concepts, layout = read_concepts(output / "run.tsv")
    assert layout == "2019" and len(ids) == 30  # a quarter of 120 images held out
    summary = json.loads((output / "summary.json").read_text())
    # the run file scores what the table says
    truth = dict(zip(*read_concepts(output / "data" / "concepts.tsv")[:2]))
    tuned = [v for k, v in summary["scores"].items() if k.startswith("CNN, tuned")][0]
    assert imageclef_f1_score([truth[i] for i in ids], concepts) == pytest.approx(tuned)
    # The demo's last line is the evaluate command that reproduces that score from its
    # files: the run against the held-out images' truth, written beside it.
    command = printed.strip().splitlines()[-1].strip()
    assert command == summary["evaluate_command"]
    words = shlex.split(command)
    assert words[:2] == ["imageclef-concepts", "evaluate"]
    test_ids, test_concepts, _ = read_concepts(output / "test_concepts.tsv")
    assert test_ids == ids and test_concepts == [truth[i] for i in ids]
    assert main(words[1:]) == 0
    scored = capsys.readouterr().out
    assert "Edition: 2019" in scored
    score = float(re.search(r"Mean F1 score: (\S+)", scored).group(1))
    assert score == pytest.approx(tuned) and f"{score:.4f}" in printed  # the table's figure


def test_demo_refuses_a_folder_in_use(tmp_path, capsys):
    (tmp_path / "something").write_text("x")
    assert main(["demo", "--output", str(tmp_path)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_reproduce_refuses_a_folder_in_use_before_writing_anything(tmp_path, capsys):
    # reproduce-2019 wrote its data, model.keras, run.tsv and report.md into a folder holding
    # a user's files, replacing a user's report.md and run.tsv of those names.
    (tmp_path / "report.md").write_text("my notes")
    assert main(["reproduce-2019", "--dry-run", "--output", str(tmp_path), "--quiet"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.md"]
    assert (tmp_path / "report.md").read_text() == "my notes"


@pytest.mark.parametrize("command", [["demo", "--quick"], ["reproduce-2019", "--dry-run"]])
def test_an_output_that_is_no_folder_is_named_by_its_flag_and_kind(tmp_path, capsys, command):
    # demo said "Not a directory: /dev/null", naming no option; reproduce-2019 called a
    # device and a named pipe "a file".
    import os

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "notes.txt").write_text("mine")
    for output, kind in (("/dev/null", "a character device"),
                         (str(tmp_path / "pipe"), "a named pipe"),
                         (str(tmp_path / "notes.txt"), "a file")):
        assert main([*command, "--output", output, "--quiet"]) == 2
        assert capsys.readouterr().err.endswith(
            f"error: --output {output} is {kind}; name a new folder.\n")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("command", [["demo", "--quick"], ["reproduce-2019", "--dry-run"]])
@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "4294967296"])
def test_a_seed_numpy_cannot_take_is_named_by_its_flag_before_any_folder(tmp_path, capsys,
                                                                         command, value):
    # NumPy's "Seed must be between 0 and 2**32 - 1" named no flag, and the demo had made
    # its output folder first.
    with pytest.raises(SystemExit) as raised:
        main([*command, "--output", str(tmp_path / "out"), "--random-state", value])
    assert raised.value.code == 2
    assert "argument --random-state: expected a seed in [0, 4294967295]" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _tiny_reproduction(monkeypatch, fail_on=(), grid=None):
    """reproduce-2019 on the tiny procedure (the paper's grid is 27 trainings); each step in
    ``fail_on`` fails the test when it starts."""
    import dataclasses

    from imageclef_concepts.recipes import _reproduce

    tiny = dataclasses.replace(
        _reproduce.DRY_RUN, first_grid=grid or {"learning_rate": [1e-3]}, n_rounds=1,
        estimator_params={**_reproduce.DRY_RUN.estimator_params, "image_size": 16,
                          "filters": (2,), "dense_units": (4,), "epochs": 1})
    monkeypatch.setattr(_reproduce, "Reproduction", lambda: tiny)
    for step in fail_on:
        monkeypatch.setattr(_reproduce, step, lambda *a, **k: pytest.fail("training started"))


def test_reproduce_refuses_training_ids_without_images_at_once_in_one_line(tmp_path, capsys,
                                                                          monkeypatch):
    # No training id matched an image: the search ran for 20 s, then the error line was
    # scikit-learn's "All the 27 fits failed" with a whole traceback (review 18 F9).
    from imageclef_concepts import make_imageclef_2019_layout

    data = tmp_path / "data"
    make_imageclef_2019_layout(data, n_train=8, n_valid=4, n_test=4, n_concepts=4,
                               image_size=16)
    for image in list((data / "train").iterdir()):
        image.rename(data / "train" / f"x{image.name}")
    _tiny_reproduction(monkeypatch, fail_on=("coarse_to_fine_search", "train_and_tune"))
    assert main(["reproduce-2019", "--data", str(data), "--output", str(tmp_path / "out"),
                 "--quiet"]) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert error == [f"imageclef-concepts reproduce-2019: error: {data}/train_concepts.tsv: "
                     f"none of its 8 image ids has a file in {data}/train: there is nothing "
                     "to train on."]


@pytest.mark.slow
def test_reproduce_says_the_first_error_of_a_search_whose_fits_all_fail(tmp_path, capsys,
                                                                       monkeypatch):
    # Every configuration of the grid fails (a learning rate below zero): the error line held
    # scikit-learn's message with each fit's traceback.
    from imageclef_concepts import make_imageclef_2019_layout

    data = tmp_path / "data"
    make_imageclef_2019_layout(data, n_train=8, n_valid=4, n_test=2, n_concepts=2,
                               image_size=16)
    _tiny_reproduction(monkeypatch, fail_on=("train_and_tune",),
                       grid={"learning_rate": [-1.0]})
    assert main(["reproduce-2019", "--data", str(data), "--output", str(tmp_path / "out"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "fits failed." not in err
    assert "error: every configuration of the coarse-to-fine search failed (1 fit(s)); the " \
           "first error: InvalidParameterError: The 'learning_rate' parameter" in err
