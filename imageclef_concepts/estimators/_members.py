"""Ensemble members: made from a template and a grid, their random parts, their rows and concepts.

The 2025/2026 winners trained six backbones x four seeds and a Monte-Carlo
cross-validation sub-ensemble (members trained on different random parts of
the training data). :func:`grid_members` makes such members from one
template estimator and a grid of what varies (scikit-learn's
``ParameterGrid`` does the product), each named after what varies in it;
:func:`draw_samples` draws each member's part of the training images.
:meth:`ConceptEnsemble.from_grid <imageclef_concepts.ConceptEnsemble.from_grid>`
and ``ConceptEnsemble(subsample=...)`` use them.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid
from sklearn.utils import check_random_state

from ..models._base import fit_on_rows
from ..models._decision import DecisionRule


def grid_members(template, grid):
    """One clone of ``template`` per combination of ``grid``, named by what varies.

    Parameters
    ----------
    template : estimator
        Cloned for each member (never changed itself).
    grid : dict of str to list, or list of such dicts
        Parameter names of ``template`` (nested ones too: ``estimator__C``)
        and the values each takes, as for ``GridSearchCV``'s ``param_grid``.

    Returns
    -------
    list of (str, estimator)
        In ``ParameterGrid``'s order. A member is named ``key=value`` for each
        parameter that varies across the members (the key's last ``__`` part
        when that is unambiguous), joined with commas:
        ``"backbone=densenet121,random_state=0"``; slashes, backslashes and
        control characters (a path as a value) become '_', as a name is a folder of
        the saved model.

    Raises
    ------
    ValueError
        For an empty grid, a parameter the template does not have (naming
        it and the template's parameters), or a list of values that is empty
        or not a list.
    """
    grids = [grid] if isinstance(grid, Mapping) else grid
    if not isinstance(grids, Sequence) or isinstance(grids, str) or not grids:
        raise ValueError(f"grid must be a dict of parameter lists (or a non-empty list of such "
                         f"dicts); got {grid!r:.80}.")
    known = template.get_params(deep=True)
    for part in grids:
        _check_grid(part, known, template)
    combinations = list(ParameterGrid(grids))
    varying = _varying_keys(grids, combinations)
    names = _unique([_member_name(params, varying) for params in combinations])
    return [(name, clone(template).set_params(**params))
            for name, params in zip(names, combinations)]


def _check_grid(grid, known, template):
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"Each grid must be a non-empty dict of parameter name -> list of "
                         f"values; got {grid!r:.80}.")
    unknown = sorted(set(grid) - set(known))
    if unknown:
        raise ValueError(
            f"The grid names parameter(s) {', '.join(map(repr, unknown))} that "
            f"{type(template).__name__} does not have; its parameters are "
            f"{', '.join(sorted(known))}.")
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise ValueError(f"grid[{key!r}] must be a list of values; got {values!r:.80} "
                             f"(a single value goes in a list: [{values!r:.40}]).")
        if len(values) == 0:
            raise ValueError(f"grid[{key!r}] is an empty list: it would make no member. Give "
                             "at least one value.")


def _varying_keys(grids, combinations):
    """The parameters whose value differs between members, in the grid's order."""
    ordered = list(dict.fromkeys(key for part in grids for key in part))
    varying = [key for key in ordered
               if len({repr(params.get(key, _ABSENT)) for params in combinations}) > 1]
    return varying or ordered  # one member: named after all it was given


_ABSENT = object()


def _member_name(params, keys):
    short = {key: key.rpartition("__")[2] for key in keys}
    clash = {s for s in short.values() if list(short.values()).count(s) > 1}
    parts = [f"{key if short[key] in clash else short[key]}={_shown(params[key])}"
             for key in keys if key in params]
    name = _UNSAFE.sub("_", ",".join(parts))  # a path's '/' would nest in the archive
    return re.sub("__+", "_", name)  # '__' would read as a nested parameter ('/_' made one)


# What a member's name may not hold: it is a folder of the model archive
# (``members/<name>/``), so '/' (or '\\') would nest it inside another
# member's folder, and a control character is no name; nor is a lone surrogate (a file
# name's bytes that are not UTF-8, as os.fsdecode gives them), which no archive can hold.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f\ud800-\udfff]")


def check_member_names(names, what="estimators"):
    """Refuse member names that are not one archive folder each: empty, '.', '..', '/'.

    Parameters
    ----------
    names : list of str
    what : str, default="estimators"
        The parameter that holds the names, for the message.

    Raises
    ------
    ValueError
        Naming the first bad name and why.
    """
    for name in names:
        if not isinstance(name, str) or name in ("", ".", "..") or _UNSAFE.search(name):
            raise ValueError(
                f"The name {name!r} in {what} cannot name a member: a name must be a non-empty "
                "string other than '.' and '..', without '/', '\\', control characters or bytes "
                "that are not UTF-8 (it is the member's folder in the saved model).")


def _shown(value):
    if value is None or isinstance(value, (str, bool, Integral, Real)):
        return str(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, (Integral, Real, str))
                                                for v in value):
        return "-".join(map(str, value))
    return type(value).__name__


