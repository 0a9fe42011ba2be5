"""The command line's model subcommands: ``train``, ``predict`` and ``info``.

Each ``add_*`` adds a subcommand's options to the parser (no scikit-learn or
TensorFlow: ``--help`` reads them); its ``_run_*`` does the work through
``_workflows``, importing the heavy modules only then.
"""

from pathlib import Path

from ..concept_files._editions import EDITION_CHOICES, EDITIONS
from ..images._sources import ON_ERROR
from ..keras import AUGMENTATIONS, BACKBONES, LOSSES
from ..models import _paper as paper
from ._arguments import (
    UserError,
    check_output,
    estimator_default,
    int_tuple,
    one_line,
    positive_int,
    probability,
    say_unless_quiet,
)
from ._images import (
    add_image_store_option,
    check_outside_inputs,
    open_image_store,
    removed_unless_filled,
)
from ._train_checks import (
    check_card,
    check_distinct_validation,
    check_memory,
    check_room,
    check_validation_split,
)

_TRAIN_PARAMS = ("image_size", "epochs", "batch_size", "learning_rate", "threshold", "filters",
                 "dense_units", "backbone", "loss", "augmentation",
                 "early_stopping_patience", "on_error", "random_state", "checkpoint_dir",
                 "image_store")


def add_train(commands):
    train = commands.add_parser(
        "train", help="train the CNN on a dataset in the ImageCLEF layout",
        description="Train ConceptCNNClassifier on a folder of images and a concept file, "
        "streaming images from disk. With validation data, the best epoch is chosen on it "
        "and the decision threshold is tuned on it for the official F1.")
    train.add_argument("--images", type=Path, required=True, help="folder of <id>.<ext> images")
    train.add_argument("--concepts", type=Path, required=True,
                       help="ground-truth concept file of any edition (see --edition)")
    train.add_argument("--output", type=Path, required=True,
                       help="model file to write: .keras (native), .zip (the library's "
                            "archive) or .joblib")
    train.add_argument("--validation-images", type=Path,
                       help="folder of validation images (--images itself when each "
                            "concept file names its own images; a tenth or more of them "
                            "being training images or copies is refused, fewer are named "
                            "in a warning): the best "
                            "epoch is picked and the decision threshold tuned on them "
                            "(default: none; the best epoch on a 10%% split of the training "
                            "images, the threshold as given)")
    train.add_argument("--validation-concepts", type=Path,
                       help="the validation images' concept file (default: none)")
    train.add_argument("--edition", choices=EDITION_CHOICES, default="auto",
                       help="read --concepts and --validation-concepts as that year's "
                            "ground truth; auto picks the edition that fits each file "
                            "(default: auto)")
    train.add_argument("--image-size", type=positive_int,
                       help=f"side of the square images ({estimator_default(paper.IMAGE_SIZE)})")
    train.add_argument("--epochs", type=positive_int,
                       help=estimator_default(paper.EPOCHS))
    train.add_argument("--batch-size", type=positive_int,
                       help=estimator_default(paper.BATCH_SIZE))
    train.add_argument("--learning-rate", type=float,
                       help=f"Adam's learning rate ({estimator_default(paper.LEARNING_RATE)})")
    train.add_argument("--threshold", type=probability,
                       help="decision threshold when no validation data tunes it "
                            f"({estimator_default(paper.THRESHOLD)})")
    train.add_argument("--filters", type=int_tuple,
                       help="filters per convolution block "
                            f"({estimator_default(paper.FILTERS)})")
    train.add_argument("--dense-units", type=int_tuple,
                       help="hidden fully connected layers "
                            f"({estimator_default(paper.DENSE_UNITS)})")
    train.add_argument("--backbone", choices=("paper", *BACKBONES), default=None,
                       metavar="NAME",
                       help="the paper's network, or a Keras applications backbone by "
                            "lower-case name (densenet121, resnet50, efficientnetv2b0, "
                            f"convnexttiny...) ({estimator_default(paper.BACKBONE)})")
    train.add_argument("--weights", default=None, metavar="imagenet|none|FILE",
                       help="a backbone's starting weights: ImageNet (downloaded by Keras on "
                            "first use), none (random), or a weights file "
                            f"({estimator_default(paper.WEIGHTS)})")
    train.add_argument("--loss", choices=LOSSES, default=None,
                       help="the training loss; focal, asymmetric and soft_f1 are for the long "
                            f"tail of rare concepts ({estimator_default(paper.LOSS)})")
    train.add_argument("--augmentation", choices=AUGMENTATIONS, default=None,
                       help="random flips and rotations (light), also zoom and contrast "
                            "(standard), in training only (default: none)")
    train.add_argument("--early-stopping-patience", type=positive_int, default=None,
                       metavar="EPOCHS",
                       help="stop when the monitored validation loss has not improved for this "
                            "many epochs, keeping the best (default: train every epoch)")
    train.add_argument("--on-error", choices=ON_ERROR,
                       help="what to do with unreadable image files: stop naming them, or "
                            "leave them out with a warning naming them "
                            f"({estimator_default(paper.ON_ERROR)})")
    train.add_argument("--checkpoint-dir", type=Path, default=None,
                       help="a new or empty folder (or an earlier checkpoint) where training "
                            "saves its progress after every epoch, so that the same command "
                            "resumes it after a crash or a kill; removed once the model is "
                            "written (default: <output>.checkpoint beside the model)")
    train.add_argument("--restart", action="store_true",
                       help="discard the checkpoint of an earlier, unfinished training and "
                            "start afresh (default: resume it when it is the same training, "
                            "refuse when it is another)")
    add_image_store_option(train)
    train.add_argument("--random-state", type=int, default=None,
                       help="seed for a reproducible model (default: a fresh seed each run)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(run_command=_run_train, parameter_flags={
        name: "--" + name.replace("_", "-") for name in (*_TRAIN_PARAMS, "weights")})



