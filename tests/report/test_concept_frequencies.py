import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imageclef_concepts import ConceptFrequencyDisplay  # noqa: E402


def test_from_concepts_ranks_concepts_by_images():
    display = ConceptFrequencyDisplay.from_concepts(["b;a", "A", "A;C;c", "B", "d"])
    assert display.concepts.tolist() == ["A", "B", "C", "D"]  # ties by name, upper-cased
    assert display.frequencies.tolist() == [3, 2, 1, 1]  # "C;c" is one concept of one image
    assert display.n_images == 5
    np.testing.assert_array_equal(display.line_.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(display.line_.get_ydata(), display.frequencies)
    assert "4 concepts over 5 images" in display.ax_.texts[0].get_text()
    plt.close("all")


def test_plot_draws_on_the_axes_given():
    figure, (left, right) = plt.subplots(1, 2)
    display = ConceptFrequencyDisplay(concepts=["X", "Y"], frequencies=[5, 1], n_images=5)
    assert display.plot(ax=left) is display
    assert display.ax_ is left and display.figure_ is figure and not right.lines
    assert left.get_xscale() == left.get_yscale() == "log"
    plt.close("all")
