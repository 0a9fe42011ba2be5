"""The 2026-style system in one command: the layout, the dry run, resuming, and refusals."""

import contextlib
import dataclasses
import io
import json
import os
import shutil

import pytest

from imageclef_concepts import (
    evaluate_run,
    find_imageclef_layout,
    make_imageclef_layout,
    read_concepts,
    run_recipe_2026,
)
from imageclef_concepts.cli._main import main
from imageclef_concepts.concept_files._editions import SECONDARY_CUIS
from imageclef_concepts.recipes import _2026_parts as _recipe_parts
from imageclef_concepts.recipes._2026 import DRY_RUN

# Slow by nature: the 2026 recipe end to end (run by `pytest -m slow`).
pytestmark = pytest.mark.slow


def test_the_2026_layout_is_read_as_the_2026_evaluator_reads_it(tmp_path):
    splits = make_imageclef_layout(tmp_path, n_train=12, n_valid=6, n_test=6, test_truth=False)
    layout = find_imageclef_layout(tmp_path)
    assert layout["test"].concepts is None and layout["test"].manual is None
    for split in ("train", "valid"):
        truth = read_concepts(layout[split].concepts, edition="2026")
        manual = read_concepts(layout[split].manual, edition="2026")
        assert truth.ids == manual.ids == splits[split].ids
        for concepts, validated in zip(truth.concepts, manual.concepts):
            assert validated  # a 2026 ground truth line always holds a concept
            assert set(validated) == (set(concepts) & SECONDARY_CUIS or set(concepts))
    assert len(list(layout["train"].images.glob("*.jpg"))) == 12
    # The released data's names are found too: <split>_concepts.csv beside <split>/.
    flat = tmp_path / "flat"
    for split in ("train", "valid"):
        shutil.copytree(tmp_path / split / "images", flat / split)
        shutil.copy(tmp_path / split / "concepts.csv", flat / f"{split}_concepts.csv")
    found = find_imageclef_layout(flat)
    assert set(found) == {"train", "valid"} and found["valid"].manual is None
    (flat / "valid_concepts.csv").unlink()
    with pytest.raises(FileNotFoundError, match="valid_concepts.csv"):
        find_imageclef_layout(flat)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe")
    output, printed, here = folder / "out", io.StringIO(), os.getcwd()
    os.chdir(folder)  # a relative --output: the summary's paths are absolute all the same
    try:
        with contextlib.redirect_stdout(printed):
            status = main(["recipe-2026", "--dry-run", "--output", "out"])
    finally:
        os.chdir(here)
    assert status == 0
    return output, printed.getvalue(), json.loads((output / "summary.json").read_text())


def test_the_dry_run_prints_its_plan_then_writes_a_checked_scored_run(dry_run):
    output, printed, summary = dry_run
    assert printed.index("Plan (imageclef-concepts recipe-2026)") < printed.index("Estimate: ")
    assert printed.index("Estimate: 4 members x 80 images x 2 epochs") < printed.index(
        "Member 1/4")
    truth = output / "data" / "test" / "concepts.csv"
    run = read_concepts(output / "run.csv", edition="2026")  # the 2026 reader accepts it
    assert run.ids == read_concepts(truth, edition="2026").ids  # in the truth's order
    scored = evaluate_run(output / "run.csv", truth, edition="2026",
                          secondary_truth=output / "data" / "test" / "concepts_manual.csv")
    assert summary["run_file"] == str(output / "run.csv")
    assert summary["primary"] == scored.score and summary["secondary"] == scored.secondary_score
    assert f"{scored.score:.4f}" in printed
    assert (output / "report.html").read_text().count("<html") == 1
    assert sorted(p.name for p in (output / "members").iterdir()) == [
        f"member-{i:02d}.zip" for i in range(4)]
    # The kept decision is the better of votes and mean + count on validation.
    tuned = summary["validation_scores"]
    assert summary["chosen"] == max(["mean+count", "votes"], key=tuned.get)
    assert summary["n_trained"] == 4 and summary["n_loaded"] == 0


