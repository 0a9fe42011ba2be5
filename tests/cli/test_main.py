"""The command line as a whole: the parser, help and defaults, errors and exit codes."""

import os
import subprocess
import sys

import pytest

from imageclef_concepts import (
    ConceptCNNClassifier,
)
from imageclef_concepts.cli._main import main


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


def _options(parser):
    """(subcommand, action) for every option of every subcommand that takes a value."""
    import argparse

    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in commands.choices.items():
        for action in subparser._actions:
            if action.option_strings and action.nargs != 0 and not action.required:
                yield name, action


def test_every_option_help_shows_its_default():
    from imageclef_concepts.cli._main import _build_parser

    options = list(_options(_build_parser()))
    assert len(options) > 20
    missing = [f"{name} {action.option_strings[0]}" for name, action in options
               if "default" not in (action.help or "")]
    assert missing == []


def test_train_help_shows_the_estimators_own_defaults():
    """Every train flag that sets a parameter leaves it to the estimator (None) and
    shows the signature's default, or says in words what its None default means."""
    import inspect

    from imageclef_concepts.cli._main import _build_parser
    from imageclef_concepts.cli._models import _TRAIN_PARAMS

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


def test_on_error_choices_are_the_libraries():
    from imageclef_concepts.cli._main import _build_parser
    from imageclef_concepts.images._sources import ON_ERROR

    choices = {(name, action.dest): action.choices for name, action in _options(_build_parser())
               if action.dest == "on_error"}
    assert choices == {(command, "on_error"): ON_ERROR
                       for command in ("prepare", "train", "predict")}


@pytest.mark.parametrize("verbose, level", [(["--verbose"], "0"), ([], "2")])
def test_verbose_lets_tensorflow_show_its_lines(verbose, level, tmp_path, monkeypatch, capsys):
    # The library mutes TensorFlow's start-up lines unless TF_CPP_MIN_LOG_LEVEL is 0.
    import logging

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    tensorflow_logger = logging.getLogger("tensorflow")  # start_quietly raises its level
    monkeypatch.setattr(tensorflow_logger, "level", tensorflow_logger.level)
    code = main([*verbose, "predict", "--model", str(tmp_path / "missing.keras"),
                 "--images", str(tmp_path), "--output", str(tmp_path / "run.tsv")])
    assert code == 2 and "model file not found" in capsys.readouterr().err
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == level


@pytest.mark.parametrize("turned_into", [TypeError, ValueError])
def test_a_ctrl_c_a_library_turns_into_its_own_error_is_an_interruption(
        tmp_path, capsys, monkeypatch, turned_into, sigint_raises):
    # A Ctrl-C while Keras built a network surfaced as Keras' TypeError: a traceback (or,
    # as a ValueError, "error: ..." as if the user had made a mistake).
    import signal

    from imageclef_concepts.cli import _images

    def run(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            raise turned_into("'NoneType' object is not callable") from None

    monkeypatch.setattr(_images, "_run_prepare", run)
    arguments = ["prepare", "--images", str(tmp_path), "--store", str(tmp_path / "s")]
    assert main(arguments) == 130
    assert capsys.readouterr().err == "imageclef-concepts prepare: interrupted\n"

    def mistake(args):  # with no Ctrl-C, the error is what it is
        raise turned_into("bad")

    monkeypatch.setattr(_images, "_run_prepare", mistake)
    if turned_into is TypeError:
        with pytest.raises(TypeError):
            main(arguments)
    else:
        assert main(arguments) == 2
        assert capsys.readouterr().err == "imageclef-concepts prepare: error: bad\n"


@pytest.mark.parametrize("raised", ["KeyboardInterrupt", "ImportError"])
def test_a_ctrl_c_while_tensorflow_starts_is_an_interruption(tmp_path, capsys, monkeypatch,
                                                             raised):
    # TensorFlow's import takes seconds before a train, predict or recipe runs: a Ctrl-C
    # then was a KeyboardInterrupt traceback (issue 30 review 13); in one of its extensions'
    # start, TensorFlow turns it into 'ImportError: initialization failed' (review 20).
    from imageclef_concepts import keras as package

    def start():
        if raised == "KeyboardInterrupt":
            raise KeyboardInterrupt
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("initialization failed") from interrupt

    monkeypatch.setattr(package, "start_quietly", start)
    arguments = ["train", "--images", str(tmp_path), "--concepts", str(tmp_path / "c.csv"),
                 "--output", str(tmp_path / "m.keras")]
    assert main(arguments) == 130
    assert capsys.readouterr().err == "imageclef-concepts train: interrupted\n"
    assert list(tmp_path.iterdir()) == []
