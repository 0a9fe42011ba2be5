"""
Training from a folder of image files
=====================================

Real users train from a folder of JPEGs in the ImageCLEF layout. Paths are
decoded batch by batch while the network trains, so the dataset never has
to fit in memory.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from imageclef_concepts import (
    ConceptCNNClassifier,
    decode_image,
    evaluate_run,
    load_imageclef,
    make_concept_images,
    write_run,
)

folder = Path(tempfile.mkdtemp())
make_concept_images(n_samples=500, n_concepts=6, image_size=32, random_state=3,
                    directory=folder)
print(sorted(p.name for p in (folder / "images").iterdir())[:3])
print((folder / "concepts.tsv").read_text().splitlines()[:2])

# %%
# ``load_imageclef`` pairs image files with concept lines and reports any
# mismatch (images without labels, labels without images, duplicate ids).
data = load_imageclef(folder / "images", folder / "concepts.tsv")
train, test = slice(0, 400), slice(400, None)

model = ConceptCNNClassifier(image_size=32, filters=(8, 16), dense_units=(32,),
                             learning_rate=3e-3, decay=0.0, epochs=10, threshold=0.3,
                             random_state=0)
model.fit(data.paths[train], data.concepts[train])

# %%
# A run file in the official 2019 layout for the held-out images, checked and
# scored against their ground truth as the organisers would.
write_run(folder / "test_concepts.tsv", data.ids[test], data.concepts[test])
run = folder / "run.tsv"
write_run(run, data.ids[test], model.predict_concepts(data.paths[test]), layout="2019")
print(run.read_text().splitlines()[:2])
print(f"official F1: {evaluate_run(run, folder / 'test_concepts.tsv').score:.3f}")

# %%
# Some held-out images with their true and predicted concepts, read from the
# files as the network saw them.
predicted = model.predict_concepts(data.paths[test][:6])
figure, axes = plt.subplots(2, 3, figsize=(7, 5), layout="constrained")
for ax, path, truth, guess in zip(axes.flat, data.paths[test], data.concepts[test], predicted):
    ax.imshow(decode_image(path, 32))
    ax.set_title(f"true: {';'.join(truth) or '-'}\npredicted: {';'.join(guess) or '-'}",
                 fontsize=7)
    ax.axis("off")
plt.show()
