"""Model cards: what a saved model is, read from the model file alone.

Every ``.keras`` file the library writes carries, beside the network, a JSON
record: library, Keras and TensorFlow versions, the date, every parameter,
the concept vocabulary, the training data's size and concept statistics,
the validation history and the decision rule (with its tuning score when a
:class:`~imageclef_concepts.ThresholdTuner` chose it). :func:`model_card`
renders it as Markdown; ``imageclef-concepts info MODEL`` prints it without
importing TensorFlow, and ``train`` writes it beside the model as
``<model>.card.md``.
"""

import json
import zipfile

METADATA_ENTRY = "imageclef_concepts.json"


def read_model_record(path):
    """The JSON record inside a ``.keras`` file written by the library."""
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_ENTRY not in archive.namelist():
                raise ValueError(f"{path} was not written by ConceptCNNClassifier.save.")
            return json.loads(archive.read(METADATA_ENTRY))
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a .keras model file (not a zip archive: empty, "
                         "truncated or another kind of file).") from None


def model_card(record, name="model"):
    """A Markdown model card from a model file's record.

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
    targets = record.get("targets", {})
    classes, counts = targets.get("classes", []), targets.get("column_counts") or []
    n_images = targets.get("n_images") or 0
    lines = [f"# Model card: {name}", "",
             "A ConceptCNNClassifier of imageclef_concepts: ImageCLEFmed Caption concept "
             "detection (multi-label, one sigmoid output per concept).", "",
             "## Provenance", "",
             f"- imageclef_concepts {record.get('library_version', '?')}, Keras "
             f"{record.get('keras_version', '?')}, TensorFlow "
             f"{record.get('tensorflow_version', '?')}",
             f"- saved {record.get('saved_at', '?')} (file format {record.get('format', 1)})",
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
        lines.append(f"- {len(history['loss'])} epochs trained; kept epoch "
                     f"{'the last' if best is None else best + 1}")
        for key in sorted(k for k in history if k.startswith("val_")):
            value = history[key][best if best is not None else -1]
            lines.append(f"- {key} at the kept epoch: {value:.4f}")
    tuning = record.get("tuning")
    if tuning:
        lines.append(f"- decision rule tuned on {tuning['n_images']:,} images: official F1 "
                     f"{tuning['official_f1']:.4f} ({tuning['strategy']} threshold)")
    params = record.get("params", {})
    threshold = params.get("threshold")
    lines += ["", "## Decision rule", "", f"- {_describe_rule(threshold)}", "",
              "## Parameters", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {key} | {json.dumps(value) if not isinstance(value, str) else value} |"
              for key, value in sorted(params.items()) if key != "threshold"]
    return "\n".join(lines) + "\n"


def _describe_rule(threshold):
    if not isinstance(threshold, dict):
        return f"one threshold: {threshold}"
    values = threshold["threshold"]
    described = (f"{len(values):,} per-concept thresholds (from {min(values):.3f} to "
                 f"{max(values):.3f})" if isinstance(values, list) else
                 f"one threshold: {values:.4f}")
    return (f"{described}; at least {threshold['min_concepts']} and at most "
            f"{threshold['max_concepts'] or 'any number of'} concepts per image")
