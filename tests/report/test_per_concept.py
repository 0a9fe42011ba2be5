import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from imageclef_concepts import (  # noqa: E402
    MostFrequentConcepts,
    PerConceptF1Display,
    imageclef_f1_score,
)

Y_TRUE = ["A;B", "A", "B;C"]
Y_PRED = ["A", "A;B", "C"]


def test_from_predictions_holds_each_concepts_f1_and_frequency():
    display = PerConceptF1Display.from_predictions(
        Y_TRUE, Y_PRED, train_concepts=["A", "A", "B", "C", "c"], non_visual={" c "})
    # A: 2 right of 2 true, 2 predicted -> 1.0; B: none right -> 0.0; C: 1 of 1 -> 1.0
    assert display.concepts.tolist() == ["A", "B", "C"]
    np.testing.assert_allclose(display.f1, [1.0, 0.0, 1.0])
    assert display.frequencies.tolist() == [2, 1, 2]
    assert display.non_visual.tolist() == [False, False, True]
    assert display.score == pytest.approx(imageclef_f1_score(Y_TRUE, Y_PRED))
    visual, hidden = display.ax_.collections
    np.testing.assert_allclose(visual.get_offsets(), [[2, 1.0], [1, 0.0]])
    np.testing.assert_allclose(hidden.get_offsets(), [[2, 1.0]])
    plt.close("all")


def test_from_estimator_scores_its_predictions():
    X = np.zeros((4, 1))
    model = MostFrequentConcepts(k=1).fit(X, ["A;B", "A", "A;C", "B"])
    display = PerConceptF1Display.from_estimator(model, X[:3], Y_TRUE)
    expected = PerConceptF1Display.from_predictions(Y_TRUE, model.predict(X[:3]))
    assert display.concepts.tolist() == expected.concepts.tolist() == ["A", "B", "C"]
    np.testing.assert_allclose(display.f1, expected.f1)
    assert display.score == pytest.approx(expected.score)
    assert display.frequencies.tolist() == [2, 2, 1]  # counted on y without train_concepts
    plt.close("all")


def test_plot_draws_on_the_axes_given_and_names_the_most_frequent():
    figure, axes = plt.subplots()
    display = PerConceptF1Display(concepts=["A", "B", "C"], f1=[1.0, 0.5, 0.0],
                                  frequencies=[1, 9, 0], non_visual=[False] * 3, score=0.5)
    display.plot(ax=axes, max_labels=2)
    assert display.ax_ is axes and display.figure_ is figure
    assert sorted(text.get_text() for text in axes.texts) == ["A", "B"]
    assert axes.collections[0].get_offsets()[2, 0] == 0.8  # never counted: left of 1
    plt.close("all")


@pytest.mark.parametrize("max_labels, error", [(-3, ValueError), (True, TypeError),
                                               (np.array(3), TypeError), (2.0, TypeError)])
def test_max_labels_is_a_whole_number_named_before_drawing(max_labels, error):
    # max_labels=-3 named all but the 3 rarest concepts and True one, silently; 2.0 ended in
    # 'slice indices must be integers', naming nothing (review 16).
    display = PerConceptF1Display.from_predictions(Y_TRUE, Y_PRED, train_concepts=Y_TRUE,
                                                   max_labels=0)
    assert not display.ax_.texts  # 0: no point named
    n_figures = len(plt.get_fignums())
    with pytest.raises(error, match=r"^max_labels=.*: max_labels must be a whole number, at "
                                    "least 0"):
        PerConceptF1Display.from_predictions(Y_TRUE, Y_PRED, train_concepts=Y_TRUE,
                                             max_labels=max_labels)
    assert len(plt.get_fignums()) == n_figures  # refused before a figure was made
    plt.close("all")
