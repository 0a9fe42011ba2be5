"""Model cards: what a saved model is, read from the model file alone.

Every ``.keras`` file the library writes carries, beside the network, a JSON
record: library, Keras and TensorFlow versions, the date, every parameter,
the concept vocabulary, the training data's size and concept statistics,
the validation history and the decision rule (with its tuning score when a
:class:`~imageclef_concepts.ThresholdTuner` chose it). :func:`model_card`
renders it as Markdown; ``imageclef-concepts info MODEL`` prints it without
importing TensorFlow, and ``train`` writes it beside the model as
``<model>.card.md``. The archives of the other estimators
(:meth:`ConceptEnsemble.save <imageclef_concepts.ConceptEnsemble.save>`)
carry a manifest under the same name, and get a card too.

This module also checks a record's structure (:func:`check_record`): a
model file is validated when it is read, like parameters when a model is
fitted, and anything wrong with it is one :class:`ModelFileError`. The file
itself is read by :mod:`._zip`, within bounds.
"""

import json
import os
from numbers import Integral, Real

from ..files._atomic import shown_name

METADATA_ENTRY = "imageclef_concepts.json"
# How every card begins: what tells a card this library wrote from a user's file.
CARD_TITLE = "# Model card: "


class ModelFileError(ValueError):
    """A model file that cannot be loaded: damaged, of another kind, or holding bad values.

    The message names the file and what is wrong with it (a missing entry, a
    value of the wrong type or out of its range, an array of the wrong shape,
    a concept count that differs from the network's outputs...).

    Examples
    --------
    >>> import os, tempfile
    >>> from imageclef_concepts import ConceptEnsemble, ModelFileError
    >>> path = os.path.join(tempfile.mkdtemp(), "model.zip")
    >>> with open(path, "w") as handle:
    ...     _ = handle.write("not a model")
    >>> try:
    ...     ConceptEnsemble.load(path)
    ... except ModelFileError as error:
    ...     print("not a zip file" in str(error))
    True
    """


def is_archive_record(record):
    """True for an archive's manifest (ensemble, k-NN, baseline), False for a ``.keras`` record."""
    return "estimator" in record and "params" not in record


_KIND_NAMES = {Integral: "a whole number", int: "a whole number", Real: "a number",
               float: "a number", str: "a string", list: "a list", dict: "an object",
               bool: "true or false", type(None): "null"}


def expect(mapping, key, kinds, where, *, required=True, default=None):
    """``mapping[key]`` checked to be of ``kinds``; a :class:`ModelFileError` message otherwise.

    ``kinds`` is a tuple of types (``bool`` is never taken for a number);
    raises ``ModelFileError`` without the file name, which the caller adds.
    """
    if not isinstance(mapping, dict):
        raise ModelFileError(f"{where} is a {type(mapping).__name__}, not an object")
    if key not in mapping:
        if required:
            raise ModelFileError(f"{where} has no {key!r}")
        return default
    value = mapping[key]
    numeric = any(kind in (Integral, Real, int, float) for kind in kinds)
    if not isinstance(value, kinds) or (isinstance(value, bool) and numeric
                                        and bool not in kinds):
        names = " or ".join(_KIND_NAMES.get(kind, kind.__name__) for kind in kinds)
        raise ModelFileError(f"{where}[{key!r}] must be {names}, not {value!r:.80}")
    return value


