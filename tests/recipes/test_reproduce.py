"""The paper's procedure end to end, on a small dataset in the exact 2019 layout."""

import json
import warnings

import pytest

from imageclef_concepts import DatasetMismatchWarning, make_imageclef_2019_layout, read_concepts
from imageclef_concepts.cli._main import main

# Slow by nature: the 2019 paper's procedure end to end (run by `pytest -m slow`).
pytestmark = pytest.mark.slow


def test_the_2019_layout_has_concepts_only_in_validation(tmp_path):
    splits = make_imageclef_2019_layout(tmp_path, n_train=40, n_valid=20, n_test=10)
    for split in ("train", "valid", "test"):
        assert (tmp_path / f"{split}_concepts.tsv").is_file()
        assert len(list((tmp_path / split).glob("*.jpg"))) == len(splits[split].ids)
    in_train = {c for image in splits["train"].concepts for c in image}
    in_valid = {c for image in splits["valid"].concepts for c in image}
    assert in_valid - in_train  # as in 2019: some concepts only in validation


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("reproduction")
    assert main(["reproduce-2019", "--dry-run", "--output", str(output), "--quiet"]) == 0
    return output, json.loads((output / "report.json").read_text())


def test_every_concept_of_training_and_validation_has_an_output(dry_run):
    output, report = dry_run
    train = read_concepts(output / "data" / "train_concepts.tsv").concepts
    valid = read_concepts(output / "data" / "valid_concepts.tsv").concepts
    combined = {c for image in train + valid for c in image}
    assert report["n_outputs"] == len(combined) == report["concepts"]["combined"]
    assert report["concepts"]["only_in_valid"] > 0


def test_the_run_file_is_valid_and_scored(dry_run):
    output, report = dry_run
    run = read_concepts(output / "run.tsv")
    truth = read_concepts(output / "data" / "test_concepts.tsv")
    assert run.layout == "2019" and sorted(run.ids) == sorted(truth.ids)
    assert 0 <= report["run_file"]["official_f1"] <= 1


def test_the_report_holds_every_step(dry_run):
    output, report = dry_run
    assert len(report["search_rounds"]) == 2
    first, second = report["search_rounds"]
    assert len(first["official_f1_at_0.1"]) == len(first["params"]) == 4
    assert second["grid"] != first["grid"]  # refined around the best
    assert report["settings"]["monitor"] == "val_binary_accuracy"
    assert report["threshold"]["used"] == 0.1  # the paper's, unless --tune-threshold
    curve = report["threshold"]["curve"]
    assert len(curve["thresholds"]) == len(curve["official_f1"]) == 90
    assert report["paper_test_f1"] == 0.1435
    assert {"data", "search", "test", "total"} <= set(report["timings_s"])
    text = (output / "report.md").read_text()
    assert "Round 2" in text and "0.1435" in text


