"""
The 2026 winner's recipe: seeds, votes, a count model and the ceiling
=====================================================================

AUEB/Archimedes won ImageCLEFmed Caption 2026 with many members (backbones x
seeds), each voting with its own threshold and a concept kept with at least
``L`` votes, and a model of each image's concept count. This builds that on
generated data with tiny networks: members from a grid with
:meth:`~imageclef_concepts.ConceptEnsemble.from_grid`, the 2024 recipe (the
members' mean, one threshold) against the votes of :class:`EnsembleTuner`
and against the mean with a :class:`ConceptCountRegressor`, every decision
tuned on the validation images and scored on test images, with the split's
ceilings from :func:`oracle_bounds`. ``imageclef-concepts recipe-2026`` runs
the same steps on a data folder.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    EnsembleTuner,
    ThresholdTuner,
    imageclef_f1_score,
    make_concept_images,
    oracle_bounds,
)

data = make_concept_images(n_samples=400, n_concepts=12, image_size=24, random_state=5)
X, y = data.images, np.array([";".join(c) for c in data.concepts], dtype=object)
train, valid, test = np.split(np.arange(len(X)), [240, 320])

# %%
# Members: two architectures x two seeds, each named after what varies.
template = ConceptCNNClassifier(image_size=24, filters=(8, 16), dense_units=(32,), decay=0.0,
                                learning_rate=3e-3, epochs=6)
grid = ConceptEnsemble.from_grid(template, {"filters": [(8, 16), (16,)],
                                            "random_state": [0, 1]})
members = [(name, member.fit(X[train], y[train])) for name, member in grid.estimators]
print([name for name, _ in members])

# %%
# Three decisions, each tuned on the validation images only.
mean = FrozenEstimator(ConceptEnsemble(members, prefit=True).fit(X[valid], y[valid]))
common = dict(cv="prefit", refit=False, thresholds=20, min_concepts=1)
recipe_2024 = ThresholdTuner(mean, **common).fit(X[valid], y[valid])
voting = ConceptEnsemble(members, combine="vote", prefit=True).fit(X[valid], y[valid])
votes = EnsembleTuner(voting, cv="prefit", refit=False, thresholds=20).fit(X[valid], y[valid])
counted = ThresholdTuner(mean, **common, count_coverage=[None, 0.8, 0.9],
                         random_state=0).fit(X[valid], y[valid])
print(f"votes: L={votes.min_votes_} of {len(members)}, member thresholds "
      f"{np.round(votes.member_thresholds_, 2)}; count model coverage: "
      f"{counted.count_coverage_}")

# %%
# The count model ranks scores; a vote decision has none to rank, so the two
# do not compose: the better on validation is kept, as ``recipe-2026`` does.
both = votes if votes.best_score_ > counted.best_score_ else counted
decisions = {"2024 recipe\n(mean, one threshold)": recipe_2024, "+ votes": votes,
             "+ count model": counted, "+ both\n(better on valid)": both}
scores = {name: imageclef_f1_score(y[test], model.predict(X[test]))
          for name, model in decisions.items()}
bounds = oracle_bounds(y[train], y[test])
for name, score in scores.items():
    print(f"{name.replace(chr(10), ' ')}: {score:.4f}")
print(bounds)

# %%
# Official F1 on the test images, with the ceilings of the split as lines.
fig, ax = plt.subplots(figsize=(7, 4.8), layout="constrained")
ax.bar(range(len(scores)), list(scores.values()), color="tab:blue")
ax.set_xticks(range(len(scores)), list(scores), fontsize=8)
for value, label, style in [(bounds.vocabulary_f1, "perfect model (training vocabulary)", "-"),
                            (bounds.retrieval_f1, "best training image copied", "--"),
                            (bounds.top_k_f1, f"best top-{bounds.k} frequent list", ":")]:
    ax.axhline(value, color="tab:red", linestyle=style, label=f"ceiling: {label}")
ax.set_ylabel("official F1 on the test images")
ax.set_ylim(0, 1.05)
# Below the axes: inside, the legend would cover bars.
ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2,
          frameon=False)
plt.show()
