"""
Fusing a CNN with retrieval, the weight and the threshold tuned together
========================================================================

The systems that won ImageCLEF after 2019 combine models: here a CNN and a
k-NN retrieval that searches the CNN's own embedding space (its penultimate
layer), averaged by a :class:`~imageclef_concepts.ConceptEnsemble`. The
members are trained once on the training images and frozen
(scikit-learn's ``FrozenEstimator``); on the validation images a
``GridSearchCV`` chooses the fusion weight while a
:class:`~imageclef_concepts.ThresholdTuner` inside it chooses the threshold
for each weight. The test images are touched once, at the end.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ThresholdTuner,
    imageclef_f1,
    imageclef_f1_score,
    make_concept_images,
)

data = make_concept_images(n_samples=600, n_concepts=8, image_size=32, random_state=4)
X, y = data.images, np.array([";".join(c) for c in data.concepts], dtype=object)
train, valid, test = np.split(np.arange(len(X)), [360, 480])

cnn = ConceptCNNClassifier(image_size=32, filters=(8, 16), dense_units=(32,), decay=0.0,
                           learning_rate=3e-3, epochs=12, random_state=0)
cnn.fit(X[train], y[train])
knn = ConceptKNNClassifier(n_neighbors=10, embedding=cnn).fit(X[train], y[train])

# %%
# The weight of the CNN against retrieval, and a threshold tuned for each.
fusion = ConceptEnsemble([("cnn", FrozenEstimator(cnn)), ("knn", FrozenEstimator(knn))])
tuned = ThresholdTuner(fusion, cv=3, thresholds=40)
weights = [[1, 0], [3, 1], [1, 1], [1, 3], [0, 1]]
search = GridSearchCV(tuned, {"estimator__weights": weights}, scoring=imageclef_f1,
                      cv=KFold(2, shuffle=True, random_state=0)).fit(X[valid], y[valid])
best = search.best_estimator_
print("best weights (CNN, k-NN):", search.best_params_["estimator__weights"],
      f"threshold {best.best_threshold_:.3f}")

# %%
# Each part's contribution on the test images, each with its own tuned threshold.
scores = {}
for name, weight in [("CNN alone", [1, 0]), ("k-NN alone", [0, 1]),
                     ("fused", search.best_params_["estimator__weights"])]:
    model = ThresholdTuner(ConceptEnsemble([("cnn", FrozenEstimator(cnn)),
                                            ("knn", FrozenEstimator(knn))], weights=weight),
                           cv=3, thresholds=40).fit(X[valid], y[valid])
    scores[name] = imageclef_f1_score(y[test], model.predict(X[test]))
    print(f"{name:10s} official F1 on test: {scores[name]:.3f}")

cv_scores = search.cv_results_["mean_test_score"]
figure, axes = plt.subplots(figsize=(6, 3.5), layout="constrained")
axes.plot([w[0] / sum(w) for w in weights], cv_scores, marker="o")
axes.set(xlabel="share of the CNN in the fused probabilities",
         ylabel="official F1 (validation folds)", title="Fusing the CNN with retrieval")
