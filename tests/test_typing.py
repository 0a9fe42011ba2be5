"""A user's script type-checks precisely: the real ``mypy --strict``, the package as installed.

The package is typed (``py.typed``); its public classes' ``__init__`` and its
public functions are annotated with the types of :mod:`imageclef_concepts._typing`,
so that a misspelt parameter or a wrong argument is an error in the user's
editor and CI, not at run time, and what a call returns is a type, not ``Any``.
"""

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
from sklearn.utils._param_validation import Hidden, StrOptions

import imageclef_concepts
from imageclef_concepts import _typing

PACKAGE_ROOT = Path(imageclef_concepts.__file__).resolve().parents[1]

# Every public estimator, built with correct parameters, fitted and used.
CORRECT = '''
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import assert_type

from imageclef_concepts import (
    BackboneEmbedding,
    ConceptCNNClassifier,
    ConceptCountRegressor,
    ConceptEncoder,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptSpecialists,
    DecisionRule,
    EnsembleTuner,
    ImageLoader,
    MostFrequentConcepts,
    ThresholdTuner,
    imageclef_f1,
    imageclef_f1_score,
    imageclef_f1_scorer,
    per_image_f1_scores,
)

images = np.zeros((8, 32, 32, 3), dtype=np.uint8)
concepts = ["C1;C2", "C2"] * 4
indicator = np.array([[1, 0], [0, 1]] * 4)

cnn = ConceptCNNClassifier(image_size=32, filters=(4, 8), kernel_size=(5, 3), dense_units=(8,),
                           epochs=1, threshold=DecisionRule(0.2, max_concepts=3),
                           padding="same", resample="bilinear", on_error="skip",
                           augmentation="light", pooling="gem", random_state=0,
                           test_time_augmentation=True, dtype_policy="float32",
                           checkpoint_dir="checkpoints", pos_weight="balanced")
assert_type(cnn.fit(images, concepts, validation_data=(images, concepts)),
            ConceptCNNClassifier)
assert_type(cnn.predict_proba(images), NDArray[np.floating[Any]])
assert_type(cnn.predict_concepts(images), list[tuple[str, ...]])
assert_type(cnn.decide(images), NDArray[np.bool_])
cnn.export("model.onnx", format="onnx")
baseline = MostFrequentConcepts(k="auto", max_k=10).fit(images, indicator)
knn = ConceptKNNClassifier(3, embedding="pixels", voting="mean_count", image_store=None)
ensemble = ConceptEnsemble([("cnn", cnn), ("knn", knn)], combine="vote", min_votes=1,
                           weights=[1.0, 2.0], n_jobs=1, random_state=np.random.RandomState(0))
specialists = ConceptSpecialists(cnn, [("c1", "C1", baseline)], merge="union", min_images=2)
tuner = ThresholdTuner(cnn, cv=[(np.arange(4), np.arange(4, 8))], strategy="per_concept",
                       thresholds=[0.1, 0.5],
                       max_concepts=100, shrinkage="cv", scoring=imageclef_f1)
assert_type(tuner.fit(images, concepts), ThresholdTuner)
ensemble_tuner = EnsembleTuner(ensemble, tune="weights", cv="prefit", bands=3)
counts = ConceptCountRegressor(features="scores", coverage=0.9, random_state=1)
embedding = BackboneEmbedding("densenet121", image_size=224, weights=None)
encoder = ConceptEncoder(min_count=2, sparse_output=True, handle_unknown="error")
loader = ImageLoader(image_size=64, resample="nearest", n_jobs=1)
assert_type(loader.transform(["a.png", "b.png"]), NDArray[np.uint8])

score = imageclef_f1_score(concepts, cnn.predict(images))
assert_type(score, float)
assert_type(imageclef_f1_score(indicator, indicator, concepts=[0]), float)
assert_type(per_image_f1_scores(concepts, concepts),
            tuple[NDArray[np.float64], NDArray[np.bool_]])
assert_type(imageclef_f1(cnn, images, concepts), float)
secondary = imageclef_f1_scorer(concepts=["C1"])
'''

