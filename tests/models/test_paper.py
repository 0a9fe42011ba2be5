"""``_paper`` holds the defaults that more than the estimator reads: each is the signature's."""

import inspect
import subprocess
import sys

from imageclef_concepts import ConceptCNNClassifier
from imageclef_concepts.keras._network import build_backbone_network, build_concept_cnn
from imageclef_concepts.models import _paper as paper

# The paper's own way of picking the best epoch, which the estimator does not
# default to (binary accuracy is ~99.9% for any model over sparse labels).
NOT_A_DEFAULT = {"MONITOR", "TEST_F1"}


def test_every_setting_named_after_a_parameter_is_its_default():
    signature = inspect.signature(ConceptCNNClassifier).parameters
    settings = {name for name in vars(paper) if name.isupper()}
    assert settings - NOT_A_DEFAULT <= {name.upper() for name in signature}
    for name in settings - NOT_A_DEFAULT:
        assert getattr(paper, name) == signature[name.lower()].default, name


def test_the_builders_defaults_are_the_estimators():
    estimator = inspect.signature(ConceptCNNClassifier).parameters
    for builder, own in ((build_concept_cnn, set()),
                         (build_backbone_network, {"image_size"})):  # 224: ImageNet's size
        shared = [p for p in inspect.signature(builder).parameters.values()
                  if p.name in estimator and p.default is not p.empty and p.name not in own]
        assert len(shared) >= 4
        for parameter in shared:
            assert parameter.default == estimator[parameter.name].default, (builder, parameter)
    assert inspect.signature(build_backbone_network).parameters["image_size"].default == 224


def test_reading_the_defaults_imports_no_tensorflow():
    code = ("import sys; import imageclef_concepts.models._paper, imageclef_concepts.cli._main; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]
