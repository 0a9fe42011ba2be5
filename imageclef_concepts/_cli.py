"""The ``imageclef-concepts`` command line (also ``python -m imageclef_concepts``).

Subcommands: ``demo`` (the main job, on built-in data), ``train``,
``predict`` and ``evaluate``. A user's mistake ends with a clear message on
standard error and exit code 2, never a traceback.
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from . import _paper as paper
from ._concept_files import EDITION_CHOICES, EDITIONS, ConceptFileError, evaluate_run
from .keras import AUGMENTATIONS, BACKBONES, LOSSES

# _images.ON_ERROR, not imported from there: that module needs scikit-learn,
# which --help does not wait for (a test keeps the two equal).
_ON_ERROR = ("raise", "skip")


def _estimator_default(value):
    """Help text for a flag left to the estimator: None means "not given", so
    ConceptCNNClassifier's default applies; that default is the paper's
    setting, read from the module the estimator reads it from (no TensorFlow)."""
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
    return f"default: {shown}"


class UserError(Exception):
    """A mistake of the user's: reported without a traceback, exit code 2."""


def main(argv=None):
    """Run the command line; return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run_command"):
        parser.print_help()
        return 2
    if args.command in _NEEDS_TENSORFLOW and not args.verbose:
        from .keras import start_quietly

        start_quietly()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning_plainly(args.command)
            return args.run_command(args)
    except KeyboardInterrupt:
        print(f"imageclef-concepts {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UserError, ConceptFileError, OSError, ValueError) as error:
        print(f"imageclef-concepts {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2


def _show_warning_plainly(command):
    """Warnings as the command's own lines: what happened, not the library line that said it."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"imageclef-concepts {command}: warning: {message}", file=sys.stderr)
    return show


def _one_line(error):
    """An error as one line: a multi-line message (a list of problems) joined up."""
    text = str(error) if not isinstance(error, OSError) or not error.filename else \
        f"{error.strerror}: {error.filename}"
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def _version():
    from . import __version__

    return __version__


_NEEDS_TENSORFLOW = ("demo", "train", "predict", "reproduce-2019")


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="imageclef-concepts",
        description="Medical concept detection in radiology images (ImageCLEFmed Caption).",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up and log lines")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(commands)
    _add_train(commands)
    _add_predict(commands)
    _add_evaluate(commands)
    _add_reproduce(commands)
    _add_info(commands)
    return parser


# ------------------------------------------------------------------- demo