def test_a_rerun_with_other_settings_is_refused_naming_them(dry_run, capsys):
    output, _, _ = dry_run
    plan = (output / "plan.json").read_bytes()
    assert main(["recipe-2026", "--dry-run", "--output", str(output), "--epochs", "5"]) == 2
    error = capsys.readouterr().err
    assert "(--epochs: 2 then, 5 now)" in error and "other settings" in error
    assert len(error.strip().splitlines()) == 1
    assert (output / "plan.json").read_bytes() == plan


def test_a_rerun_with_other_settings_names_them_as_python_parameters_in_python(dry_run):
    # The command line names its flags (above); the function, its parameters.
    from imageclef_concepts import run_recipe_2026

    output, _, _ = dry_run
    plan = (output / "plan.json").read_bytes()
    recipe = dataclasses.replace(DRY_RUN, estimator_params={**DRY_RUN.estimator_params,
                                                            "epochs": 5},
                                 retrieval_encoder="efficientnetb0", retrieval_neighbors=3)
    with pytest.raises(_recipe_parts.OtherSettingsError) as raised:
        run_recipe_2026(None, output, recipe=recipe, dry_run=True)
    message = str(raised.value)
    assert ("(estimator_params['epochs']: 2 then, 5 now; retrieval_encoder: None then, "
            in message), message
    assert "--" not in message.split("holds a run")[1]
    assert (output / "plan.json").read_bytes() == plan


def test_an_interrupted_run_resumes_loading_the_members_it_saved(tmp_path, monkeypatch):
    recipe = dataclasses.replace(DRY_RUN, grid={"filters": [(8,)], "random_state": [0, 1]})
    fits = []
    real_fit = _recipe_parts.fit_member

    def interrupted_at_the_second(member, paths, concepts):
        fits.append(member.random_state)
        if len(fits) == 2:
            raise KeyboardInterrupt
        return real_fit(member, paths, concepts)

    monkeypatch.setattr(_recipe_parts, "fit_member", interrupted_at_the_second)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        run_recipe_2026(None, tmp_path / "out", recipe=recipe, dry_run=True, say=lines.append)
    members = tmp_path / "out" / "members"
    assert sorted(p.name for p in members.iterdir()) == ["member-00.zip"]
    monkeypatch.setattr(_recipe_parts, "fit_member", real_fit)
    counted = []
    monkeypatch.setattr(_recipe_parts, "fit_member",
                        lambda *args: counted.append(1) or real_fit(*args))
    result = run_recipe_2026(None, tmp_path / "out", recipe=recipe, dry_run=True,
                             say=lines.append)
    assert (result.n_loaded, result.n_trained, len(counted)) == (1, 1, 1)
    assert "Loaded 1 member(s) saved by an earlier run." in lines
    assert read_concepts(result.run_file, edition="2026").ids


