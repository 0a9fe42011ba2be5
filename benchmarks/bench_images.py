"""Images from files: streaming training, peak memory and JPEG decoding."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from imageclef_concepts import (
    ConceptCNNClassifier,
    decode_image,
    load_imageclef,
    make_concept_images,
)

from ._timing import PEAK_RSS_FUNCTION, Row, alternate

ROOT = Path(__file__).resolve().parent.parent


def run(quick):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        return (streaming_rows(folder, quick) + small_image_rows(folder, quick)
                + memory_rows(folder, quick) + decoding_rows(folder, quick))


def _write_jpegs(folder, n_images, side, seed=0):
    """Photo-like JPEGs: smooth random fields, so that JPEG sizes are realistic."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_images):
        coarse = rng.integers(0, 256, (side // 16, side // 16, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
        path = folder / f"{index:06d}.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
    return paths


def streaming_rows(folder, quick):
    n_images, side, image_size = (64, 500, 400) if quick else (192, 500, 400)
    paths = _write_jpegs(folder / "stream", n_images, side)
    in_memory = np.stack([decode_image(p, image_size) for p in paths])
    rng = np.random.default_rng(0)
    Y = (rng.random((n_images, 5528)) < 0.001).astype(np.int8)
    Y[np.arange(n_images), rng.integers(0, 5528, n_images)] = 1
    model = ConceptCNNClassifier(epochs=1, validation_fraction=None)
    from_paths, from_memory = alternate(lambda: model.fit(paths, Y),
                                        lambda: model.fit(in_memory, Y), repeat=2)
    return [Row("images", f"fit from {side}px JPEG paths vs in memory, {image_size}px",
                n_images / from_paths, n_images / from_memory, "images/s",
                from_memory / from_paths, "paths / in-memory training speed (target >= 0.90)")]


def small_image_rows(folder, quick):
    """The demo's case: small files, where decoding costs as much as a training step."""
    n_images, epochs = (600, 5) if quick else (1200, 5)
    generated = make_concept_images(n_images, 16, 48, random_state=0, directory=folder / "small")
    dataset = load_imageclef(folder / "small" / "images", generated.concepts_file)
    paths, y = list(dataset.paths), [";".join(c) for c in dataset.concepts]
    in_memory = np.stack([decode_image(p, 48) for p in paths])
    rows = []
    for cache_mb in (256, 0):
        model = ConceptCNNClassifier(image_size=48, filters=(8, 16, 32), dense_units=(64,),
                                     decay=0.0, epochs=epochs, random_state=0,
                                     image_cache_mb=cache_mb)
        from_paths, from_memory = alternate(lambda: model.fit(paths, y),
                                            lambda: model.fit(in_memory, y), repeat=3)
        rows.append(Row("images", f"fit from 48px paths vs in memory, {epochs} epochs, "
                        f"cache {cache_mb} MB", n_images * epochs / from_paths,
                        n_images * epochs / from_memory, "images/s", from_memory / from_paths,
                        "paths / in-memory training speed (target >= 0.90)"))
    return rows


_PEAK_RSS_SCRIPT = PEAK_RSS_FUNCTION + """
import json, sys
import numpy as np
from imageclef_concepts import ConceptCNNClassifier
paths = json.loads(open(sys.argv[1]).read())
Y = np.zeros((len(paths), 100), dtype=np.int8)
Y[np.arange(len(paths)), np.arange(len(paths)) % 100] = 1
ConceptCNNClassifier(image_size=int(sys.argv[2]), epochs=1, validation_fraction=None,
                     n_jobs=2).fit(paths, Y)
print(peak_rss_mb())
"""


def _peak_rss_mb(paths, image_size, folder):
    listing = folder / f"paths_{len(paths)}.json"
    listing.write_text(json.dumps(paths))
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT, str(listing), str(image_size)],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    return float(done.stdout.strip().splitlines()[-1])


def memory_rows(folder, quick):
    # 128 px keeps one epoch over 4,000 images to a minute on 2 cores; the
    # memory held per image in flight does not depend on how many there are.
    small, large, image_size = (250, 1000, 128) if quick else (1000, 4000, 128)
    paths = _write_jpegs(folder / "memory", large, 160, seed=1)
    peak_small = _peak_rss_mb(paths[:small], image_size, folder)
    peak_large = _peak_rss_mb(paths, image_size, folder)
    as_arrays_mb = large * image_size * image_size * 3 / 2**20
    return [Row("images", f"peak RSS, one epoch from {large:,} vs {small:,} paths",
                peak_large, peak_small, "MB", peak_large / peak_small,
                f"peak RSS ratio (1.00 = flat; the {large:,} images are "
                f"{as_arrays_mb:.0f} MB as arrays)")]


def decoding_rows(folder, quick):
    n_images, side, image_size = (20, 2400, 400) if quick else (60, 2400, 400)
    paths = _write_jpegs(folder / "large", n_images, side, seed=2)

    def plain():
        for path in paths:
            np.asarray(Image.open(path).convert("RGB").resize((image_size, image_size)))

    def ours():
        for path in paths:
            decode_image(path, image_size)

    ours_time, plain_time = alternate(ours, plain, repeat=3)
    return [Row("images", f"decode + resize {side}px JPEG to {image_size}px",
                n_images / ours_time, n_images / plain_time, "images/s",
                plain_time / ours_time, "speed-up over Image.open().convert().resize()")]
