"""The ``imageclef-concepts`` command line (also ``python -m imageclef_concepts``)."""

import argparse
import sys

from ._concept_files import ConceptFileError, evaluate_run


class UserError(Exception):
    """A mistake of the user's: reported as one line, exit code 2, no traceback."""


def main(argv=None):
    """Run the command line; return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run_command"):
        parser.print_help()
        return 2
    try:
        return args.run_command(args)
    except (UserError, ConceptFileError, FileNotFoundError, ValueError) as error:
        print(f"imageclef-concepts {args.command}: error: {error}", file=sys.stderr)
        return 2


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="imageclef-concepts",
        description="Medical concept detection in radiology images (ImageCLEFmed Caption).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_evaluate(commands)
    return parser


def _add_evaluate(commands):
    evaluate = commands.add_parser(
        "evaluate",
        help="score a run file with the official F1",
        description="Check a run file against the ground truth and print its official "
        "ImageCLEF F1 (mean per-image F1 over images with at least one true concept).",
    )
    evaluate.add_argument("run", help="the run file (2019, 2022 or 2024 layout)")
    evaluate.add_argument("ground_truth", help="the ground-truth concept file")
    evaluate.add_argument("--max-concepts", type=int, default=None,
                          help="refuse lines with more concepts (100 in 2022+)")
    evaluate.add_argument("--cui-only", action="store_true",
                          help="refuse concepts that are not UMLS CUIs (C followed by digits)")
    evaluate.set_defaults(run_command=_run_evaluate)


def _run_evaluate(args):
    result = evaluate_run(args.run, args.ground_truth,
                          max_concepts=args.max_concepts, cui_only=args.cui_only)
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(f"Mean F1 score: {result.score}")
    print(f"({result.n_scored} of {result.n_images} images have true concepts and are "
          "averaged)")
    return 0
