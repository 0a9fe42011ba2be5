"""Checks of one split of a dataset, made by every recipe before anything trains.

A split is an image folder and its concept files, in the 2019 layout
(:func:`~imageclef_concepts.recipes._reproduce.find_2019_layout`) or the
2024-2026 one (:func:`~._layout_2026.find_imageclef_layout`): each image the
concept files name must have a file there, and each file must be an image.
Found after the search and the training, a mistake cost their hours.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from ..files._atomic import file_kind, listing
from ._imageclef import image_files_by_id


def check_concept_file_kind(path):
    """Refuse a concept file's name held by something else (a folder, a pipe, a device): a
    pipe would block, and each would pass for no file (an optional test truth unscored)."""
    if os.path.lexists(path) and not path.is_file():  # a link to nothing, too
        kind = file_kind(path.stat().st_mode) if path.exists() else "a link to nothing"
        raise ValueError(f"{path} is {kind}, not a concept file: replace it with a regular "
                         "file, or remove it.")


def check_split_lines(split, found, *, learned, edition):
    """Refuse a split's folder without an image file, and concept lines without one.

    Parameters
    ----------
    split : str
        ``"train"``, ``"valid"`` or ``"test"``, as messages name it.
    found : Bunch
        ``images`` (a folder), ``concepts`` and optionally ``manual`` (concept files, or
        None).
    learned : bool
        The model learns the split: its lines without an image are left out (the dataset
        reader warns of them), but not every one of them.
    edition : str
        Whose rules the concept files are read by (``"auto"``: as the dataset reader).

    Returns
    -------
    dict
        The folder's image files by id (:func:`~._imageclef.image_files_by_id`).
    """
    from ..concept_files._io import read_concepts

    files = image_files_by_id(found.images)
    if not files:
        beside = found.images / "concepts.csv"
        raise ValueError(f"{found.images} holds no image file: the {split} split has no "
                         "image to " + ("train on" if learned else "predict")
                         + (f" ({beside} is there, but no images/ folder beside it)"
                            if beside.is_file() else "") + ".")
    for path in (found.concepts, found.get("manual")):
        if path is None:
            continue
        ids = read_concepts(path, edition=edition).ids
        missing = [image_id for image_id in ids if image_id not in files]
        if missing and not learned:
            raise ValueError(listing(f"{path}: {len(missing)} image(s) without a file in "
                                      f"{found.images}", missing))
        if learned and path == found.concepts and len(missing) == len(ids):
            raise ValueError(f"{path}: none of its {len(ids)} image ids has a file in "
                             f"{found.images}: there is nothing to train on.")
    return files


def check_split_images(files_by_split):
    """Refuse, naming each, the image files that cannot be used, of every split at once
    (``files_by_split``: each split's files by id, as :func:`check_split_lines` returns them).

    Their headers only are read (:func:`~imageclef_concepts.images._decoding.check_image_file`),
    two at a time: seconds for thousands of images.
    """
    from ..images._decoding import check_image_file

    found = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for split, files in files_by_split.items():
            paths = [path for found_paths in files.values() for path in found_paths]
            found[split] = [problem for problem in pool.map(check_image_file, paths) if problem]
    problems = [problem for split_problems in found.values() for problem in split_problems]
    if not problems:
        return
    counts = {split: len(split_problems) for split, split_problems in found.items()
              if split_problems}
    summary = (f"{len(problems)} {next(iter(counts))} image file(s)" if len(counts) == 1 else
               f"{len(problems)} image file(s) ("
               + ", ".join(f"{count} {split}" for split, count in counts.items()) + ")")
    raise ValueError(listing(f"{summary} cannot be used; remove or fix them", problems))
