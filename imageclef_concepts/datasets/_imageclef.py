"""Synthetic concept images: radiology-like data that needs no download.

Each image is a grey "body" (an ellipse with a smooth intensity gradient,
soft blobs and noise) on a dark background, stored as RGB like most
ImageCLEF images. Each *visual* concept draws its own mark (shape, size,
intensity and position) into the image; *non-visual* concepts (like
"advertisement" or "copyright" in the real task) draw nothing, so no model
can learn them. Concept frequencies fall off like the task's long tail.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from sklearn.utils import Bunch, check_random_state

from ..concept_files._io import read_concepts, write_run
from ..files._atomic import checked_file_name, shown_capped, write_atomically
from ..files._sizes import check_allocation, setting
from ..images._decoding import RASTER_FORMATS
from ..images._sources import check_image_size

if TYPE_CHECKING:  # names for annotations only
    from .._typing import PathLike

_SHAPES = ("disc", "ring", "square", "cross", "stripes", "triangle")


def make_concept_images(
    n_samples: int = 200,
    n_concepts: int = 12,
    image_size: int = 64,
    *,
    non_visual_fraction: float = 0.25,
    most_common_frequency: float = 0.6,
    tail_exponent: float = 1.0,
    noise: float = 0.05,
    random_state: int | np.random.RandomState | None = None,
    directory: PathLike | None = None,
) -> Bunch:
    """Generate radiology-like images with long-tailed concept lists.

    Parameters
    ----------
    n_samples : int, default=200
        Number of images.
    n_concepts : int, default=12
        Number of distinct concepts.
    image_size : int, default=64
        Side of the square images (at least 16).
    non_visual_fraction : float, default=0.25
        Share of the concepts that leave no mark in the image.
    most_common_frequency : float, default=0.6
        Share of the images that carry the most frequent concept; concept
        ``k`` (0-based by rank) appears in ``most_common_frequency / (k + 1)
        ** tail_exponent`` of them.
    tail_exponent : float, default=1.0
        How fast frequencies fall off with rank.
    noise : float, default=0.05
        Standard deviation of pixel noise, on a 0-1 scale.
    random_state : int, RandomState instance or None, default=None
        Makes the data deterministic.
    directory : str or path-like, default=None
        When given, also write the dataset there in the ImageCLEF layout:
        ``images/<id>.jpg`` and ``concepts.tsv`` (2019 layout), which
        :func:`load_imageclef` reads back.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images``: uint8 array (n_samples, image_size, image_size, 3), grey
        values repeated in the three channels; ``concepts``: list of tuples
        of concept names; ``ids``: image ids; ``concept_names``: the concepts
        by decreasing frequency, CUI-like (``"C"`` and seven digits);
        ``is_visual``: bool array aligned with ``concept_names``;
        ``frequencies``: each concept's probability of appearing. With
        ``directory``, also ``paths`` (the JPEG files) and ``concepts_file``.

    Examples
    --------
    >>> from imageclef_concepts import make_concept_images
    >>> data = make_concept_images(n_samples=4, random_state=0)
    >>> data.images.shape
    (4, 64, 64, 3)
    """
    check_counts(n_samples=n_samples, n_concepts=n_concepts)
    check_drawing(n_samples, image_size)
    if image_size < 16:
        raise ValueError(f"image_size={image_size} is too small to draw concepts; use >= 16.")
    rng = check_random_state(random_state)
    frequencies = most_common_frequency / np.arange(1, n_concepts + 1) ** tail_exponent
    names = _cui_names(n_concepts, rng)
    n_non_visual = int(round(non_visual_fraction * n_concepts))
    # Non-visual concepts are spread over the frequency ranks, not all rare.
    non_visual = rng.choice(n_concepts, size=n_non_visual, replace=False)
    is_visual = np.ones(n_concepts, dtype=bool)
    is_visual[non_visual] = False
    marks = _concept_marks(n_concepts, rng)
    presence = rng.random((n_samples, n_concepts)) < frequencies
    for row in np.flatnonzero(~presence.any(axis=1)):
        # Every real image has at least one concept.
        presence[row, rng.choice(n_concepts, p=frequencies / frequencies.sum())] = True
    grid = np.mgrid[0:image_size, 0:image_size] / image_size
    images = np.empty((n_samples, image_size, image_size, 3), dtype=np.uint8)
    for index in range(n_samples):
        pixels = _body(grid, rng)
        for concept in np.flatnonzero(presence[index] & is_visual):
            _draw(pixels, grid, marks[concept], rng)
        pixels += rng.normal(0, noise, pixels.shape)
        images[index] = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)[..., None]
    concepts = [tuple(names[presence[i]]) for i in range(n_samples)]
    ids = [f"synthetic_{i:06d}" for i in range(n_samples)]
    data = Bunch(images=images, concepts=concepts, ids=ids, concept_names=names,
                 is_visual=is_visual, frequencies=frequencies)
    if directory is not None:
        data.paths, data.concepts_file = _write_dataset(directory, data)
    return data


def save_jpeg(pixels, path):
    """Write a synthetic image as a JPEG file, atomically (a full disk names ``path``)."""
    write_atomically(path, lambda handle: Image.fromarray(pixels).save(handle, "JPEG",
                                                                        quality=95))


def _write_dataset(directory, data):
    images_dir = Path(directory) / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for image_id, pixels in zip(data.ids, data.images):
        path = images_dir / f"{image_id}.jpg"
        save_jpeg(pixels, path)
        paths.append(str(path))
    concepts_file = Path(directory) / "concepts.tsv"
    write_run(concepts_file, data.ids, data.concepts, layout="2019")
    return paths, str(concepts_file)


SPLITS_2019 = ("train", "valid", "test")


def check_drawing(n_images, image_size, counts="n_samples"):
    """Refuse synthetic images beyond memory, naming ``image_size`` and the ``counts``."""
    check_image_size(image_size)  # a bool, or one image beyond memory, named
    # The drawing grid (two float64 planes), one image's float64 pixels and the array.
    check_allocation((2 * 8 + 8 + 3 * max(int(n_images), 1)) * int(image_size)**2,
                     setting("image_size", image_size), f"drawing {n_images} image(s) at "
                     "that size", f"choose a smaller image_size or {counts}")


def check_counts(**counts):
    """Refuse, naming it, a count of synthetic images or concepts that is no whole number of
    at least 1 (a bool, a float, an array; 0 made a split without images, -3 an IndexError)."""
    from ..files._numbers import check_whole_number

    for name, count in counts.items():
        check_whole_number(count, name)


def make_imageclef_2019_layout(directory: PathLike, *, n_train: int = 120, n_valid: int = 40,
                               n_test: int = 40, n_concepts: int = 12, image_size: int = 32,
                               random_state: int = 0) -> Bunch:
    """Write a small synthetic dataset in the ImageCLEF 2019 folder and file layout.

    ``<directory>/<split>/<id>.jpg`` and ``<directory>/<split>_concepts.tsv``
    (2019 layout: ``<id><TAB><CUI>;...``) for the splits ``train``,
    ``valid`` and ``test``, like the official data. As in 2019 (312 of
    5,528 concepts), some concepts occur in the validation set only: the
    rarest of the validation images' concepts (a quarter of ``n_concepts``)
    never appear in ``train``.

    Parameters
    ----------
    directory : str or path-like
    n_train, n_valid, n_test : int
    n_concepts : int, default=12
    image_size : int, default=32
    random_state : int, default=0

    Returns
    -------
    dict
        ``{split: Bunch}`` as :func:`make_concept_images` returns, with the
        ``paths`` and ``concepts_file`` of each split.

    Examples
    --------
    >>> import tempfile
    >>> from imageclef_concepts import make_imageclef_2019_layout
    >>> splits = make_imageclef_2019_layout(tempfile.mkdtemp(), n_train=8, n_valid=4, n_test=4)
    >>> sorted(splits), len(splits["train"].ids)
    (['test', 'train', 'valid'], 8)
    """
    sizes = dict(train=n_train, valid=n_valid, test=n_test)
    check_counts(**{f"n_{split}": size for split, size in sizes.items()})
    check_drawing(sum(sizes.values()), image_size, "n_train, n_valid or n_test")
    directory = Path(checked_file_name(directory, "directory"))
    data = make_concept_images(sum(sizes.values()), n_concepts, image_size,
                               most_common_frequency=0.7, random_state=random_state)
    order = np.arange(len(data.ids))
    # The rarest concepts that the validation images carry never reach training.
    in_valid = {c for row in range(n_train, n_train + n_valid) for c in data.concepts[row]}
    by_rarity = [c for c in data.concept_names[::-1] if c in in_valid]
    only_outside_train = set(by_rarity[:max(1, n_concepts // 4)])
    first = {"train": 0, "valid": n_train, "test": n_train + n_valid}
    splits = {}
    for split in SPLITS_2019:
        rows = order[first[split]:first[split] + sizes[split]]
        concepts = [tuple(c for c in data.concepts[row]
                          if split != "train" or c not in only_outside_train) for row in rows]
        if split == "train":  # a training image left with no concept keeps the commonest
            concepts = [c or (data.concept_names[0],) for c in concepts]
        ids = [f"{split}_{row:05d}" for row in rows]
        folder = directory / split
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for image_id, row in zip(ids, rows):
            path = folder / f"{image_id}.jpg"
            save_jpeg(data.images[row], path)
            paths.append(str(path))
        concepts_file = directory / f"{split}_concepts.tsv"
        write_run(concepts_file, ids, concepts, layout="2019")
        splits[split] = Bunch(ids=ids, concepts=concepts, paths=paths,
                              images=data.images[rows], concepts_file=str(concepts_file))
    return splits


class DatasetMismatchWarning(UserWarning):
    """Images and concept lines of a dataset folder do not match one to one.

    Examples
    --------
    >>> import os, tempfile, warnings
    >>> from imageclef_concepts import DatasetMismatchWarning, load_imageclef, make_concept_images
    >>> folder = tempfile.mkdtemp()
    >>> _ = make_concept_images(n_samples=2, random_state=0, directory=folder)
    >>> os.remove(f"{folder}/images/synthetic_000001.jpg")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     data = load_imageclef(f"{folder}/images", f"{folder}/concepts.tsv")
    >>> caught[0].category is DatasetMismatchWarning, data.concepts_without_images
    (True, ['synthetic_000001'])
    """


def load_imageclef(images_dir: PathLike, concepts_file: PathLike, *,
                   strict: bool = False, edition: str = "auto") -> Bunch:
    """Read a dataset in the ImageCLEF layout: image files plus a concept file.

    Parameters
    ----------
    images_dir : str or path-like
        A folder of ``<image id>.<ext>`` files, any extension Pillow reads
        (``.jpg`` in the official data).
    concepts_file : str or path-like
        Ground truth in any layout :func:`read_concepts` reads.
    strict : bool, default=False
        Raise instead of warning when images and concept lines do not match.
    edition : {"auto", "2018", ..., "2026"}, default="auto"
        Whose ground-truth rules to read ``concepts_file`` by (as
        :func:`read_concepts`): ``"2022"`` for the tab-separated file with
        the header ``ID<TAB>cuis``, ``"2024"`` for ``ID,CUIs``, and so on.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths`` (str), ``concepts`` (tuples) and ``ids``, in the concept
        file's order, for the images that have both a file and a line.
        ``images_without_concepts`` and ``concepts_without_images`` list the
        ids left out, and ``duplicate_ids`` the ids with several image files.

    Raises
    ------
    FileNotFoundError
        When the folder does not exist.

    Examples
    --------
    >>> import tempfile
    >>> from imageclef_concepts import load_imageclef, make_concept_images
    >>> folder = tempfile.mkdtemp()
    >>> _ = make_concept_images(n_samples=3, random_state=0, directory=folder)
    >>> data = load_imageclef(f"{folder}/images", f"{folder}/concepts.tsv")
    >>> data.ids, [path.rsplit("/", 1)[1] for path in data.paths][:1]
    (['synthetic_000000', 'synthetic_000001', 'synthetic_000002'], ['synthetic_000000.jpg'])
    """
    images_dir = Path(os.fsdecode(images_dir))  # bytes: a name that is not UTF-8
    if not images_dir.is_dir():
        raise FileNotFoundError(f"Image folder not found: {images_dir}")
    files = image_files_by_id(images_dir)
    ids, concepts, read_as = read_concepts(concepts_file, edition=edition)
    _check_concepts_given(concepts_file, concepts, read_as, strict)
    duplicate_ids = sorted(image_id for image_id, paths in files.items() if len(paths) > 1)
    labelled = set(ids)
    without_concepts = sorted(set(files) - labelled)
    without_images = [image_id for image_id in ids if image_id not in files]
    _report_mismatch(images_dir, concepts_file, without_concepts, without_images,
                     duplicate_ids, strict)
    kept = [(image_id, image_concepts) for image_id, image_concepts in zip(ids, concepts)
            if image_id in files]
    return Bunch(
        paths=[image_path(files, image_id) for image_id, _ in kept],
        concepts=[image_concepts for _, image_concepts in kept],
        ids=[image_id for image_id, _ in kept],
        images_without_concepts=without_concepts,
        concepts_without_images=without_images,
        duplicate_ids=duplicate_ids,
    )


def image_files_by_id(images_dir):
    """Image files of a folder by id (file name without extension), raster formats only.

    Entries that cannot even be inspected (a symbolic link loop, a file
    without permission) are kept: the image check reports them like any bad
    file, by ``on_error``.
    """
    readable = {extension for extension, kind in Image.registered_extensions().items()
                if kind in RASTER_FORMATS}
    files = defaultdict(list)
    with os.scandir(images_dir) as entries:
        for entry in entries:
            stem, extension = os.path.splitext(entry.name)
            if extension.lower() not in readable:
                continue
            try:
                usable = not entry.is_dir()
            except OSError:
                usable = True  # reported when the files are checked
            if usable:
                files[stem].append(Path(entry.path))
    return files


def image_path(files, image_id):
    """The file of an image id in :func:`image_files_by_id`'s ``files``: the first by name.

    The one rule for an id with several files (``a.jpg`` and ``a.png``),
    the same in reading a dataset and in predicting a folder.
    """
    return str(sorted(files[image_id])[0])


def _check_concepts_given(concepts_file, concepts, edition, strict):
    """Refuse a concept file that gives no image a concept; warn (``strict``: refuse), naming
    the lines, of images given none (from 2022 the evaluators refuse such a ground-truth
    line; before, they leave the image out): they are used as images without concepts."""
    from ..concept_files._io import lines_without_concepts

    if concepts and not any(concepts):
        raise ValueError(f"{concepts_file}: none of its {len(concepts)} image(s) has a concept: "
                         "there is nothing to learn or tune on.")
    if all(concepts):
        return
    numbers = lines_without_concepts(concepts_file, edition)
    shown = ", ".join(map(str, numbers[:10])) + (", ..." if len(numbers) > 10 else "")
    problem = (f"{concepts_file}: {len(numbers)} line(s) give an image no concept (an empty "
               f"concept field or an id alone; lines {shown}): they are used as images "
               "without concepts")
    if strict:
        raise ValueError(problem)
    warnings.warn(problem, DatasetMismatchWarning, stacklevel=3)


def _report_mismatch(images_dir, concepts_file, without_concepts, without_images,
                     duplicate_ids, strict):
    problems = []
    for ids, what in [
        (without_concepts, f"image(s) in {images_dir} have no line in {concepts_file} "
                           "and are left out"),
        (without_images, f"line(s) of {concepts_file} have no image in {images_dir} "
                         "and are left out"),
        (duplicate_ids, f"id(s) have several image files in {images_dir}; the first "
                        "by name is used"),
    ]:
        if ids:
            shown = ", ".join(map(shown_capped, ids[:10])) + (", ..." if len(ids) > 10 else "")
            problems.append(f"{len(ids)} {what}: {shown}")
    if not problems:
        return
    if strict:
        raise ValueError("; ".join(problems))
    for problem in problems:
        warnings.warn(problem, DatasetMismatchWarning, stacklevel=3)


def _cui_names(n_concepts, rng):
    numbers = rng.choice(9_000_000, size=n_concepts, replace=False) + 1_000_000
    return np.array([f"C{number:07d}" for number in numbers], dtype=object)


def _concept_marks(n_concepts, rng):
    """Each concept's mark: a shape at its own place, size and intensity."""
    # Places on a 4x4 grid inside the body, shuffled so that neighbours in
    # rank do not sit side by side.
    cells = [(0.3 + 0.4 * r / 3, 0.3 + 0.4 * c / 3) for r in range(4) for c in range(4)]
    order = rng.permutation(len(cells))
    marks = []
    for concept in range(n_concepts):
        centre = cells[order[concept % len(cells)]]
        marks.append({
            "shape": _SHAPES[concept % len(_SHAPES)],
            "centre": np.array(centre),
            "radius": 0.07 + 0.03 * ((concept // len(_SHAPES)) % 3),
            "intensity": 0.95 if concept % 2 == 0 else 0.05,
        })
    return marks


def _body(grid, rng):
    """A grey ellipse with a gradient and soft blobs, on a dark background."""
    y, x = grid
    centre = 0.5 + rng.normal(0, 0.02, 2)
    axes = np.array([0.45, 0.38]) * (1 + rng.normal(0, 0.04, 2))
    inside = ((y - centre[0]) / axes[0]) ** 2 + ((x - centre[1]) / axes[1]) ** 2 <= 1
    pixels = np.full(y.shape, 0.08)
    pixels[inside] = (0.45 + 0.15 * (y - 0.5) + rng.normal(0, 0.03))[inside]
    for _ in range(3):
        blob = rng.uniform(0.2, 0.8, 2)
        pixels += 0.08 * np.exp(-((y - blob[0]) ** 2 + (x - blob[1]) ** 2) / 0.01) * inside
    return pixels


def _draw(pixels, grid, mark, rng):
    y, x = grid
    centre = mark["centre"] + rng.normal(0, 0.015, 2)
    radius = mark["radius"]
    dy, dx = y - centre[0], x - centre[1]
    distance = np.hypot(dy, dx)
    shape = mark["shape"]
    if shape == "disc":
        region = distance <= radius
    elif shape == "ring":
        region = (distance <= radius) & (distance >= 0.55 * radius)
    elif shape == "square":
        region = (np.abs(dy) <= 0.8 * radius) & (np.abs(dx) <= 0.8 * radius)
    elif shape == "cross":
        region = ((np.abs(dy) <= 0.25 * radius) | (np.abs(dx) <= 0.25 * radius)) & (
            np.maximum(np.abs(dy), np.abs(dx)) <= radius)
    elif shape == "stripes":
        region = (distance <= radius) & (np.sin(dx / radius * 3 * np.pi) > 0)
    else:  # triangle
        region = (dy <= 0.7 * radius) & (dy >= -radius + 2 * np.abs(dx))
    pixels[region] = mark["intensity"]