def _run_train(args):
    _check_model_suffix(args.output)
    check_outside_inputs(args, "--image-store")
    check_memory(args)
    if (args.validation_images is None) != (args.validation_concepts is None):
        raise UserError("give both --validation-images and --validation-concepts, or neither.")
    if args.validation_images is not None:  # the best epoch and threshold picked on others
        check_distinct_validation(args)
    card = args.output.with_name(args.output.name + ".card.md")
    inputs = [args.images, args.concepts, args.validation_images, args.validation_concepts]
    check_output(args.output, inputs=inputs)
    check_output(card, inputs=inputs, flag="--output's model card")
    check_card(card, args.output)
    if args.checkpoint_dir is None:
        args.checkpoint_dir = args.output.with_name(args.output.name + ".checkpoint")
    args.checkpoint_dir = args.checkpoint_dir.absolute()  # the model never keeps a relative one
    check_outside_inputs(args, "--checkpoint-dir")  # in no image folder
    for written in (args.output, card):
        if args.checkpoint_dir in (written.absolute(), *written.absolute().parents):
            raise UserError(f"--checkpoint-dir {args.checkpoint_dir} would hold {written}: the "
                            "model and its card are written outside the checkpoint folder.")
    _prepare_checkpoint(args.checkpoint_dir, restart=args.restart)
    train = _load(args.images, args.concepts, args.edition)
    _check_learnable(args.concepts, args.edition)
    validation = (None if args.validation_images is None
                  else _load(args.validation_images, args.validation_concepts, args.edition))
    if validation is None:
        check_validation_split(train)
    given = {name: getattr(args, name) for name in _TRAIN_PARAMS
             if getattr(args, name) is not None}
    if args.weights is not None:  # "none" is the estimator's None (random weights)
        given["weights"] = None if args.weights.lower() == "none" else args.weights
    if args.image_store is None:
        check_room(args, given, train)
        return _train_and_save(args, card, train, validation, given)
    written = (args.output, card, args.checkpoint_dir)
    # A training refused before any image was stored leaves no store of its making.
    with removed_unless_filled(args.image_store, lambda path: open_image_store(path, written),
                               "images") as store:
        check_room(args, given, train, store, (train, validation))  # the store's disk too
        return _train_and_save(args, card, train, validation, {**given, "image_store": store})


