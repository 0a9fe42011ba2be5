"""The package's shape: what importing it costs, and where Keras lives."""

import re
import subprocess
import sys


def _modules_after(code):
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(sorted(sys.modules))"],
        capture_output=True, text=True, check=True)
    return done.stdout


def test_importing_the_library_does_not_import_tensorflow():
    loaded = _modules_after("import imageclef_concepts\nfrom imageclef_concepts import "
                            "ConceptKNNClassifier, ThresholdTuner, imageclef_f1_score")
    assert "'tensorflow'" not in loaded and "'keras'" not in loaded


def test_command_line_help_and_evaluate_do_not_import_tensorflow():
    loaded = _modules_after(
        "from imageclef_concepts._cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert "'tensorflow'" not in loaded


def test_keras_estimators_load_on_first_use():
    loaded = _modules_after("import imageclef_concepts\nimageclef_concepts.ConceptCNNClassifier")
    assert "'tensorflow'" in loaded and "'imageclef_concepts.keras._cnn_classifier'" in loaded


def test_only_the_keras_subpackage_imports_keras():
    import pathlib

    import imageclef_concepts

    root = pathlib.Path(imageclef_concepts.__file__).parent
    pattern = re.compile(r"^\s*(import (keras|tensorflow)|from (keras|tensorflow)\b)", re.M)
    outside = [path.relative_to(root) for path in root.glob("*.py")
               if pattern.search(path.read_text())]
    assert outside == []


def test_every_public_name_is_in_the_api_reference():
    import pathlib

    import imageclef_concepts

    api = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "api.rst").read_text()
    documented = set(re.findall(r"^   (\w+)$", api, flags=re.M))
    documented |= set(re.findall(r"^\.\. autodata:: (\w+)", api, flags=re.M))
    missing = sorted(set(imageclef_concepts.__all__) - documented)
    assert missing == []


def test_every_public_name_has_an_examples_section():
    # --doctest-modules runs them: an example that stops working fails the suite.
    import inspect

    import imageclef_concepts

    missing = [name for name in imageclef_concepts.__all__
               if "Examples" not in (inspect.getdoc(getattr(imageclef_concepts, name)) or "")]
    assert missing == []
