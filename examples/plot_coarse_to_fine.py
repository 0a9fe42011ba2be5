"""
Coarse-to-fine hyper-parameter search
=====================================

The paper tuned its hyper-parameters "in a coarse to fine search". Here each
round is a plain ``GridSearchCV`` scored with the official F1, over the CNN
inside a :class:`~imageclef_concepts.ThresholdTuner`;
:func:`~imageclef_concepts.refine_grid` makes the next round's grid.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import (
    ConceptCNNClassifier,
    ThresholdTuner,
    imageclef_f1,
    make_concept_images,
    refine_grid,
)

data = make_concept_images(n_samples=800, n_concepts=8, image_size=32, random_state=2)
y = np.array([";".join(c) for c in data.concepts], dtype=object)
model = ThresholdTuner(
    ConceptCNNClassifier(image_size=32, filters=(8, 16), dense_units=(32,), decay=0.0,
                         epochs=15, random_state=0),
    cv=0.25, refit=False, random_state=0)

# %%
# Round 1: a coarse, log-spaced grid over the learning rate.
grid = {"estimator__learning_rate": [3e-4, 3e-3, 3e-2]}
folds = KFold(2, shuffle=True, random_state=0)  # concept lists: no stratification
search = GridSearchCV(model, grid, scoring=imageclef_f1, cv=folds).fit(data.images, y)
print("round 1:", search.best_params_, f"{search.best_score_:.3f}")
rounds = [search.cv_results_]

# %%
# Round 2: a finer grid around the best value, log-spaced for a scale
# parameter and kept inside the parameter's valid range.
grid = refine_grid(search)
print("round 2 grid:", grid)
search = GridSearchCV(model, grid, scoring=imageclef_f1, cv=folds).fit(data.images, y)
print("round 2:", search.best_params_, f"{search.best_score_:.3f}")
rounds.append(search.cv_results_)

# %%
# Where each round looked: the cross-validated official F1 of every learning
# rate tried; round 2 zooms in around round 1's best.
figure, axes = plt.subplots(figsize=(6, 3.5), layout="constrained")
for number, (results, marker) in enumerate(zip(rounds, ["o", "s"]), start=1):
    rates = np.array(results["param_estimator__learning_rate"], dtype=float)
    order = np.argsort(rates)
    axes.errorbar(rates[order], results["mean_test_score"][order],
                  yerr=results["std_test_score"][order], marker=marker, capsize=3,
                  label=f"round {number}")
axes.set(xscale="log", xlabel="learning rate", ylabel="official F1 (2-fold CV)",
         title="Coarse-to-fine search")
axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # clear of the data
plt.show()