def _train_and_save(args, card, train, validation, given):
    from ..recipes._workflows import save_model, train_and_tune

    model = train_and_tune(train, validation, say=lambda line: say_unless_quiet(args, line),
                           verbose=0 if args.quiet else 1, **given)
    try:
        save_model(model, args.output)  # removes the checkpoint once the model is written
    except OSError as error:
        raise UserError(f"cannot write {args.output}: {one_line(error)}. The trained network "
                        f"is kept in the checkpoint {args.checkpoint_dir}: run the same command "
                        "again to write the model without training again.") from None
    _write_text(card, model.model_card())
    say_unless_quiet(args, f"Wrote {args.output} ({model.threshold!r}) and its model card {card}")
    return 0


def _prepare_checkpoint(folder, restart):
    """Refuse a folder that is not the library's, before any work; --restart empties it."""
    from ..files._checkpoints import CheckpointError, check_checkpoint_folder, remove_checkpoint

    try:
        check_checkpoint_folder(folder)
        if restart and remove_checkpoint(folder):
            print(f"Removed the earlier checkpoint in {folder}")
    except CheckpointError as error:
        raise UserError(f"--checkpoint-dir: {error}") from None


def _write_text(path, text):
    from ..files._atomic import write_atomically

    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def _load(images, concepts, edition="auto"):
    from ..datasets._imageclef import load_imageclef
    from ..files._atomic import check_regular_file

    if not images.is_dir():
        raise UserError(f"image folder not found: {images}")
    check_regular_file(concepts, "concept file")
    data = load_imageclef(images, concepts, edition=edition)
    if not data.paths:
        raise UserError(f"no image of {images} has a line in {concepts}.")
    return data


def _check_model_suffix(path):
    from ..recipes._workflows import MODEL_SUFFIXES

    if path.suffix not in MODEL_SUFFIXES:
        raise UserError(f"model file {path} must end in {' or '.join(MODEL_SUFFIXES)}.")



def add_predict(commands):
    predict = commands.add_parser(
        "predict", help="write a run file for every image in a folder",
        description="Predict the concepts of every image in a folder with a trained model and "
        "write an ImageCLEF run file.")
    predict.add_argument("--model", type=Path, required=True, help=".keras, .zip or .joblib model")
    predict.add_argument("--images", type=Path, required=True, help="folder of images")
    predict.add_argument("--output", type=Path, required=True, help="run file to write")
    predict.add_argument("--edition", choices=tuple(EDITIONS), default=None,
                         help="write the run file the edition's evaluator accepts: 2018-2021 "
                              "tab, 2022-2023 pipe, 2024 on CSV (default: 2019)")
    predict.add_argument("--format", choices=tuple(EDITIONS), default=None,
                         help="older name of --edition (default: --edition's)")
    predict.add_argument("--batch-size", type=positive_int, default=256,
                         help="images decoded and predicted per step (default: 256)")
    predict.add_argument("--threshold", type=probability, default=None,
                         help="override the model's decision threshold (its tuned rule's "
                              "per-concept thresholds included; refused for models that "
                              "decide without one: baselines, set-combination ensembles; "
                              "default: the model's)")
    predict.add_argument("--max-concepts", type=positive_int, default=None,
                         help="predict at most this many concepts per image (100 from 2022 "
                              "on); overrides the model's (default: the model's)")
    predict.add_argument("--on-error", choices=ON_ERROR, default=None,
                         help="unreadable image files: stop naming them, or give them no "
                              "concepts with a warning naming them (default: the model's)")
    add_image_store_option(predict)
    predict.add_argument("--allow-pickle", action="store_true",
                         help="allow a .joblib model: a pickle runs any code it holds, so only "
                              "for files you made yourself")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(run_command=_run_predict, parameter_flags={
        "image_store": "--image-store", "on_error": "--on-error"})


