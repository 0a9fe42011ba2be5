"""A straight per-image loop of the organisers' kind, to check the vectorised metric.

It follows ImageCLEFmed Caption 2019's ``evaluate-f1.py``: upper-case each
line, split on ';', skip images whose truth is empty (they leave the mean's
denominator too), and score each image with scikit-learn's binary F1 over
the union of its true and predicted concepts.
"""

import warnings

from sklearn.metrics import f1_score


def official_mean_f1(true_lines, predicted_lines):
    """Mean F1 of ``;``-joined concept strings, one image per item."""
    max_score = len(true_lines)
    current_score = 0.0
    for true_line, predicted_line in zip(true_lines, predicted_lines):
        true_concepts = _split(true_line)
        predicted_concepts = _split(predicted_line)
        if not true_concepts:
            max_score -= 1
            continue
        all_concepts = sorted(set(true_concepts + predicted_concepts))
        y_true = [int(c in true_concepts) for c in all_concepts]
        y_pred = [int(c in predicted_concepts) for c in all_concepts]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty predictions: F1 is 0
            current_score += f1_score(y_true, y_pred, average="binary", zero_division=0)
    return current_score / max_score


def _split(line):
    line = line.upper()
    return [] if line.strip() == "" else line.split(";")
