"""The 2025/2026 data layout: each split's images, concepts and manual concepts.

The organisers' evaluator (``taubsity/clef-caption-evaluation-2026``,
``concept_detection/evaluator.py``) reads ``data/<split>/concepts.csv`` and
``data/<split>/concepts_manual.csv`` (comma CSV, header ``ID,CUIs``), the
images sitting in ``<split>/images/`` beside them. The released data names
the same files ``<split>_concepts.csv`` and ``<split>_concepts_manual.csv``
beside image folders ``<split>/``. :func:`find_imageclef_layout` accepts
both; :func:`make_imageclef_layout` writes the first, on synthetic images.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils import Bunch

from ..concept_files._editions import SECONDARY_CUIS
from ..concept_files._io import write_run
from ..files._atomic import checked_file_name, content_digest
from ._imageclef import check_counts, check_drawing, make_concept_images, save_jpeg
from ._split_checks import check_concept_file_kind

if TYPE_CHECKING:  # names for annotations only
    from .._typing import PathLike

SPLITS = ("train", "valid", "test")
# From this share of a split's image files being an earlier split's (the same folder, a
# copy, half a copy), the split is refused; below it (official data may hold a few exact
# duplicates across splits) they are named in a warning.
SHARED_LIMIT = 0.1


def find_imageclef_layout(data_dir: PathLike) -> dict[str, Bunch]:
    """Each split's image folder, concept file and manual concept file, or a clear error.

    Parameters
    ----------
    data_dir : str or path-like
        ``<split>/images/`` with ``<split>/concepts.csv`` (and
        ``concepts_manual.csv``), or ``<split>/`` with
        ``<split>_concepts.csv`` (and ``<split>_concepts_manual.csv``), for
        ``train``, ``valid`` and optionally ``test`` (whose concept files are
        optional: they score the run).

    Returns
    -------
    dict of str to Bunch
        ``{split: Bunch(images=Path, concepts=Path or None, manual=Path or None)}``,
        ``test`` only when it has an image folder.

    Examples
    --------
    >>> import tempfile
    >>> from imageclef_concepts import find_imageclef_layout, make_imageclef_layout
    >>> folder = tempfile.mkdtemp()
    >>> _ = make_imageclef_layout(folder, n_train=4, n_valid=2, n_test=2, test_truth=False)
    >>> layout = find_imageclef_layout(folder)
    >>> layout["valid"].manual.name, layout["test"].concepts
    ('concepts_manual.csv', None)
    """
    data_dir = Path(os.fsdecode(data_dir))  # bytes: a name that is not UTF-8
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder not found: {data_dir}")
    layout = {}
    for split in SPLITS:
        nested = data_dir / split / "images"
        if nested.is_dir():
            found = Bunch(images=nested, concepts=data_dir / split / "concepts.csv",
                          manual=data_dir / split / "concepts_manual.csv")
        else:
            found = Bunch(images=data_dir / split, concepts=data_dir / f"{split}_concepts.csv",
                          manual=data_dir / f"{split}_concepts_manual.csv")
        if not found.images.is_dir():
            if split == "test":
                continue
            raise FileNotFoundError(f"no image folder for {split}: expected {nested} or "
                                    f"{data_dir / split}")
        for path in (found.concepts, found.manual):
            check_concept_file_kind(path)
        if not found.concepts.is_file():
            if split != "test":
                raise FileNotFoundError(f"{found.concepts} not found: the {split} split needs "
                                        "its concept file (ID,CUIs).")
            found.concepts = None
        if not found.manual.is_file():
            found.manual = None
        layout[split] = found
    return layout


def check_distinct_splits(layout, flags=None):
    """Refuse a validation or test split whose images are another split's: a model would be
    tuned, or a run scored, on the very images it learned, and the score would say nothing
    of other images.

    Refused:

    - one image folder for two splits (the same device and inode: the folder, or a link to
      it), unless each split's concept file names images the other's does not (one folder
      of a whole dataset, as the NIH ChestX-ray14 sample is given);
    - concept files of the same text over folders of the same image ids;
    - a split of which :data:`SHARED_LIMIT` (a tenth) or more of the image files it reads
      (those its lines name; every file of the test folder) are an earlier split's files
      (:func:`~._overlap.shared_files`: hard links, symbolic links or copies, known by their
      bytes, under any concept file): a copy of the training folder, or half of it among
      the split's own images.

    Fewer are kept with a :class:`~._imageclef.DatasetMismatchWarning` naming how many and
    a few files: official data may hold a few exact duplicates across splits (a few in a
    split of thousands are well under a tenth; the NIH ChestX-ray14 sample of 800 images
    the project tests on holds none), and refusing them would leave no way to use it. A
    tenth is far below half a copy, and a score of which a tenth is on learned images can
    be off by more than the differences between runs it is read for. One concept file of a
    whole dataset given for two folders of other images is no copy: each folder's images
    are read with their lines (the others left out).

    Parameters
    ----------
    layout : dict
        ``{split: Bunch(images=Path, concepts=Path or None)}``, as
        :func:`find_imageclef_layout` finds them; a folder or file not there, or a file that
        is no regular one, is left to the checks that read it.
    flags : dict or None, default=None
        The command line's options for each split's images and concepts,
        ``{split: (images_flag, concepts_flag)}``, named instead of the split.
    """
    reads = {split: _files_read(found, split) for split, found in layout.items()}
    seen = {}
    for split, found in layout.items():
        for index, path in enumerate((found.images, found.concepts)):
            key = _identity(path, index)
            if key is None:
                continue
            for other in seen.setdefault(key, []):
                if index == 1 and not _same_images(found.images, layout[other].images):
                    continue  # one truth of a whole dataset, for folders of other images
                if index == 0 and _share(reads[split], reads[other]) < SHARED_LIMIT:
                    continue  # one folder of a whole dataset, each split's lines its own
                raise ValueError(_same_message(layout, flags, split, other, index))
            seen[key].append(split)
    _check_shared_files(layout, flags, reads)


def _share(files, others):
    """The share of ``files`` that are ``others``, of one folder (by their names there); 0
    when either is not known (a concept file that cannot be read: its own check names it)."""
    if not files or others is None:
        return 0
    names = {os.path.basename(path) for path in others}
    return sum(os.path.basename(path) in names for path in files) / len(files)


def _check_shared_files(layout, flags, reads):
    """Refuse a split of which :data:`SHARED_LIMIT` of the image files it reads (``reads``)
    are earlier splits' files, all of these counted together; warn, naming them, below it."""
    from ._imageclef import DatasetMismatchWarning
    from ._overlap import shared_files

    splits = [split for split in layout if reads[split]]
    for index, split in enumerate(splits):
        shared = {other: shared_files(reads[split], reads[other]) for other in splits[:index]}
        shared = {other: files for other, files in shared.items() if files}
        if not shared:
            continue
        union = sorted({os.path.basename(path) for files in shared.values() for path in files})
        count = len({path for files in shared.values() for path in files})
        share = count / len(reads[split])
        # the same file (a link) or a copy of it: the same bytes either way
        names = f"the same bytes: {', '.join(union[:3])}{', ...' if len(union) > 3 else ''}"
        theirs = [f"{_their(flags, other, 0)} ({layout[other].images}" for other in shared]
        theirs = (f"{theirs[0]}, {names})" if len(theirs) == 1
                  else f"{') or '.join(theirs)}), {names}")
        what = (f"{_named(layout, flags, split, 0)}: {count} of the {len(reads[split])} image "
                f"files it reads ({f'{share:.1%}'.replace('.0%', '%')}) "
                f"{'is a file' if count == 1 else 'are files'} of {theirs}")
        if share >= SHARED_LIMIT:
            raise ValueError(f"{what}: {_needs_its_own(split)}")
        warnings.warn(f"{what}: kept, as under {SHARED_LIMIT:.0%} of its images (official "
                      "data may hold a few duplicates), but the "
                      f"{_split_name(split)} score counts them as unseen images.",
                      DatasetMismatchWarning, stacklevel=3)


