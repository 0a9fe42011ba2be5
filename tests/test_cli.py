import json
import subprocess
import sys

import pytest

from imageclef_concepts import (
    ConceptCNNClassifier,
    DecisionRule,
    ThresholdTuner,
    imageclef_f1_score,
    make_concept_images,
    read_concepts,
)
from imageclef_concepts._cli import main


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
    assert "Edition: 2019 (picked by auto; 2018, 2020, 2021 score these files alike; 2022, 2023" in out and "Mean F1 score: 0.666" in out
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


# ------------------------------------------------------- demo, train, predict

@pytest.fixture
def tiny_demo(monkeypatch):
    from imageclef_concepts import _demo

    tiny_size = _demo.DemoSize(n_images=120, n_concepts=4, image_size=16, filters=(4,),
                               epochs=2, learning_rates=(1e-3, 3e-3))
    monkeypatch.setattr(_demo, "QUICK", tiny_size)
    return tiny_size


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
    for name in ("run.tsv", "model.keras", "summary.json",
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


def test_demo_refuses_a_folder_in_use(tmp_path, capsys):
    (tmp_path / "something").write_text("x")
    assert main(["demo", "--output", str(tmp_path)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dataset")
    train = make_concept_images(60, 3, 16, random_state=0, directory=folder / "train")
    valid = make_concept_images(20, 3, 16, random_state=1, directory=folder / "valid")
    return folder, train, valid


def test_train_then_predict_then_evaluate(tmp_path, dataset, capsys):
    folder, train, valid = dataset
    model = tmp_path / "model.keras"
    code = main(["train", "--images", str(folder / "train" / "images"),
                 "--concepts", train.concepts_file, "--output", str(model),
                 "--validation-images", str(folder / "valid" / "images"),
                 "--validation-concepts", valid.concepts_file,
                 "--image-size", "16", "--epochs", "2", "--filters", "4",
                 "--dense-units", "8", "--learning-rate", "0.003", "--quiet"])
    assert code == 0 and model.is_file()
    loaded = ConceptCNNClassifier.load(model)
    assert isinstance(loaded.threshold, DecisionRule)  # tuned on the validation images
    run = tmp_path / "run.csv"
    assert main(["predict", "--model", str(model), "--images", str(folder / "valid" / "images"),
                 "--output", str(run), "--format", "2024", "--quiet"]) == 0
    ids, concepts, edition = read_concepts(run)
    assert edition == "2024" and sorted(ids) == sorted(valid.ids)
    # The run file holds what the loaded model, with its tuned rule, predicts.
    by_id = dict(zip(valid.ids, valid.paths))
    expected = loaded.predict_concepts([by_id[i] for i in ids])
    assert [set(c) for c in concepts] == [set(c) for c in expected]
    # Scored against the tab-separated ground truth: a run of the same edition.
    run = tmp_path / "run.tsv"
    assert main(["predict", "--model", str(model), "--images", str(folder / "valid" / "images"),
                 "--output", str(run), "--edition", "2019", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), valid.concepts_file]) == 0
    assert "Mean F1 score:" in capsys.readouterr().out


def test_a_per_concept_rule_round_trips_through_keras_and_the_cli(tmp_path, dataset):
    folder, train, valid = dataset
    cnn = ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=1,
                               random_state=0).fit(train.paths, train.concepts)
    tuner = ThresholdTuner(cnn, cv="prefit", refit=False, strategy="per_concept",
                           min_support=1, min_concepts=1, max_concepts=2)
    tuner.fit(valid.paths, valid.concepts)
    model = tmp_path / "tuned.keras"
    tuner.save(model)
    run = tmp_path / "run.tsv"
    images = str(folder / "valid" / "images")
    assert main(["predict", "--model", str(model), "--images", images, "--output", str(run),
                 "--quiet"]) == 0
    ids, concepts, _ = read_concepts(run)
    by_id = dict(zip(valid.ids, valid.paths))
    expected = tuner.predict_concepts([by_id[i] for i in ids])
    assert [set(c) for c in concepts] == [set(c) for c in expected]
    # Overrides: every concept at threshold 0, capped at one per image.
    assert main(["predict", "--model", str(model), "--images", images, "--output", str(run),
                 "--threshold", "0", "--max-concepts", "1", "--quiet"]) == 0
    assert all(len(c) == 1 for c in read_concepts(run).concepts)


def test_train_shows_keras_progress_unless_quiet(tmp_path, dataset, capsys):
    folder, train, _ = dataset
    args = ["train", "--images", str(folder / "train" / "images"),
            "--concepts", train.concepts_file, "--output", str(tmp_path / "m.joblib"),
            "--image-size", "16", "--epochs", "1", "--filters", "4", "--dense-units", "8"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2/2" in printed and "val_loss:" in printed  # Keras' bar: steps and losses
    assert (tmp_path / "m.joblib").is_file()
    images = str(folder / "train" / "images")
    predict = ["predict", "--model", str(tmp_path / "m.joblib"), "--images", images,
               "--output", str(tmp_path / "run.tsv"), "--quiet"]
    assert main(predict) == 2  # a pickle is loaded only when asked for
    assert "--allow-pickle" in capsys.readouterr().err
    assert main(predict + ["--allow-pickle"]) == 0


@pytest.mark.parametrize("arguments, message", [
    (["train", "--images", "nowhere", "--concepts", "x.tsv", "--output", "m.keras"],
     "image folder not found: nowhere"),
    (["train", "--images", "{images}", "--concepts", "{images}/../concepts.tsv",
      "--output", "m.h5"], "must end in .keras or .joblib"),
    (["train", "--images", "{images}", "--concepts", "{images}/../concepts.tsv",
      "--output", "m.keras", "--validation-images", "{images}"],
     "give both --validation-images and --validation-concepts"),
    (["predict", "--model", "missing.keras", "--images", "{images}", "--output", "r.tsv"],
     "model file not found: missing.keras"),
])
def test_user_mistakes_end_in_one_clear_line(dataset, capsys, arguments, message):
    folder, _, _ = dataset
    images = str(folder / "train" / "images")
    argv = [a.replace("{images}", images) for a in arguments]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_unknown_option_values_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--model", "m.keras", "--images", ".", "--output", "r",
              "--format", "2017"])
    assert caught.value.code == 2
    assert "invalid choice: '2017'" in capsys.readouterr().err


