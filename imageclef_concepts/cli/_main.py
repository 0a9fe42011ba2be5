"""The ``imageclef-concepts`` command line (also ``python -m imageclef_concepts``).

Subcommands: ``demo`` (the main job, on built-in data), ``prepare``,
``train``, ``predict``, ``evaluate``, ``info``, ``reproduce-2019`` and
``recipe-2026``, added by ``_cli_images``, ``_cli_models``,
``_cli_procedures`` and ``_cli_recipe``. A user's mistake ends with a clear
message on standard error and exit code 2, never a traceback.
"""

import argparse
import sys
import warnings

from ..concept_files._text import ConceptFileError
from ._arguments import UserError, one_line
from ._images import add_prepare
from ._models import add_info, add_predict, add_train
from ._procedures import add_demo, add_evaluate, add_reproduce
from ._recipe import add_recipe


def main(argv=None):
    """Run the command line; return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run_command"):
        parser.print_help()
        return 2
    if args.command in _NEEDS_TENSORFLOW and not args.verbose:
        from ..keras import start_quietly

        start_quietly()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning_plainly(args.command)
            return args.run_command(args)
    except KeyboardInterrupt:
        print(f"imageclef-concepts {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UserError, ConceptFileError, OSError, ValueError) as error:
        print(f"imageclef-concepts {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2


def _show_warning_plainly(command):
    """Warnings as the command's own lines: what happened, not the library line that said it."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"imageclef-concepts {command}: warning: {message}", file=sys.stderr)
    return show


def _version():
    from .._version import __version__

    return __version__


_NEEDS_TENSORFLOW = ("demo", "train", "predict", "reproduce-2019", "recipe-2026")


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="imageclef-concepts",
        description="Medical concept detection in radiology images (ImageCLEFmed Caption).",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up and log lines")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_demo(commands)
    add_prepare(commands)
    add_train(commands)
    add_predict(commands)
    add_evaluate(commands)
    add_reproduce(commands)
    add_recipe(commands)
    add_info(commands)
    return parser
