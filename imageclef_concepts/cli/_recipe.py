"""The command line's ``recipe-2026``: the 2026-style system, from a data folder to a run file.

A thin layer over :func:`~imageclef_concepts.run_recipe_2026`: the options
become a :class:`~imageclef_concepts.recipes._2026.Recipe2026`, and
``--dask`` / ``--ray`` a joblib backend around the call.
"""

import argparse
import contextlib
import os
import socket
from pathlib import Path

from ._arguments import UserError, one_line, positive_int

# More seeds per backbone than any ensemble trains (the 2026 winners used four).
MAX_SEEDS = 1000


def add_recipe(commands):
    recipe = commands.add_parser(
        "recipe-2026", help="the 2026-style system, from a 2025/2026 data folder to a run file",
        description="Train members from a grid (backbones x seeds), tune on the validation "
        "images the 2024 recipe (mean, one threshold), votes (each member's threshold and the "
        "vote count) and the mean with a count model, keep the better of the last two, predict "
        "the test images, write and check the 2026 run file, score it and write an HTML report "
        "when the truth is there. Prints the plan and an estimate first; rerun the same "
        "command to resume (finished members are loaded). The data folder holds "
        "<split>/images/ with <split>/concepts.csv and concepts_manual.csv (or <split>/ with "
        "<split>_concepts.csv) for train, valid and optionally test.")
    recipe.add_argument("--data", type=Path,
                        help="the dataset folder (default: none; required unless --dry-run)")
    recipe.add_argument("--output", type=Path, required=True,
                        help="a new or empty folder, or one an earlier run of this command made "
                             "(it resumes)")
    recipe.add_argument("--dry-run", action="store_true",
                        help="synthetic data in the same layout (in <output>/data) and tiny "
                             "members (--backbones with random weights, none downloaded): "
                             "the whole procedure in well under a minute")
    recipe.add_argument("--backbones", default=None,
                        help="comma-separated Keras backbones of the grid (default: "
                             "densenet121,efficientnetv2b0,convnexttiny)")
    recipe.add_argument("--seeds", type=positive_int, default=None,
                        help="seeds per backbone (default: 4; with --dry-run, 2)")
    recipe.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs per member (default: 12 with early stopping; --dry-run 2)")
    recipe.add_argument("--image-size", type=positive_int, default=None,
                        help="side of the network's input (default: 224; --dry-run 16)")
    recipe.add_argument("--retrieval-encoder", default=None, metavar="NAME",
                        help="add a retrieval member: a k-NN over this encoder's embeddings "
                             "(names as for the embed command), each image embedded once into "
                             "<output>/embedding-store (default: none; with --dry-run, random "
                             "weights, at 32 px for a backbone)")
    recipe.add_argument("--retrieval-weights", default=None, metavar="WEIGHTS",
                        help="the retrieval encoder's weights, as the embed command's --weights "
                             "(default: imagenet; a foundation model needs its weights file)")
    recipe.add_argument("--retrieval-neighbors", type=positive_int, default=None,
                        help="the retrieval member's neighbours (default: 10)")
    recipe.add_argument("--image-store", type=Path, default=None,
                        help="the image store the members share (default: <output>/image-store)")
    recipe.add_argument("--n-jobs", type=_n_jobs, default=None,
                        help="members trained at once, -1 for every worker (default: one at a "
                             "time; with --dask or --ray: every worker)")
    cluster = recipe.add_mutually_exclusive_group()
    cluster.add_argument("--dask", default=None, metavar="ADDRESS",
                         help="train the members on this Dask scheduler (workers must read the "
                              "data and output folders; default: none)")
    cluster.add_argument("--ray", default=None, metavar="ADDRESS",
                         help="train the members on this Ray cluster ('auto' for the local one; "
                              "default: none)")
    recipe.add_argument("--quiet", action="store_true", help="print only the final score")
    recipe.set_defaults(run_command=_run_recipe, parameter_flags=PARAMETER_FLAGS)