def test_test_images_no_run_file_can_name_are_refused_before_training(tmp_path, monkeypatch,
                                                                       capsys):
    import os
    import shutil

    from imageclef_concepts import _reproduce

    make_imageclef_2019_layout(tmp_path / "data", n_train=4, n_valid=2, n_test=2,
                               image_size=16)
    (tmp_path / "data" / "test_concepts.tsv").unlink()  # the run's ids: the file names
    test = tmp_path / "data" / "test"
    shutil.copy(next(test.iterdir()), os.path.join(os.fsencode(test), b"caf\xe9.jpg"))
    monkeypatch.setattr(_reproduce, "_step_data", lambda *a: pytest.fail("work started"))
    assert main(["reproduce-2019", "--data", str(tmp_path / "data"), "--output",
                 str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{test}/caf\\xe9.jpg: image id 'caf\\xe9' is not UTF-8 text" in err
    assert len(err.strip().splitlines()) == 1



def test_an_output_folder_holding_other_files_is_refused_before_any_work(tmp_path,
                                                                        monkeypatch):
    # A user's report.md or run.tsv in the output folder was replaced by the procedure's.
    from imageclef_concepts import _reproduce, reproduce_2019

    make_imageclef_2019_layout(tmp_path / "data", n_train=4, n_valid=2, n_test=2,
                               image_size=16)
    (out := tmp_path / "out").mkdir()
    (out / "report.md").write_text("my notes")
    monkeypatch.setattr(_reproduce, "_step_data", lambda *a: pytest.fail("work started"))
    with pytest.raises(ValueError, match=r"out is not empty \(report.md\): name a new or "
                                         r"empty folder"):
        reproduce_2019(tmp_path / "data", out)
    assert (out / "report.md").read_text() == "my notes"


def _rename_all(folder, prefix):
    for image in list(folder.iterdir()):
        image.rename(folder / f"{prefix}{image.name}")


@pytest.mark.parametrize("spoil, expected", [
    # No training id has an image: the search ran for nothing, then every fit failed.
    (lambda d: _rename_all(d / "train", "x"),
     "train_concepts.tsv: none of its 8 image ids has a file in {d}/train: there is nothing "
     "to train on."),
    (lambda d: [image.unlink() for image in (d / "valid").iterdir()],
     "{d}/valid holds no image file: the valid split has no image to train on."),
    # The test images were looked for only once the model was trained.
    (lambda d: [image.unlink() for image in (d / "test").iterdir()],
     "{d}/test holds no image file: the test split has no image to predict."),
    (lambda d: (d / "test_concepts.tsv").open("a").write("test_99999\tC1070287\n"),
     "test_concepts.tsv: 1 image(s) without a file in {d}/test: test_99999"),
    (lambda d: (d / "test_concepts.tsv").open("a").write("no tab here\n"),
     "test_concepts.tsv: 1 image(s) without a file in {d}/test: no tab here"),
    # A test truth no run can be scored against (an id twice) was found scoring the run.
    (lambda d: (d / "test_concepts.tsv").open("a").write(
        (d / "test_concepts.tsv").read_text().splitlines()[0] + "\n"),
     "{d}/test_concepts.tsv:5: duplicate image id 'test_00012' (first on line 1)"),
    (lambda d: (d / "train" / "train_00003.jpg").write_bytes(b"not an image"),
     "1 train image file(s) cannot be used; remove or fix them: {d}/train/train_00003.jpg: "
     "not a readable image"),
    # Each split's were named only once the splits before it were fixed (review 20 r20b R3).
    (lambda d: [(d / split / name).write_bytes(b"") for split, name in (
        ("train", "train_00003.jpg"), ("valid", "valid_00009.jpg"))],
     "2 image file(s) (1 train, 1 valid) cannot be used; remove or fix them: "
     "{d}/train/train_00003.jpg: empty file {d}/valid/valid_00009.jpg: empty file"),
])
def test_bad_inputs_are_refused_before_the_search_in_one_line(tmp_path, monkeypatch, spoil,
                                                               expected):
    # Each was found after the coarse-to-fine search and the final training (review 18 F10).
    from imageclef_concepts.recipes import _reproduce

    data = tmp_path / "data"
    make_imageclef_2019_layout(data, n_train=8, n_valid=4, n_test=4, n_concepts=4,
                               image_size=16)
    spoil(data)
    for step in ("coarse_to_fine_search", "train_and_tune"):
        monkeypatch.setattr(_reproduce, step, lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError) as raised, warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetMismatchWarning)  # said, and left out
        _reproduce.reproduce_2019(data, tmp_path / "out", say=lambda line: None)
    message = str(raised.value)  # a list's items on lines of their own: one line at the CLI
    assert expected.format(d=data) in " ".join(message.split()) and "Traceback" not in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, make, kind", [
    ("test_concepts.tsv", lambda path: __import__("os").mkfifo(path), "a named pipe"),
    ("test_concepts.tsv", lambda path: path.mkdir(), "a folder"),
    ("test_concepts.tsv", lambda path: path.symlink_to("/dev/null"), "a character device"),
    ("train_concepts.tsv", lambda path: __import__("os").mkfifo(path), "a named pipe"),
    # A dangling link or a link loop passed for no file (review 21).
    ("test_concepts.tsv", lambda path: path.symlink_to("nowhere"), "a link to nothing"),
    ("test_concepts.tsv", lambda path: path.symlink_to(path.name), "a link to nothing"),
])
def test_a_concept_file_that_is_not_a_file_is_refused_before_the_search(tmp_path, monkeypatch,
                                                                       name, make, kind):
    # Review 20 r20b R1: a test truth that was a pipe, a folder or /dev/null was taken as
    # absent (the search ran; its last step said "no test ground truth"), and a training file
    # that was a pipe "not found".
    from imageclef_concepts.recipes import _reproduce

    data = tmp_path / "data"
    make_imageclef_2019_layout(data, n_train=8, n_valid=4, n_test=4, n_concepts=4,
                               image_size=16)
    (data / name).unlink()
    make(data / name)
    for step in ("coarse_to_fine_search", "train_and_tune"):
        monkeypatch.setattr(_reproduce, step, lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match=rf"^{data / name} is {kind}, not a concept file: "
                                         r"replace it with a regular file, or remove it\.$"):
        _reproduce.reproduce_2019(data, tmp_path / "out", say=lambda line: None)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("output, where", [
    ("data/train/out", "is inside"), ("data/out", "is inside"), ("into_valid/out", "is inside"),
    ("data", "is"),
])
def test_an_output_in_the_data_folder_is_refused_before_anything_is_made(tmp_path, monkeypatch,
                                                                         output, where):
    # Review 20 r20b R4: the search started, its run, model and reports bound for the user's
    # images (recipe-2026 refuses the same); an interrupted run left an empty folder there.
    from imageclef_concepts.recipes import _reproduce

    data = tmp_path / "data"
    make_imageclef_2019_layout(data, n_train=8, n_valid=4, n_test=4, n_concepts=4,
                               image_size=16)
    (tmp_path / "into_valid").symlink_to(data / "valid")
    monkeypatch.setattr(_reproduce, "check_2019_layout", lambda *a: pytest.fail("work started"))
    with pytest.raises(ValueError, match=rf"^output {tmp_path / output} {where} the data folder "
                                         rf"{data}: name a folder outside it\.$"):
        _reproduce.reproduce_2019(data, tmp_path / output, say=lambda line: None)
    assert not (tmp_path / output).is_dir() or output == "data"


