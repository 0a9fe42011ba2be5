"""The 2026-style system in one call: from a data folder to a checked run file and a report.

What AUEB/Archimedes (ImageCLEFmed Caption 2026) did, and how each step is done here:

1. members from a stated grid (backbones x seeds) made by
   :meth:`ConceptEnsemble.from_grid`, each trained on the training images
   and saved as soon as it is done (``members/member-NN.zip``), so that an
   interrupted run resumes: a member whose file exists is loaded, not
   trained (once checked against the plan). The plan is kept as
   ``plan.json`` with the training data's identity; a rerun with other
   settings or on changed training data is refused, naming what differs;
2. on the validation images, three decisions tuned for the official score:
   the 2024 recipe (the members' mean, one threshold), votes (each member's
   threshold and the vote count ``L`` together, :class:`EnsembleTuner`) and
   the mean with a count model (:class:`ThresholdTuner`'s
   ``count_coverage``: one threshold and the coverage of a
   :class:`ConceptCountRegressor`'s interval, kept only when it gains);
3. the better of votes and mean + count on validation is kept. The count
   model bounds each image's concepts by ranking its *scores*; a vote
   decision has no score to rank (a concept has L votes or not), so the two
   do not compose without new machinery: they are compared instead;
4. the test images (else the validation images, said so) predicted, the
   run file written in the 2026 format, read back as the 2026 evaluator
   reads it, scored (primary and secondary) when the truth is there, and
   an HTML report with the split's ceilings.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files._atomic import check_outside, checked_file_name, write_atomically
from ..models._persistence import jsonable
from ..utils._interrupts import noticing_interrupts, raise_if_interrupted
from ._2026_checks import (
    check_layout,
    check_members,
    check_recipe_fields,
    check_store_place,
    check_store_room,
    check_training_size,
    check_tuning_settings,
    make_dry_run_data,
    members_demands,
    recipe_tuners,
    retrieval_file_demand,
)
from ._2026_parts import (
    check_data_identity,
    claim_output,
    data_identity,
    estimate_compute,
    fit_retrieval,
    load_splits,
    member_files,
    output_kept,
    plan_lines,
    retrieval_template,
    train_members,
)

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Callable

    from .._typing import PathLike

PLAN_FILE = "plan.json"


@dataclass
class Recipe2026:
    """What the 2026-style system trains and tunes.

    Attributes
    ----------
    grid : dict
        What varies between members (``ConceptEnsemble.from_grid``'s grid):
        by default three ImageNet backbones x four seeds.
    estimator_params : dict
        The :class:`ConceptCNNClassifier` template's parameters: by default
        ImageNet weights, GeM pooling, two epochs with the backbone frozen.
    thresholds : int or array-like of float
        Candidate thresholds of every tuner: that many (2 to 1,000), or the
        given ones, in [0, 1].
    count_coverage : tuple or array-like
        The count model's coverages tried, each in (0, 1) (None: no count model).
    retrieval_encoder : str or None
        An encoder's name (``imageclef-concepts embed --encoder``): adds a
        member, a k-NN over its embeddings (the 2026 winner's training-free
        retrieval), its images embedded once into ``<output>/embedding-store``.
    retrieval_params : dict
        The encoder's parameters (``weights``, ``image_size``...).
    retrieval_neighbors : int
        The k-NN's neighbours (at least 1). Every field is checked, its type
        and values, before anything is written or trained.

    Examples
    --------
    >>> from imageclef_concepts import Recipe2026
    >>> recipe = Recipe2026(grid={"backbone": ["densenet121"], "random_state": [0, 1]})
    >>> recipe.estimator_params["pooling"], recipe.count_coverage
    ('gem', (None, 0.8, 0.9))
    """

    grid: dict = field(default_factory=lambda: {
        "backbone": ["densenet121", "efficientnetv2b0", "convnexttiny"],
        "random_state": [0, 1, 2, 3]})
    estimator_params: dict = field(default_factory=lambda: dict(
        weights="imagenet", pooling="gem", image_size=224, freeze_epochs=2, epochs=12,
        early_stopping_patience=3, reduce_lr_patience=2, learning_rate=1e-3,
        fine_tune_learning_rate=1e-4, decay=0.0, batch_size=32, augmentation="light"))
    thresholds: int = 20
    count_coverage: tuple = (None, 0.8, 0.9)
    retrieval_encoder: str | None = None
    retrieval_params: dict = field(default_factory=dict)
    retrieval_neighbors: int = 10


# Tiny networks on a small synthetic dataset: the whole procedure in well
# under a minute on 2 CPU cores (what CI runs).
DRY_RUN = Recipe2026(
    grid={"filters": [(4, 8), (8,)], "random_state": [0, 1]},
    estimator_params=dict(image_size=16, dense_units=(16,), epochs=2, batch_size=16,
                          learning_rate=3e-3, decay=0.0),
    thresholds=12, count_coverage=(None, 0.8))


@dataclass
class RecipeResult:
    """What :func:`run_recipe_2026` did: the plan, the scores and the files.

    Attributes
    ----------
    plan : dict
        As stored in ``plan.json``.
    n_trained, n_loaded : int
        Members trained in this call, and loaded from an earlier one.
    validation_scores : dict
        The official F1 on the validation images of each tuned decision
        (tuned there: optimistic): ``"mean"`` (the 2024 recipe),
        ``"votes"``, ``"mean+count"``.
    chosen : str
        The decision used for the run file (``"votes"`` or ``"mean+count"``).
    predicted_split : str
        ``"test"``, or ``"valid"`` when there is no test folder.
    run_file, report_file : Path or None
    primary, secondary : float or None
        The run file's official scores, when the truth is there.
    bounds : dict
        The split's ceilings (:func:`oracle_bounds`) as dictionaries.
    timings : dict
        Seconds per step.

    Examples
    --------
    >>> from imageclef_concepts import RecipeResult
    >>> RecipeResult(plan={}).primary is None
    True
    """

    plan: dict
    n_trained: int = 0
    n_loaded: int = 0
    validation_scores: dict = field(default_factory=dict)
    chosen: str = ""
    predicted_split: str = ""
    run_file: Path | None = None
    report_file: Path | None = None
    primary: float | None = None
    secondary: float | None = None
    bounds: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def run_recipe_2026(data_dir: PathLike | None, output_dir: PathLike, *,
                    recipe: Recipe2026 | None = None, dry_run: bool = False,
                    image_store: PathLike | None = None, n_jobs: int | None = None,
                    say: Callable[[str], object] = print) -> RecipeResult:
    """Train, tune, predict and check the 2026-style system, resuming what is done.

    Parameters
    ----------
    data_dir : str, path-like or None
        A dataset in the 2025/2026 layout (:func:`find_imageclef_layout`);
        None with ``dry_run`` (then ``<output_dir>/data``, generated), and
        only then.
    output_dir : str or path-like
        New, empty, or made by this function earlier (resumed when its plan
        is the same, refused when not). Receives ``plan.json``,
        ``members/``, ``image-store/``, ``run.csv``, ``report.html`` and
        ``summary.json``.
    recipe : Recipe2026, default=None
        The grid and template; :class:`Recipe2026`'s defaults (a GPU's
        work) or, with ``dry_run``, tiny networks.
    dry_run : bool, default=False
        Synthetic data in the same layout (:func:`make_imageclef_layout`),
        tiny members.
    image_store : str or path-like, default=None
        The image store the members share (default ``<output_dir>/image-store``).
    n_jobs : int, default=None
        Members trained at once through joblib (its active backend: a Dask
        or Ray cluster under ``joblib.parallel_config``).
    say : callable, default=print

    Returns
    -------
    RecipeResult

    Examples
    --------
    >>> from imageclef_concepts import run_recipe_2026
    >>> result = run_recipe_2026(None, "out", dry_run=True)  # doctest: +SKIP
    >>> result.primary  # doctest: +SKIP
    """
    # A name no folder can have (a lone surrogate): refused by name, before anything.
    output_dir = checked_file_name(output_dir, "output folder")
    data_dir = None if data_dir is None else checked_file_name(data_dir, "data folder")
    image_store = None if image_store is None else checked_file_name(image_store,
                                                                       "image store")
    with noticing_interrupts():
        return _run(data_dir, Path(output_dir).absolute(),
                    recipe or (DRY_RUN if dry_run else Recipe2026()), dry_run, image_store,
                    n_jobs, say)


def _run(data_dir, output_dir, recipe, dry_run, image_store, n_jobs, say):
    from ..datasets._layout_2026 import find_imageclef_layout
    from ..images._store import as_image_store

    started = time.perf_counter()
    check_recipe_fields(recipe)  # each of the type it takes, before anything is made
    if (data_dir is None) != dry_run:  # the dry run's data lives in the output folder it owns
        raise ValueError("give a data folder, or dry_run=True (which makes its own data in "
                         "the output folder), not both.")
    data_dir = Path(output_dir / "data" if data_dir is None else data_dir).resolve()
    store = Path(image_store).absolute() if image_store is not None else output_dir / "image-store"
    if image_store is not None:  # not where the run's or the user's files are
        check_store_place(store, output_dir, data_dir)
    members = _grid_ensemble(recipe, store).estimators
    check_members(members, n_jobs)  # every grid point, before anything is written or trained
    check_tuning_settings(recipe, members)  # thresholds, count_coverage: as the tuners will
    retrieval = retrieval_template(recipe, output_dir)  # an unknown encoder named first
    if not dry_run:
        check_outside(output_dir, [("the data folder", data_dir)], "output")
        # the inputs, before anything is written
        check_layout(find_imageclef_layout(data_dir), recipe.count_coverage)
    # A user's store outside the output, refused (their files, a file, no room for the
    # data's images) before the claim; the run's own, and the dry run's data, after it.
    users = image_store is not None and output_dir not in (store, *store.parents)
    if users:
        as_image_store(store)
    room_asked = users and not dry_run
    if room_asked:
        check_store_room(members, store, _splits(find_imageclef_layout(data_dir)))
    plan = _plan(recipe, data_dir)
    claim_output(output_dir, plan, PLAN_FILE)
    kept = output_kept(output_dir, PLAN_FILE)
    opened = _open_stores(members, retrieval, store)
    if dry_run:  # its own data, made now, checked as a data folder is (count_coverage)
        make_dry_run_data(data_dir, recipe.estimator_params.get("image_size", 32))
        check_layout(find_imageclef_layout(data_dir), recipe.count_coverage)
    layout = find_imageclef_layout(data_dir)
    check_data_identity(output_dir, PLAN_FILE, data_identity(layout["train"], members=members))
    result = RecipeResult(plan=plan)
    train, valid = load_splits(layout)
    check_training_size([(f"member {name!r}", member) for name, member in members],
                        len(train.paths), f"{layout['train'].concepts}: {len(train.paths)} "
                        "training image(s) have a line")
    if retrieval is not None and retrieval.n_neighbors > len(train.paths):  # fitted last
        raise ValueError(f"retrieval_neighbors={retrieval.n_neighbors} is more than "
                         f"the {len(train.paths)} training images: choose fewer.")
    files = member_files(output_dir, len(members))
    todo = [member for (_, member), path in zip(members, files) if not path.is_file()]
    written = members_demands(todo, len({c for cs in train.concepts for c in cs}), output_dir)
    if retrieval is not None and not (files[0].parent / "retrieval.zip").is_file():
        written.append(retrieval_file_demand(retrieval, recipe.retrieval_encoder, train,
                                             output_dir))
    # Again for a user's store: with the embeddings and the members' files on its disk.
    # The store the run opened (by path, it was made in a folder put at the output's path
    # while the members' files were counted).
    check_store_room(members, opened, _splits(layout), retrieval, recipe.retrieval_encoder,
                     written, own=not users)
    for line in plan_lines(plan, layout, output_dir, store, files):
        say(line)
    say(estimate_compute(members, files, train, recipe.estimator_params))
    raise_if_interrupted()
    fitted, result.n_trained, result.n_loaded = train_members(
        members, files, train, n_jobs, say, kept)
    names = [name for name, _ in members]
    if retrieval is not None:
        fitted.append(fit_retrieval(retrieval, files[0].parent / "retrieval.zip", train, say,
                                    kept))
        names.append("retrieval")
    result.timings["members"] = time.perf_counter() - started
    kept()  # no tuning for an output that is gone
    model = _tune(fitted, names, recipe, valid, result, say)
    raise_if_interrupted()
    _predict_and_check(model, layout, train, output_dir, result, say, kept)
    result.timings["total"] = time.perf_counter() - started
    summary = json.dumps(jsonable({**vars(result), "run_file": str(result.run_file),
                                   "report_file": str(result.report_file)}), indent=2)
    kept()
    write_atomically(output_dir / "summary.json", lambda h: h.write(summary.encode()))
    return result


def _open_stores(members, retrieval, store):
    """Hand every member the run's stores opened once, not their paths.

    A store opened by path is opened, and made, anew at each fit and predict,
    so a folder put at the output's path while the members were tuned or
    predicted got the run's store made in it. An opened store writes only into
    the folder it opened, and warns once when that is gone (the run's next
    write then refuses the output).
    """
    from ..embeddings._store import as_embedding_store
    from ..images._store import as_image_store

    opened = as_image_store(store)
    for _, member in members:
        member.set_params(image_store=opened)
    if retrieval is not None:
        retrieval.set_params(embedding_store=as_embedding_store(retrieval.embedding_store))
    return opened


def _splits(layout):  # the image files a run stores: training, validation, predicted
    return [split.paths for split in load_splits(layout)] + [_predicted_images(layout)]


def _predicted_images(layout):
    """The image files of the split the run file is for (every one is predicted)."""
    from ..datasets._imageclef import image_files_by_id

    images = layout["test" if "test" in layout else "valid"].images
    return [path for paths in image_files_by_id(images).values() for path in paths]


def _plan(recipe, data_dir):
    plan = {"procedure": "imageclef-concepts recipe-2026", "data": str(data_dir),
            "grid": recipe.grid, "estimator_params": recipe.estimator_params,
            "thresholds": recipe.thresholds if np.ndim(recipe.thresholds) == 0 else
            list(recipe.thresholds), "count_coverage": list(recipe.count_coverage)}
    if recipe.retrieval_encoder is not None:  # plans without one stay as they were
        plan["retrieval"] = {"encoder": recipe.retrieval_encoder,
                             "params": recipe.retrieval_params,
                             "n_neighbors": recipe.retrieval_neighbors}
    plan = jsonable(plan)
    parts = {"grid": plan["grid"], "estimator_params": plan["estimator_params"],
             "retrieval_params": plan.get("retrieval", {}).get("params", {})}
    for part, values in parts.items():  # refused before the output is made
        for name, value in (values.items() if isinstance(values, dict) else [(0, values)]):
            try:
                json.dumps(value)
            except (TypeError, ValueError):  # a user's network or optimizer object
                shown = f"{part}[{name!r}]" if isinstance(values, dict) else part
                raise ValueError(f"recipe {shown}={value!r:.80}: not a value "
                                 "plan.json can record (names, numbers and lists), so a rerun "
                                 "could not tell it is the same: give it by name, or train "
                                 "such members with ConceptEnsemble.from_grid.") from None
    return plan


def _grid_ensemble(recipe, store):
    from ..estimators._ensemble import ConceptEnsemble
    from ..keras import ConceptCNNClassifier

    template = ConceptCNNClassifier(**recipe.estimator_params, image_store=str(store))
    return ConceptEnsemble.from_grid(template, recipe.grid, prefit=True)


def _tune(fitted, names, recipe, valid, result, say):
    """The three decisions tuned on the validation images; the better of the last two kept."""
    start = time.perf_counter()
    tuned, result.validation_scores, result.chosen = tune_decisions(
        list(zip(names, fitted)), valid.paths, valid.concepts, recipe)
    plain, votes, counted = tuned["mean"], tuned["votes"], tuned["mean+count"]
    say(f"Tuned on {len(valid.paths)} validation images (official F1 there, optimistic): 2024 "
        f"recipe (mean, one threshold {plain.best_threshold_:.3f}) {plain.best_score_:.4f}; "
        f"votes (L={votes.min_votes_} of {len(names)}) {votes.best_score_:.4f}; mean + count "
        f"model (coverage {counted.count_coverage_}) {counted.best_score_:.4f}. Kept: "
        f"{result.chosen}.")
    result.timings["tuning"] = time.perf_counter() - start
    return tuned[result.chosen]


def tune_decisions(members, X, y, recipe):
    """The 2024 recipe, votes and mean + count model, each tuned on ``(X, y)``.

    ``members`` are fitted ``(name, estimator)`` pairs. Returns the three
    fitted tuners by name (``"mean"``, ``"votes"``, ``"mean+count"``), their
    official F1 on ``(X, y)``, and the name of the better of the last two
    (votes when strictly better).
    """
    from sklearn.frozen import FrozenEstimator

    from ..estimators._ensemble import ConceptEnsemble

    mean = FrozenEstimator(ConceptEnsemble(members, prefit=True).fit(X, y))
    voting = ConceptEnsemble(members, combine="vote", prefit=True).fit(X, y)
    tuned = {name: tuner.fit(X, y) for name, tuner in recipe_tuners(recipe, mean, voting).items()}
    scores = {name: float(model.best_score_) for name, model in tuned.items()}
    chosen = "votes" if scores["votes"] > scores["mean+count"] else "mean+count"
    return tuned, scores, chosen


def _predict_and_check(model, layout, train, output_dir, result, say, kept):
    """The run file in the 2026 format, read back, scored and reported when the truth is there."""
    from ..concept_files._evaluation import evaluate_run
    from ..concept_files._io import read_concepts, write_run
    from ..report._html import run_bounds, write_report
    from ._workflows import predict_folder

    start = time.perf_counter()
    split = "test" if "test" in layout else "valid"
    result.predicted_split = split
    images, truth, manual = layout[split].images, layout[split].concepts, layout[split].manual
    ids = None if truth is None else read_concepts(truth, edition="2026").ids
    kept()  # no predicting for an output that is gone
    ids, concepts = predict_folder(model, images, ids=ids, progress=False)
    result.run_file = output_dir / "run.csv"
    kept()
    write_run(result.run_file, ids, concepts, edition="2026")
    checked = read_concepts(result.run_file, edition="2026")  # the submission's format check
    where = "test" if split == "test" else "validation (no test folder; tuned there: optimistic)"
    say(f"Wrote {result.run_file}: {len(checked.ids)} {where} images, read back as the 2026 "
        "evaluator reads it")
    if truth is not None:
        evaluation = evaluate_run(result.run_file, truth, edition="2026", secondary_truth=manual)
        result.primary, result.secondary = evaluation.score, evaluation.secondary_score
        bounds = run_bounds(evaluation, train.concepts)
        result.bounds = {name: found.to_dict() for name, found in bounds.items()}
        result.report_file = output_dir / "report.html"
        kept()
        write_report(result.report_file, evaluation, train_concepts=train.concepts,
                     images=images, bounds=bounds)
        secondary = ("" if result.secondary is None else
                     f", secondary F1 {result.secondary:.4f}")
        say(f"Official F1 on the {split} images: {result.primary:.4f}{secondary}; ceiling "
            f"(perfect model on the training vocabulary) "
            f"{bounds['primary'].vocabulary_f1:.4f}. Report: {result.report_file}")
    else:
        say(f"No ground truth for the {split} images: the run file is not scored.")
    result.timings["predict"] = time.perf_counter() - start