def check_targets(targets, where="targets"):
    """The structure of a saved concept vocabulary (:meth:`ConceptTargets.to_dict`)."""
    on_concepts = expect(targets, "on_concepts", (bool,), where)
    classes = expect(targets, "classes", (list,), where)
    if not classes:
        raise ModelFileError(f"{where}['classes'] is empty")
    kind = str if on_concepts else Integral
    if not all(isinstance(name, kind) and not isinstance(name, bool) for name in classes):
        raise ModelFileError(f"{where}['classes'] must hold "
                             f"{'concept names' if on_concepts else 'column numbers'}")
    for key, needed in (("concept_counts", on_concepts), ("column_counts", False)):
        counts = expect(targets, key, (list, type(None)), where, required=needed)
        if counts is None:
            if needed:
                raise ModelFileError(f"{where}[{key!r}] is null")
            continue
        if len(counts) != len(classes) or not all(
                isinstance(count, Integral) and not isinstance(count, bool) and count >= 0
                for count in counts):
            raise ModelFileError(f"{where}[{key!r}] must hold {len(classes)} counts (whole "
                                 "numbers >= 0), one per concept")
    n_images = expect(targets, "n_images", (Integral,), where, required=False, default=0)
    if n_images < 0:
        raise ModelFileError(f"{where}['n_images'] is negative")
    for key, smallest in (("min_count", 1), ("max_labels", 1)):
        value = expect(targets, key, (Integral, type(None)), where, required=False)
        if value is not None and value < smallest:
            raise ModelFileError(f"{where}[{key!r}] must be at least {smallest}")
    return len(classes)


def misnamed_keras_file(path):
    """The error for a ConceptCNNClassifier's ``.keras`` file under another name (``m.zip``),
    one verdict of info, load, load_model and predict: Keras reads a network from no other."""
    return ModelFileError(f"{path} is a ConceptCNNClassifier's .keras file under another name: "
                          "rename it to end in .keras, the one name Keras reads a network from.")


def check_record(record, path, file=None):
    """Check a ``.keras`` record's structure; raise one :class:`ModelFileError` naming ``path``.

    The parameters' values are the estimator's to check (its
    ``_validate_params``, when it is loaded); here their container, the
    vocabulary, the history, the best epoch, the tuning summary and a saved
    decision rule's shape. ``file``, the file read (``path`` names it), must end in
    ``.keras`` (an archive's member is read from a temporary one that does).
    """
    from ._decision import DecisionRule

    if is_archive_record(record):
        kind = record["estimator"].get("class", "an estimator") if isinstance(
            record["estimator"], dict) else "an estimator"
        rename = "" if str(path).lower().endswith(".zip") else "give it its .zip name and "
        raise ModelFileError(f"{path} is the .zip archive of a {kind}, not a .keras model "
                             f"file: {rename}load it with {kind}.load (predict reads both).")
    if file is not None and not os.fsdecode(file).endswith(".keras"):  # as Keras tests it
        raise misnamed_keras_file(path)
    try:
        expect(record, "format", (Integral,), "the record", required=False)
        params = expect(record, "params", (dict,), "the record")
        if "targets" in record or record.get("format", 1) >= 2:
            n_concepts = check_targets(expect(record, "targets", (dict,), "the record"))
        else:  # format 1: the vocabulary at the top level
            n_concepts = len(expect(record, "classes", (list,), "the record"))
        history = expect(record, "history", (dict,), "the record")
        for key, values in history.items():
            if not isinstance(values, list) or not all(
                    isinstance(value, Real) and not isinstance(value, bool)
                    for value in values):
                raise ModelFileError(f"history[{key!r}] must be a list of numbers")
        # Every epoch logs its loss; a validation log may have fewer values (a model
        # given validation data in only some of its partial_fit calls), never more.
        n_epochs = len(history.get("loss", []))
        for key, values in history.items():
            if len(values) > n_epochs:
                raise ModelFileError(f"history[{key!r}] has {len(values)} values for the "
                                     f"{n_epochs} epochs of history['loss']")
        best = expect(record, "best_epoch", (Integral, type(None)), "the record")
        if best is not None and not 0 <= best < n_epochs:
            raise ModelFileError(f"best_epoch={best} is not one of the "
                                 f"{n_epochs} epochs of the history")
        tuning = expect(record, "tuning", (dict, type(None)), "the record", required=False)
        if tuning is not None:
            expect(tuning, "official_f1", (Real,), "tuning")
            expect(tuning, "strategy", (str,), "tuning")
            expect(tuning, "n_images", (Integral,), "tuning")
        expect(record, "custom_model", (bool,), "the record", required=False)
        threshold = params.get("threshold")
        if isinstance(threshold, dict):
            rule = DecisionRule.from_dict(threshold)
            if rule.per_concept and len(rule.threshold) != n_concepts:
                raise ModelFileError(f"the decision rule has {len(rule.threshold)} "
                                     f"per-concept thresholds for {n_concepts} concepts")
            if rule.count_model is not None and rule.count_model.n_features_in_ != n_concepts:
                raise ModelFileError(f"the decision rule's count model takes the scores of "
                                     f"{rule.count_model.n_features_in_} concepts, not "
                                     f"{n_concepts}")
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    except (ValueError, TypeError) as error:  # a bad decision rule
        raise ModelFileError(f"{path}: {error}") from None


