"""Figures' shared parts: plain counts on log axes, point names that never collide."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from imageclef_concepts import plot_concept_frequencies, plot_per_concept_f1  # noqa: E402
from imageclef_concepts.report._figures import label_points, plain_ticks  # noqa: E402


def _shown_labels(axis):
    figure = axis.axes.figure
    figure.canvas.draw()
    low, high = sorted(axis.get_view_interval())
    ticks = [(tick, text) for tick, text in zip(
        list(axis.get_majorticklocs()) + list(axis.get_minorticklocs()),
        [t.get_text() for t in axis.get_majorticklabels()]
        + [t.get_text() for t in axis.get_minorticklabels()])]
    return sorted(float(tick) for tick, text in ticks if text and low <= tick <= high)


@pytest.mark.parametrize(("low", "high", "expected"), [
    (40, 700, [50, 100, 200, 500]),          # 1.2 decades: 1, 2, 5 times powers of ten
    (300, 900, [300, 400, 500, 600, 700, 800, 900]),  # within a decade: every tick
    (1, 100_000, [1, 10, 100, 1000, 10_000, 100_000]),  # wide: powers of ten only
])
def test_log_axes_show_enough_plain_counts(low, high, expected):
    figure, ax = plt.subplots()
    ax.plot([low, high], [1, 2])
    ax.set(xscale="log", xlim=(low, high))
    plain_ticks(ax.xaxis)
    assert _shown_labels(ax.xaxis) == expected
    plt.close(figure)


def test_the_demo_sized_frequency_plot_labels_both_axes():
    # 16 concepts from about 45 to 700 images: one label per axis before.
    counts = [700, 400, 240, 170, 140, 115, 105, 80, 75, 72, 60, 58, 50, 49, 46, 45]
    concepts = [f"C{i}" for i, count in enumerate(counts) for _ in range(count)]
    axes = plot_concept_frequencies(concepts).axes[0]
    assert len(_shown_labels(axes.xaxis)) >= 3 and len(_shown_labels(axes.yaxis)) >= 3
    plt.close("all")


def _text_boxes(ax):
    renderer = ax.figure.canvas.get_renderer()
    # the text alone: an annotation's own extent includes its line to the point
    return [Text.get_window_extent(text, renderer) for text in ax.texts]


def _overlapping(boxes):
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


def test_label_points_places_crowded_names_apart_and_off_the_points():
    figure, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    rng = np.random.default_rng(0)
    x, y = 10 + rng.random(12), 0.8 + 0.1 * rng.random(12)
    ax.scatter(x, y)
    ax.set(xlim=(0, 30), ylim=(0, 1.1))
    texts = label_points(ax, x, y, [f"C{i:07d}" for i in range(12)])
    figure.canvas.draw()
    boxes = _text_boxes(ax)
    assert len(texts) == 12 and not _overlapping(boxes)
    points = ax.transData.transform(np.column_stack([x, y]))
    assert not any(box.contains(px, py) for box in boxes for px, py in points)
    plt.close(figure)


def test_the_per_concept_plot_of_a_crowded_set_has_no_colliding_names():
    rng = np.random.default_rng(0)
    names = [f"C{1000000 + i}" for i in range(16)]
    train = [";".join(n for n in names[: 1 + rng.integers(16)]) for _ in range(300)]
    truth = [";".join(n for n in names if rng.random() < 0.3) or names[0] for _ in range(100)]
    predicted = [";".join(c for c in t.split(";") if rng.random() < 0.8) for t in truth]
    figure = plot_per_concept_f1(truth, predicted, train_concepts=train)
    figure.canvas.draw()
    assert len(figure.axes[0].texts) == 16 and not _overlapping(_text_boxes(figure.axes[0]))
    plt.close("all")