# What the recipe's messages name (its parameters and the members'), as this command's flags.
PARAMETER_FLAGS = {"image_size": "--image-size", "epochs": "--epochs", "backbone": "--backbones",
                   "retrieval_encoder": "--retrieval-encoder",
                   "retrieval_neighbors": "--retrieval-neighbors", "image_store": "--image-store",
                   "n_jobs": "--n-jobs", "data_dir": "--data", "output_dir": "--output"}
# The plan's settings that a flag sets, as a rerun with other settings names them.
PLAN_FLAGS = {"data_dir": "--data", "grid['backbone']": "--backbones",
              "grid['random_state']": "--seeds", "estimator_params['epochs']": "--epochs",
              "estimator_params['image_size']": "--image-size",
              "retrieval_encoder": "--retrieval-encoder",
              "retrieval_neighbors": "--retrieval-neighbors"}


def _n_jobs(text):
    """joblib's ``n_jobs``: a whole number other than 0 (negative: all workers but some)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a whole number other than 0, got {text!r}")
    return value


def _run_recipe(args):
    from ..recipes._2026 import DRY_RUN, Recipe2026, run_recipe_2026
    from ..recipes._2026_parts import OtherSettingsError

    if args.dry_run == (args.data is not None):
        raise UserError("give --data DIR, or --dry-run (which makes its own data).")
    if args.data is not None and not args.data.is_dir():
        raise UserError(f"data folder not found: {args.data}")
    recipe = _recipe(args, DRY_RUN if args.dry_run else Recipe2026())
    n_jobs = args.n_jobs
    with _cluster(args) as on_cluster:
        try:
            result = run_recipe_2026(args.data, args.output, recipe=recipe,
                                     dry_run=args.dry_run, image_store=args.image_store,
                                     n_jobs=n_jobs if n_jobs or not on_cluster else -1,
                                     say=(lambda line: None) if args.quiet else print)
        except OtherSettingsError as error:  # each setting by the flag that sets it
            raise UserError(error.message(PLAN_FLAGS)) from None
    if result.primary is not None:
        secondary = ("" if result.secondary is None else
                     f", secondary F1 {result.secondary:.4f}")
        print(f"Official F1 on the {result.predicted_split} images: {result.primary:.4f}"
              f"{secondary} (run file {result.run_file})")
    else:
        print(f"Run file: {result.run_file}")
    return 0


def _recipe(args, base):
    from dataclasses import replace

    grid = dict(base.grid)
    if args.backbones is not None:
        backbones = [name.strip() for name in args.backbones.split(",") if name.strip()]
        if not backbones:  # not the default three, silently
            raise UserError(f"--backbones {args.backbones!r} names no backbone: give names "
                            "separated by commas, or leave the option out.")
        grid.pop("filters", None)  # the dry run's tiny networks give way to backbones
        grid["backbone"] = backbones
    params = dict(base.estimator_params)
    if args.dry_run and args.backbones is not None:  # as its encoder's: none downloaded
        params["weights"] = None
    if args.seeds:
        if args.seeds > MAX_SEEDS:  # each seed trains a member per backbone
            raise UserError(f"--seeds {args.seeds}: at most {MAX_SEEDS} seeds per backbone (each "
                            "trains one member).")
        grid["random_state"] = list(range(args.seeds))
    if args.epochs:
        params["epochs"] = args.epochs
    if args.image_size:
        params["image_size"] = args.image_size
    retrieval = {}
    given = [flag for flag, value in (("--retrieval-weights", args.retrieval_weights),
                                      ("--retrieval-neighbors", args.retrieval_neighbors))
             if value is not None]
    if args.retrieval_encoder is None and given:  # not dropped silently
        raise UserError(f"{' and '.join(given)} set the retrieval member, which only "
                        "--retrieval-encoder NAME adds: give it too, or leave them out.")
    if args.retrieval_encoder is not None:
        from ..embeddings._names import encoder_names

        if args.retrieval_encoder not in encoder_names():
            raise UserError(f"--retrieval-encoder {args.retrieval_encoder!r} is not an encoder: "
                            f"choose one of {', '.join(encoder_names())}")
        retrieval = dict(retrieval_encoder=args.retrieval_encoder,
                         retrieval_neighbors=args.retrieval_neighbors or base.retrieval_neighbors,
                         retrieval_params=_retrieval_params(args))
    return replace(base, grid=grid, estimator_params=params, **retrieval)


def _retrieval_params(args):
    """The retrieval encoder's settings, checked here (one line naming the flag) before training."""
    from ..embeddings._names import make_encoder
    from ..keras import BACKBONES

    given = args.retrieval_weights or "imagenet"
    weights = None if given.lower() == "none" else given
    if args.dry_run and (args.retrieval_weights or "none").lower() != "none":  # not dropped
        raise UserError(f"--retrieval-weights {given}: the dry run's encoder has random "
                        "weights (none downloaded, nothing read); leave it out, or give "
                        "--data instead of --dry-run.")
    if args.dry_run:
        weights = None
    elif weights not in (None, "imagenet") and not Path(weights).is_file():
        raise UserError(f"--retrieval-weights {given}: no such file (give "
                        "imagenet, none or a weights file)")
    elif weights not in (None, "imagenet"):  # the plan keeps it: a rerun elsewhere finds it
        weights = os.path.abspath(weights)
    params = {"weights": weights}
    if args.dry_run and args.retrieval_encoder in BACKBONES:
        params["image_size"] = 32
    try:
        make_encoder(args.retrieval_encoder, **params)
    except ValueError as error:
        raise UserError(str(error).replace("weights=", "--retrieval-weights ")) from None
    return params


