"""The main job: the paper's pipeline end to end on built-in synthetic data.

Generate a dataset in the ImageCLEF layout, run a two-round coarse-to-fine
``GridSearchCV`` over ``ConceptCNNClassifier`` inside a ``ThresholdTuner``,
and compare on held-out images the most-frequent-concepts baseline with the
CNN at 0.5, at the paper's 0.1 and at the tuned threshold.
"""

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold, train_test_split

from ..concept_files._io import write_run
from ..concepts._metrics import imageclef_f1_score
from ..datasets._imageclef import load_imageclef, make_concept_images
from ..estimators._baselines import MostFrequentConcepts
from ..tuning._thresholds import ThresholdTuner
from ._workflows import coarse_to_fine_search, concepts_at_thresholds, save_model


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: CPU-sized, minutes on 2 cores."""

    n_images: int
    n_concepts: int
    image_size: int
    filters: tuple
    epochs: int
    learning_rates: tuple


FULL = DemoSize(n_images=1600, n_concepts=16, image_size=48, filters=(8, 16, 32), epochs=20,
                learning_rates=(3e-4, 1e-3, 3e-3))
QUICK = DemoSize(n_images=700, n_concepts=10, image_size=32, filters=(8, 16), epochs=15,
                 learning_rates=(1e-3, 3e-3))


def run_demo(output, *, quick=False, size=None, random_state=0, say=print, progress=True):
    """Run the demo, writing its data, run file, model and plots into ``output``.

    Parameters
    ----------
    output : str or path-like
        Folder for everything the demo writes (created if needed).
    quick : bool, default=False
        A smaller configuration (under a minute on 2 cores).
    size : DemoSize, default=None
        Any other configuration; overrides ``quick``.
    random_state : int, default=0
    say : callable, default=print
        Where progress lines go.
    progress : bool, default=True
        One line per fit of the grid search (scikit-learn's own: which fold
        and configuration of how many, the score and the time).

    Returns
    -------
    dict
        ``scores`` (official F1 per row of the table), ``best_params``,
        ``threshold``, ``seconds``, the paths written (``test_truth`` is the
        held-out images' ground truth, beside the run file) and
        ``evaluate_command``, the command line that scores the run file
        against it: the tuned CNN's row of the table.
    """
    started = time.perf_counter()
    size = size or (QUICK if quick else FULL)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    say(f"Generating {size.n_images} synthetic images ({size.n_concepts} concepts, "
        f"{size.image_size}px) in {output / 'data'}")
    generated = make_concept_images(size.n_images, size.n_concepts, size.image_size,
                                    random_state=random_state, directory=output / "data")
    dataset = load_imageclef(output / "data" / "images", generated.concepts_file)
    paths, ids = np.array(dataset.paths), np.array(dataset.ids)
    concepts = np.array([";".join(c) for c in dataset.concepts], dtype=object)
    train, test = train_test_split(np.arange(len(paths)), test_size=0.25,
                                   random_state=random_state)

    search = _coarse_to_fine(paths[train], concepts[train], size, random_state, say,
                             verbose=3 if progress else 0)
    tuner = search.best_estimator_
    tuned = tuner.predict(paths[test])
    scores = _compare(tuner, tuned, paths, concepts, train, test)
    say("")
    say(results_table(scores))
    non_visual = set(generated.concept_names[~generated.is_visual])
    written = _write_outputs(output, tuner, tuned, ids[test], concepts, train, test, non_visual)
    seconds = time.perf_counter() - started
    command = evaluate_command(written["run_file"], written["test_truth"])
    summary = {"scores": scores, "best_params": search.best_params_,
               "threshold": tuner.best_threshold_, "seconds": seconds, **written,
               "evaluate_command": command}
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    say(f"\nWrote {', '.join(Path(p).name for p in written.values())} and summary.json "
        f"to {output} in {seconds:.0f} s")
    say(f"The tuned CNN's score, from the files:\n  {command}")
    return summary


def evaluate_command(run_file, truth_file):
    """The ``evaluate`` command line that scores ``run_file`` against ``truth_file``."""
    return shlex.join(["imageclef-concepts", "evaluate", str(run_file), str(truth_file)])


def _coarse_to_fine(paths, concepts, size, random_state, say, verbose):
    """The CNN inside a ThresholdTuner, searched over the learning rate in two rounds."""
    from ..keras import ConceptCNNClassifier

    cnn = ConceptCNNClassifier(image_size=size.image_size, filters=size.filters,
                               dense_units=(64,), dense_dropout=0.3, conv_dropout=0.1,
                               decay=0.0, epochs=size.epochs, random_state=random_state)
    tuner = ThresholdTuner(cnn, cv=0.25, refit=False, thresholds=50,
                           random_state=random_state, store_cv_results=True)
    searches = coarse_to_fine_search(
        tuner, {"estimator__learning_rate": list(size.learning_rates)}, paths, concepts,
        say=say, cv=KFold(2, shuffle=True, random_state=random_state), refit=True,
        verbose=verbose)
    return searches[-1]


def _compare(tuner, tuned, paths, concepts, train, test):
    truth = concepts[test]
    baseline = MostFrequentConcepts().fit(paths[train], concepts[train])
    at = concepts_at_thresholds(tuner.estimator_, paths[test], (0.5, 0.1))
    return {
        f"most frequent concepts (k={baseline.k_})": imageclef_f1_score(
            truth, baseline.predict(paths[test])),
        "CNN, threshold 0.5": imageclef_f1_score(truth, at[0.5]),
        "CNN, the paper's threshold 0.1": imageclef_f1_score(truth, at[0.1]),
        f"CNN, tuned threshold {tuner.best_threshold_:.3f}": imageclef_f1_score(truth, tuned),
    }


def results_table(scores):
    """The demo's results as a two-column text table."""
    width = max(len(name) for name in scores)
    lines = [f"{'held-out images':<{width}}  official F1", f"{'-' * width}  -----------"]
    lines += [f"{name:<{width}}  {score:11.4f}" for name, score in scores.items()]
    return "\n".join(lines)


def _write_outputs(output, tuner, tuned, test_ids, concepts, train, test, non_visual):
    from ..report._plots import (
        plot_concept_frequencies,
        plot_per_concept_f1,
        plot_threshold_curve,
        plot_training_history,
        save_figure,
    )

    run_file = output / "run.tsv"
    write_run(run_file, test_ids, tuned, layout="2019")
    # The held-out images' own ground truth, so that `evaluate` scores the run
    # against the images it holds (data/concepts.tsv holds every image).
    test_truth = output / "test_concepts.tsv"
    write_run(test_truth, test_ids, list(concepts[test]), layout="2019")
    model_file = output / "model.keras"
    save_model(tuner, model_file)  # the CNN with its tuned decision rule, in one native file
    cnn = tuner.estimator_
    figures = {
        "concept_frequencies.png": plot_concept_frequencies(concepts[train]),
        "threshold_curve.png": plot_threshold_curve(tuner),
        "training_history.png": plot_training_history(cnn.history_),
        "per_concept_f1.png": plot_per_concept_f1(
            concepts[test], tuned, train_concepts=concepts[train],
            non_visual=non_visual),
    }
    written = {"run_file": str(run_file), "test_truth": str(test_truth),
               "model_file": str(model_file)}
    for name, figure in figures.items():
        save_figure(figure, output / name)
        written[name.removesuffix(".png")] = str(output / name)
    return written