def test_user_mistakes_are_one_line_and_touch_nothing(tmp_path, capsys):
    assert main(["recipe-2026", "--data", str(tmp_path / "absent"),
                 "--output", str(tmp_path / "o")]) == 2
    assert "data folder not found" in capsys.readouterr().err
    make_imageclef_layout(tmp_path / "data", n_train=4, n_valid=2, n_test=2, image_size=16)
    (tmp_path / "data" / "valid" / "concepts.csv").unlink()
    assert main(["recipe-2026", "--data", str(tmp_path / "data"),
                 "--output", str(tmp_path / "o")]) == 2
    assert "concepts.csv not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["recipe-2026", "--dry-run", "--output", str(mine)]) == 2
    error = capsys.readouterr().err
    assert "not made by recipe-2026" in error and len(error.strip().splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert main(["recipe-2026", "--output", str(mine)]) == 2  # neither --data nor --dry-run


def test_a_pipe_in_place_of_the_plan_is_refused_not_read(tmp_path):
    from imageclef_concepts.recipes._2026_parts import claim_output

    os.mkfifo(tmp_path / "plan.json")  # opening it for reading would wait for a writer
    with pytest.raises(ValueError, match="not the recipe's"):
        claim_output(tmp_path, {"procedure": "imageclef-concepts recipe-2026"}, "plan.json")


@contextlib.contextmanager
def _changed(path, data):
    """``path`` holding ``data`` for a while (the dry run's folder is shared by the tests)."""
    kept = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(kept)


def test_a_rerun_on_changed_training_data_is_refused_naming_it(dry_run):
    output = dry_run[0]
    concepts = output / "data" / "train" / "concepts.csv"
    lines = concepts.read_text().splitlines()
    with _changed(concepts, "\n".join(lines[:-1]).encode() + b"\n"), pytest.raises(
            ValueError, match="the training concepts and the training images changed since"):
        run_recipe_2026(None, output, dry_run=True, say=lambda line: None)
    assert json.loads((output / "plan.json").read_text())["data_identity"]


def test_training_data_fixed_before_any_member_was_saved_is_taken(small_data, tmp_path,
                                                                  monkeypatch):
    # A first run stopped before its first member was saved (a Ctrl-C, a crash), the
    # training concepts then fixed: nothing was trained on the old data, so the rerun goes
    # on; it was refused as "changed since the members ... were trained" (none were).
    def stopped(*args):
        raise RuntimeError("stopped in the first member")

    monkeypatch.setattr("imageclef_concepts.recipes._2026.estimate_compute", lambda *a: "")
    monkeypatch.setattr(_recipe_parts, "fit_member", stopped)
    recipe = dataclasses.replace(DRY_RUN, count_coverage=(None,), estimator_params={
        **DRY_RUN.estimator_params, "validation_fraction": None})  # 4 training images
    with pytest.raises(RuntimeError, match="stopped"):
        run_recipe_2026(small_data, tmp_path / "out", recipe=recipe, say=lambda line: None)
    concepts = small_data / "train" / "concepts.csv"
    concepts.write_text(concepts.read_text().replace("C", "c"))  # the same concepts, new bytes
    with pytest.raises(RuntimeError, match="stopped"):  # trained again, on the data as it is
        run_recipe_2026(small_data, tmp_path / "out", recipe=recipe, say=lambda line: None)
    saved = json.loads((tmp_path / "out" / "plan.json").read_text())["data_identity"]
    from imageclef_concepts.datasets import find_imageclef_layout as layout_of

    assert saved == _recipe_parts.data_identity(layout_of(small_data)["train"])


def test_a_weights_file_rewritten_at_its_path_since_the_members_is_refused(small_data,
                                                                          tmp_path, monkeypatch):
    # plan.json kept estimator_params["weights"] as the path: another backbone file written
    # there (re-exported, fine-tuned) and the rerun loaded the members trained on the old one.
    # The file counts as the training images do (its path and version), once a member is.
    import keras

    def stopped(*args):
        raise RuntimeError("stopped in a member")

    weights = tmp_path / "backbone.weights.h5"
    keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                        input_shape=(32, 32, 3)).save_weights(weights)
    monkeypatch.setattr("imageclef_concepts.recipes._2026.estimate_compute", lambda *a: "")
    monkeypatch.setattr(_recipe_parts, "fit_member", stopped)
    recipe = dataclasses.replace(DRY_RUN, grid={"random_state": [0, 1]}, count_coverage=(None,),
                                 estimator_params=dict(backbone="mobilenetv3small",
                                                       weights=str(weights), image_size=32,
                                                       validation_fraction=None))
    out = tmp_path / "out"
    for _ in range(2):  # the same file: the rerun goes on (to the member it was training)
        with pytest.raises(RuntimeError, match="stopped"):
            run_recipe_2026(small_data, out, recipe=recipe, say=lambda line: None)
        (out / "members").mkdir(exist_ok=True)
        (out / "members" / "member-00.zip.part").write_bytes(b"")  # a member begun saving
    shutil.copyfile(weights, tmp_path / "new.weights.h5")
    os.replace(tmp_path / "new.weights.h5", weights)  # another file at the same path
    with pytest.raises(ValueError, match=r"the weights file .*backbone\.weights\.h5 changed "
                                         "since the members"):
        run_recipe_2026(small_data, out, recipe=recipe, say=lambda line: None)