def model_card(record, name="model"):
    """A Markdown model card from a model file's record (``.keras`` record or archive manifest).

    Parameters
    ----------
    record : dict
        What :func:`read_model_record` returns.
    name : str
        The model's name in the title.

    Returns
    -------
    str

    Examples
    --------
    >>> card = model_card({"library_version": "0.1.0", "params": {"epochs": 10},
    ...                    "targets": {"on_concepts": True, "classes": ["C1", "C2"],
    ...                                "column_counts": [5, 1], "n_images": 6}})
    >>> "2 concepts" in card
    True
    """
    if is_archive_record(record):
        return _archive_card(record, name)
    targets = record.get("targets", {})
    classes, counts = targets.get("classes", []), targets.get("column_counts") or []
    n_images = targets.get("n_images") or 0
    lines = [f"{CARD_TITLE}{printable(name)}", "",
             "A ConceptCNNClassifier of imageclef_concepts: ImageCLEFmed Caption concept "
             "detection (multi-label, one sigmoid output per concept).", "",
             "## Provenance", "",
             f"- imageclef_concepts {printable(record.get('library_version', '?'))}, Keras "
             f"{printable(record.get('keras_version', '?'))}, TensorFlow "
             f"{printable(record.get('tensorflow_version', '?'))}",
             f"- saved {printable(record.get('saved_at', '?'))} (file format "
             f"{printable(record.get('format', 1))})",
             "", "## Training data", "",
             f"- {n_images:,} training images, {len(classes):,} concepts "
             f"({'concept names' if targets.get('on_concepts') else 'indicator columns'})"]
    if counts and n_images:
        rare = sum(1 for count in counts if count < 4)
        lines += [f"- {sum(counts) / n_images:.2f} concepts per image on average; "
                  f"{rare:,} concepts in fewer than 4 images; the most frequent in "
                  f"{max(counts):,} images"]
    history = record.get("history", {})
    lines += ["", "## Validation", ""]
    best = record.get("best_epoch")
    if history.get("loss"):
        n_epochs = len(history["loss"])
        lines.append(f"- {n_epochs} epochs trained; kept epoch "
                     f"{'the last' if best is None else best + 1}")
        for key in sorted(k for k in history if k.startswith("val_")):
            values, shown = history[key], printable(key)
            if len(values) == n_epochs:
                lines.append(f"- {shown} at the kept epoch: "
                             f"{values[best if best is not None else -1]:.4f}")
            elif values:  # which epochs they belong to is not recorded: no kept value
                lines.append(f"- {shown} logged in {len(values)} of the {n_epochs} epochs "
                             f"(validation data in only some partial_fit calls); the last: "
                             f"{values[-1]:.4f}")
            else:
                lines.append(f"- {shown}: not logged")
    tuning = record.get("tuning")
    if tuning:
        lines.append(f"- decision rule tuned on {tuning['n_images']:,} images: official F1 "
                     f"{tuning['official_f1']:.4f} ({printable(tuning['strategy'])} threshold)")
    params = record.get("params", {})
    threshold = params.get("threshold")
    lines += ["", "## Decision rule", "", f"- {_describe_rule(threshold)}", "",
              "## Parameters", "", "| parameter | value |", "|---|---|"]
    lines += _parameter_rows(params)
    return "\n".join(lines) + "\n"


