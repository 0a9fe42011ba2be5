"""The 2026 recipe's bookkeeping: its output folder, its plan, its estimate and its members.

An output folder is the recipe's when its ``plan.json`` says so; any other
non-empty folder is refused, so that no user's file is overwritten. Each
member is saved (atomically, the library's ``.zip`` archive) the moment it
is trained, and a rerun with the same plan loads it instead of training it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

PROCEDURE = "imageclef-concepts recipe-2026"
_TIMING_IMAGES = 16  # images of the timing step


def claim_output(output_dir, plan, plan_file):
    """Make ``output_dir`` the recipe's, or check that it is, with the same plan.

    New or empty: the plan is written. Holding the recipe's plan: it must
    equal ``plan`` (a rerun resumes), else a ValueError names the settings
    that differ. Anything else is refused, and left as it is.
    """
    from ._atomic_files import open_regular_file, write_atomically

    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} is a file; name a folder.")
    output_dir.mkdir(parents=True, exist_ok=True)
    entries = sorted(path.name for path in output_dir.iterdir())
    if plan_file in entries:
        try:  # a regular file only (a pipe would block), and no more than a plan holds
            with open_regular_file(output_dir / plan_file, "plan") as handle:
                stored = json.loads(handle.read(2**20))
        except (OSError, ValueError):
            stored = None
        if not isinstance(stored, dict) or stored.get("procedure") != PROCEDURE:
            raise ValueError(f"output {output_dir} holds a {plan_file} that is not the "
                             f"recipe's; it is left as it is. Name a new or empty folder.")
        differ = [key for key in sorted(set(stored) | set(plan))
                  if stored.get(key) != plan.get(key)]
        if differ:
            shown = "; ".join(f"{key}: {stored.get(key)!r} then, {plan.get(key)!r} now"
                              for key in differ)
            raise ValueError(f"output {output_dir} holds a run with other settings ({shown}): "
                             "rerun with the same settings to resume it, or name a new folder.")
        return
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(f"output {output_dir} is not empty ({shown}) and was not made by "
                         "recipe-2026; it is left as it is. Name a new or empty folder.")
    text = json.dumps(plan, indent=2).encode()
    write_atomically(output_dir / plan_file, lambda handle: handle.write(text))


def member_files(output_dir, n_members):
    """Where each member is kept, in the grid's order."""
    return [Path(output_dir) / "members" / f"member-{index:02d}.zip"
            for index in range(n_members)]


def load_split(found):
    """A split's image paths and concepts (2026 rules), images without a line left out."""
    from ._datasets import load_imageclef

    return load_imageclef(found.images, found.concepts, edition="2026")


def plan_lines(plan, layout, output_dir, store, files):
    """The plan, printed before any training."""
    from ._datasets import image_files_by_id

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
    probe = clone(members[0][1]).set_params(epochs=1, freeze_epochs=0,
                                            early_stopping_patience=None)
    start = time.perf_counter()
    probe.fit(train.paths[:n], train.concepts[:n])
    seconds = time.perf_counter() - start
    total = seconds / n * len(train.paths) * epochs * todo
    return (f"Estimate: {todo} members x {len(train.paths)} images x {epochs} epochs = "
            f"{todo * len(train.paths) * epochs} image-epochs; timed here at {seconds / n:.3f} "
            f"s per image-epoch (one epoch of {n} images, building the network included: an "
            f"upper estimate), so about {total / 60:.1f} minutes of training in sequence, "
            "divided by the members trained at once.")


def train_members(members, files, train, n_jobs, say):
    """Each member loaded from its file, or trained and saved the moment it is done.

    ``n_jobs`` members at a time through joblib's active backend (a Dask or
    Ray cluster under ``joblib.parallel_config``); one at a time without.
    """
    from joblib import Parallel, delayed

    from ._workflows import load_model, save_model

    fitted = {}
    for index, path in enumerate(files):
        if path.is_file():
            model = load_model(path)
            store = members[index][1].get_params().get("image_store")
            fitted[index] = model.set_params(image_store=store) if store else model
    if fitted:
        say(f"Loaded {len(fitted)} member(s) saved by an earlier run.")
    todo = [index for index in range(len(files)) if index not in fitted]
    files[0].parent.mkdir(exist_ok=True)
    jobs = [delayed(fit_member)(members[index][1], train.paths, train.concepts)
            for index in todo]
    if n_jobs in (None, 1):  # one by one, each saved before the next starts
        done = (job[0](*job[1], **job[2]) for job in jobs)
    else:
        done = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    for index, model in zip(todo, done):
        save_model(model, files[index])
        fitted[index] = model
        say(f"Member {index + 1}/{len(files)} ({members[index][0]}) trained and saved to "
            f"{files[index]}")
    return [fitted[index] for index in range(len(files))], len(todo), len(files) - len(todo)


def fit_member(member, paths, concepts):
    """One member fitted (a clone: the template is left as it is)."""
    from sklearn.base import clone

    return clone(member).fit(paths, concepts)