def _inverted_in_place(path):
    """``path``'s pixels inverted, in a file of its size with its modification time."""
    from PIL import Image, ImageOps

    before = path.stat()
    with Image.open(path) as image:
        inverted = ImageOps.invert(image.convert("RGB"))
    for quality in range(95, 0, -5):
        data = io.BytesIO()
        inverted.save(data, "JPEG", quality=quality)
        if data.tell() <= before.st_size:
            break
    path.write_bytes(data.getvalue().ljust(before.st_size, b"\0"))  # after the end marker
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_training_images_rewritten_with_their_times_put_back_are_changed_data(tmp_path):
    recipe = dataclasses.replace(DRY_RUN, grid={"filters": [(8,)], "random_state": [0, 1]})
    output = tmp_path / "out"
    first = run_recipe_2026(None, output, recipe=recipe, dry_run=True, say=lambda line: None)
    assert (first.n_trained, first.n_loaded) == (2, 0)
    images = output / "data" / "train" / "images"
    # An image without a concept line is not trained on: the members are still the plan's
    # (any new file in the folder refused the rerun).
    shutil.copyfile(sorted(images.iterdir())[0], images / "not-listed.jpg")
    again = run_recipe_2026(None, output, recipe=recipe, dry_run=True, say=lambda line: None)
    assert (again.n_trained, again.n_loaded) == (0, 2)
    listed = (output / "data" / "train" / "concepts.csv").read_text().splitlines()[1]
    _inverted_in_place(next(images.glob(listed.split(",")[0] + ".*")))
    with pytest.raises(ValueError, match="the training images changed since the members"):
        run_recipe_2026(None, output, recipe=recipe, dry_run=True, say=lambda line: None)


def test_a_member_file_that_is_not_the_plans_member_is_refused_naming_it(dry_run, tmp_path):
    from imageclef_concepts import MostFrequentConcepts
    from imageclef_concepts.recipes._workflows import save_model

    members = dry_run[0] / "members"
    other = (members / "member-02.zip").read_bytes()  # another grid point's member
    with _changed(members / "member-00.zip", other), pytest.raises(
            ValueError, match=r"member-00\.zip is not the plan's member \(filters="):
        run_recipe_2026(None, dry_run[0], dry_run=True, say=lambda line: None)
    save_model(MostFrequentConcepts().fit([[0]], [("C1",)]), tmp_path / "m.zip")
    with _changed(members / "member-00.zip", (tmp_path / "m.zip").read_bytes()), pytest.raises(
            ValueError, match=r"member-00\.zip holds a MostFrequentConcepts.*delete"):
        run_recipe_2026(None, dry_run[0], dry_run=True, say=lambda line: None)


def test_a_ctrl_c_swallowed_during_training_still_ends_the_run(tmp_path, monkeypatch,
                                                               sigint_raises):
    import signal

    from sklearn.utils import Bunch

    from imageclef_concepts import MostFrequentConcepts

    class SwallowsInterrupts:  # as TensorFlow's AtomicFunction.__del__ does
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)

    def fit(member, paths, concepts):
        SwallowsInterrupts()  # the KeyboardInterrupt is raised in __del__ and dropped
        return MostFrequentConcepts().fit(paths, concepts)

    monkeypatch.setattr(_recipe_parts, "fit_member", fit)
    ignored = []  # what Python would print as "Exception ignored in ..."
    monkeypatch.setattr("sys.unraisablehook", ignored.append)
    files = _recipe_parts.member_files(tmp_path, 2)
    members = [(name, MostFrequentConcepts()) for name in "ab"]
    from imageclef_concepts.utils._interrupts import noticing_interrupts

    with pytest.raises(KeyboardInterrupt), noticing_interrupts():
        _recipe_parts.train_members(members, files, Bunch(paths=[[0]], concepts=[("C1",)]),
                                    None, lambda line: None)
    assert not any(path.exists() for path in files)  # nothing saved after the Ctrl-C
    assert ignored == []  # no traceback for the Ctrl-C that was noted


