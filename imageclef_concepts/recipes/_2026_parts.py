"""The 2026 recipe's bookkeeping: its output folder, its plan, its estimate and its members.

An output folder is the recipe's when its ``plan.json`` says so; any other
non-empty folder is refused, so that no user's file is overwritten. Each
member is saved (atomically, the library's ``.zip`` archive) the moment it
is trained, and a rerun with the same plan loads it instead of training it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..utils._interrupts import raise_if_interrupted

PROCEDURE = "imageclef-concepts recipe-2026"
_TIMING_IMAGES = 16  # images of the timing step


def claim_output(output_dir, plan, plan_file):
    """Make ``output_dir`` the recipe's, or check that it is, with the same plan.

    New or empty: the plan is written. Holding the recipe's plan: it must
    equal ``plan`` (a rerun resumes), else a ValueError names the settings
    that differ. Anything else is refused, and left as it is.
    """
    from ..files._atomic import file_kind, open_regular_file, write_atomically

    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        kind = file_kind(output_dir.stat().st_mode)
        kind = "a file" if kind == "not a regular file" and output_dir.is_file() else kind
        raise ValueError(f"output {output_dir} is {kind}; name a folder.")
    output_dir.mkdir(parents=True, exist_ok=True)
    entries = sorted(path.name for path in output_dir.iterdir())
    if plan_file in entries:
        try:  # a regular file only (a pipe would block), and no more than a plan holds
            with open_regular_file(output_dir / plan_file, "plan") as handle:
                stored = json.loads(handle.read(2**20))
        except (OSError, ValueError, RecursionError):  # RecursionError: "[[[[..."
            stored = None
        if not isinstance(stored, dict) or stored.get("procedure") != PROCEDURE:
            raise ValueError(f"output {output_dir} holds a {plan_file} that is not the "
                             f"recipe's; it is left as it is. Name a new or empty folder.")
        differ = _differences(stored, plan)
        if differ:
            raise OtherSettingsError(output_dir, differ)
        return
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(f"output {output_dir} is not empty ({shown}) and was not made by "
                         "recipe-2026; it is left as it is. Name a new or empty folder.")
    text = json.dumps(plan, indent=2).encode()
    write_atomically(output_dir / plan_file, lambda handle: handle.write(text))


class OtherSettingsError(ValueError):
    """The output folder holds a run with other settings: ``differences`` are the
    ``(setting, then, now)`` that differ, each setting by its name in Python
    (:func:`run_recipe_2026`'s, :class:`Recipe2026`'s or the members' parameter);
    :meth:`message` names them otherwise (the command line, by its flags)."""

    def __init__(self, output_dir, differences):
        self.output_dir, self.differences = output_dir, differences
        super().__init__(self.message())

    def message(self, names=None):
        shown = "; ".join(f"{(names or {}).get(setting, setting)}: {then} then, {now} now"
                          for setting, then, now in self.differences)
        return (f"output {self.output_dir} holds a run with other settings ({shown}): rerun "
                "with the same settings to resume it, or name a new folder.")


def _differences(stored, plan):
    """``(setting, then, now)`` for each setting that differs, the data's identity aside."""
    found = []
    for key in sorted((set(stored) | set(plan)) - {DATA_IDENTITY}):
        then, now = stored.get(key), plan.get(key)
        if isinstance(then, dict) and isinstance(now, dict):
            found += [(_PARAMETERS.get((key, name), f"{key}[{name!r}]"),
                       then.get(name), now.get(name))
                      for name in sorted(set(then) | set(now)) if then.get(name) != now.get(name)]
        elif then != now:
            found.append((_PARAMETERS.get(key, key), then, now))
    return found


# The plan's keys that are not named as the parameter that sets them (the others are,
# as Recipe2026's fields: "grid['backbone']", "estimator_params['epochs']").
_PARAMETERS = {"data": "data_dir", "retrieval": "retrieval_encoder",
               ("retrieval", "encoder"): "retrieval_encoder",
               ("retrieval", "n_neighbors"): "retrieval_neighbors",
               ("retrieval", "params"): "retrieval_params"}


DATA_IDENTITY = "data_identity"
_SPLIT_NAMES = {"train": "training"}


def data_identity(found, split="train", members=()):
    """What identifies a split's data: its concept files' bytes, and the names and versions
    (:func:`~imageclef_concepts.images._shelf.file_version`) of the images it uses, those
    with a concept line (a new image without one changes nothing the members learnt); and
    the backbone weights files ``members`` ((name, estimator) pairs) start from, known as
    the images are (another file at the same path: other members)."""
    from ..files._digests import digest
    from ..images._fingerprints import images_digest, weights_identity

    name = _SPLIT_NAMES.get(split, split)
    identity = {f"the {name} images": images_digest(sorted(load_split(found).paths))}
    for what, path in (("concepts", found.concepts), ("manual concepts", found.manual)):
        identity[f"the {name} {what}"] = None if path is None else digest(Path(path).read_bytes())
    for value in {getattr(member, "weights", None) for _, member in members}:
        if value not in (None, "imagenet"):  # plans without a weights file stay as they were
            identity[f"the weights file {os.fspath(value)}"] = weights_identity(value)
    return identity


def check_data_identity(output_dir, plan_file, identity):
    """Record the training data's identity in the plan, or refuse a rerun on changed data
    once a member was saved (before that, nothing was trained on it: recorded anew)."""
    from ..files._atomic import write_atomically

    path = Path(output_dir) / plan_file
    plan = json.loads(path.read_text())
    stored = plan.get(DATA_IDENTITY)
    members = Path(output_dir) / "members"
    if stored is not None and not (members.is_dir() and any(members.iterdir())):
        stored = None  # no member saved (nor begun saving): nothing was trained on that data
    if stored is None:  # the first run (or one stopped before it got here): nothing trained yet
        plan[DATA_IDENTITY] = identity
        text = json.dumps(plan, indent=2).encode()
        write_atomically(path, lambda handle: handle.write(text))
        return
    changed = [what for what in sorted(set(stored) | set(identity))
               if stored.get(what) != identity.get(what)]
    if changed:
        raise ValueError(f"{' and '.join(changed)} changed since the members in {output_dir} "
                         "were trained: rerun in a new folder.")


def member_files(output_dir, n_members):
    """Where each member is kept, in the grid's order."""
    return [Path(output_dir) / "members" / f"member-{index:02d}.zip"
            for index in range(n_members)]


def load_split(found):
    """A split's image paths and concepts (2026 rules), images without a line left out."""
    from ..datasets._imageclef import load_imageclef

    return load_imageclef(found.images, found.concepts, edition="2026")


def load_splits(layout):
    """The training and validation splits (:func:`load_split`), the test images that a test
    truth does not list named as theirs are: the run file holds the truth's images only (the
    2026 evaluator refuses a run line whose image its ground truth has not)."""
    splits = [load_split(layout[split]) for split in ("train", "valid")]
    if "test" in layout and layout["test"].concepts is not None:
        load_split(layout["test"])  # warns, before any training, of what it leaves out
    return splits


def plan_lines(plan, layout, output_dir, store, files):
    """The plan, printed before any training."""
    from ..datasets._imageclef import image_files_by_id

    sizes = {split: len(image_files_by_id(found.images)) for split, found in layout.items()}
    saved = sum(path.is_file() for path in files)
    split = "test" if "test" in layout else "valid"
    scored = layout[split].concepts is not None
    manual = layout[split].manual is not None
    coverages = ", ".join(str(c) for c in plan["count_coverage"])
    return [
        f"Plan ({PROCEDURE}):",
        f"  data {plan['data']}: " + ", ".join(f"{name} {n} images" for name, n in sizes.items()),
        f"  members: {len(files)} = the grid {plan['grid']}, ConceptEnsemble.from_grid over "
        f"ConceptCNNClassifier({plan['estimator_params']}); trained on the training images",
        f"  tuned on the validation images: the 2024 recipe (members' mean, one threshold); "
        f"votes (each member's threshold and the vote count L, EnsembleTuner); the mean with "
        f"a count model (threshold and coverage in {coverages}); the better of the last two "
        f"on validation is kept ({plan['thresholds']} candidate thresholds each)",
        f"  predicted: the {split} images -> run.csv (2026 format), read back and "
        + (f"scored (primary{' and secondary' if manual else ''}), report.html"
           if scored else "checked (no ground truth to score)"),
        f"  outputs in {output_dir}: plan.json, members/ ({saved} of {len(files)} saved "
        f"already), run.csv, report.html, summary.json; image store {store}",
    ]


def estimate_compute(members, files, train, estimator_params):
    """The training still to do, timed on a few images (an upper estimate, labelled so)."""
    from sklearn.base import clone

    todo = sum(not path.is_file() for path in files)
    if not todo:
        return "Estimate: every member is saved already; nothing to train."
    epochs = int(estimator_params.get("epochs", 10))
    n = min(_TIMING_IMAGES, len(train.paths))
    # Never in the member's checkpoint folder: the probe's checkpoint left there had the
    # member refused as "another training"; no split its few images cannot make (0.02 of 16).
    fraction = members[0][1].validation_fraction
    probe = clone(members[0][1]).set_params(
        epochs=1, freeze_epochs=0, early_stopping_patience=None, checkpoint_dir=None,
        validation_fraction=fraction if fraction is None or 1 <= round(fraction * n) < n
        else None)
    start = time.perf_counter()
    probe.fit(train.paths[:n], train.concepts[:n])
    seconds = time.perf_counter() - start
    total = seconds / n * len(train.paths) * epochs * todo
    return (f"Estimate: {todo} members x {len(train.paths)} images x {epochs} epochs = "
            f"{todo * len(train.paths) * epochs} image-epochs; timed here at {seconds / n:.3f} "
            f"s per image-epoch (one epoch of {n} images, building the network included: an "
            f"upper estimate), so about {total / 60:.1f} minutes of training in sequence, "
            "divided by the members trained at once.")


def train_members(members, files, train, n_jobs, say, kept=lambda: None):
    """Each member loaded from its file, or trained and saved the moment it is done.

    ``n_jobs`` members at a time through joblib's active backend (a Dask or
    Ray cluster under ``joblib.parallel_config``); one at a time without.
    ``kept`` (:func:`output_kept`) is asked before each member's training and
    before each save: no hours of training for an output the user has removed,
    and nothing saved into a folder put at its path.
    """
    from joblib import Parallel, delayed

    from ..estimators._members import workers_for
    from ._workflows import save_model

    fitted = {index: load_member(path, members[index][1])
              for index, path in enumerate(files) if path.is_file()}
    if fitted:
        say(f"Loaded {len(fitted)} member(s) saved by an earlier run.")
    todo = [index for index in range(len(files)) if index not in fitted]
    kept()
    files[0].parent.mkdir(exist_ok=True)
    # Asked as each member is started (joblib takes the jobs as it dispatches them).
    jobs = (kept() or delayed(fit_member)(members[index][1], train.paths, train.concepts)
            for index in todo)
    if n_jobs in (None, 1):  # one by one, each saved before the next starts
        done = (job[0](*job[1], **job[2]) for job in jobs)
    else:  # no more workers than members (joblib sizes a queue by them: 10**20 overflowed)
        done = Parallel(n_jobs=workers_for(n_jobs, len(todo)), return_as="generator")(jobs)
    for index, model in zip(todo, done):
        raise_if_interrupted()  # a Ctrl-C that TensorFlow swallowed (in a __del__) ends the run
        kept()
        save_model(model, files[index])
        fitted[index] = model
        say(f"Member {index + 1}/{len(files)} ({members[index][0]}) trained and saved to "
            f"{files[index]}")
    return [fitted[index] for index in range(len(files))], len(todo), len(files) - len(todo)


def output_kept(output_dir, plan_file):
    """A check to call before each write into the claimed ``output_dir``: a ValueError
    once it is no longer the folder the run claimed (deleted, or another folder put at its
    path, or its plan gone), so that nothing is written into what replaced it, nor the
    folder made again (a long run outlives a user's clean-up)."""
    from ..files._atomic import folder_identity, folder_replaced

    identity = folder_identity(output_dir)

    def kept():
        why = folder_replaced(output_dir, identity, plan_file)
        if why is not None:
            raise ValueError(f"output {output_dir} is no longer the folder this run claimed "
                             f"({why}); nothing more is written there. Run again to resume "
                             "in a folder of the run's, or in a new folder.")
    return kept


def retrieval_template(recipe, output_dir):
    """The recipe's retrieval member, unfitted, its and its encoder's parameters checked: a
    k-NN over the named encoder's embeddings, kept in ``<output>/embedding-store``; None when
    the recipe has none."""
    if recipe.retrieval_encoder is None:
        neighbors = type(recipe).__dataclass_fields__["retrieval_neighbors"].default
        for name, given in (("retrieval_params", recipe.retrieval_params),
                            ("retrieval_neighbors", recipe.retrieval_neighbors != neighbors)):
            if given:  # not dropped silently (nor left out of plan.json)
                raise ValueError(f"recipe {name}={getattr(recipe, name)!r:.80}: given without "
                                 "a retrieval_encoder, it sets nothing: name the encoder, or "
                                 "leave it out.")
        return None
    from ..embeddings._names import make_encoder
    from ..estimators._retrieval import ConceptKNNClassifier

    encoder = make_encoder(recipe.retrieval_encoder, **recipe.retrieval_params)
    knn = ConceptKNNClassifier(recipe.retrieval_neighbors, embedding=encoder,
                               embedding_store=str(Path(output_dir) / "embedding-store"))
    # as their fits will, which come after every network has trained
    for estimator, field in ((knn, "retrieval_neighbors"), (encoder, "retrieval_params")):
        try:
            estimator._validate_params()
        except ValueError as error:
            raise ValueError(f"recipe {field}={getattr(recipe, field)!r}: {error}") from None
    return knn


def fit_retrieval(template, path, train, say, kept=lambda: None):
    """The retrieval member loaded from ``path`` (checked to be the plan's), or fitted and saved.

    Its images are embedded once into the output's embedding store, so that
    a rerun, and the validation and test predictions, read them back.
    """
    from ._workflows import load_model, save_model

    identity = template.embedding.embedding_identity()
    if path.is_file():
        model = load_model(path)
        saved = getattr(getattr(model, "embedding_", None), "embedding_identity", None)
        if (type(model) is not type(template) or model.n_neighbors != template.n_neighbors
                or saved is None or saved() != identity):
            raise ValueError(f"member file {path} is not the plan's retrieval member (a k-NN "
                             f"of {template.n_neighbors} neighbours over {identity}): delete it "
                             "to fit it again.")
        say(f"Loaded the retrieval member saved by an earlier run ({path}).")
        return model.set_params(embedding_store=template.embedding_store)
    kept()
    path.parent.mkdir(exist_ok=True)
    model = fit_member(template, train.paths, train.concepts)
    kept()
    save_model(model, path)
    say(f"Retrieval member (k-NN, {template.n_neighbors} neighbours, over {identity}) fitted "
        f"and saved to {path}; embeddings kept in {template.embedding_store.path}")
    return model


def fit_member(member, paths, concepts):
    """One member fitted (a clone: the template is left as it is)."""
    from sklearn.base import clone

    return clone(member).fit(paths, concepts)


def load_member(path, template):
    """A saved member, refused (naming its file) unless it is the plan's grid point."""
    from ._workflows import load_model

    model = load_model(path)
    delete = f"delete {path} to train it again"
    if type(model) is not type(template):
        raise ValueError(f"member file {path} holds a {type(model).__name__}, not the plan's "
                         f"{type(template).__name__}: {delete}.")
    saved, planned = model.get_params(deep=False), template.get_params(deep=False)
    compared = [comparable_params(params) for params in (saved, planned)]
    differ = [f"{key}={saved.get(key)!r} (the plan: {planned.get(key)!r})"
              for key in sorted(set(saved) | set(planned))
              if key != "image_store" and compared[0].get(key) != compared[1].get(key)]
    if differ:
        raise ValueError(f"member file {path} is not the plan's member ({', '.join(differ)}): "
                         f"{delete}.")
    store = planned.get("image_store")
    return model.set_params(image_store=store) if store else model


def comparable_params(params):
    """Parameters as the plan stores them, so that values written differently compare
    equal: tuples as lists, one kernel side for all blocks as that side per block, and a
    whole float as the int it equals (a member saved from ``filters=[2]`` holds ``(2,)``)."""
    from ..keras._network import block_kernel_sizes
    from ..models._archive import jsonable

    params = dict(params)
    if "kernel_size" in params:  # checked against the filters by check_architecture
        params["kernel_size"] = block_kernel_sizes(params["kernel_size"],
                                                   len(params["filters"]))
    return _whole_floats_as_ints(jsonable(params))


def _whole_floats_as_ints(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    return value