# A misspelt name, a misspelt parameter and wrong argument types, each line its errors.
WRONG = '''
from imageclef_concepts import ConceptCNNClassifier, imageclef_f1_score
from imageclef_concepts.keras import build_concept_cn

ConceptCNNClassifier(epochz=3)
imageclef_f1_score(3, None)
ConceptCNNClassifier(image_size="400", padding="diagonal")
'''
EXPECTED = {
    (3, "attr-defined", 'Module "imageclef_concepts.keras" has no attribute "build_concept_cn"'),
    (5, "call-arg", 'Unexpected keyword argument "epochz" for "ConceptCNNClassifier"; '
                    'did you mean "epochs"?'),
    (6, "arg-type", 'Argument 1 to "imageclef_f1_score" has incompatible type "int"'),
    (6, "arg-type", 'Argument 2 to "imageclef_f1_score" has incompatible type "None"'),
    (7, "arg-type", 'Argument "image_size" to "ConceptCNNClassifier" has incompatible type '
                    '"str"; expected "int"'),
    (7, "arg-type", 'Argument "padding" to "ConceptCNNClassifier" has incompatible type '
                    '"Literal[\'diagonal\']"'),
}
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*)  "
                   r"\[(?P<code>[a-z-]+)\]$")


def _mypy_strict(folder, *scripts):
    """``mypy --strict`` on ``scripts``, the package found as an installed one (PYTHONPATH)."""
    environment = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context",
         "--cache-dir", str(folder / ".mypy_cache"), "--python-executable", sys.executable,
         *scripts], cwd=folder, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 2: mypy itself failed
    errors = {}
    for line in done.stdout.splitlines():
        if (found := ERROR.match(line)):
            errors.setdefault(found["file"], set()).add(
                (int(found["line"]), found["code"], found["message"]))
        else:
            assert ": note: " in line, line  # nothing else but notes
    return errors


@pytest.mark.slow  # mypy over the library, in a subprocess: 16 s
def test_a_users_script_type_checks_strictly_and_mistakes_are_errors(tmp_path):
    (tmp_path / "correct.py").write_text(textwrap.dedent(CORRECT))
    (tmp_path / "wrong.py").write_text(textwrap.dedent(WRONG))
    errors = _mypy_strict(tmp_path, "correct.py", "wrong.py")
    assert errors.get("correct.py", set()) == set()
    found = errors.get("wrong.py", set())
    assert {(line, code) for line, code, _ in found} == {(line, code) for line, code, _
                                                         in EXPECTED}
    for line, code, start in EXPECTED:  # each message says what is wrong
        assert any(message.startswith(start) for at, kind, message in found
                   if (at, kind) == (line, code)), (start, found)


def _public_classes():
    for name in imageclef_concepts.__all__:
        value = getattr(imageclef_concepts, name)
        if inspect.isclass(value) and "__init__" in vars(value):
            yield value


@pytest.mark.parametrize("cls", [c for c in _public_classes()
                                 if hasattr(c, "_parameter_constraints")],
                         ids=lambda cls: cls.__name__)
def test_literal_options_are_the_parameter_constraints_options(cls):
    # A parameter's Literal type names the strings of its StrOptions: one list, checked.
    annotations = cls.__init__.__annotations__  # text: the modules postpone them
    for parameter, constraints in cls._parameter_constraints.items():
        literals, any_string = _options_of(annotations[parameter])
        shown = {option for constraint in constraints if isinstance(constraint, StrOptions)
                 for option in constraint.options}
        hidden = {option for constraint in constraints if isinstance(constraint, Hidden)
                  and isinstance(constraint.constraint, StrOptions)
                  for option in constraint.constraint.options}
        if any_string:  # a name among the options, or any string (a Keras loss)
            assert literals <= shown | hidden, parameter
        else:
            assert shown <= literals <= shown | hidden, (parameter, literals, shown)


def _options_of(annotation):
    """The strings an annotation's Literals allow, and whether it allows any ``str``."""
    literals, any_string = set(), False
    for node in ast.walk(ast.parse(annotation, mode="eval")):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
            values = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            literals.update(ast.literal_eval(value) for value in values)
        elif isinstance(node, ast.Name) and node.id == "str":
            any_string = True
        elif isinstance(node, ast.Name) and hasattr(_typing, node.id):
            found, anything = _options_of_alias(getattr(_typing, node.id))
            literals |= found
            any_string |= anything
    return literals, any_string


def _options_of_alias(alias):
    if typing.get_origin(alias) is typing.Literal:
        return set(typing.get_args(alias)), False
    if alias is str:
        return set(), True
    found, anything = set(), False
    for argument in typing.get_args(alias):
        more, any_more = _options_of_alias(argument)
        found, anything = found | more, anything or any_more
    return found, anything


@pytest.mark.parametrize("cls", list(_public_classes()), ids=lambda cls: cls.__name__)
def test_public_constructors_are_fully_annotated(cls):
    signature = inspect.signature(cls.__init__)
    annotations = cls.__init__.__annotations__
    missing = [name for name in list(signature.parameters)[1:] if name not in annotations]
    assert missing == [] and "return" in annotations, missing