def test_an_interrupted_dry_run_leaves_no_partial_data(tmp_path, monkeypatch):
    from imageclef_concepts.datasets import _layout_2026
    from imageclef_concepts.recipes._2026_checks import make_dry_run_data

    def interrupted(folder, **params):
        (folder / "train").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(_layout_2026, "make_imageclef_layout", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_dry_run_data(tmp_path / "data", 16)
    assert not (tmp_path / "data").exists()


@pytest.fixture
def small_data(tmp_path):
    make_imageclef_layout(tmp_path / "d", n_train=4, n_valid=2, n_test=2, image_size=16)
    return tmp_path / "d"


def _crlf(path):
    """The file's text with CRLF line ends, as a new file (not through a hard link)."""
    text = path.read_bytes()
    path.unlink()
    path.write_bytes(text.replace(b"\n", b"\r\n"))


def _leak_half(data):
    """Half the training images copied among the validation ones, under other names, with
    their lines: read for validation, as a leak is."""
    lines = dict(line.split(",", 1) for line in
                 (data / "train" / "concepts.csv").read_text().splitlines()[1:])
    for image in sorted((data / "train" / "images").iterdir())[::2]:
        shutil.copy(image, data / "valid" / "images" / f"leaked_{image.name}")
        with open(data / "valid" / "concepts.csv", "a") as truth:
            truth.write(f"leaked_{image.stem},{lines[image.stem]}\n")


def _refused(argv, capsys, output):
    assert main(["recipe-2026", *argv, "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 or "\n  " in error
    assert not output.is_dir() or sorted(output.iterdir()) == []
    return error


def test_settings_and_data_are_checked_before_anything_is_written(small_data, tmp_path, capsys):
    out = tmp_path / "o"
    assert "inside the data folder" in _refused(["--data", str(small_data)], capsys,
                                                small_data / "test" / "images" / "o")
    assert "backbone" in _refused(["--dry-run", "--backbones", "nonesuch"], capsys, out)
    assert "--image-size 16 is too small for densenet121" in _refused(  # the flag, not image_size=
        ["--dry-run", "--backbones", "densenet121"], capsys, out)
    with pytest.raises(SystemExit):
        main(["recipe-2026", "--dry-run", "--output", str(out), "--n-jobs", "0"])
    test = small_data / "test"
    lines = (test / "concepts.csv").read_text().splitlines()
    (test / "concepts.csv").write_text("\n".join(lines + [lines[1]]) + "\n")
    assert "concepts.csv" in _refused(["--data", str(small_data)], capsys, out)
    (test / "concepts.csv").write_text("\n".join(lines) + "\n")
    image = next((test / "images").iterdir())
    image.write_bytes(b"not an image")
    assert "remove or fix them" in _refused(["--data", str(small_data)], capsys, out)
    image.unlink()
    assert "1 image(s) without a file" in _refused(["--data", str(small_data)], capsys, out)
    (test / "concepts.csv").unlink()
    os.mkfifo(test / "concepts.csv")
    assert "concepts.csv is a named pipe" in _refused(["--data", str(small_data)], capsys, out)
    os.mkfifo(tmp_path / "fifo")
    assert "is a named pipe; name a folder" in _refused(["--dry-run"], capsys, tmp_path / "fifo")


def test_a_dry_run_never_touches_a_data_folder_named_beside_it(tmp_path):
    from imageclef_concepts import run_recipe_2026

    beside = tmp_path / "mydata.partial"  # what a dry run's own half-written data is called
    beside.mkdir()
    (beside / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not both"):
        run_recipe_2026(tmp_path / "mydata", tmp_path / "out", dry_run=True)
    assert (beside / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "out").exists()


def test_an_output_folder_not_named_in_utf8_gets_every_file(tmp_path, monkeypatch):
    # b"d\xe9" (os.fsdecode: "d\udce9"): the plan, the members, the run file, the report
    # and the summary are written, and the paths printed as their own bytes.
    folder = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"d\xe9"))
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr("sys.stdout", stdout)  # a UTF-8 terminal's (LANG=en_US.UTF-8)
    output = os.path.join(folder, "out")
    assert main(["recipe-2026", "--dry-run", "--seeds", "1", "--output", output]) == 0
    stdout.flush()
    assert b"(run file " + os.fsencode(output) + b"/run.csv)" in stdout.buffer.getvalue()
    assert read_concepts(os.path.join(output, "run.csv"), edition="2026").ids
    summary = json.loads(open(os.path.join(output, "summary.json"), "rb").read())
    assert summary["run_file"] == os.path.join(output, "run.csv")  # the same path read back
    page = open(os.path.join(output, "report.html"), "rb").read().decode("utf-8")
    assert os.path.join(os.fsdecode(tmp_path), "d\\xe9", "out", "run.csv") in page


def _edit_line(path, number, edit):
    lines = path.read_text().splitlines()
    lines[number - 1] = edit(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")


def _drop_line(path, number):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:number - 1] + lines[number:]) + "\n")


