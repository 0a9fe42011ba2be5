"""The 2026 recipe's checks before anything is written or trained, and its synthetic data.

Every grid point, the data's splits (each concept file read as the 2026
evaluator reads it, each listed image there and readable) and where the
output goes are checked first, so that a mistake costs seconds, not the
members' training.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
from numbers import Integral
from pathlib import Path

import numpy as np

from ..files._atomic import check_outside, resolved

# The random_state of the recipe's count-model tuning (its folds), checked here first.
TUNING_SEED = 0

# What each field of Recipe2026 holds. Its values are checked by what takes them, before
# anything trains: the grid by from_grid, thresholds and count_coverage by the tuners
# (check_tuning_settings), retrieval_neighbors by the k-NN (retrieval_template).
FIELD_TYPES = {
    "grid": ((dict, list, tuple), "a dict of parameter lists (or a list of such dicts)"),
    "estimator_params": ((dict,), "a dict of the members' parameters"),
    "thresholds": ((Integral, list, tuple, np.ndarray),
                   "a number of candidate thresholds, or a list of them"),
    "count_coverage": ((list, tuple, np.ndarray), "a tuple of coverages, None for no count model "
                                      "(such as (None, 0.8))"),
    "retrieval_encoder": ((str, type(None)), "an encoder's name or None"),
    "retrieval_params": ((dict,), "a dict of the encoder's parameters"),
    "retrieval_neighbors": ((Integral,), "a whole number of neighbours"),
}


def check_recipe_fields(recipe):
    """Refuse, naming the field, a recipe field of a type it does not take, before anything
    is made: ``count_coverage=0.8`` or ``retrieval_neighbors='5'`` ended in a TypeError
    deep inside (``'float' object is not iterable``), naming nothing."""
    for field in dataclasses.fields(recipe):
        value = getattr(recipe, field.name)
        if hasattr(value, "__array__") and not isinstance(value, (np.ndarray, np.generic)):
            value = np.asarray(value)  # a pandas Series of thresholds, as the tuners take it
        types, wanted = FIELD_TYPES.get(field.name, (object, ""))
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, types):
            raise TypeError(f"recipe {field.name}={value!r:.80}: must be {wanted}, not "
                            f"{type(value).__name__}.")


def recipe_tuners(recipe, mean, voting):
    """The recipe's three tuners, unfitted: the 2024 recipe (one threshold on the members'
    ``mean``), votes (of the ``voting`` ensemble) and mean + count model. Made here once,
    for the tuning and for the check of their settings before the members train."""
    from ..tuning._ensemble import EnsembleTuner
    from ..tuning._thresholds import ThresholdTuner

    common = dict(cv="prefit", refit=False, thresholds=recipe.thresholds, min_concepts=1)
    return {"mean": ThresholdTuner(mean, **common),
            "votes": EnsembleTuner(voting, cv="prefit", refit=False,
                                   thresholds=recipe.thresholds),
            "mean+count": ThresholdTuner(mean, **common, random_state=TUNING_SEED,
                                         count_coverage=list(recipe.count_coverage))}


def check_tuning_settings(recipe, members):
    """The tuners' settings (``thresholds``, ``count_coverage``) checked as their ``fit``
    checks them, on the ``members`` unfitted, before any trains: a threshold outside
    [0, 1] or of the wrong form was refused by the tuners after every member had trained,
    and the rerun with a corrected value was then refused as a run with other settings."""
    from sklearn.frozen import FrozenEstimator

    from ..estimators._ensemble import ConceptEnsemble

    tuners = recipe_tuners(recipe, FrozenEstimator(ConceptEnsemble(members, prefit=True)),
                           ConceptEnsemble(members, combine="vote", prefit=True))
    for tuner in tuners.values():
        try:
            tuner._validate_params()
            tuner._check_options()  # no data, nothing fitted
        except ValueError as error:
            raise ValueError(f"recipe: {error}") from None


def check_members(members, n_jobs=None):
    """Each member's parameters checked, as its ``fit`` would, without fitting it; and
    members enough for the votes the recipe tunes (at least two vote on each concept).
    Members trained at once (``n_jobs``) may not share a checkpoint folder (one in the
    recipe's ``estimator_params``): the second was refused as it started, the first stopped."""
    from ..estimators._members import check_one_training_per_checkpoint
    from ..keras._architecture import check_architecture

    if len(members) < 2:
        raise ValueError(f"the grid makes {len(members)} member(s), and the recipe combines "
                         "at least two by votes: give more seeds or backbones.")
    for name, member in members:
        try:
            member._validate_params()
            check_architecture(member)
        except ValueError as error:
            raise ValueError(f"member {name!r}: {error}") from None
    _check_distinct_trainings(members)
    if n_jobs not in (None, 1):
        try:
            check_one_training_per_checkpoint(members)
        except ValueError as error:
            raise ValueError(f"{error} n_jobs={n_jobs} trains the members at once; n_jobs=1 "
                             "trains them one after another, each in that folder.") from None


def _check_distinct_trainings(members):
    """Refuse two members of the same training: a value listed twice in the grid
    (``--backbones paper,paper``) trained the same network twice, and the votes counted it
    twice. Values are compared as the plan stores them (``(4,)`` is ``[4]``, ``np.int64(0)``
    is ``0``), without the settings that train no other network (the threshold, verbosity,
    threads, caches: the checkpoint's own list). Members without a seed differ by their
    random start, and are kept."""
    seen = {}
    for name, member in members:
        params = member.get_params(deep=False)
        if params.get("random_state") is None:
            continue
        first = seen.setdefault(_training_key(params), name)
        if first != name:
            raise ValueError(f"members {first!r} and {name!r} are the same training (the same "
                             "random_state, and parameters that differ, if at all, only in "
                             "how they are written or in what trains no other network, such "
                             "as threshold or verbose): a value listed twice in the grid "
                             "would train it twice and count its votes twice.")


# Settings a checkpoint resumes across that still make another member: more epochs, other
# callbacks (they may change the training), test-time augmentation (other predictions).
_OTHER_MEMBER = ("epochs", "callbacks", "test_time_augmentation")


def _training_key(params):
    """The parameters that decide a member's network, as one comparable text."""
    from ..keras._training_loop import NOT_IN_FINGERPRINT
    from ._2026_parts import comparable_params

    kept = {name: value for name, value in params.items()
            if name in _OTHER_MEMBER or name not in NOT_IN_FINGERPRINT}
    return json.dumps(comparable_params(kept), sort_keys=True, default=repr)


def check_training_size(members, n_images, said, images="training images",
                        kept=lambda n: n):
    """Refuse, before the work that would fail on it (the compute estimate's probe, a
    search), training images too few for the members' validation split
    (``validation_fraction`` held out for early stopping, each side at least one image).

    ``said`` opens the message (which ``n_images`` these are), ``images`` names them in
    the advice, and ``kept(n)`` is how many of ``n`` train a member (all, or what a
    hold-out leaves). ``members`` holds (label, estimator) pairs."""
    for label, member in members:
        fraction = member.validation_fraction
        if fraction is None or _splits(fraction, kept(n_images)):
            continue
        side = min(fraction, 1 - fraction)
        if side < 2**-52:  # no data set is that large (and 0.5 / side overflows)
            raise ValueError(f"{label}: validation_fraction={fraction} leaves no image on "
                             "one side of any training set: choose one nearer 0.5.")
        start = max(2, math.floor(0.5 / side) - 1)  # just below the first that works
        needed = next(n for n in itertools.count(start) if _splits(fraction, kept(n)))
        raise ValueError(f"{said}; {label} holds out validation_fraction={fraction} of "
                         "them for early stopping, and each part needs one image at least: "
                         f"give {needed} {images} or more.")


def _splits(fraction, n_images):
    return 1 <= round(fraction * n_images) < n_images


def check_store_place(store, output_dir, data_dir):
    """Refuse a user's image store that is the output folder (claimed for the run's own
    files) or inside it elsewhere than at its own store (``image-store``: a store at
    ``run.csv`` or in ``members`` trained every member, then failed writing there), or
    inside the data folder (it would write among the data, beside the images)."""
    place, output = resolved(store, "image store"), resolved(output_dir, "output")
    if place == output:
        raise ValueError(f"image store {store} is the output folder: name a folder outside it "
                         "(or none: the run keeps its own in the output folder).")
    if output in place.parents and place != output / "image-store":
        raise ValueError(f"image store {store} is inside the output folder, among the run's "
                         "own files: name a folder outside it (or none: the run keeps its "
                         "own in the output folder, image-store).")
    check_outside(store, [("the data folder", data_dir)], "image store")


def check_layout(layout, count_coverage=()):
    """Each split's concept files readable (2026 rules), their images there and readable;
    what the run will be checked against, checked now.

    Every split must hold an image, and the validation split images enough
    for each ``count_coverage`` the tuning tries (as the tuner checks it).

    No two splits may read one image folder or one truth, nor may a tenth or more of a
    split's image files be an earlier split's files or copies of them (fewer are named in
    a warning; ``datasets._layout_2026.check_distinct_splits``).
    The training concepts must be ones a 2026 run can hold (the members learn,
    then predict them), and some training image must have a line; the
    predicted split's ground truth must be one the 2026 evaluator scores a
    run against, or, without one, its images' names ids a 2026 run can hold.
    """
    from ..concept_files._evaluation import check_ground_truth
    from ..concept_files._io import concepts_no_run_holds
    from ..concept_files._text import ConceptFileError
    from ..datasets._layout_2026 import check_distinct_splits
    from ..datasets._split_checks import check_split_images, check_split_lines
    from ._workflows import check_run_ids_of_folder

    check_distinct_splits(layout)
    files = {}
    for split, found in layout.items():
        files[split] = check_split_lines(split, found, learned=split == "train", edition="2026")
        if split == "train":
            problems = concepts_no_run_holds(found.concepts, "2026")
            if problems:
                raise ConceptFileError(problems, f"{found.concepts}: the members would learn "
                                       "concepts that a 2026 run file cannot hold")
        if split != "test":  # ground truths the members learn and are tuned on, read as
            check_ground_truth(found.concepts, edition="2026")  # the 2026 evaluator reads one
    check_split_images(files)  # of every split at once
    predicted = layout["test" if "test" in layout else "valid"]
    if predicted.concepts is not None:  # the run will be scored against it
        check_ground_truth(predicted.concepts, edition="2026", secondary_truth=predicted.manual)
    else:  # the run's ids will be the images' names
        check_run_ids_of_folder(predicted.images, "2026")
    check_count_coverage(layout["valid"], count_coverage)


def check_count_coverage(valid, count_coverage):
    """Refuse, naming the validation concept file, coverages its images are too few for.

    The check the recipe's tuner makes on the same images with the same seed
    (``ThresholdTuner(random_state=0)``), made before the members are trained.
    """
    from ..concepts._lists import split_concepts
    from ..tuning._rule import check_tuning_images
    from ._2026_parts import load_split

    if not any(coverage is not None for coverage in count_coverage):
        return
    n_true = [len(set(split_concepts(concepts))) for concepts in load_split(valid).concepts]
    try:
        check_tuning_images(n_true, list(count_coverage), None, TUNING_SEED)
    except ValueError as error:
        raise ValueError(f"{valid.concepts}: {error}") from None


def check_store_room(members, store, splits, retrieval=None, encoder_name=None, written=(),
                     own=False):
    """Refuse, before the first member trains, disks that cannot take what the run writes.

    The images the recipe decodes into its image store: the training and validation
    images and the predicted split's (``splits``: lists of paths) at each of the members'
    sizes and filters together, those the store holds left out; with a ``retrieval``
    member (its encoder named ``encoder_name``), the embeddings it adds to its embedding
    store; and ``written``, the demands of the members' files still to be saved and of
    their checkpoints (:func:`members_demands`). What shares a disk is asked of it
    together: the k-NN is fitted after every network has trained, and predicting then
    found the disk filled, as it did once the members' files had filled it. ``own``: the
    store is the run's own (in its output), which the user can move, not leave out."""
    from ..files._sizes import check_disks, setting
    from ..images._store import (
        as_image_store,
        check_room_for_files,
        files_to_store,
        key_length,
        stored_bytes,
    )

    paths = list(dict.fromkeys(str(path) for split in splits for path in split))
    shelves = sorted({(int(member.image_size), member.resample) for _, member in members})
    store = as_image_store(store)
    counts = files_to_store(store, shelves, paths)  # each file's version read once
    instead = ("give image_store= a folder on another disk" if own
               else "give no image store")
    check_room_for_files(store, shelves, paths, advice=f", {instead}", counts=counts)  # alone
    demands = [(stored_bytes(store, shelves, counts, key_length(paths)), Path(store.path),
                setting("image_size", max(size for size, _ in shelves)),
                f"storing {max(counts)} image(s) at each of {len(shelves)} size(s) and "
                "filter(s)", instead)]
    if retrieval is not None:
        demands.append(_embeddings_demand(paths, retrieval, encoder_name))
    check_disks([*demands, *written], asked=demands[:1])  # the images' alone, asked already


def members_bytes(members, n_concepts):
    """What the ``members`` (unfitted) take on disk once trained and saved, at most:
    each distinct network built with random weights (never downloaded) and its weights
    and its optimizer's state counted (``keras._training_loop.count_weights``). Seconds
    at most (DenseNet-121), before hours of training. An upper bound, so that a disk the
    members would fill is refused before the first trains, not after."""
    from ..keras._training_loop import saved_bytes

    return sum(map(saved_bytes, _counted(members, n_concepts)))


def members_demands(members, n_concepts, output_dir):
    """``(bytes, folder, setting, what, advice)`` of what the ``members`` still to train
    write: their files in ``output_dir`` (:func:`members_bytes`), and in each
    ``checkpoint_dir`` they name, the largest of their checkpoints (the members that share
    one train one after another, each removing its checkpoint once its file is saved)."""
    from ..files._sizes import setting
    from ..keras._training_loop import checkpoint_bytes, saved_bytes

    counted_all = _counted(members, n_concepts)
    demands = [(sum(map(saved_bytes, counted_all)), output_dir, "the grid",
                "saving the members still to train", "train fewer members")]
    largest = {}
    for member, counted in zip(members, counted_all):
        if member.checkpoint_dir is not None:
            folder = os.path.realpath(member.checkpoint_dir)
            largest[folder] = max(largest.get(folder, 0), checkpoint_bytes(counted))
    for folder, needed in largest.items():
        demands.append((needed, Path(folder), setting("checkpoint_dir", folder),
                        "a member's checkpoint", "give checkpoint_dir a folder on another "
                        "disk, or none"))
    return demands


def _counted(members, n_concepts):
    """Each member's ``keras._training_loop.Counted``, each distinct network built once."""
    from sklearn.base import clone

    from ..keras._training_loop import count_weights

    counted = {}
    for member in members:
        key = _network_key(member)
        if key not in counted:  # random weights: none downloaded
            counted[key] = count_weights(clone(member).set_params(weights=None), n_concepts)
    return [counted[_network_key(member)] for member in members]


def _network_key(member):
    """What a member's network is made of: its parameters but its seed and weights."""
    return repr(sorted((name, value) for name, value in member.get_params(deep=False).items()
                       if name not in ("random_state", "weights", "image_store",
                                       "checkpoint_dir", "verbose")))


def retrieval_file_demand(retrieval, encoder_name, train, output_dir):
    """(bytes, folder, setting, what, advice) of the retrieval member's file, at most: the
    training images' embeddings (float32) and concepts (a sparse indicator) once more."""
    from ..embeddings._once import embed_images
    from ..files._sizes import setting

    width = embed_images(retrieval.embedding, list(train.paths[:1])).shape[1]  # cached
    n, labels = len(train.paths), sum(map(len, train.concepts))
    return (n * width * 4 + labels * 16 + (n + 1) * 8 + 2**18, Path(output_dir),
            setting("retrieval_encoder", encoder_name), "the retrieval member's file",
            "give no retrieval encoder")


def _embeddings_demand(paths, retrieval, encoder_name):
    """(bytes, folder, setting, what, advice) of the embeddings the retrieval member adds."""
    from ..embeddings._once import count_stored, embed_images
    from ..embeddings._store import as_embedding_store
    from ..files._sizes import setting
    from ..images._folder_store import index_bytes
    from ..images._store import key_length

    store = as_embedding_store(retrieval.embedding_store)  # the run opened it (its folder)
    folder = Path(store.path)
    encoder = retrieval.embedding
    held = count_stored(store, encoder.embedding_identity(), paths)  # a rerun's
    rows = len(paths) - held
    width = embed_images(encoder, paths[:1]).shape[1] if rows else 0  # kept in the cache
    embeddings = rows * width * 4 + index_bytes(rows, rows * key_length(paths))
    return (embeddings, folder, setting("retrieval_encoder", encoder_name),
            f"{rows} embedding(s) of {width} dimensions by the retrieval encoder",
            "give no retrieval encoder")


def make_dry_run_data(data_dir, image_size):
    """The dry run's synthetic data, written beside and renamed into place: whole or absent.

    ``data_dir`` is ``<output>/data`` in the output folder the recipe claimed,
    so the ``data.partial`` folder it removes can only be its own.
    """
    from ..datasets._layout_2026 import make_imageclef_layout

    data_dir = Path(data_dir)
    if data_dir.exists():
        return
    partial = data_dir.with_name(data_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted dry run's: never used
    make_imageclef_layout(partial, image_size=image_size)
    partial.rename(data_dir)
