"""The embedded parts of a run report: its style, its figures and its thumbnails.

Figures are matplotlib PNGs and thumbnails Pillow JPEGs, each returned as
base64 text to embed in ``<img src="data:...">``: the report needs no other
file. Without matplotlib (the ``plots`` extra) the report has no figures and
says so; an image that cannot be read is named, never fatal.
"""

import base64
import io
import warnings

import numpy as np

STYLE = """
body { font-family: sans-serif; max-width: 72em; margin: 1em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f0f0f0; }
td img { display: block; }
.note { color: #8a4b00; }
figure { margin: 0.5em 0; }
""".strip()

THUMBNAIL_SIZE = 128  # pixels a side: small enough that twenty images weigh ~100 kB


def figures(image_scores, concepts, from_training):
    """The report's figures as ``<figure>`` HTML, and why there are none ("" if there are).

    ``image_scores``: the F1 of each scored image; ``concepts``: the per-concept
    columns of ``_report._concept_rows``.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        message = ("figures need matplotlib: pip install 'imageclef_concepts[plots]'")
        warnings.warn(f"{message}; the report is written without figures.", UserWarning,
                      stacklevel=4)
        return [], message
    return [_embedded(_image_histogram(Figure, image_scores),
                      "The F1 of each scored image."),
            _embedded(_concept_scatter(Figure, concepts, from_training),
                      "Each concept true in a scored image: precision, recall and F1 "
                      "against its frequency (concepts never seen in training at 0.5).")], ""


def _embedded(figure, caption):
    stream = io.BytesIO()
    figure.savefig(stream, format="png", dpi=90)
    encoded = base64.b64encode(stream.getvalue()).decode("ascii")
    return (f'<figure><img alt="{caption}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _image_histogram(Figure, scores):
    figure = Figure(figsize=(6, 3), layout="constrained")
    axes = figure.subplots()
    axes.hist(scores, bins=np.linspace(0, 1, 21), color="tab:blue")
    axes.axvline(scores.mean(), color="tab:red", linestyle="--",
                 label=f"mean (official F1) {scores.mean():.4f}")
    axes.set(xlabel="F1 of the image", ylabel="images", xlim=(0, 1))
    axes.legend(loc="upper center")
    return figure


def _concept_scatter(Figure, concepts, from_training):
    from ._figures import plain_ticks

    present = concepts["support"] > 0
    frequency = np.maximum(concepts["frequency"][present], 0.5)
    figure = Figure(figsize=(11, 3.4), layout="constrained")
    panels = figure.subplots(1, 3, sharex=True, sharey=True)
    for axes, key in zip(panels, ("precision", "recall", "f1")):
        values = concepts[key][present]
        defined = np.isfinite(values)  # no precision for a concept never predicted
        axes.scatter(frequency[defined], values[defined], s=10, alpha=0.6)
        axes.set(xscale="log", ylim=(-0.05, 1.05), title=key if key != "f1" else "F1",
                 xlabel="training images with the concept" if from_training
                 else "images with the concept")
        plain_ticks(axes.xaxis)
    return figure


def thumbnails(folder, image_ids):
    """Base64 JPEG thumbnails of the images of ``folder`` named by ``image_ids``.

    Returns ``{id: base64 text}`` for the images read and a list of messages
    naming each image that has no file or cannot be decoded.
    """
    from PIL import Image

    from ..datasets._imageclef import image_files_by_id, image_path
    from ..images._decoding import ImageDecodeError, decode_image

    files = image_files_by_id(folder)
    made, problems = {}, []
    for image_id in image_ids:
        if image_id not in files:
            problems.append(f"{image_id}: no image file named {image_id}.* in {folder}")
            continue
        try:
            pixels = decode_image(image_path(files, image_id), THUMBNAIL_SIZE)
        except ImageDecodeError as error:
            problems.append(f"{image_id}: {error}")
            continue
        stream = io.BytesIO()
        Image.fromarray(pixels).save(stream, format="JPEG", quality=85)
        made[image_id] = base64.b64encode(stream.getvalue()).decode("ascii")
    return made, problems