def _files_read(found, split):
    """The image files a split reads: each id's file that its concept file has a line for
    (the first of an id's files by name, as a dataset is read), every file of the test
    folder (each is predicted); None for a folder, or a concept file, that cannot be read
    (its own check names it)."""
    from ._imageclef import image_files_by_id, image_path

    try:
        files = image_files_by_id(found.images)
    except (OSError, TypeError):
        return None
    if split == "test" or found.concepts is None:  # no lines: the folder's every image
        return [str(path) for paths in files.values() for path in paths]
    ids = _named_ids(found.concepts)
    return None if ids is None else [image_path(files, image_id) for image_id in files
                                     if image_id in ids]


def _named_ids(concepts):
    """The image ids a concept file has lines for, or None when it cannot be read."""
    from ..concept_files._io import read_concepts

    if concepts is None or not os.path.isfile(concepts):  # not there, or a pipe
        return None
    try:
        return set(read_concepts(concepts)[0])
    except (OSError, ValueError, UnicodeError):
        return None


def _same_images(folder, other):
    """Whether two image folders hold the same image ids (a copy); not for a folder that
    cannot be listed (its own check names it, and nothing is read from it)."""
    from ._imageclef import image_files_by_id

    try:
        return set(image_files_by_id(folder)) == set(image_files_by_id(other))
    except (OSError, TypeError):
        return False