def test_an_output_in_the_data_folder_given_as_dot_is_refused_by_the_cli(tmp_path, monkeypatch,
                                                                         capsys):
    from imageclef_concepts.recipes import _reproduce

    make_imageclef_2019_layout(tmp_path, n_train=8, n_valid=4, n_test=4, n_concepts=4,
                               image_size=16)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_reproduce, "check_2019_layout", lambda *a: pytest.fail("work started"))
    assert main(["reproduce-2019", "--data", ".", "--output", "out", "--quiet"]) == 2
    assert capsys.readouterr().err == ("imageclef-concepts reproduce-2019: error: output out "
                                       "is inside the data folder .: name a folder outside "
                                       "it.\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("merge_validation, n_images", [(True, 5), (False, 3)])
def test_training_images_too_few_for_the_validation_split_are_refused_first(
        tmp_path, monkeypatch, merge_validation, n_images):
    # 4 training images (with the validation ones, 6), one held out: ConceptCNNClassifier's
    # validation_fraction=0.1 of the rest is no image, and the search's every fit failed (in
    # seconds, in one line) after the output folder was made.
    from imageclef_concepts.recipes import _reproduce

    data = tmp_path / "data"
    make_imageclef_2019_layout(data, n_train=4, n_valid=2, n_test=2, n_concepts=4,
                               image_size=16)
    for step in ("coarse_to_fine_search", "train_and_tune"):
        monkeypatch.setattr(_reproduce, step, lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match=rf"^{n_images} images train the search .* "
                                         r"validation_fraction=0.1 of them for early "
                                         r"stopping, and each part needs one image at least: "
                                         r"give 7 training .*images or more\.$"):
        _reproduce.reproduce_2019(data, tmp_path / "out", merge_validation=merge_validation,
                                  say=lambda line: None)
    assert not (tmp_path / "out").exists()
