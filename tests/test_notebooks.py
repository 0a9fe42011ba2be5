"""The library in a real Jupyter notebook: figures shown once, clean progress, no TensorFlow noise.

A notebook is written with nbformat and executed by nbclient in a real
IPython kernel (ipykernel, the inline matplotlib backend, ipywidgets), as
JupyterLab or ``jupyter nbconvert --execute`` runs it; the saved outputs are
then read as a notebook viewer would show them.
"""

import os
import pathlib

import nbclient
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

ROOT = pathlib.Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"
# What TensorFlow writes on starting (absl, oneDNN, CUDA probing, XLA's placer).
TENSORFLOW_START_UP = ("cuda", "onednn", "absl", "computation placer", "cuinit",
                       "cpu_feature_guard", "tf_enable_onednn_opts")

SETUP = """\
import numpy as np
from imageclef_concepts import (ConceptCNNClassifier, ConceptFrequencyDisplay,
                                PerConceptF1Display, ThresholdCurveDisplay, ThresholdTuner,
                                TrainingHistoryDisplay, make_concept_images,
                                plot_concept_frequencies, plot_per_concept_f1,
                                plot_threshold_curve, plot_training_history, prepare_images)
data = make_concept_images(24, 4, 16, random_state=0, directory="data")
labels = [";".join(concepts) for concepts in data.concepts]
"""
TRAIN = """\
model = ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=1,
                             verbose=1, random_state=0).fit(data.images, labels)
tuner = ThresholdTuner(model, cv="prefit", refit=False, thresholds=10,
                       store_cv_results=True).fit(data.images, labels)
"""
# Each cell draws one figure, its last line as a user would write it.
PLOTS = {
    "plot_concept_frequencies(labels)": "helper as the value",
    "figure = plot_concept_frequencies(labels)": "helper assigned",
    "plot_training_history(model.history_);": "helper, value hidden",
    "plot_threshold_curve(tuner)": "helper as the value",
    "plot_per_concept_f1(labels, model.predict(data.images))": "helper, predicting first",
    "ConceptFrequencyDisplay.from_concepts(labels)": "display",
    "TrainingHistoryDisplay.from_estimator(model)": "display",
    "ThresholdCurveDisplay.from_estimator(model, data.images, labels)": "display",
    "ThresholdCurveDisplay.from_tuner(tuner)": "display",
    "PerConceptF1Display.from_estimator(model, data.images, labels)": "display",
    "shown = TrainingHistoryDisplay.from_estimator(model)\nshown.figure_": "display's figure",
}
PREPARE = "prepare_images(data.paths, 'store', image_size=16)"
# ipywidgets hidden from tqdm, as in an environment without it: Keras' line per epoch.
WITHOUT_WIDGETS = """\
import tqdm.notebook
tqdm.notebook.IProgress = None
model.fit(data.images, labels)
"""


def _texts(output):
    """Every text a notebook viewer would show of one output."""
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return [output.evalue, *output.traceback]
    return [value for key, value in output.get("data", {}).items()
            if key.startswith("text/") and isinstance(value, str)]


def _kernel_environment(tmp_path):
    """The environment of a user's kernel: this checkout importable, nothing the test
    session set to quiet TensorFlow, matplotlib's backend left to the kernel."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "MPLBACKEND")}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environment["IPYTHONDIR"] = str(tmp_path / "ipython")  # no user profile's settings
    return environment


@pytest.mark.slow
def test_a_notebook_shows_each_figure_once_clean_progress_and_no_tensorflow_start_up(tmp_path):
    import ipywidgets  # noqa: F401  (the test extra has it: progress must be widgets)

    sources = [SETUP, PREPARE, TRAIN, *PLOTS, WITHOUT_WIDGETS]
    notebook = new_notebook(cells=[new_code_cell(source) for source in sources])
    path = tmp_path / "library.ipynb"
    nbformat.write(notebook, path)
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=_kernel_environment(tmp_path))
    nbformat.write(notebook, path)  # what a user would open and share
    cells = {cell.source: cell.outputs for cell in nbformat.read(path, as_version=4).cells}

    for source, outputs in cells.items():
        texts = "".join(text for output in outputs for text in _texts(output))
        assert "\b" not in texts and "\r" not in texts, (source, texts[:300])
        assert not [marker for marker in TENSORFLOW_START_UP if marker in texts.lower()], \
            (source, texts[:300])
    for source in PLOTS:
        figures = [output for output in cells[source] if "image/png" in output.get("data", {})]
        assert len(figures) == 1, (PLOTS[source], source, cells[source])
    for source in (PREPARE, TRAIN):  # prepare_images', training's and prediction's progress
        assert any(WIDGET in output.get("data", {}) for output in cells[source]), source
    without_widgets = "".join(text for output in cells[WITHOUT_WIDGETS]
                              for text in _texts(output))
    assert "1/1 - " in without_widgets and "val_loss:" in without_widgets  # Keras' epoch line
    assert not any(WIDGET in output.get("data", {}) for output in cells[WITHOUT_WIDGETS])