def _identity(path, index):
    """What makes two image folders one (their device and inode), or two concept files of
    one text (their bytes' digest); None for a path not there."""
    try:
        if index == 0:
            status = Path(path).stat()
            return index, status.st_dev, status.st_ino
        text = content_digest(path)  # None for a pipe (never read) or nothing there
        return None if text is None else (index, text)
    except (OSError, TypeError):  # None (no concept file), or not there
        return None


def _same_message(layout, flags, split, other, index):
    """``split``'s images (``index`` 0) or concepts (1) are ``other``'s, said in one line."""
    key = ("images", "concepts")[index]
    return (f"{_named(layout, flags, split, index)} is {_their(flags, other, index)} "
            f"({layout[other][key]}, the same {('folder', 'text')[index]}): "
            + _needs_its_own(split))


def _named(layout, flags, split, index):
    """``split``'s image folder (``index`` 0) or concept file (1): its flag and path."""
    path = layout[split][("images", "concepts")[index]]
    return f"{flags[split][index]} {path}" if flags else str(path)


def _their(flags, other, index):
    """``other``'s image folder (``index`` 0) or concept file (1), by its flag or split."""
    if flags:
        return f"the {flags[other][index]} {('folder', 'file')[index]}"
    return f"the {other} split's {('image folder', 'concept file')[index]}"


def _split_name(split):
    return "validation" if split == "valid" else split


def _needs_its_own(split):
    return (f"the {_split_name(split)} split needs images of its own"
            + (" (or no test folder: the validation images are then predicted)."
               if split == "test" else "."))


def make_imageclef_layout(directory: PathLike, edition: str = "2026", *, n_train: int = 80,
                          n_valid: int = 40, n_test: int = 40, n_concepts: int = 12,
                          image_size: int = 32, test_truth: bool = True,
                          random_state: int = 0) -> dict[str, Bunch]:
    """Write a small synthetic dataset in the 2025/2026 layout.

    ``<directory>/<split>/images/<id>.jpg``, ``<split>/concepts.csv`` and
    ``<split>/concepts_manual.csv`` (``ID,CUIs``, as the edition's
    :func:`write_run` writes them) for ``train``, ``valid`` and ``test``.
    The three most frequent concepts are CUIs of the secondary score, so
    that it is not empty; an image's manual concepts are its secondary
    concepts, or all its concepts when it has none (every line of a 2026
    ground truth holds a concept).

    Parameters
    ----------
    directory : str or path-like
    edition : {"2025", "2026"}, default="2026"
    n_train, n_valid, n_test : int
    n_concepts : int, default=12
    image_size : int, default=32
    test_truth : bool, default=True
        Write the test split's concept files (False: its images only, as
        the organisers hand them out).
    random_state : int, default=0

    Returns
    -------
    dict of str to Bunch
        ``{split: Bunch(ids, concepts, manual, images_dir, concepts_file)}``.

    Examples
    --------
    >>> import tempfile
    >>> from imageclef_concepts import make_imageclef_layout
    >>> splits = make_imageclef_layout(tempfile.mkdtemp(), n_train=8, n_valid=4, n_test=4)
    >>> sorted(splits), len(splits["train"].ids)
    (['test', 'train', 'valid'], 8)
    """
    if str(edition) not in ("2025", "2026"):
        raise ValueError(f"edition must be '2025' or '2026'; got {edition!r}.")
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    check_counts(**{f"n_{split}": size for split, size in sizes.items()})
    check_drawing(sum(sizes.values()), image_size, "n_train, n_valid or n_test")
    directory = checked_file_name(directory, "directory")  # before any image is drawn
    data = make_concept_images(sum(sizes.values()), n_concepts, image_size,
                               most_common_frequency=0.7, random_state=random_state)
    renamed = dict(zip(data.concept_names[:3], sorted(SECONDARY_CUIS)[:3]))
    concepts = [tuple(renamed.get(c, c) for c in image) for image in data.concepts]
    splits, first = {}, 0
    for split in SPLITS:
        rows = np.arange(first, first + sizes[split])
        first += sizes[split]
        folder = Path(directory) / split
        (folder / "images").mkdir(parents=True, exist_ok=True)
        ids = [f"synthetic_{split}_{row:05d}" for row in rows]
        for image_id, row in zip(ids, rows):
            save_jpeg(data.images[row], folder / "images" / f"{image_id}.jpg")
        truth = [concepts[row] for row in rows]
        manual = [tuple(c for c in image if c in SECONDARY_CUIS) or image for image in truth]
        if split != "test" or test_truth:
            write_run(folder / "concepts.csv", ids, truth, edition=str(edition))
            write_run(folder / "concepts_manual.csv", ids, manual, edition=str(edition))
        splits[split] = Bunch(ids=ids, concepts=truth, manual=manual,
                              images_dir=str(folder / "images"),
                              concepts_file=str(folder / "concepts.csv"))
    return splits
