"""The ``imageclef-concepts`` command line (also ``python -m imageclef_concepts``).

Subcommands: ``demo`` (the main job, on built-in data), ``prepare``, ``embed``,
``train``, ``predict``, ``evaluate``, ``info``, ``export``, ``reproduce-2019``
and ``recipe-2026``, added by :mod:`._images`, :mod:`._embed`, :mod:`._models`, :mod:`._export`,
:mod:`._procedures` and :mod:`._recipe`. A user's mistake ends with a clear
message on standard error and exit code 2, never a traceback.
"""

import argparse
import contextlib
import os
import sys
import warnings

from ..concept_files._text import ConceptFileError
from ..files._atomic import shown_name
from ..utils._interrupts import noticing_interrupts, was_interrupted
from ._arguments import UserError, one_line
from ._embed import add_embed
from ._export import add_export
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
    if args.command in _NEEDS_TENSORFLOW and args.verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # TensorFlow's lines, start-up ones included
    elif args.command in _NEEDS_TENSORFLOW:
        try:  # seconds of TensorFlow's import: a Ctrl-C there is one too, not a traceback
            from ..keras import start_quietly

            start_quietly()
        except KeyboardInterrupt:
            return _interrupted(args)
        except ImportError as error:  # what TensorFlow makes of a Ctrl-C in an extension's start
            if isinstance(error.__cause__ or error.__context__, KeyboardInterrupt):
                return _interrupted(args)
            raise
    with _file_names_printable():
        try:
            with warnings.catch_warnings(), noticing_interrupts(raise_at_exit=False):
                warnings.showwarning = _show_warning_plainly(args.command)
                return args.run_command(args)
        except KeyboardInterrupt:
            return _interrupted(args)
        except (UserError, ConceptFileError, OSError, ValueError) as error:
            if was_interrupted():  # a Ctrl-C a library turned into an error of its own
                return _interrupted(args)
            # the library's parameters that this command sets by flags, named as its flags
            flags = getattr(args, "parameter_flags", None)
            print(f"imageclef-concepts {args.command}: error: {one_line(error, flags)}",
                  file=sys.stderr)
            return 2
        except Exception:
            if was_interrupted():  # Keras building a network: a TypeError for a Ctrl-C
                return _interrupted(args)
            raise


def _interrupted(args):
    print(f"imageclef-concepts {args.command}: interrupted", file=sys.stderr)
    return 130


@contextlib.contextmanager
def _file_names_printable():
    """Standard output and error take any file name while a command runs.

    ``os.fsdecode`` gives a name's bytes that are not UTF-8 as lone
    surrogates, which a strict stream (a UTF-8 terminal's) refuses with a
    UnicodeEncodeError once the work is done. Standard output writes those
    bytes as they are (``surrogateescape``, as ``ls`` does: the path printed
    is the path); standard error shows them escaped (``backslashreplace``,
    Python's own choice for it), and the command's messages as ``\\xNN``.
    """
    changed = []
    for stream, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=errors)
            changed.append(stream)
    try:
        yield
    finally:
        for stream in changed:
            stream.reconfigure(errors="strict")


def _show_warning_plainly(command):
    """Warnings as the command's own lines: what happened, not the library line that said it."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"imageclef-concepts {command}: warning: {shown_name(str(message))}",
              file=sys.stderr)
    return show


def _version():
    from .._version import __version__

    return __version__


_NEEDS_TENSORFLOW = ("demo", "embed", "train", "predict", "export", "reproduce-2019", "recipe-2026")


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
    add_embed(commands)
    add_train(commands)
    add_predict(commands)
    add_evaluate(commands)
    add_reproduce(commands)
    add_recipe(commands)
    add_info(commands)
    add_export(commands)
    return parser
