import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imageclef_concepts import TrainingHistoryDisplay  # noqa: E402

HISTORY = {"loss": [0.9, 0.5, 0.4], "val_loss": [0.8, 0.6, 0.7], "val_auc": [0.6, 0.7, 0.9]}


def _kept_point(display):
    return display.ax_.collections[0].get_offsets()[0]


def test_from_history_marks_the_lowest_validation_loss():
    display = TrainingHistoryDisplay.from_history(HISTORY)
    assert display.kept_epoch == 1
    np.testing.assert_allclose(_kept_point(display), [2, 0.6])
    assert sorted(display.lines_) == ["loss", "val_loss"]  # the losses, not the AUC
    np.testing.assert_allclose(display.lines_["val_loss"].get_ydata(), HISTORY["val_loss"])
    np.testing.assert_allclose(display.lines_["loss"].get_xdata(), [1, 2, 3])
    plt.close("all")


def test_from_estimator_marks_the_epoch_the_estimator_kept():
    # Kept by its monitor (here val_auc, epoch 3), not by the lowest validation loss.
    display = TrainingHistoryDisplay.from_estimator(
        SimpleNamespace(history_=HISTORY, best_epoch_=2))
    assert display.kept_epoch == 2
    np.testing.assert_allclose(_kept_point(display), [3, 0.7])
    assert "kept: epoch 3" in [t.get_text() for t in display.ax_.get_legend().get_texts()]
    # None: the last epoch was kept; without validation the mark is on the training loss.
    last = TrainingHistoryDisplay.from_estimator(
        SimpleNamespace(history_={"loss": [0.9, 0.5]}, best_epoch_=None))
    np.testing.assert_allclose(_kept_point(last), [2, 0.5])
    plt.close("all")


def test_plot_draws_on_the_axes_given():
    figure, axes = plt.subplots()
    display = TrainingHistoryDisplay(history={"loss": [1.0, 0.5]}).plot(ax=axes, title="mine")
    assert display.ax_ is axes and display.figure_ is figure
    assert axes.get_title() == "mine" and len(axes.lines) == 1 and not axes.collections
    plt.close("all")