def _run_predict(args):
    from ..concept_files._io import write_run
    from ..models._decision import DecisionRule
    from ..recipes._workflows import (
        check_run_ids_of_folder,
        image_readers,
        load_model,
        predict_folder,
        use_image_store,
    )

    if not args.images.is_dir():
        raise UserError(f"image folder not found: {args.images}")
    check_outside_inputs(args, "--image-store")
    check_output(args.output, inputs=[args.model, args.images], flag="--output")
    if args.edition and args.format and args.edition != args.format:
        raise UserError(f"--edition {args.edition} and --format {args.format} disagree; "
                        "give --edition only.")
    edition = args.edition or args.format or "2019"
    check_run_ids_of_folder(args.images, edition)  # before the model is loaded
    model = load_model(args.model, allow_pickle=args.allow_pickle)
    _check_concepts_writable(model, args.model, edition)
    params = model.get_params()
    if "verbose" in params:
        model.set_params(verbose=0)  # one progress bar (ours), not Keras' per chunk
    if args.image_store is not None:
        if not image_readers(model):  # said before a store folder is made for nothing
            raise UserError(f"--image-store: {type(model).__name__} reads no image files.")
        use_image_store(model, open_image_store(args.image_store, written=(args.output,)))
    if args.on_error is not None:
        if "on_error" not in params:
            raise UserError(f"--on-error: {type(model).__name__} has no on_error setting.")
        model.set_params(on_error=args.on_error)
    if args.threshold is not None or args.max_concepts is not None:
        _check_rule_is_used(model, args)
        model.set_params(threshold=_overridden_rule(DecisionRule.of(model.threshold), args))
    ids, concepts = predict_folder(model, args.images, batch_size=args.batch_size,
                                   progress=not args.quiet)
    write_run(args.output, ids, concepts, edition=edition)
    say_unless_quiet(args, f"Wrote {args.output}: {len(ids)} images, {edition} edition")
    return 0


def _check_learnable(concepts, edition):
    """Refuse, before training, training concepts that the run files of the ``--edition``
    named cannot hold (from 2026, one that is not a CUI), as recipe-2026 does: the model
    would learn them, and predict --edition would refuse it after the training."""
    from ..concept_files._io import concepts_no_run_holds
    from ..concept_files._text import ConceptFileError

    problems = [] if edition == "auto" else concepts_no_run_holds(concepts, edition)
    if problems:
        raise ConceptFileError(problems, f"{concepts}: the model would learn concepts that a "
                               f"{edition} run file cannot hold (train with --edition auto "
                               "for another edition's runs)")


def _check_concepts_writable(model, path, edition):
    """Refuse, before any image is predicted, a model whose concepts the run file of
    ``edition`` cannot hold (not CUIs in 2026, a name holding the delimiter): the run was
    refused at its write, after the whole folder was predicted."""
    from ..concept_files._io import model_concept_problems

    problems = model_concept_problems(getattr(model, "classes_", ()), edition)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{path}: the model's {problems[0]}{more}: a {edition} run file "
                        "cannot hold it; predict with the --edition the model was trained "
                        "for.")