def test_every_subcommand_has_help():
    for command in ("demo", "train", "predict", "evaluate"):
        done = subprocess.run([sys.executable, "-m", "imageclef_concepts", command, "--help"],
                              capture_output=True, text=True)
        assert done.returncode == 0 and "usage: imageclef-concepts " + command in done.stdout


def test_version_and_a_quick_quiet_help():
    import time

    from imageclef_concepts import __version__

    done = subprocess.run([sys.executable, "-m", "imageclef_concepts", "--version"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip().endswith(__version__)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "imageclef_concepts", "--help"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert done.returncode == 0 and "usage: imageclef-concepts" in done.stdout
    assert done.stderr == ""  # no TensorFlow start-up lines
    assert seconds < 1.5  # neither TensorFlow nor scikit-learn: about 0.2 s (it was about 9)


def test_train_writes_a_model_card_that_info_prints(tmp_path, dataset, capsys):
    folder, train, valid = dataset
    model = tmp_path / "model.keras"
    assert main(["train", "--images", str(folder / "train" / "images"),
                 "--concepts", train.concepts_file, "--output", str(model),
                 "--validation-images", str(folder / "valid" / "images"),
                 "--validation-concepts", valid.concepts_file,
                 "--image-size", "16", "--epochs", "1", "--filters", "4",
                 "--dense-units", "8", "--loss", "focal", "--augmentation", "light",
                 "--early-stopping-patience", "3", "--quiet"]) == 0
    params = ConceptCNNClassifier.load(model).get_params()
    assert (params["loss"], params["augmentation"], params["early_stopping_patience"]) == \
        ("focal", "light", 3)
    assert params["verbose"] == 0  # the saved model predicts without Keras' bar
    card = (tmp_path / "model.keras.card.md").read_text()
    # Validation concepts unseen in training are reported as the command's warning.
    err = capsys.readouterr().err
    assert "imageclef-concepts train: warning: 3 concept(s) unseen in fit" in err
    assert ".py:" not in err
    assert main(["info", str(model)]) == 0
    printed = capsys.readouterr().out
    import keras

    from imageclef_concepts import __version__

    for text in (card, printed):
        assert f"imageclef_concepts {__version__}, Keras {keras.__version__}" in text
        assert f"{len(train.ids)} training images, 3 concepts" in text
        assert "decision rule tuned on 20 images: official F1" in text
        assert "| image_size | 16 |" in text and "kept epoch 1" in text


def _options(parser):
    """(subcommand, action) for every option of every subcommand that takes a value."""
    import argparse

    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in commands.choices.items():
        for action in subparser._actions:
            if action.option_strings and action.nargs != 0 and not action.required:
                yield name, action


def test_every_option_help_shows_its_default():
    from imageclef_concepts._cli import _build_parser

    options = list(_options(_build_parser()))
    assert len(options) > 20
    missing = [f"{name} {action.option_strings[0]}" for name, action in options
               if "default" not in (action.help or "")]
    assert missing == []


def test_train_help_shows_the_estimators_own_defaults():
    """Every train flag that sets a parameter leaves it to the estimator (None) and
    shows the signature's default, or says in words what its None default means."""
    import inspect

    from imageclef_concepts._cli import _TRAIN_PARAMS, _build_parser

    signature = inspect.signature(ConceptCNNClassifier).parameters
    assert set(_TRAIN_PARAMS) <= set(signature)
    actions = {action.dest: action for name, action in _options(_build_parser())
               if name == "train"}
    for param in (*_TRAIN_PARAMS, "weights"):
        action, value = actions[param], signature[param].default
        if param != "checkpoint_dir":  # train's own default: <output>.checkpoint
            assert action.default is None, param  # the estimator's default applies
        if value is None:
            continue  # shown in words ("none", "a fresh seed each run"...)
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        assert f"default: {text})" in action.help or action.help == f"default: {text}", param


def test_predict_on_error_overrides_the_models(tmp_path, dataset, capsys):
    import shutil

    folder, train, _ = dataset
    model = tmp_path / "m.keras"
    ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=1,
                         random_state=0).fit(train.paths, train.concepts).save(model)
    images = tmp_path / "images"
    shutil.copytree(folder / "train" / "images", images)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    run = tmp_path / "run.tsv"
    argv = ["predict", "--model", str(model), "--images", str(images), "--output", str(run),
            "--quiet"]
    assert main(argv) == 2  # the model's own setting: raise, naming the file
    assert "broken.png" in capsys.readouterr().err
    assert main(argv + ["--on-error", "skip"]) == 0
    # The warning is the command's own line, not a library file and line number.
    err = capsys.readouterr().err
    assert err.startswith("imageclef-concepts predict: warning: 1 of ") and "broken.png" in err
    assert ".py:" not in err
    ids, concepts, _ = read_concepts(run)
    assert len(ids) == len(train.ids) + 1 and concepts[ids.index("broken")] == ()


def test_on_error_choices_are_the_libraries():
    from imageclef_concepts._cli import _ON_ERROR
    from imageclef_concepts._images import ON_ERROR

    assert _ON_ERROR == ON_ERROR