def _add_demo(commands):
    demo = commands.add_parser(
        "demo", help="the whole pipeline on built-in synthetic data",
        description="Generate synthetic radiology-like images in the ImageCLEF layout, run a "
        "two-round coarse-to-fine GridSearchCV over ConceptCNNClassifier inside a "
        "ThresholdTuner, and print the official F1 on held-out images of the "
        "most-frequent-concepts baseline and of the CNN at 0.5, 0.1 and the tuned threshold.")
    demo.add_argument("--output", type=Path, default=None,
                      help="folder for the data, run file, model and plots "
                           "(default: a new folder demo-output-<time>)")
    demo.add_argument("--quick", action="store_true",
                      help="a smaller run, under a minute on 2 cores (default: the full run, "
                           "about 1.5 minutes)")
    demo.add_argument("--random-state", type=int, default=0,
                      help="seed of the data, the splits and the networks (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="print only the results table")
    demo.set_defaults(run_command=_run_demo)


def _run_demo(args):
    import logging

    from ._demo import run_demo

    # A grid search builds a new network per fit; TensorFlow's "retracing"
    # warnings about that are expected here and only noise.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    output = args.output or Path(f"demo-output-{time.strftime('%Y%m%d-%H%M%S')}")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output {output} exists and is not empty; name a new folder.")
    say = (lambda line: None) if args.quiet else print
    summary = run_demo(output, quick=args.quick, random_state=args.random_state, say=say,
                       progress=not args.quiet)
    if args.quiet:
        from ._demo import results_table

        print(results_table(summary["scores"]))
    return 0


# ------------------------------------------------------------------ train

def _add_train(commands):
    train = commands.add_parser(
        "train", help="train the CNN on a dataset in the ImageCLEF layout",
        description="Train ConceptCNNClassifier on a folder of images and a concept file, "
        "streaming images from disk. With validation data, the best epoch is chosen on it "
        "and the decision threshold is tuned on it for the official F1.")
    train.add_argument("--images", type=Path, required=True, help="folder of <id>.<ext> images")
    train.add_argument("--concepts", type=Path, required=True,
                       help="concept file (2019, 2022 or 2024 layout)")
    train.add_argument("--output", type=Path, required=True,
                       help="model file to write: .keras (native) or .joblib")
    train.add_argument("--validation-images", type=Path,
                       help="folder of validation images: the best epoch is picked and the "
                            "decision threshold tuned on them (default: none; the best epoch "
                            "on a 10%% split of the training images, the threshold as given)")
    train.add_argument("--validation-concepts", type=Path,
                       help="the validation images' concept file (default: none)")
    train.add_argument("--image-size", type=_positive_int,
                       help=f"side of the square images ({_estimator_default(paper.IMAGE_SIZE)})")
    train.add_argument("--epochs", type=_positive_int,
                       help=_estimator_default(paper.EPOCHS))
    train.add_argument("--batch-size", type=_positive_int,
                       help=_estimator_default(paper.BATCH_SIZE))
    train.add_argument("--learning-rate", type=float,
                       help=f"Adam's learning rate ({_estimator_default(paper.LEARNING_RATE)})")
    train.add_argument("--threshold", type=_probability,
                       help="decision threshold when no validation data tunes it "
                            f"({_estimator_default(paper.THRESHOLD)})")
    train.add_argument("--filters", type=_int_tuple,
                       help="filters per convolution block "
                            f"({_estimator_default(paper.FILTERS)})")
    train.add_argument("--dense-units", type=_int_tuple,
                       help="hidden fully connected layers "
                            f"({_estimator_default(paper.DENSE_UNITS)})")
    train.add_argument("--backbone", choices=("paper", *BACKBONES), default=None,
                       metavar="NAME",
                       help="the paper's network, or a Keras applications backbone by "
                            "lower-case name (densenet121, resnet50, efficientnetv2b0, "
                            f"convnexttiny...) ({_estimator_default(paper.BACKBONE)})")
    train.add_argument("--weights", default=None, metavar="imagenet|none|FILE",
                       help="a backbone's starting weights: ImageNet (downloaded by Keras on "
                            "first use), none (random), or a weights file "
                            f"({_estimator_default(paper.WEIGHTS)})")
    train.add_argument("--loss", choices=LOSSES, default=None,
                       help="the training loss; focal, asymmetric and soft_f1 are for the long "
                            f"tail of rare concepts ({_estimator_default(paper.LOSS)})")
    train.add_argument("--augmentation", choices=AUGMENTATIONS, default=None,
                       help="random flips and rotations (light), also zoom and contrast "
                            "(standard), in training only (default: none)")
    train.add_argument("--early-stopping-patience", type=_positive_int, default=None,
                       metavar="EPOCHS",
                       help="stop when the monitored validation loss has not improved for this "
                            "many epochs, keeping the best (default: train every epoch)")
    train.add_argument("--on-error", choices=_ON_ERROR,
                       help="what to do with unreadable image files: stop naming them, or "
                            "leave them out with a warning naming them "
                            f"({_estimator_default(paper.ON_ERROR)})")
    train.add_argument("--checkpoint-dir", type=Path, default=None,
                       help="a new or empty folder (or an earlier checkpoint) where training "
                            "saves its progress after every epoch, so that the same command "
                            "resumes it after a crash or a kill; removed once the model is "
                            "written (default: <output>.checkpoint beside the model)")
    train.add_argument("--restart", action="store_true",
                       help="discard the checkpoint of an earlier, unfinished training and "
                            "start afresh (default: resume it when it is the same training, "
                            "refuse when it is another)")
    train.add_argument("--random-state", type=int, default=None,
                       help="seed for a reproducible model (default: a fresh seed each run)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(run_command=_run_train)


def _int_tuple(text):
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


_TRAIN_PARAMS = ("image_size", "epochs", "batch_size", "learning_rate", "threshold", "filters",
                 "dense_units", "backbone", "loss", "augmentation",
                 "early_stopping_patience", "on_error", "random_state", "checkpoint_dir")


def _run_train(args):
    from ._workflows import save_model, train_and_tune

    _check_model_suffix(args.output)
    if (args.validation_images is None) != (args.validation_concepts is None):
        raise UserError("give both --validation-images and --validation-concepts, or neither.")
    card = args.output.with_name(args.output.name + ".card.md")
    inputs = [args.images, args.concepts, args.validation_images, args.validation_concepts]
    _check_output(args.output, inputs=inputs)
    _check_output(card, inputs=inputs, flag="--output's model card")
    if args.checkpoint_dir is None:
        args.checkpoint_dir = args.output.with_name(args.output.name + ".checkpoint")
    args.checkpoint_dir = args.checkpoint_dir.absolute()  # the model never keeps a relative one
    for written in (args.output, card):
        if args.checkpoint_dir in (written.absolute(), *written.absolute().parents):
            raise UserError(f"--checkpoint-dir {args.checkpoint_dir} would hold {written}: the "
                            "model and its card are written outside the checkpoint folder.")
    _prepare_checkpoint(args.checkpoint_dir, restart=args.restart)
    train = _load(args.images, args.concepts)
    validation = (None if args.validation_images is None
                  else _load(args.validation_images, args.validation_concepts))
    given = {name: getattr(args, name) for name in _TRAIN_PARAMS
             if getattr(args, name) is not None}
    if args.weights is not None:  # "none" is the estimator's None (random weights)
        given["weights"] = None if args.weights.lower() == "none" else args.weights
    model = train_and_tune(train, validation, say=lambda line: _say(args, line),
                           verbose=0 if args.quiet else 1, **given)
    try:
        save_model(model, args.output)  # removes the checkpoint once the model is written
    except OSError as error:
        raise UserError(f"cannot write {args.output}: {_one_line(error)}. The trained network "
                        f"is kept in the checkpoint {args.checkpoint_dir}: run the same command "
                        "again to write the model without training again.") from None
    _write_text(card, model.model_card())
    _say(args, f"Wrote {args.output} ({model.threshold!r}) and its model card {card}")
    return 0


def _prepare_checkpoint(folder, restart):
    """Refuse a folder that is not the library's, before any work; --restart empties it."""
    from ._checkpoints import CheckpointError, check_checkpoint_folder, remove_checkpoint

    try:
        check_checkpoint_folder(folder)
        if restart and remove_checkpoint(folder):
            print(f"Removed the earlier checkpoint in {folder}")
    except CheckpointError as error:
        raise UserError(f"--checkpoint-dir: {error}") from None


def _write_text(path, text):
    from ._atomic_files import write_atomically

    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def _load(images, concepts):
    from ._atomic_files import check_regular_file
    from ._datasets import load_imageclef

    if not images.is_dir():
        raise UserError(f"image folder not found: {images}")
    check_regular_file(concepts, "concept file")
    data = load_imageclef(images, concepts)
    if not data.paths:
        raise UserError(f"no image of {images} has a line in {concepts}.")
    return data


def _check_model_suffix(path):
    from ._workflows import MODEL_SUFFIXES

    if path.suffix not in MODEL_SUFFIXES:
        raise UserError(f"model file {path} must end in {' or '.join(MODEL_SUFFIXES)}.")


# ---------------------------------------------------------------- predict

def _add_predict(commands):
    predict = commands.add_parser(
        "predict", help="write a run file for every image in a folder",
        description="Predict the concepts of every image in a folder with a trained model and "
        "write an ImageCLEF run file.")
    predict.add_argument("--model", type=Path, required=True, help=".keras or .joblib model")
    predict.add_argument("--images", type=Path, required=True, help="folder of images")
    predict.add_argument("--output", type=Path, required=True, help="run file to write")
    predict.add_argument("--edition", choices=tuple(EDITIONS), default=None,
                         help="write the run file the edition's evaluator accepts: 2018-2021 "
                              "tab, 2022-2023 pipe, 2024 on CSV (default: 2019)")
    predict.add_argument("--format", choices=tuple(EDITIONS), default=None,
                         help="older name of --edition (default: --edition's)")
    predict.add_argument("--batch-size", type=_positive_int, default=256,
                         help="images decoded and predicted per step (default: 256)")
    predict.add_argument("--threshold", type=_probability, default=None,
                         help="override the model's decision threshold (its tuned rule's "
                              "per-concept thresholds included; default: the model's)")
    predict.add_argument("--max-concepts", type=_positive_int, default=None,
                         help="predict at most this many concepts per image (100 from 2022 "
                              "on); overrides the model's (default: the model's)")
    predict.add_argument("--on-error", choices=_ON_ERROR, default=None,
                         help="unreadable image files: stop naming them, or give them no "
                              "concepts with a warning naming them (default: the model's)")
    predict.add_argument("--allow-pickle", action="store_true",
                         help="allow a .joblib model: a pickle runs any code it holds, so only "
                              "for files you made yourself")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(run_command=_run_predict)


def _run_predict(args):
    from ._concept_files import write_run
    from ._decision import DecisionRule
    from ._workflows import load_model, predict_folder

    if not args.images.is_dir():
        raise UserError(f"image folder not found: {args.images}")
    _check_output(args.output, inputs=[args.model, args.images], flag="--output")
    model = load_model(args.model, allow_pickle=args.allow_pickle)
    params = model.get_params()
    if "verbose" in params:
        model.set_params(verbose=0)  # one progress bar (ours), not Keras' per chunk
    if args.on_error is not None:
        if "on_error" not in params:
            raise UserError(f"--on-error: {type(model).__name__} has no on_error setting.")
        model.set_params(on_error=args.on_error)
    if args.threshold is not None or args.max_concepts is not None:
        model.set_params(threshold=_overridden_rule(DecisionRule.of(model.threshold), args))
    if args.edition and args.format and args.edition != args.format:
        raise UserError(f"--edition {args.edition} and --format {args.format} disagree; "
                        "give --edition only.")
    edition = args.edition or args.format or "2019"
    ids, concepts = predict_folder(model, args.images, batch_size=args.batch_size,
                                   progress=not args.quiet)
    write_run(args.output, ids, concepts, edition=edition)
    _say(args, f"Wrote {args.output}: {len(ids)} images, {edition} edition")
    return 0


def _check_output(path, inputs, flag="--output"):
    """Refuse, before any work, an output that cannot be written or would destroy something.

    A folder, a device or a pipe, a missing or read-only folder, and any
    input (a file named, or any file of a folder named: an image, a
    concept file, the model) are refused.
    """
    from ._atomic_files import NotARegularFileError, check_writable_target

    folder = path.parent if str(path.parent) else Path(".")
    try:
        check_writable_target(path, flag)
    except NotARegularFileError as error:
        raise UserError(str(error)) from None
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{flag} {path}: the folder {folder} is not writable.")
    if not path.exists():
        return
    target = os.stat(path)
    for given in inputs:
        if given is None or not given.exists():
            continue
        files = [entry.path for entry in os.scandir(given)] if given.is_dir() else [given]
        for file in files:
            try:
                same = os.path.samestat(os.stat(file), target)
            except OSError:
                continue
            if same:
                raise UserError(f"{flag} {path} is also an input ({file}); it would be "
                                "overwritten.")


def _overridden_rule(rule, args):
    from ._decision import DecisionRule

    threshold = rule.threshold if args.threshold is None else args.threshold
    max_concepts = rule.max_concepts if args.max_concepts is None else args.max_concepts
    return DecisionRule(threshold, min_concepts=min(rule.min_concepts, max_concepts or 10**9),
                        max_concepts=max_concepts)


def _probability(text):
    """A decision threshold: a number in [0, 1] (2 would predict nothing, -1 everything)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


# --------------------------------------------------------------- evaluate

def _add_evaluate(commands):
    evaluate = commands.add_parser(
        "evaluate",
        help="score a run file with the official F1",
        description="Check a run file against the ground truth and print its official "
        "ImageCLEF F1 (mean per-image F1 over images with at least one true concept).",
    )
    evaluate.add_argument("run", help="the run file")
    evaluate.add_argument("ground_truth", help="the ground-truth concept file")
    evaluate.add_argument("--edition", choices=EDITION_CHOICES, default="auto",
                          help="read, refuse and score as that year's evaluator; auto picks "
                               "the edition that fits the files (default: auto)")
    evaluate.add_argument("--secondary-truth", default=None, metavar="FILE",
                          help="also print the secondary F1 against this second ground truth "
                               "(2024 on: concepts_manual.csv), both sides restricted to the "
                               "edition's secondary concepts (default: none)")
    evaluate.add_argument("--max-concepts", type=int, default=None,
                          help="also refuse lines with more concepts (the edition's own "
                               "maximum always applies; default: no other limit)")
    evaluate.add_argument("--cui-only", action="store_true",
                          help="refuse concepts that are not UMLS CUIs (C followed by digits)")
    evaluate.add_argument("--secondary-concepts", default=None, metavar="FILE",
                          help="the secondary F1's concepts, one per line in FILE; without "
                               "--secondary-truth the ground truth is restricted to them "
                               "(default: the edition's own list)")
    evaluate.set_defaults(run_command=_run_evaluate)


def _run_evaluate(args):
    result = evaluate_run(args.run, args.ground_truth, edition=args.edition,
                          secondary_truth=args.secondary_truth,
                          secondary_concepts=args.secondary_concepts,
                          max_concepts=args.max_concepts, cui_only=args.cui_only)
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(f"Edition: {result.edition_note or result.edition}")
    print(f"Mean F1 score: {result.score}")
    if result.secondary_score is not None:
        print(f"Secondary F1 score: {result.secondary_score}")
    print(f"({result.n_scored} of {result.n_images} images have true concepts and are "
          "averaged)")
    return 0


# ------------------------------------------------------------------- info

def _add_info(commands):
    info = commands.add_parser("info", help="print a saved model's card",
                               description="Print the model card carried by a model file: "
                               "versions, date, training data, validation, decision rule and "
                               "parameters of a .keras file; each estimator, member and "
                               "vocabulary of an ensemble, k-NN or baseline .zip archive. "
                               "Reads the file only; loads no network.")
    info.add_argument("model", type=Path,
                      help="a .keras file or .zip archive written by the library")
    info.set_defaults(run_command=_run_info)


def _run_info(args):
    from ._atomic_files import check_regular_file
    from ._model_card import check_record, is_archive_record, model_card, read_model_record

    check_regular_file(args.model, "model file")
    record = read_model_record(args.model)
    if is_archive_record(record):
        from ._persistence import check_description

        check_description(record["estimator"], None, f"{args.model}: the archive's estimator")
        _attach_network_records(args.model, record["estimator"])
    else:
        check_record(record, args.model)
    print(model_card(record, name=args.model.name), end="")
    return 0


def _attach_network_records(path, description):
    """Put each network's own record (read from its .keras entry) beside its description."""
    import io
    import zipfile

    from ._model_card import check_record, read_model_record

    if description["class"] == "ConceptCNNClassifier":
        name = description["keras_file"]
        with zipfile.ZipFile(path) as archive:
            if name not in archive.namelist():
                raise UserError(f"{path}: the archive lacks the network {name}.")
            data = archive.read(name)
        shown = f"{path} ({name})"
        description["record"] = read_model_record(io.BytesIO(data), shown_as=shown)
        check_record(description["record"], shown)
    for inner in [description.get("embedding")] + [m[1] for m in description.get("members", [])]:
        if isinstance(inner, dict):
            _attach_network_records(path, inner)


# --------------------------------------------------------- reproduce-2019

def _add_reproduce(commands):
    reproduce = commands.add_parser(
        "reproduce-2019", help="the paper's procedure, from the 2019 data to the run file",
        description="Run the MacUni-CSIRO ImageCLEF 2019 procedure: training and validation "
        "concepts combined, a coarse-to-fine search over learning rate, batch size and decay "
        "(10 epochs each, best epoch by accuracy), the threshold checked on held-out data "
        "(0.1 unless --tune-threshold), the test images' run file in the 2019 layout, and a "
        "report. The data folder holds train_concepts.tsv, valid_concepts.tsv (and "
        "test_concepts.tsv to score) with the images in train/, valid/ and test/ or images/.")
    reproduce.add_argument("--data", type=Path,
                           help="the dataset folder (default: none; required unless --dry-run)")
    reproduce.add_argument("--output", type=Path, required=True,
                           help="folder for run.tsv, model.keras, report.md, report.json")
    reproduce.add_argument("--no-merge-validation", dest="merge_validation",
                           action="store_false",
                           help="train on the training set only (the paper merged them)")
    reproduce.add_argument("--tune-threshold", action="store_true",
                           help="use the best threshold on held-out data, not the paper's 0.1")
    reproduce.add_argument("--dry-run", action="store_true",
                           help="the whole procedure on a small synthetic dataset in the 2019 "
                                "layout (written to <output>/data), in about a minute")
    reproduce.add_argument("--random-state", type=int, default=0,
                           help="seed of the splits and the networks (default: 0)")
    reproduce.add_argument("--quiet", action="store_true", help="print only the final score")
    reproduce.set_defaults(run_command=_run_reproduce)


def _run_reproduce(args):
    from ._datasets import make_imageclef_2019_layout
    from ._reproduce import DRY_RUN, reproduce_2019

    if args.dry_run == (args.data is not None):
        raise UserError("give --data DIR, or --dry-run (which makes its own data).")
    if args.output.exists() and not args.output.is_dir():
        raise UserError(f"--output {args.output} is a file; name a folder.")
    data = args.data
    if args.dry_run:
        data = args.output / "data"
        make_imageclef_2019_layout(data, random_state=args.random_state)
    elif not data.is_dir():
        raise UserError(f"data folder not found: {data}")
    report = reproduce_2019(data, args.output, merge_validation=args.merge_validation,
                            tune_threshold=args.tune_threshold,
                            procedure=DRY_RUN if args.dry_run else None,
                            random_state=args.random_state,
                            say=(lambda line: None) if args.quiet else print)
    score = report["run_file"].get("official_f1")
    print(f"Official F1 on the test images: {score:.4f} (the paper: 0.1435)" if score is not None
          else f"Run file: {report['run_file']['path']}")
    return 0


def _say(args, line):
    if not args.quiet:
        print(line)

