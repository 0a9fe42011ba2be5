"""What the command line's subcommands share: argument types, output checks, user errors.

A user's mistake is a :class:`UserError` (or a library error naming the
problem), reported by ``_cli.main`` as one line on standard error with exit
code 2. Nothing here imports scikit-learn or TensorFlow: ``--help`` reads it.
"""

import argparse
import re
from pathlib import Path


class UserError(Exception):
    """A mistake of the user's: reported without a traceback, exit code 2."""


def estimator_default(value):
    """Help text for a flag left to the estimator: None means "not given", so
    ConceptCNNClassifier's default applies; that default is the paper's
    setting, read from the module the estimator reads it from (no TensorFlow)."""
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
    return f"default: {shown}"


# The library's messages name its keyword arguments; the command line's, its options:
# these everywhere, and each subcommand's own (its ``parameter_flags`` default).
_OPTION_NAMES = {"edition": "--edition", "secondary_concepts": "--secondary-concepts",
                 "secondary_truth": "--secondary-truth"}
# A value as the library shows it (repr): quoted, a tuple or list, or a plain word.
_VALUE = r"""'[^']*'|"[^"]*"|\([^()]*\)|\[[^\]]*\]|[^\s,;:()]+"""


def one_line(error, flags=None):
    """An error as one line: a multi-line message (a list of problems) joined up.

    The library's keyword arguments it names (``edition=``, and those of
    ``flags``: ``image_size=64``) are given as the options of the command line
    (``--edition``, ``--image-size 64``; :func:`as_flags`); a file name's bytes
    that are not UTF-8, as ``\\xNN``.
    """
    from ..files._atomic import shown_name

    text = str(error) if not isinstance(error, OSError) or not error.filename else \
        f"{error.strerror}: {error.filename}"
    text = as_flags(shown_name(text), {**_OPTION_NAMES, **(flags or {})})
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def as_flags(text, flags):
    """``text`` with the Python parameters of ``flags`` (``{"image_size": "--image-size"}``)
    named as the command line's options.

    ``image_size=64`` becomes ``--image-size 64`` (a quoted value unquoted, a
    tuple as the flag takes it: ``32,64``), ``image_size=`` alone
    ``--image-size``; a bare name becomes the flag when it has an underscore
    (``choose a smaller image_size``), not a plain word (``epochs``) that
    English uses too; scikit-learn's ``The 'image_size' parameter`` becomes
    ``The --image-size option``. A name inside another (``max_image_size``,
    ``params['image_size']``, a member's name ``epochs=2,image_size=32``) is
    left as it is.
    """
    if not flags:
        return text
    names = "|".join(re.escape(name) for name in sorted(flags, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.,\-'\"\[])({names})(?:=({_VALUE})?)?(?![\w\-'\"])")
    text = re.sub(rf"'({names})' parameter", lambda found: f"{flags[found.group(1)]} option",
                  text)  # scikit-learn's checks: "The 'image_size' parameter of ..."

    def flag(found):
        name, value, whole = found.group(1), found.group(2), found.group()
        if value is None and whole == name and "_" not in name:
            return whole  # a plain word
        if value is None:
            return flags[name]
        if value[:1] in "'\"":
            value = value[1:-1]
        elif value[:1] in "([":
            value = ",".join(part.strip() for part in value[1:-1].split(",") if part.strip())
        return f"{flags[name]} {value}"

    return pattern.sub(flag, text)


def int_tuple(text):
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def probability(text):
    """A decision threshold: a number in [0, 1] (2 would predict nothing, -1 everything)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def seed(text):
    """A random seed as NumPy takes it: a whole number in [0, 2**32 - 1]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, {2**32 - 1}], got {value}")
    return value


def check_output(path, inputs, flag="--output"):
    """Refuse, before any work, an output that cannot be written or would destroy something.

    A folder, a device or a pipe, a missing or read-only folder, and any
    input (a file named, or any file of a folder named: an image, a
    concept file, the model) are refused.
    """
    from ..files._atomic import check_not_an_input, check_writable_target

    folder = path.parent if str(path.parent) else Path(".")
    try:
        check_writable_target(path, flag)
    except OSError as error:  # not a file to write (a folder, a looping link), or its
        raise UserError(str(error)) from None  # folder is missing or cannot be written
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: the folder {folder} does not exist.")
    try:
        check_not_an_input(path, inputs, flag)
    except ValueError as error:
        raise UserError(str(error)) from None


def say_unless_quiet(args, line):
    if not args.quiet:
        print(line)