def _rename_images(folder, rename):
    for image in sorted(folder.iterdir()):
        os.rename(os.fsencode(image), os.path.join(os.fsencode(folder), rename(image.name)))


@pytest.mark.parametrize("spoil, expected", [
    # A training concept a 2026 run cannot hold: learned, it would be predicted.
    (lambda d: _edit_line(d / "train" / "concepts.csv", 2,
                          lambda line: line.split(",")[0] + ",C0000001;Effusion"),
     "train/concepts.csv:2: 'Effusion' (read as 'EFFUSION') is not a UMLS CUI"),
    # A test ground-truth line without concepts: the 2026 evaluator refuses it.
    (lambda d: _edit_line(d / "test" / "concepts.csv", 3, lambda line: line.split(",")[0] + ","),
     "test/concepts.csv:3: an empty concept field"),
    # The secondary ground truth lacks an image of the ground truth.
    (lambda d: _drop_line(d / "test" / "concepts_manual.csv", 2),
     "test/concepts.csv:2: image id 'synthetic_test_00006' is missing from the secondary "
     "ground truth"),
    # No training id has an image: nothing to train on.
    (lambda d: _rename_images(d / "train" / "images", lambda name: b"x" + name.encode()),
     "train/concepts.csv: none of its 4 image ids has a file in"),
    # Without a test truth the run's ids are the test images' names: each must be writable.
    (lambda d: ((d / "test" / "concepts.csv").unlink(),
                (d / "test" / "concepts_manual.csv").unlink(),
                _rename_images(d / "test" / "images", lambda name: b"caf\xe9" + name.encode())),
     ": image id 'caf\\xe9synthetic_test_00006' is not UTF-8 text"),
    (lambda d: ((d / "test" / "concepts.csv").unlink(),
                (d / "test" / "concepts_manual.csv").unlink(),
                _rename_images(d / "test" / "images", lambda name: b"ID" + name.encode())),
     ": image id 'IDsynthetic_test_00006' contains 'ID'"),
    # The test split's images/ folder is gone: its folder holds only concept files.
    (lambda d: shutil.rmtree(d / "test" / "images"),
     "test holds no image file: the test split has no image to predict (" ),
    # No test truth and no test image: nothing to predict.
    (lambda d: ((d / "test" / "concepts.csv").unlink(),
                (d / "test" / "concepts_manual.csv").unlink(),
                [image.unlink() for image in (d / "test" / "images").iterdir()]),
     "test/images holds no image file: the test split has no image to predict."),
    # Training and validation truths with an empty concept field, as the evaluator reads them.
    (lambda d: _edit_line(d / "train" / "concepts.csv", 3, lambda line: line.split(",")[0] + ","),
     "train/concepts.csv:3: an empty concept field"),
    (lambda d: _edit_line(d / "valid" / "concepts.csv", 2, lambda line: line.split(",")[0] + ","),
     "valid/concepts.csv:2: an empty concept field"),
    # Two validation images: too few for the count model's coverage the tuning tries.
    (lambda d: None, "valid/concepts.csv: count_coverage=0.8"),
    # The test folder is the training folder (a link): the run would be scored on the very
    # images the members learned; the validation folder likewise tuned on them.
    (lambda d: (shutil.rmtree(d / "test"), (d / "test").symlink_to(d / "train")),
     "test/images is the train split's image folder"),
    (lambda d: (shutil.rmtree(d / "valid"), (d / "valid").symlink_to(d / "train")),
     "valid/images is the train split's image folder"),
    # A copy of the training split as the validation one: other folders, the same images.
    (lambda d: (shutil.rmtree(d / "valid"), shutil.copytree(d / "train", d / "valid")),
     "valid/concepts.csv is the train split's concept file ("),
    # The same under truths differing in a byte (CRLF line ends), the images hard-linked
    # (cp -al) or half the training ones among the validation ones: the image files tell.
    (lambda d: (shutil.rmtree(d / "valid"),
                shutil.copytree(d / "train", d / "valid", copy_function=os.link),
                _crlf(d / "valid" / "concepts.csv")),
     "valid/images: 4 of the 4 image files it reads (100%) are files of the train split's image "
     "folder ("),
    (lambda d: _leak_half(d),
     "valid/images: 2 of the 4 image files it reads (50%) are files of the train split's image "),
])
def test_inputs_the_run_would_refuse_are_refused_before_any_member_is_trained(
        small_data, tmp_path, capsys, monkeypatch, spoil, expected):
    monkeypatch.setattr(_recipe_parts, "fit_member", lambda *a: pytest.fail("trained"))
    monkeypatch.setattr(_recipe_parts, "estimate_compute", lambda *a: pytest.fail("timed"))
    spoil(small_data)
    error = _refused(["--data", str(small_data)], capsys, tmp_path / "o")
    assert expected in error, error
    assert not (tmp_path / "o").exists()


