"""The MacUni-CSIRO ImageCLEF 2019 procedure, step by step, from the data to the run file.

What the paper did, and how each step is done here:

1. training and validation concepts combined, so that every concept has an
   output (5,528 on the real data; 312 concepts occur in validation only);
2. a coarse-to-fine search over the learning rate, the batch size and the
   decay, each configuration trained for 10 epochs and kept at its best
   epoch by accuracy (``monitor="val_binary_accuracy"``);
3. the threshold (0.1) chosen on held-out data: a stated fraction of the
   combined data, drawn with a fixed seed, is held out from training; the
   official F1 at 0.1 and at the best threshold are reported there, and 0.1
   is used unless ``tune_threshold``;
4. the test images predicted and the run file written in the 2019 layout,
   checked, and scored when a test ground truth is there;
5. a report (Markdown and JSON) with every setting, every round's grid and
   scores, the threshold curve, the number of outputs, the timings and the
   final score beside the paper's 0.1435.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..concept_files._evaluation import evaluate_run
from ..concept_files._io import read_concepts, write_run
from ..datasets._imageclef import SPLITS_2019, load_imageclef
from ..datasets._split_checks import check_concept_file_kind
from ..files._atomic import check_outside, write_atomically
from ..models import _paper as paper
from ..models._persistence import jsonable
from ._workflows import coarse_to_fine_search, predict_folder, save_model, train_and_tune, tune_rule

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Callable
    from typing import Any

    from .._typing import PathLike


@dataclass
class Reproduction:
    """What the paper's procedure needs beyond the estimator's defaults.

    Attributes
    ----------
    first_grid : dict
        Round 1 of the coarse-to-fine search (``refine_grid`` makes the next).
    n_rounds : int
        Rounds of the search.
    holdout_fraction : float
        Share of the combined data held out for choosing among configurations
        and for the threshold.
    estimator_params : dict
        ConceptCNNClassifier parameters (the paper's defaults when empty).
    """

    first_grid: dict = field(default_factory=lambda: {
        "learning_rate": [1e-5, 1e-4, 1e-3], "batch_size": [16, 32, 64],
        "decay": [1e-7, 1e-6, 1e-5]})
    n_rounds: int = 2
    holdout_fraction: float = 0.1
    estimator_params: dict = field(default_factory=dict)


# A run of the whole procedure in about a minute on 2 CPU cores, on a small
# synthetic dataset in the 2019 layout: what CI runs.
DRY_RUN = Reproduction(
    first_grid={"learning_rate": [1e-3, 1e-2], "decay": [1e-6, 1e-4]},
    n_rounds=2, holdout_fraction=0.25,
    estimator_params=dict(image_size=32, filters=(8, 16), dense_units=(16,), epochs=3,
                          batch_size=16))


def find_2019_layout(data_dir):
    """The image folder and concept file of each split of a dataset in the 2019 layout.

    ``<data_dir>/<split>_concepts.tsv`` (any layout :func:`read_concepts`
    reads) with the images in ``<data_dir>/<split>/`` or, for all splits at
    once, ``<data_dir>/images/``; splits ``train``, ``valid`` and ``test``
    (the test concept file is optional: it scores the run).
    """
    data_dir = Path(data_dir)
    layout = {}
    for split in SPLITS_2019:
        concepts = data_dir / f"{split}_concepts.tsv"
        images = data_dir / split if (data_dir / split).is_dir() else data_dir / "images"
        check_concept_file_kind(concepts)  # not a file passed for none (a test truth unscored)
        if split != "test" and not concepts.is_file():
            raise FileNotFoundError(f"{concepts} not found: the 2019 layout has "
                                    "train_concepts.tsv and valid_concepts.tsv.")
        if not images.is_dir():
            raise FileNotFoundError(f"no image folder for {split}: expected {data_dir / split} "
                                    f"or {data_dir / 'images'}.")
        layout[split] = (images, concepts if concepts.is_file() else None)
    return layout


def check_2019_layout(layout):
    """Refuse, before the search, inputs that would fail it or the steps after it.

    Each split's folder must hold an image, and each image file be one; every training and
    validation image learned (lines without an image are left out, but not all of a file's)
    and their concepts ones a 2019 run can hold; each test truth id an image there, and the
    truth one a run can be scored against, or, without it, each test image's name an id a
    2019 run can hold. Found after the search and the training, each cost their hours.
    """
    from sklearn.utils import Bunch

    from ..concept_files._evaluation import check_ground_truth
    from ..concept_files._io import concepts_no_run_holds
    from ..concept_files._text import ConceptFileError
    from ..datasets._split_checks import check_split_images, check_split_lines
    from ._workflows import check_run_ids_of_folder

    files = {}
    for split, (images, concepts) in layout.items():
        files[split] = check_split_lines(split, Bunch(images=images, concepts=concepts),
                                         learned=split != "test", edition="auto")  # as read
        problems = [] if split == "test" else concepts_no_run_holds(concepts, "2019")
        if problems:
            raise ConceptFileError(problems, f"{concepts}: the model would learn concepts "
                                   "that a 2019 run file cannot hold")
    check_split_images(files)  # of every split at once
    images, truth = layout["test"]
    if truth is None:  # the run's ids are the test images' names: each one writable
        check_run_ids_of_folder(images, "2019")
    else:  # by the rules it is read by, as the run is scored against it
        check_ground_truth(truth, edition=read_concepts(truth).edition)


def reproduce_2019(data_dir: PathLike, output_dir: PathLike, *, merge_validation: bool = True,
                   tune_threshold: bool = False, procedure: Reproduction | None = None,
                   random_state: int = 0,
                   say: Callable[[str], object] = print) -> dict[str, Any]:
    """Run the paper's procedure and write its run file and report.

    Parameters
    ----------
    data_dir : str or path-like
        A dataset in the 2019 layout (:func:`find_2019_layout`).
    output_dir : str or path-like
        Where ``run.tsv``, ``model.keras``, ``report.md`` and ``report.json``
        go (created): a new or empty folder (a folder holding anything else is refused).
    merge_validation : bool, default=True
        Train on training and validation images together, as the paper did.
    tune_threshold : bool, default=False
        Use the threshold that is best on the held-out data instead of the
        paper's 0.1.
    procedure : Reproduction, default=None
        The search and hold-out; the paper's when None.
    random_state : int, default=0
        Seeds the hold-out and the networks.
    say : callable, default=print

    Returns
    -------
    dict
        The report's content.

    Examples
    --------
    >>> from imageclef_concepts import make_imageclef_2019_layout, reproduce_2019
    >>> from imageclef_concepts.recipes._reproduce import DRY_RUN
    >>> make_imageclef_2019_layout("data")  # doctest: +SKIP
    >>> report = reproduce_2019("data", "out", procedure=DRY_RUN)  # doctest: +SKIP
    """
    procedure = procedure or Reproduction()
    started = time.perf_counter()
    output_dir = Path(output_dir)
    layout = find_2019_layout(data_dir)
    # not among the user's images (a dry run's data is inside its output: that is fine)
    check_outside(output_dir, [("the data folder", data_dir)], "output")
    held = sorted(entry.name for entry in (output_dir.iterdir() if output_dir.is_dir() else ())
                  if entry.resolve() != Path(data_dir).resolve())  # but a dry run's own data
    if held:  # a user's report.md or run.tsv would be replaced
        raise ValueError(f"output {output_dir} is not empty ({', '.join(held[:5])}): name a new "
                         "or empty folder; nothing in it is replaced.")
    check_2019_layout(layout)
    report: dict[str, Any] = {"paper_test_f1": paper.TEST_F1, "settings": {
        "merge_validation": merge_validation, "tune_threshold": tune_threshold,
        "holdout_fraction": procedure.holdout_fraction, "random_state": random_state,
        "monitor": paper.MONITOR, "estimator_params": jsonable(procedure.estimator_params)},
        "timings_s": {}, "machine": {"python": platform.python_version(),
                                     "processor": platform.processor()}}

    paths, concepts, vocabulary = _step_data(layout, merge_validation, report, say)
    fit_part, holdout = _holdout(len(paths), procedure.holdout_fraction, random_state)
    report["n_training_images"], report["n_holdout_images"] = len(fit_part), len(holdout)
    _check_search_size(_search_params(procedure, random_state), len(paths), procedure,
                       merge_validation)
    output_dir.mkdir(parents=True, exist_ok=True)

    model = _step_search(paths, concepts, fit_part, holdout, procedure, random_state,
                         report, say)
    threshold = _step_threshold(model, paths[holdout], concepts[holdout], tune_threshold,
                                report, say)
    model.set_params(threshold=threshold)
    save_model(model, output_dir / "model.keras")
    report["n_outputs"] = len(model.classes_)
    _step_test(model, layout["test"], output_dir, report, say)
    report["timings_s"]["total"] = time.perf_counter() - started
    _write_report(output_dir, report)
    say(f"Wrote {output_dir / 'run.tsv'}, model.keras, report.md and report.json")
    return report


def _step_data(layout, merge_validation, report, say):
    """Step 1: the training concepts, with validation's merged in."""
    start = time.perf_counter()
    train = load_imageclef(*layout["train"])
    valid = load_imageclef(*layout["valid"])
    in_train = {c for image in train.concepts for c in image}
    in_valid = {c for image in valid.concepts for c in image}
    report["concepts"] = {"train": len(in_train), "valid": len(in_valid),
                          "only_in_train": len(in_train - in_valid),
                          "only_in_valid": len(in_valid - in_train),
                          "combined": len(in_train | in_valid)}
    say(f"Step 1: {len(train.paths)} training and {len(valid.paths)} validation images; "
        f"{len(in_train | in_valid)} concepts in all, {len(in_valid - in_train)} only in "
        f"validation, {len(in_train - in_valid)} only in training"
        + ("; merged, as in the paper" if merge_validation else "; validation not merged"))
    images = train.paths + (valid.paths if merge_validation else [])
    concepts = train.concepts + (valid.concepts if merge_validation else [])
    report["timings_s"]["data"] = time.perf_counter() - start
    joined = np.array([";".join(c) for c in concepts], dtype=object)
    return np.array(images), joined, in_train | (in_valid if merge_validation else set())


def _holdout(n_images, fraction, random_state):
    order = np.random.default_rng(random_state).permutation(n_images)
    n_holdout = _holdout_size(n_images, fraction)
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


def _holdout_size(n_images, fraction):
    return max(1, int(round(fraction * n_images)))


def _search_params(procedure, random_state):
    """The searched estimator's parameters, before the grid's."""
    return {"random_state": random_state, "metrics": ["binary_accuracy"],
            "monitor": paper.MONITOR, "threshold": paper.THRESHOLD,
            **procedure.estimator_params}


def _check_search_size(params, n_images, procedure, merged):
    """Refuse, before the search, images too few for the estimator's own validation split
    once the hold-out is out: every fit of the search failed on it."""
    from ..keras import ConceptCNNClassifier
    from ._2026_checks import check_training_size

    kept = n_images - _holdout_size(n_images, procedure.holdout_fraction)
    images = "training and validation images" if merged else "training images"
    check_training_size(
        [("ConceptCNNClassifier", ConceptCNNClassifier(**params))], n_images,
        f"{kept} images train the search (the {n_images} {images}, less the "
        f"{n_images - kept} held out for choosing among its settings)", images,
        kept=lambda n: n - _holdout_size(n, procedure.holdout_fraction))


def _step_search(paths, concepts, fit_part, holdout, procedure, random_state, report, say):
    """Step 2: the coarse-to-fine search, scored on the held-out part at the paper's 0.1."""
    from sklearn.model_selection import PredefinedSplit
    from sklearn.utils import Bunch

    from ..keras import ConceptCNNClassifier

    start = time.perf_counter()
    # The held-out part is the search's validation fold (test_fold 0); the rest trains.
    test_fold = np.full(len(paths), -1)
    test_fold[holdout] = 0
    params = _search_params(procedure, random_state)
    say("Step 2: the coarse-to-fine search, scored on the held-out part at the paper's 0.1")
    searches = coarse_to_fine_search(ConceptCNNClassifier(**params), procedure.first_grid,
                                     paths, concepts, n_rounds=procedure.n_rounds, say=say,
                                     refit=False, cv=PredefinedSplit(test_fold))
    report["search_rounds"] = [
        {"grid": jsonable(search.param_grid), "params": jsonable(search.cv_results_["params"]),
         "official_f1_at_0.1": search.cv_results_["mean_test_score"].tolist(),
         "best": jsonable(search.best_params_)} for search in searches]
    best = searches[-1].best_params_
    report["best_params"] = jsonable(best)
    model = train_and_tune(Bunch(paths=paths[fit_part], concepts=concepts[fit_part]),
                           say=lambda line: say(f"  {line}"), **{**params, **best})
    report["timings_s"]["search"] = time.perf_counter() - start
    return model


def _step_threshold(model, paths, concepts, tune_threshold, report, say):
    """Step 3: the official F1 on the held-out part at 0.1 and at every threshold."""
    from ..models._decision import DecisionRule

    tuner = tune_rule(model, paths, concepts, thresholds=np.linspace(0.01, 0.9, 90),
                      store_cv_results=True)
    curve = tuner.cv_results_
    at_paper = float(curve["scores"][np.argmin(np.abs(curve["thresholds"] - paper.THRESHOLD))])
    report["threshold"] = {
        "official_f1_at_0.1": at_paper, "best_threshold": tuner.best_threshold_,
        "official_f1_at_best": tuner.best_score_,
        "used": tuner.best_threshold_ if tune_threshold else paper.THRESHOLD,
        "curve": {"thresholds": curve["thresholds"].tolist(),
                  "official_f1": curve["scores"].tolist()}}
    say(f"Step 3: on the held-out part, official F1 {at_paper:.4f} at the paper's 0.1 and "
        f"{tuner.best_score_:.4f} at the best threshold {tuner.best_threshold_:.3f}; using "
        f"{report['threshold']['used']:.3f}")
    return DecisionRule(report["threshold"]["used"])


def _step_test(model, test_layout, output_dir, report, say):
    """Step 4: the test images' run file in the 2019 layout, checked and scored."""
    start = time.perf_counter()
    images_dir, truth_file = test_layout
    # With a test ground truth, its images in its order (each must have a file).
    ids = None if truth_file is None else read_concepts(truth_file).ids
    ids, concepts = predict_folder(model, images_dir, ids=ids, progress=False)
    run = output_dir / "run.tsv"
    write_run(run, ids, concepts, layout="2019")
    checked = read_concepts(run)  # the format check of the submission
    report["run_file"] = {"path": str(run), "n_images": len(checked.ids),
                          "layout": checked.layout}
    if truth_file is not None:
        report["run_file"]["official_f1"] = evaluate_run(run, truth_file).score
        say(f"Step 4: {len(ids)} test images; official F1 "
            f"{report['run_file']['official_f1']:.4f} (the paper: {paper.TEST_F1})")
    else:
        say(f"Step 4: {len(ids)} test images predicted; no test ground truth to score")
    report["timings_s"]["test"] = time.perf_counter() - start


def _write_report(output_dir, report):
    write_atomically(output_dir / "report.json",
                     lambda h: h.write(json.dumps(report, indent=2).encode()))
    threshold = report["threshold"]
    lines = [
        "# Reproducing MacUni-CSIRO, ImageCLEF 2019 concept detection", "",
        "| setting | value |", "|---|---|",
        *[f"| {key} | {value} |" for key, value in report["settings"].items()], "",
        f"Training images: {report['n_training_images']}; held out: "
        f"{report['n_holdout_images']}; outputs (concepts): {report['n_outputs']}.", "",
        "Concepts: " + ", ".join(f"{key} {value}" for key, value in
                                  report["concepts"].items()), "",
        "## Coarse-to-fine search (official F1 on the held-out part at 0.1)", ""]
    for number, search_round in enumerate(report["search_rounds"], start=1):
        lines += [f"Round {number}, grid `{search_round['grid']}`:", "",
                  "| configuration | official F1 |", "|---|---:|"]
        lines += [f"| {params} | {score:.4f} |" for params, score in
                  zip(search_round["params"], search_round["official_f1_at_0.1"])]
        lines.append("")
    lines += ["## Threshold", "",
              f"Official F1 on the held-out part: {threshold['official_f1_at_0.1']:.4f} at "
              f"0.1, {threshold['official_f1_at_best']:.4f} at the best threshold "
              f"{threshold['best_threshold']:.3f}; used: {threshold['used']:.3f}.", "",
              "## Run file", "",
              f"{report['run_file']['n_images']} test images, "
              f"{report['run_file']['layout']} layout."]
    if "official_f1" in report["run_file"]:
        lines.append(f"Official F1 on the test images: {report['run_file']['official_f1']:.4f} "
                     f"(the paper: {paper.TEST_F1}).")
    lines += ["", "Timings (s): " + ", ".join(f"{key} {value:.1f}" for key, value in
                                              report["timings_s"].items())]
    text = "\n".join(lines) + "\n"
    write_atomically(output_dir / "report.md", lambda h: h.write(text.encode()))