@contextlib.contextmanager
def _cluster(args):
    """joblib's Dask or Ray backend around the run (yields whether one is used)."""
    import joblib

    if args.dask is None and args.ray is None:
        yield False
        return
    extra = "dask" if args.dask is not None else "ray"
    try:
        if extra == "dask":
            from distributed import Client
        else:
            import ray
            from ray.util.joblib import register_ray
    except ImportError as error:
        raise UserError(f"--{extra} needs {error.name}: pip install "
                        f"'imageclef_concepts[{extra}]'") from None
    if extra == "dask":
        try:
            client = Client(args.dask, timeout=CONNECT_TIMEOUT)
        except OSError as error:  # a refused or timed-out connection
            raise UserError(f"--dask {args.dask}: cannot reach the scheduler in "
                            f"{CONNECT_TIMEOUT} s ({one_line(error)})") from None
        except (ValueError, TypeError, AssertionError) as error:  # distributed cannot read it
            raise UserError(f"--dask {args.dask}: not a scheduler address distributed can "
                            f"use ({type(error).__name__}: {one_line(error)})") from None
        with client, joblib.parallel_config(backend="dask"):
            yield True
        return
    _check_reachable(args.ray)  # ray.init retries an unreachable address for minutes
    try:
        ray.init(address=args.ray)
    except (ValueError, ConnectionError) as error:  # an address ray cannot read or reach
        raise UserError(f"--ray {args.ray}: {one_line(error)}") from None
    register_ray()
    with joblib.parallel_config(backend="ray"):
        yield True


CONNECT_TIMEOUT = 5  # seconds to reach a cluster before giving up


def _check_reachable(address):
    """Refuse at once a Ray address (``host:port``, ``ray://host:port``) nobody listens at."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:  # as ray.init reads it: int() takes '6379 ', '+6379' and '6_379' (each was retried
        number = int(port)  # for 5 minutes); what it cannot read, ray.init refuses at once
    except ValueError:
        return  # 'auto', or a form ray.init reads its own way
    if not host:
        return
    if host.startswith("[") and host.endswith("]"):  # an IPv6 host, as ray.init reads it
        host = host[1:-1]
    if not 0 < number < 2**16:  # ray.init retried '-1' for 5 minutes, then exited
        raise UserError(f"--ray {address}: {port.strip()} is not a port (1 to 65535)")
    try:
        socket.create_connection((host, number), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise UserError(f"--ray {address}: cannot reach it in {CONNECT_TIMEOUT} s "
                        f"({error.strerror or error})") from None
