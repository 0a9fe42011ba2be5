"""
Quick start: the paper's CNN as a scikit-learn estimator
========================================================

Train :class:`~imageclef_concepts.ConceptCNNClassifier` on synthetic
radiology-like images, predict concepts and score them with the official
ImageCLEF F1.
"""

# %%
# Data: images with long-tailed concepts, some of which leave no visual mark.
from imageclef_concepts import (
                             ConceptCNNClassifier,
                             make_concept_images,
                             plot_training_history,
)

data = make_concept_images(n_samples=600, n_concepts=8, image_size=32, random_state=0)
X_train, X_test = data.images[:450], data.images[450:]
y_train, y_test = data.concepts[:450], data.concepts[450:]
print(data.images.shape, y_train[:3])

# %%
# The paper's network, scaled down for a CPU: two blocks instead of four on
# 32 x 32 images. Every number of the paper is a constructor parameter.
model = ConceptCNNClassifier(image_size=32, filters=(8, 16), dense_units=(32,),
                             conv_dropout=0.1, dense_dropout=0.2, learning_rate=3e-3,
                             decay=0.0, epochs=15, threshold=0.3, random_state=0)
model.fit(X_train, y_train)
print("best epoch:", model.best_epoch_ + 1)

# %%
# ``predict`` returns concept tuples because ``y`` was concept lists;
# ``score`` is the official mean per-image F1.
print(model.predict_concepts(X_test[:3]))
print(f"official F1 on held-out images: {model.score(X_test, y_test):.3f}")

# %%
plot_training_history(model.history_)