def _unique(names):
    """Names made unique (two values shown alike, e.g. two objects of one class)."""
    seen = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


def draw_samples(n_samples, n_members, subsample, random_state):
    """Each member's training rows: a sorted random ``subsample`` of the images, drawn
    without replacement, a new draw per member (Monte-Carlo cross-validation).

    Returns
    -------
    list of ndarray of int, or None when ``subsample`` is None (every member sees all).
    """
    if subsample is None:
        return None
    size = int(subsample * n_samples)
    if size < 1:
        raise ValueError(f"subsample={subsample} of {n_samples} images is no image: give a "
                         "larger fraction.")
    rng = check_random_state(random_state)
    return [np.sort(rng.choice(n_samples, size=size, replace=False))
            for _ in range(n_members)]


def rows_of(X, mask):
    """The images of ``X`` (an array, or a list of paths) where ``mask`` is True."""
    if isinstance(X, (list, tuple)):
        return [item for item, keep in zip(X, mask) if keep]
    return X[mask]


def united_classes(all_targets, on_concepts):
    """The ensemble's columns: the members' concepts united by name, or their common width."""
    if on_concepts:
        return np.array(sorted(set().union(*(set(t.classes_) for t in all_targets))),
                        dtype=object)
    widths = {len(t.classes_) for t in all_targets}
    if len(widths) != 1:
        raise ValueError(f"The members were fitted on indicator targets of different widths "
                         f"{sorted(widths)}; give concept lists to align them by name.")
    return np.arange(widths.pop())


def workers_for(n_jobs, n_fits):
    """joblib's ``n_jobs`` for ``n_fits`` fits: no more workers than fits. joblib starts
    every worker at once (loky's processes, threads): ``n_jobs=10**5`` for two members
    started processes until the system refused, and -1 starts one a core however few the
    fits. None (the active ``parallel_config``'s) and -1 (every core, or every worker of a
    cluster backend) are read as joblib reads them; 0 is left to joblib, which refuses it."""
    if n_jobs == 0:
        return n_jobs
    wanted = n_jobs if n_jobs is not None and n_jobs >= 1 else joblib.effective_n_jobs(n_jobs)
    return max(1, min(int(wanted), n_fits))


