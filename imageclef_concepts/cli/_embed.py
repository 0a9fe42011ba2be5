"""The command line's ``embed``: a folder's images embedded once, into an embedding store.

Every later fit, fold, grid point and process that names the store
(``embedding_store=``) reads the embeddings back instead of running the
encoder again; an image already there, its file unchanged, is not embedded
again.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._arguments import UserError, positive_int, say_unless_quiet
from ._images import check_outside_inputs, removed_unless_filled


def add_embed(commands):
    from ..embeddings._presets import PRESETS

    embed = commands.add_parser(
        "embed", help="embed a folder's images once, into an embedding store",
        description="Embed every image of a folder with an encoder into an embedding store "
        "(a folder the library owns), so that k-NN retrieval, heads on embeddings, grid "
        "searches and tuners read each embedding instead of running the encoder again. "
        "Images already in the store for this encoder, their files unchanged, are not "
        "embedded again.")
    embed.add_argument("--images", type=Path, required=True, help="folder of images")
    embed.add_argument("--encoder", required=True,
                       help="the encoder's name: an ImageNet backbone (densenet121, resnet50, "
                            "efficientnetb0...) or a foundation model "
                            f"({', '.join(PRESETS)}), which needs --weights FILE")
    embed.add_argument("--store", type=Path, required=True,
                       help="the embedding store: a new or empty folder, or an earlier store")
    embed.add_argument("--image-size", type=positive_int, default=None,
                       help="side of the images the encoder sees (default: the encoder's)")
    embed.add_argument("--weights", default="imagenet",
                       help="the encoder's weights: imagenet (a backbone's, downloaded by "
                            "Keras on first use), none (random: for tests), or a weights file "
                            "(a foundation model's .onnx, or BiomedCLIP's published .bin) "
                            "(default: imagenet)")
    embed.add_argument("--batch-size", type=positive_int, default=32,
                       help="images through the encoder at a time (default: 32)")
    embed.add_argument("--quiet", action="store_true", help="no summary line")
    embed.set_defaults(run_command=_run_embed, parameter_flags={  # named so in messages
        name: "--" + name.replace("_", "-") for name in ("image_size", "batch_size", "weights")})


def _run_embed(args):
    from ..datasets._imageclef import image_files_by_id, image_path
    from ..embeddings._names import encoder_names, make_encoder
    from ..embeddings._store import EmbeddingStore
    from ..images._decoding import check_image_size

    if args.encoder not in encoder_names():
        raise UserError(f"--encoder {args.encoder!r} is not an encoder: choose one of "
                        f"{', '.join(encoder_names())}")
    weights = None if args.weights.lower() == "none" else args.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise UserError(f"--weights {args.weights}: no such file (give imagenet, none or a "
                        "weights file)")
    check_outside_inputs(args, "--store")
    if not args.images.is_dir():
        raise UserError(f"image folder not found: {args.images}")
    files = image_files_by_id(args.images)
    if not files:
        raise UserError(f"no image file in {args.images}")
    options = {"weights": weights, "batch_size": args.batch_size}
    if args.image_size is not None:
        check_image_size(args.image_size, name="--image-size")  # before the store is made
        options["image_size"] = args.image_size
    try:
        encoder = make_encoder(args.encoder, **options)
    except ValueError as error:  # a setting the named encoder cannot take: say it as a flag
        raise UserError(str(error).replace("weights=", "--weights ")
                        .replace("image_size=", "--image-size ")) from None
    paths = [image_path(files, image_id) for image_id in sorted(files)]
    # Refused (one line) before the network is built; a refused weights file or size, a
    # Ctrl-C: no empty store is left.
    with removed_unless_filled(args.store, EmbeddingStore, "embeddings") as store:
        return _embed_into(args, encoder, store, paths)


def _embed_into(args, encoder, store, paths):
    """Embed ``paths`` into ``store`` (what is there already not again) and say how many."""
    from ..embeddings._once import count_stored, embed_images
    from ..embeddings._store import shelf_name
    from ..files._atomic import listing
    from ..images._decoding import ImageDecodeError, check_image_file, decoding_threads

    identity = encoder.embedding_identity()
    before = count_stored(store, identity, paths)  # these images', not the encoder's others
    shelf = store._shelf(identity, 1)
    if before < len(paths) and not shelf.writable():  # its index opened
        why = (f"{shelf.folder} is not a folder of its own" if shelf.blocked()
               else "a read-only folder or disk")
        raise UserError(f"embedding store {args.store} cannot be written ({why}): it holds "
                        f"{before} of the {len(paths)} images (embedded "
                        "by this encoder, their files unchanged), and none can be added; name "
                        "a store that can be written")
    if before < len(paths):  # every unreadable file named at once, before the encoder runs
        with ThreadPoolExecutor(max_workers=decoding_threads(None)) as pool:
            problems = [problem for problem in pool.map(check_image_file, paths) if problem]
        if problems:
            raise UserError(listing(f"{len(problems)} of {len(paths)} image file(s) cannot "
                                     f"be used (move them out of {args.images} and run "
                                     "again)", problems))
    try:
        vectors = embed_images(encoder, paths, store=store)
    except ImageDecodeError as error:  # the files named; the advice is the command line's
        raise UserError(str(error).replace(
            "(on_error='skip' leaves them out)",
            f"(move them out of {args.images} and run again)")) from None
    held = store.summary().get(shelf_name(identity), {"embeddings": 0, "disk_bytes": 0})
    after = count_stored(store, identity, paths)
    missing = f"; {len(paths) - after} not stored (see the warning)" if after < len(paths) \
        else ""
    say_unless_quiet(args, (
        f"Embedded {len(paths)} images of {args.images} with {args.encoder} "
        f"({vectors.shape[1]} dimensions): {after - before} new in {args.store}, {before} "
        f"already there{missing}. The store holds {held['embeddings']} embeddings of this "
        f"encoder ({held['disk_bytes'] / 2**20:.1f} MB)."))
    return 0