def _check_rule_is_used(model, args):
    """Refuse --threshold / --max-concepts for a model whose predictions they would not change.

    A model without a ``threshold`` (``MostFrequentConcepts``: its k most
    frequent concepts for every image), an ensemble that unites, intersects or
    counts its members' own decisions, k-NN voting by the neighbours' mean
    count: one line saying so, rather than a traceback or a silent no-op.
    """
    from ..estimators._ensemble import SET_COMBINATIONS

    flags = " and ".join(flag for flag, value in (("--threshold", args.threshold),
                                                   ("--max-concepts", args.max_concepts))
                         if value is not None)
    name = type(model).__name__
    if "threshold" not in model.get_params():
        raise UserError(f"{flags}: a {name} has no decision threshold (it decides its "
                        "concepts otherwise), so this would change nothing; leave it out.")
    combine = model.get_params().get("combine")
    if combine in SET_COMBINATIONS:
        raise UserError(f"{flags}: this {name} combines its members' concept sets "
                        f"(combine={combine!r}), each member deciding by its own rule, so "
                        "this would change nothing; leave it out, or save an ensemble with "
                        "combine='mean' or 'max'.")
    if model.get_params().get("voting") == "mean_count":
        raise UserError(f"{flags}: this {name} predicts as many concepts as the neighbours "
                        "carry on average (voting='mean_count'), so this would change "
                        "nothing; leave it out.")


def _overridden_rule(rule, args):
    from ..models._decision import DecisionRule

    threshold = rule.threshold if args.threshold is None else args.threshold
    max_concepts = rule.max_concepts if args.max_concepts is None else args.max_concepts
    return DecisionRule(threshold, min_concepts=min(rule.min_concepts, max_concepts or 10**9),
                        max_concepts=max_concepts, count_model=rule.count_model)


def add_info(commands):
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
    from ..files._atomic import check_regular_file
    from ..models._card import check_record, is_archive_record, model_card
    from ..models._keras_members import check_keras_zip
    from ..models._zip import read_model_record

    check_regular_file(args.model, "model file")
    if args.model.suffix.lower() in (".joblib", ".pkl", ".pickle"):  # never unpickled here
        raise UserError(f"{args.model}: a pickled model ({args.model.suffix}) has no card; "
                        "info reads the library's .zip and .keras files.")
    record = read_model_record(args.model)
    if is_archive_record(record):
        from ..models._persistence import check_description

        check_description(record["estimator"], None, f"{args.model}: the archive's estimator",
                          load=False)  # a card imports no class: no TensorFlow for a CNN
        _attach_network_records(args.model, record)
    else:  # a card only of what load reads: the same checks, no TensorFlow
        check_record(record, args.model, file=args.model)
        check_keras_zip(args.model)
    print(model_card(record, name=args.model.name), end="")
    return 0


def _attach_network_records(path, manifest):
    """Put each network's own record (read from its .keras entry) beside its description.

    Each entry is read as ``load`` reads it: no further than the size the
    manifest states, and the archive within its budget (``ModelZip``).
    """
    import zipfile

    from ..files._atomic import open_regular_file
    from ..models._archive import check_manifest, stated_sizes
    from ..models._zip import ModelZip

    try:
        with open_regular_file(path, "model file") as handle, \
                ModelZip(handle, path, kind="an archive") as archive:
            check_manifest(path, manifest, archive)
            _attach_records(path, archive, stated_sizes(manifest, archive),
                            manifest["estimator"])
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as error:
        raise UserError(f"{path}: the archive cannot be read ({error}).") from None


def _attach_records(path, archive, sizes, description):
    import io

    from ..models._card import check_record
    from ..models._keras_members import check_keras_zip
    from ..models._zip import read_model_record

    if description["class"] == "ConceptCNNClassifier":
        name = description["keras_file"]
        if name not in sizes:
            raise UserError(f"{path}: the archive lacks the network {name}.")
        data = archive.read(name, sizes[name], "its manifest states")
        shown = f"{path} ({name})"
        with archive.nested():  # its members within what the archive has left
            description["record"] = read_model_record(io.BytesIO(data), shown_as=shown)
            check_record(description["record"], shown)
            check_keras_zip(io.BytesIO(data), shown)  # as load checks it
    for inner in [description.get("embedding")] + [m[1] for m in description.get("members", [])]:
        if isinstance(inner, dict):
            _attach_records(path, archive, sizes, inner)