def check_one_training_per_checkpoint(estimators, n_fits=1, what=""):
    """Refuse, before any training, a checkpoint folder (a ``checkpoint_dir`` at any depth of
    the ``(name, estimator)`` pairs) that more than one training would use: two estimators
    naming one folder, or one trained ``n_fits`` times (a tuner's folds and refit, said by
    ``what``). A folder serves one training: the second was refused after the first had
    trained whole."""
    from ..files._checkpoints import check_checkpoint_folder

    seen = {}
    for owner, estimator in estimators:
        for name, folder in estimator.get_params(deep=True).items():
            if folder is None or name.rpartition("__")[2] != "checkpoint_dir":
                continue
            check_checkpoint_folder(folder)  # a link, a file: not once other members trained
            # realpath: real/ck and link/ck (link -> real) are one folder
            shown, key = f"{owner}__{name}", os.path.realpath(os.fspath(folder))
            if n_fits > 1:
                raise ValueError(f"{shown}={os.fspath(folder)!r}: {what} trains it {n_fits} "
                                 "times (each split, then the refit), and a checkpoint folder "
                                 "serves one training: the second would be refused after the "
                                 "first had trained. Give checkpoint_dir to a single training.")
            if key in seen:
                raise ValueError(f"{shown} and {seen[key]} name one checkpoint folder, "
                                 f"{os.fspath(folder)}: it serves one training (the second "
                                 "member would be refused after the first had trained); give "
                                 "each member its own, or none.")
            seen[key] = shown


# The combinations that use each of these ensemble parameters: the others decide without it.
# The set combinations decide by the members' own decisions, but their predict_proba (which
# a ThresholdTuner around them tunes) is the weighted mean: only "max" uses no weights.
USED_BY = {"weights": ("mean", "vote", "union", "intersection"), "min_votes": ("vote",),
           "threshold": ("mean", "max")}
# What to do instead, for a parameter whose use is not plain from its name.
_INSTEAD = {"threshold": "the set combinations count the members' own decisions, each by "
                         "its own rule: set the members' thresholds ('<name>__threshold')"}


def warn_unused_parameters(ensemble):
    """Warn, naming each, of the parameters given (not at their defaults) that the
    ensemble's ``combine`` decides without: ``weights`` with ``"max"`` (the largest
    probability), ``min_votes`` outside ``"vote"``, ``threshold`` (or a rule's
    ``max_concepts``) with the set combinations. They were ignored without a word. A
    warning, once at fit (never at each prediction: a grid search's every scoring), as
    scikit-learn's for a parameter its chosen mode does not use: a grid search over
    ``combine`` and ``weights`` runs. And ``subsample`` with ``prefit=True`` (the members
    are used as fitted)."""
    defaults = inspect.signature(type(ensemble).__init__).parameters
    unused = [name for name, used in USED_BY.items() if ensemble.combine not in used
              and not _same(name, getattr(ensemble, name), defaults[name].default)]
    if unused:
        given = " nor ".join(f"{name}={getattr(ensemble, name)!r:.60}" for name in unused)
        uses = "; ".join(f"{name} is for combine={' or '.join(map(repr, USED_BY[name]))}"
                         + (f" ({_INSTEAD[name]})" if name in _INSTEAD else "")
                         for name in unused)
        warnings.warn(f"ConceptEnsemble(combine={ensemble.combine!r}) decides without "
                      f"{given}: {uses}.", UserWarning, stacklevel=4)
    if ensemble.prefit and ensemble.subsample is not None:
        warnings.warn(f"ConceptEnsemble(prefit=True) does not use subsample="
                      f"{ensemble.subsample!r}: its members are used as fitted; subsample "
                      "draws the images of members it fits (prefit=False).", UserWarning,
                      stacklevel=4)


def fit_quietly(ensemble, X, y, fit_params, rows=None):
    """:func:`fit_on_rows` without the ensemble's warnings of the parameters its ``combine``
    does not use: for a tuner, which chooses the combination and says once what it does not
    use (each fold's fit, in a worker too, said it again)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"ConceptEnsemble\(.*\) (decides without|does "
                                          r"not use)")
        return fit_on_rows(ensemble, X, y, fit_params, rows)


def _same(name, value, default):
    if name == "threshold":  # a number or a DecisionRule: the same rule
        return DecisionRule.of(value) == DecisionRule.of(default)
    return value is default or (value is not None and default is not None
                                and np.array_equal(value, default))
