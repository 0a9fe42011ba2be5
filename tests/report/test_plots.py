import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from imageclef_concepts import (  # noqa: E402
    ThresholdTuner,
    plot_concept_frequencies,
    plot_per_concept_f1,
    plot_threshold_curve,
    plot_training_history,
)


def test_concept_frequencies_rank_plot():
    figure = plot_concept_frequencies(["A;B", "A", "A;C", "B"])
    axes = figure.axes[0]
    x, y = axes.lines[0].get_data()
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_array_equal(y, [3, 2, 1])
    assert axes.get_xscale() == axes.get_yscale() == "log"
    assert "3 concepts over 4 images" in axes.texts[0].get_text()


def test_threshold_curve_marks_the_chosen_threshold():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = (X > 0).astype(int)
    tuner = ThresholdTuner(KNeighborsClassifier(7), cv=3, thresholds=15,
                           store_cv_results=True).fit(X, y)
    axes = plot_threshold_curve(tuner).axes[0]
    curve, chosen = axes.lines[0], axes.lines[1]
    np.testing.assert_allclose(curve.get_xdata(), tuner.cv_results_["thresholds"])
    assert chosen.get_xdata()[0] == pytest.approx(tuner.best_threshold_)
    with pytest.raises(ValueError, match="store_cv_results=True"):
        plot_threshold_curve(ThresholdTuner(KNeighborsClassifier(7), cv=3).fit(X, y))


def test_training_history_marks_the_kept_epoch():
    history = {"loss": [0.9, 0.5, 0.4], "val_loss": [0.8, 0.6, 0.7]}
    axes = plot_training_history(history).axes[0]
    assert len(axes.lines) == 2
    kept = axes.collections[0].get_offsets()[0]
    np.testing.assert_allclose(kept, [2, 0.6])
    assert "kept: epoch 2" in [t.get_text() for t in axes.get_legend().get_texts()]


def test_per_concept_f1_points():
    y_true = ["A;B", "A", "B;C"]
    y_pred = ["A", "A;B", "C"]
    axes = plot_per_concept_f1(y_true, y_pred, train_concepts=["A", "A", "B", "C"]).axes[0]
    points = axes.collections[0].get_offsets()
    # A: tp 2, true 2, pred 2 -> 1.0; B: tp 0 -> 0.0; C: tp 1, true 1, pred 1 -> 1.0
    np.testing.assert_allclose(points[:, 1], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(points[:, 0], [2, 1, 1])


def test_per_concept_plot_names_concepts_and_marks_the_non_visual_ones():
    y_true = ["A;B", "A", "B;C"]
    y_pred = ["A", "A;B", "C"]
    axes = plot_per_concept_f1(y_true, y_pred, non_visual={"c"}).axes[0]
    assert {text.get_text() for text in axes.texts} == {"A", "B", "C"}
    visual, hidden = axes.collections
    assert len(visual.get_offsets()) == 2 and len(hidden.get_offsets()) == 1
    assert "no mark" in axes.get_legend().get_texts()[1].get_text()


def test_legends_sit_outside_the_data_and_counts_are_plain_numbers():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    tuner = ThresholdTuner(KNeighborsClassifier(7), cv=3, thresholds=15,
                           store_cv_results=True).fit(X, (X > 0).astype(int))
    figure = plot_threshold_curve(tuner)
    axes = figure.axes[0]
    figure.canvas.draw()
    legend_box = axes.get_legend().get_window_extent()
    assert legend_box.y1 <= axes.get_window_extent().y0  # below the axes, not on the curve
    frequencies = plot_concept_frequencies(["A"] * 300 + ["B"] * 30 + ["C"])
    frequencies.canvas.draw()
    labels = [label.get_text() for label in frequencies.axes[0].get_yticklabels()]
    assert "100" in labels and not any("10^" in label or "times" in label for label in labels)
    plt.close("all")


def test_the_functions_still_return_pyplot_figures_for_scripts():
    # plt.show(), plt.savefig() and sphinx-gallery's scraper find them as before.
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    plt.close("all")
    figure = plot_training_history({"loss": [0.5, 0.4]})
    assert isinstance(figure, Figure) and plt.get_fignums() == [figure.number]
    assert plt.gcf() is figure
    plt.close("all")


def test_the_threshold_curve_says_its_scores_are_out_of_fold():
    # beside a table of held-out scores, its best F1 is read as what it is
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    tuner = ThresholdTuner(KNeighborsClassifier(5), cv=3, thresholds=10,
                           store_cv_results=True).fit(X, (X > 0).astype(int))
    axes = plot_threshold_curve(tuner).axes[0]
    assert "out of fold" in axes.get_title() and "training images" in axes.get_title()
    assert plot_threshold_curve(tuner, title="mine").axes[0].get_title() == "mine"


def test_the_threshold_curve_title_fits_its_figure():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    tuner = ThresholdTuner(KNeighborsClassifier(5), cv=3, thresholds=10,
                           store_cv_results=True).fit(X, (X > 0).astype(int))
    figure = plot_threshold_curve(tuner)
    figure.canvas.draw()
    title = figure.axes[0].title.get_window_extent()
    assert 0 <= title.x0 and title.x1 <= figure.bbox.x1  # not cut at the figure's edge
