"""The command line's image subcommand: ``prepare`` fills an image store ahead of training.

``train --image-store`` and ``predict --image-store`` then read the images
from it; :func:`image_store_option` is their shared option and its checks.
"""

import os
from contextlib import contextmanager
from pathlib import Path

from ..files._atomic import folder_identity
from ..images._decoding import RESAMPLING
from ..images._sources import ON_ERROR
from ..models import _paper as paper
from ._arguments import UserError, estimator_default, positive_int, say_unless_quiet


def add_prepare(commands):
    prepare = commands.add_parser(
        "prepare", help="decode and resize a folder's images once, into an image store",
        description="Decode every image of a folder at one size and filter into an image "
        "store (a folder the library owns), so that train, predict, grid searches and "
        "ensembles read prepared pixels instead of decoding the files again. Images already "
        "in the store, their files unchanged, are not decoded again; a changed file is.")
    prepare.add_argument("--images", type=Path, required=True, help="folder of images")
    prepare.add_argument("--store", type=Path, required=True,
                         help="the image store: a new or empty folder, or an earlier store")
    prepare.add_argument("--image-size", type=positive_int, default=paper.IMAGE_SIZE,
                         help=f"side of the prepared images, as the model's image_size "
                              f"({estimator_default(paper.IMAGE_SIZE)})")
    prepare.add_argument("--resample", choices=tuple(RESAMPLING), default="bilinear",
                         help="the resize filter, as the model's resample (default: bilinear)")
    prepare.add_argument("--on-error", choices=ON_ERROR, default="raise",
                         help="unreadable image files: stop before decoding, naming them, or "
                              "leave them out with a warning naming them (default: raise)")
    prepare.add_argument("--n-jobs", type=positive_int, default=None,
                         help="decoding threads (default: one per core available)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(run_command=_run_prepare, parameter_flags={  # named so in messages
        name: "--" + name.replace("_", "-") for name in ("image_size", "on_error", "n_jobs")})


def _run_prepare(args):
    from ..datasets._imageclef import image_files_by_id, image_path
    from ..images._preparation import prepare_images
    from ..images._sources import check_image_size
    from ..images._store import check_room_for_files

    check_image_size(args.image_size, name="--image-size")  # before the store is made
    check_outside_inputs(args, "--store")
    if not args.images.is_dir():
        raise UserError(f"image folder not found: {args.images}")
    files = image_files_by_id(args.images)
    if not files:
        raise UserError(f"no image file in {args.images}")
    paths = [image_path(files, image_id) for image_id in sorted(files)]
    # The disk refusing --image-size, a Ctrl-C: no empty store is left.
    with removed_unless_filled(args.store, open_image_store, "images") as store:
        # Before decoding, named by the flag: the images the shelf does not hold yet.
        check_room_for_files(store, [(args.image_size, args.resample)], paths, "--image-size")
        done = prepare_images(paths, store, args.image_size, args.resample,
                              on_error=args.on_error, n_jobs=args.n_jobs,
                              progress=not args.quiet)
    shelf = store.summary().get(f"{args.image_size}px-{args.resample}",
                                {"images": 0, "disk_bytes": 0})
    say_unless_quiet(args, (
        f"Prepared {len(paths)} images of {args.images} at {args.image_size} px "
        f"({args.resample}): {done.added} decoded into {args.store}, {done.already_stored} "
        f"already there, {done.unreadable} unreadable. The store holds {shelf['images']} "
        f"images at this size ({shelf['disk_bytes'] / 2**20:.1f} MB)."))
    return 0


@contextmanager
def removed_unless_filled(path, open_store, held):
    """Open the store (image or embedding) at ``path`` for a command (``open_store(path)``);
    when the command fails before the store holds a row (its summary's ``held`` count), undo
    what opening it made: the store's files, the folder and the parents it made, never a
    folder that was there (an empty folder the user named keeps no marker)."""
    made = _missing_folders(path)  # deepest first
    empty = not made and _is_empty_folder(os.path.abspath(path))  # as the store opens it
    store = open_store(path)
    parents = [(folder, folder_identity(folder)) for folder in made[1:]]
    try:
        yield store
    except BaseException:
        if (made or empty) and _remove_if_empty(store, held, keep_folder=empty):
            for folder, identity in parents:  # a folder put there since is not the one made
                if folder_identity(folder) != identity or not _removed_empty(folder):
                    break
        raise


def _missing_folders(path):
    """``path`` and its parents that are not there yet, deepest first."""
    missing, path = [], Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _is_empty_folder(path):
    try:
        with os.scandir(path) as entries:
            return not os.path.islink(path) and next(entries, None) is None
    except OSError:
        return False


def _removed_empty(folder):
    try:
        os.rmdir(folder)  # refuses a folder that holds anything
    except OSError:
        return False
    return True


def _remove_if_empty(store, held, keep_folder):
    """Remove the store's files (and its folder unless ``keep_folder``) when it holds no
    row; only from the folder it opened (``images._shared.remove_store_folder``). True
    when nothing of it is left."""
    from ..images._shared import remove_store_folder, stop_writing

    try:
        if any(shelf[held] for shelf in store.summary().values()):
            return False
    except Exception:  # noqa: BLE001  (unreadable: left as it is)
        return False
    stop_writing(store, f"the {store.kind.label} {store.path} was removed: the command that "
                        "made it failed")
    left = remove_store_folder(os.path.abspath(store.path), store._identity, store.kind,
                               keep_folder=keep_folder)
    return not left and not os.path.lexists(store.path)


def add_image_store_option(parser):
    parser.add_argument("--image-store", type=Path, default=None,
                        help="an image store (see the prepare subcommand): images it holds at "
                             "the model's size are read from it, the others decoded and added "
                             "(default: decode every image)")


def check_outside_inputs(args, flag):
    """Refuse (one line), before it is made, the folder ``flag`` names (a store, a checkpoint)
    inside a folder of images the command reads (``--images``, ``--validation-images``): the
    user's image folders would gain the library's files without a word (the check recipe-2026
    makes). A folder beside them (a concept file's) is the user's choice of place."""
    from ..files._atomic import check_outside

    folder = getattr(args, flag.lstrip("-").replace("-", "_"))
    inputs = [(f"--{name.replace('_', '-')}", getattr(args, name, None))
              for name in ("images", "validation_images")]
    try:
        if folder is not None:
            check_outside(folder, inputs, flag)
    except ValueError as error:
        raise UserError(str(error)) from None


def open_image_store(folder, written=()):
    """The :class:`ImageStore` at ``folder``, refused (one line) before any work when it is
    not a store, or when it would hold or be held by one of the ``written`` paths."""
    from ..images._store import ImageStore

    store = Path(os.path.realpath(folder))  # ".." and links resolved, as the files are reached
    for path in written:
        if path is None:
            continue
        path = Path(os.path.realpath(path))
        if path == store or path in store.parents or store in path.parents:
            raise UserError(f"--image-store {folder} and {path} overlap: the store is a folder "
                            "of its own, apart from the model, its card and the checkpoint.")
    return ImageStore(folder)