def test_a_retrieval_member_joins_is_kept_and_resumed(tmp_path, capsys):
    recipe = ["recipe-2026", "--dry-run", "--output", str(tmp_path / "out"),
              "--retrieval-encoder", "efficientnetb0", "--retrieval-neighbors", "3"]
    assert main(recipe) == 0
    printed = capsys.readouterr().out
    assert "Retrieval member (k-NN, 3 neighbours" in printed and "L=" in printed
    assert "of 5)" in printed  # four networks and the retrieval member vote
    assert (tmp_path / "out" / "members" / "retrieval.zip").is_file()
    assert list((tmp_path / "out" / "embedding-store").iterdir())
    assert main(recipe) == 0  # resumed: every member loaded, the k-NN's encoder checked
    assert "Loaded the retrieval member saved by an earlier run" in capsys.readouterr().out
    assert main(recipe[:4] + ["--retrieval-neighbors", "3"]) == 2
    assert "--retrieval-encoder" in capsys.readouterr().err
    assert main([*recipe[:4], "--retrieval-encoder", "vit-typo"]) == 2
    assert "is not an encoder" in capsys.readouterr().err


@pytest.mark.parametrize(("weights", "expected"), [
    (None, "--retrieval-weights 'imagenet': the biomedclip encoder needs its own weights file"),
    ("missing.onnx", "--retrieval-weights missing.onnx: no such file"),
])
def test_a_retrieval_encoders_weights_are_checked_before_training(
        small_data, tmp_path, capsys, monkeypatch, weights, expected):
    monkeypatch.setattr(_recipe_parts, "fit_member", lambda *a: pytest.fail("trained"))
    argv = ["--data", str(small_data), "--retrieval-encoder", "biomedclip"]
    error = _refused(argv + ([] if weights is None else ["--retrieval-weights", weights]),
                     capsys, tmp_path / "o")
    assert expected in error, error


def test_more_retrieval_neighbours_than_training_images_is_refused_before_training(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_recipe_parts, "fit_member", lambda *a: pytest.fail("trained"))
    assert main(["recipe-2026", "--dry-run", "--output", str(tmp_path / "out"),
                 "--retrieval-encoder", "efficientnetb0", "--retrieval-neighbors",
                 "100000"]) == 2
    error = capsys.readouterr().err
    assert "--retrieval-neighbors" in error and "training images" in error, error
    assert not (tmp_path / "out" / "members").exists() or \
        not list((tmp_path / "out" / "members").iterdir())


def test_retrieval_weights_none_and_a_relative_file_are_taken(tmp_path, monkeypatch):
    """``--retrieval-weights none`` (random, as the embed command's) and a relative file, kept
    in the plan as an absolute path so that a rerun from another folder finds it."""
    import argparse

    from imageclef_concepts.cli._recipe import _retrieval_params

    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.keras").write_bytes(b"")
    args = argparse.Namespace(dry_run=False, retrieval_encoder="efficientnetb0",
                              retrieval_weights="none")
    assert _retrieval_params(args) == {"weights": None}
    args.retrieval_weights = "w.keras"
    assert _retrieval_params(args) == {"weights": str(tmp_path / "w.keras")}