def _archive_card(manifest, name):
    """The card of an archive: each estimator, its parameters and vocabulary, members nested."""
    lines = [f"{CARD_TITLE}{printable(name)}", "",
             f"An imageclef_concepts model archive (imageclef_concepts "
             f"{printable(manifest.get('library_version', '?'))}, archive format "
             f"{printable(manifest.get('format', '?'))}).", ""]
    _describe_estimator(manifest["estimator"], lines, level=2)
    return "\n".join(lines) + "\n"


def _describe_estimator(description, lines, level, title=None):
    kind = printable(description.get("class", "?"))
    lines += [f"{'#' * level} {printable(title or kind)}" + (f" ({kind})" if title else ""),
              ""]
    targets = description.get("targets")
    inner = description.get("record")  # a network's own record, when the caller read it
    if isinstance(inner, dict):
        targets, description = inner.get("targets"), {**description, **inner}
    if isinstance(targets, dict):
        classes = targets.get("classes") or []
        n_images = targets.get("n_images") or 0
        lines.append((f"- {n_images:,} training images, " if n_images else "- ")
                     + f"{len(classes):,} concepts "
                     f"({'concept names' if targets.get('on_concepts') else 'indicator columns'})")
    params = description.get("params") or {}
    if "threshold" in params:
        lines.append(f"- decision rule: {_describe_rule(params['threshold'])}")
    if isinstance(description.get("embedding"), str):
        lines.append(f"- embedding: {printable(description['embedding'])}")
    if isinstance(description.get("encoder"), dict):  # kept by identity, not its weights
        lines.append(f"- encoder: {printable(description['encoder'].get('identity'))}")
    if params:
        lines += ["", "| parameter | value |", "|---|---|", *_parameter_rows(params)]
    lines.append("")
    if kind == "ConceptCNNClassifier":
        lines += [f"A network in Keras' .keras format "
                  f"({printable(description.get('keras_file'))}).", ""]
    if isinstance(description.get("embedding"), dict):
        _describe_estimator(description["embedding"], lines, level + 1, "embedding")
    for member in description.get("members") or []:
        member_name, member_description = member
        _describe_estimator(member_description, lines, level + 1, f"member {member_name}")


def _parameter_rows(params):
    """Markdown rows of parameters (the threshold apart): strings as they are, others as JSON."""
    return [f"| {printable(key)} | "
            f"{printable(value) if isinstance(value, str) else json.dumps(value)} |"
            for key, value in sorted(params.items()) if key != "threshold"]


def printable(value):
    r"""``str(value)`` with control and format characters escaped (``\x1b``, ``\n``...).

    A card prints strings read from a model file: escaping them means no file
    can move the cursor, clear the screen, retitle the terminal or add lines.
    A file name's bytes that are not UTF-8 are shown as ``\xNN``, as the
    reports and the command line's messages show them.

    Examples
    --------
    >>> print(printable("2026-01-01\x1b[2J"))
    2026-01-01\x1b[2J
    """
    text = shown_name(str(value))
    if text.isprintable():
        return text
    return "".join(character if character.isprintable()
                   else character.encode("unicode_escape").decode("ascii")
                   for character in text)


def _describe_rule(threshold):
    if not isinstance(threshold, dict):
        return f"one threshold: {printable(threshold)}"
    values = threshold["threshold"]
    described = (f"{len(values):,} per-concept thresholds (from {min(values):.3f} to "
                 f"{max(values):.3f})" if isinstance(values, list) else
                 f"one threshold: {values:.4f}")
    counted = threshold.get("count_model")
    return (f"{described}; at least {threshold['min_concepts']} and at most "
            f"{threshold['max_concepts'] or 'any number of'} concepts per image"
            + (", within a count model's interval" if isinstance(counted, dict) else ""))
