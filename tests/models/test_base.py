"""What the estimators share: the meta-estimators' HTML diagram shows what they hold."""

import re

import pytest

from imageclef_concepts import (
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptSpecialists,
    EnsembleTuner,
    MostFrequentConcepts,
    ThresholdTuner,
)


def _ensemble():
    return ConceptEnsemble([("knn", ConceptKNNClassifier(3)), ("top", MostFrequentConcepts())])


def _boxes(html):
    """Each nested box of scikit-learn's diagram: its label and the estimator classes in it."""
    boxes = {}
    for item in html.split('<div class="sk-parallel-item">')[1:]:
        label = re.search(r"<label[^>]*>(?:<div><div>)?([^<]+)<", item).group(1)
        boxes[label] = re.findall(r"<div><div>(\w+)</div></div>", item)
    return boxes


@pytest.mark.parametrize("meta, members", [
    (_ensemble, {"knn": "ConceptKNNClassifier", "top": "MostFrequentConcepts"}),
    (lambda: ConceptSpecialists(ConceptKNNClassifier(), [
        ("ultrasound", "US", MostFrequentConcepts(k=2)), ("xray", "XR", ConceptKNNClassifier(1))]),
     {"base": "ConceptKNNClassifier", "ultrasound: trigger US": "MostFrequentConcepts",
      "xray: trigger XR": "ConceptKNNClassifier"}),
    (lambda: ThresholdTuner(ConceptKNNClassifier()),
     {"estimator: ConceptKNNClassifier": "ConceptKNNClassifier"}),
    # The ensemble, drawn as its members (as scikit-learn draws a nested VotingClassifier).
    (lambda: EnsembleTuner(_ensemble()),
     {"ensemble: ConceptEnsemble": None, "knn": "ConceptKNNClassifier",
      "top": "MostFrequentConcepts"}),
])
def test_meta_estimators_show_each_estimator_they_hold_in_its_own_box(meta, members):
    boxes = _boxes(meta()._repr_html_())
    assert set(members) <= set(boxes)
    for name, cls in members.items():
        assert boxes[name][:1] == ([cls] if cls else []), (name, boxes[name])
