"""The command line's image subcommand: ``prepare`` fills an image store ahead of training.

``train --image-store`` and ``predict --image-store`` then read the images
from it; :func:`image_store_option` is their shared option and its checks.
"""

import os
from pathlib import Path

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
    prepare.set_defaults(run_command=_run_prepare)


def _run_prepare(args):
    from ..datasets._imageclef import image_files_by_id, image_path
    from ..images._preparation import prepare_images
    from ..images._sources import check_image_size
    from ..images._store import check_room_for_files

    check_image_size(args.image_size, name="--image-size")  # before the store is made
    if not args.images.is_dir():
        raise UserError(f"image folder not found: {args.images}")
    files = image_files_by_id(args.images)
    if not files:
        raise UserError(f"no image file in {args.images}")
    made = store_is_new(args.store)
    store = open_image_store(args.store)
    paths = [image_path(files, image_id) for image_id in sorted(files)]
    try:
        # Before decoding, named by the flag: the images the shelf does not hold yet.
        check_room_for_files(store, [(args.image_size, args.resample)], paths, "--image-size")
        done = prepare_images(paths, store, args.image_size, args.resample,
                              on_error=args.on_error, n_jobs=args.n_jobs,
                              progress=not args.quiet)
    except BaseException:
        if made:  # the disk refusing --image-size, a Ctrl-C: no empty store is left
            remove_store_if_empty(store, "images")
        raise
    shelf = store.summary().get(f"{args.image_size}px-{args.resample}",
                                {"images": 0, "disk_bytes": 0})
    say_unless_quiet(args, (
        f"Prepared {len(paths)} images of {args.images} at {args.image_size} px "
        f"({args.resample}): {done.added} decoded into {args.store}, {done.already_stored} "
        f"already there, {done.unreadable} unreadable. The store holds {shelf['images']} "
        f"images at this size ({shelf['disk_bytes'] / 2**20:.1f} MB)."))
    return 0


def store_is_new(path):
    """Whether no file or folder is at the path a store named ``path`` opens (``..`` taken
    lexically, as the store takes it): ``mine/missing/..`` is the folder ``mine``, not new,
    and never removed as one the command made."""
    return not os.path.lexists(os.path.abspath(path))


def remove_store_if_empty(store, held):
    """Remove the store (image or embedding) a command made and failed to fill, unless it
    holds rows (its summary's ``held`` count: kept for the rerun); only the store's own files
    are removed, and only from the folder it made (``images._shared.remove_store_folder``)."""
    from ..images._shared import remove_store_folder, stop_writing

    try:
        if any(shelf[held] for shelf in store.summary().values()):
            return
    except Exception:  # noqa: BLE001  (unreadable: left as it is)
        return
    stop_writing(store, f"the {store.kind.label} {store.path} was removed: the command that "
                        "made it failed")
    remove_store_folder(store.path, store._identity, store.kind)


def add_image_store_option(parser):
    parser.add_argument("--image-store", type=Path, default=None,
                        help="an image store (see the prepare subcommand): images it holds at "
                             "the model's size are read from it, the others decoded and added "
                             "(default: decode every image)")


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
