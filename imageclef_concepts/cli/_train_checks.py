"""The train command's checks on what training will take, done before any epoch: the
memory a batch and the network take, the disk room for the model file and the
checkpoint's epochs, and validation images other than the training ones."""


import os

from ._arguments import UserError


def check_memory(args):
    """What --image-size and --batch-size allocate, checked before anything is made or read
    (a batch holds at most the folder's images, counted by their names)."""
    from ..datasets._imageclef import image_files_by_id
    from ..keras import ConceptCNNClassifier
    from ..keras._architecture import check_memory as check_network_memory

    shape = {name: getattr(args, name) for name in ("image_size", "batch_size", "filters",
                                                    "dense_units", "backbone")
             if getattr(args, name) is not None}
    n_images = len(image_files_by_id(args.images)) if args.images.is_dir() else None
    check_network_memory(ConceptCNNClassifier(**shape), n_images,
                         names={"image_size": "--image-size", "batch_size": "--batch-size",
                                   "filters": "--filters", "dense_units": "--dense-units"})


def check_card(card, output):
    """Refuse a file at the model card's path (``<output>.card.md``, written beside the
    model) that is not a model card: ``--output`` names the model, and a user's own file
    that happens to sit at its card's name would be replaced without being named."""
    from ..models._card import CARD_TITLE

    if os.path.islink(card):  # written through, it would replace another model's card
        raise UserError(f"{card} is a symbolic link, and train writes --output {output}'s "
                        "card there: remove the link, or choose another --output.")
    title = CARD_TITLE.encode()
    try:
        with open(card, "rb") as handle:  # a regular file: check_output refused the others
            start = handle.read(len(title))
    except OSError:  # none there, or one check_output names
        return
    if start != title:
        raise UserError(f"{card} is not a model card (its first line is not "
                        f"'{CARD_TITLE.strip()} ...'), and train writes --output {output}'s "
                        "card there: move that file, or choose another --output.")


def check_distinct_validation(args):
    """Refuse validation images that are the training ones, as recipe-2026 refuses them."""
    from sklearn.utils import Bunch

    from ..datasets._layout_2026 import check_distinct_splits

    check_distinct_splits(
        {"train": Bunch(images=args.images, concepts=args.concepts),
         "valid": Bunch(images=args.validation_images, concepts=args.validation_concepts)},
        flags={"train": ("--images", "--concepts"),
               "valid": ("--validation-images", "--validation-concepts")})


def check_validation_split(train):
    """Without validation images, the best epoch is picked on ConceptCNNClassifier's
    validation_fraction of the training images: too few of them for that split are refused
    naming the options that replace it (the library's error names its keyword arguments)."""
    import numpy as np

    from ..keras import ConceptCNNClassifier
    from ..keras._training_loop import split_validation

    fraction = ConceptCNNClassifier().validation_fraction
    try:
        split_validation(np.arange(len(train.paths)), fraction, np.random.default_rng(0))
    except ValueError:
        raise UserError(f"{len(train.paths)} training image(s) are too few to hold out "
                        f"{fraction:.0%} of them for picking the best epoch: give "
                        "--validation-images and --validation-concepts.") from None


def check_room(args, given, train, store=None, datasets=()):
    """Refuse, before training, disks that cannot take the model file and the checkpoint's
    epochs (their most, from the network's numbers: ``keras._training_loop.saved_bytes``
    and ``checkpoint_bytes``), and the images an image ``store`` adds of the ``datasets``
    (each alone fitted, and all three on one disk did not: the model's write failed after
    the last epoch); a full disk lost the first epoch, or the whole training."""
    from ..files._sizes import check_disks, setting
    from ..keras import ConceptCNNClassifier
    from ..keras._architecture import check_architecture
    from ..keras._training_loop import checkpoint_demand, count_weights, saved_bytes

    n_concepts = len({concept for concepts in train.concepts for concept in concepts})
    network = ConceptCNNClassifier(**{**given, "weights": None, "image_store": None})
    check_architecture(network, len(train.paths))  # a network that cannot be built: named
    counted = count_weights(network, n_concepts)
    demands = [
        (saved_bytes(counted), args.output.absolute(), setting("--output", args.output),
         "the model file", "name an --output on another disk"),
        checkpoint_demand(counted, args.checkpoint_dir, "--checkpoint-dir")]
    if store is not None:
        demands.append(_store_demand(args, store, ConceptCNNClassifier(**given), datasets))
    try:
        check_disks(demands)
    except ValueError as error:
        raise UserError(str(error)) from None


def _store_demand(args, store, estimator, datasets):
    """What the ``store`` adds of the ``datasets``' images at the model's size and filter."""
    from pathlib import Path

    from ..files._sizes import setting
    from ..images._store import files_to_store, key_length, stored_bytes

    shelves = [(int(estimator.image_size), estimator.resample)]
    paths = list(dict.fromkeys(str(path) for data in datasets if data is not None
                               for path in data.paths))
    counts = files_to_store(store, shelves, paths)
    return (stored_bytes(store, shelves, counts, key_length(paths)), Path(store.path),
            setting("--image-store", args.image_store),
            f"storing {counts[0]} image(s) at {shelves[0][0]} px",
            "give --image-store a folder on another disk, or none")