def test_the_embeddings_of_a_retrieval_member_need_room_before_any_member_trains(
        tmp_path, capsys, monkeypatch):
    # The recipe asked the disk for its image store's images only; the retrieval member,
    # fitted after every network, then found no room in its embedding store (refused with
    # every member trained; on a real disk the test images' store was refused next).
    from collections import namedtuple

    from imageclef_concepts.images._folder_store import index_bytes

    usage = namedtuple("usage", "total used free")
    n_images = 80 + 40 + 40  # the dry run's three splits, at 16 px
    images = n_images * 16 * 16 * 3 + index_bytes(n_images, n_images * 200)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, images))
    monkeypatch.setattr(_recipe_parts, "fit_member", lambda *a: pytest.fail("trained"))
    code = main(["recipe-2026", "--dry-run", "--output", str(tmp_path / "out"),
                 "--retrieval-encoder", "efficientnetb0", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1, error
    assert ("--image-size 16: storing 160 image(s) at each of 1 size(s) and filter(s), and "
            "160 embedding(s) of 1280 dimensions by the retrieval encoder, and saving the members "
            "still to train, and the retrieval member's file takes") in error
    assert error.count("give no retrieval encoder") == 1  # each advice once
    assert "give --image-store a folder on another disk" in error
    assert not list((tmp_path / "out" / "members").glob("*"))


def test_a_dry_run_refuses_a_count_coverage_its_validation_images_cannot_reach_before_training(
        tmp_path, monkeypatch):
    # The data check (check_layout) ran only for a data folder: a dry run of a recipe with
    # count_coverage 0.9 (Recipe2026's default) trained every member, then the tuning refused
    # 0.9 for its 40 validation images, and the rerun with a lower one was refused as "a run
    # with other settings" (issue 30 review 14).
    from imageclef_concepts import Recipe2026

    recipe = Recipe2026(grid={"filters": [(2,)], "random_state": [0, 1]},
                        estimator_params=dict(image_size=16, dense_units=(4,), epochs=1),
                        thresholds=4, count_coverage=(None, 0.9))
    trained = []
    monkeypatch.setattr(_recipe_parts, "fit_member", lambda *args: trained.append(1) or 1 / 0)
    with pytest.raises(ValueError, match=r"valid.*count_coverage=0.9 is too high"):
        run_recipe_2026(None, tmp_path / "out", recipe=recipe, dry_run=True,
                        say=lambda line: None)
    assert not trained and not (tmp_path / "out" / "members").exists()


def test_test_images_the_test_truth_does_not_list_are_named_as_other_splits_are(
        small_data, tmp_path):
    # Review 20 (r20c F4): a test image without a line in the test truth (one named in
    # bytes that are not UTF-8 too) was left out of run.csv without a word, where valid/ and
    # train/ name theirs. The run holds the truth's images only: the 2026 evaluator refuses
    # a run line whose image the ground truth does not have.
    from imageclef_concepts.datasets import DatasetMismatchWarning

    images, truth = small_data / "test" / "images", small_data / "test" / "concepts.csv"
    first = sorted(images.iterdir())[0]
    shutil.copy(first, images / "extra_test.jpg")
    shutil.copy(first, os.path.join(os.fsencode(images), b"caf\xe9.jpg"))
    recipe = dataclasses.replace(
        DRY_RUN, grid={"filters": [(2,)], "random_state": [0, 1]}, count_coverage=(None,),
        estimator_params={**DRY_RUN.estimator_params, "epochs": 1, "validation_fraction": None})
    with pytest.warns(DatasetMismatchWarning) as caught:
        result = run_recipe_2026(small_data, tmp_path / "out", recipe=recipe,
                                 say=lambda line: None)
    said = [str(warning.message) for warning in caught]
    assert (f"2 image(s) in {images} have no line in {truth} and are left out: "
            "caf\udce9, extra_test") in said, said
    assert read_concepts(result.run_file, edition="2026").ids == read_concepts(
        truth, edition="2026").ids
