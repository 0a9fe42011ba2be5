"""The package's shape: what importing it costs, and where Keras lives."""

import re
import subprocess
import sys

import pytest


def _modules_after(code):
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(sorted(sys.modules))"],
        capture_output=True, text=True, check=True)
    return done.stdout


def test_importing_the_library_does_not_import_tensorflow():
    loaded = _modules_after("import imageclef_concepts\nfrom imageclef_concepts import "
                            "ConceptKNNClassifier, ThresholdTuner, imageclef_f1_score")
    assert "'tensorflow'" not in loaded and "'keras'" not in loaded


def test_command_line_help_imports_neither_tensorflow_nor_scikit_learn():
    for command in (["--help"], ["train", "--help"], ["--version"]):
        loaded = _modules_after(
            "from imageclef_concepts.cli._main import main\n"
            f"try:\n    main({command!r})\nexcept SystemExit:\n    pass")
        assert "'tensorflow'" not in loaded and "'sklearn'" not in loaded, command


def test_public_names_load_on_first_use():
    loaded = _modules_after("import imageclef_concepts\nimageclef_concepts.imageclef_f1_score")
    assert "'imageclef_concepts.concepts._metrics'" in loaded
    assert "'imageclef_concepts.tuning._thresholds'" not in loaded and "'tensorflow'" not in loaded


@pytest.mark.slow  # TensorFlow imported in a subprocess: 7 s
def test_keras_estimators_load_on_first_use():
    loaded = _modules_after("import imageclef_concepts\nimageclef_concepts.ConceptCNNClassifier")
    assert "'tensorflow'" in loaded and "'imageclef_concepts.keras._cnn_classifier'" in loaded


@pytest.mark.slow  # TensorFlow started in a subprocess: about 10 s each
@pytest.mark.parametrize("level, muted", [("2", True), ("0", False)])
def test_tensorflow_starts_quietly_unless_its_log_level_is_0(level, muted):
    import os

    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}
    environment.pop("TF_ENABLE_ONEDNN_OPTS", None)  # as a user's: oneDNN announces itself
    done = subprocess.run(
        [sys.executable, "-c", "import imageclef_concepts as icc; icc.ConceptCNNClassifier; "
         "import sys; print('tensorflow' in sys.modules)"],
        capture_output=True, text=True, env=environment, check=True)
    assert done.stdout.strip() == "True"
    assert (done.stderr == "") is muted, done.stderr


def test_only_the_keras_subpackage_imports_keras():
    import pathlib

    import imageclef_concepts

    root = pathlib.Path(imageclef_concepts.__file__).parent
    pattern = re.compile(r"^\s*(import (keras|tensorflow)|from (keras|tensorflow)\b)", re.M)
    outside = [path.relative_to(root) for path in root.rglob("*.py")
               if path.relative_to(root).parts[0] != "keras" and pattern.search(path.read_text())]
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


def _public_callables():
    """(name, function) for every public function and every public method the library
    defines on a public class (scikit-learn's inherited ones aside)."""
    import inspect

    import imageclef_concepts

    for name in imageclef_concepts.__all__:
        obj = getattr(imageclef_concepts, name)
        if inspect.isclass(obj):
            if issubclass(obj, (Exception, Warning)):
                continue
            for method_name, method in vars(obj).items():
                method = getattr(method, "__func__", method)  # classmethods
                if inspect.isfunction(method) and not method_name.startswith("_"):
                    yield f"{name}.{method_name}", method
        elif inspect.isfunction(obj):
            yield name, obj


def test_the_public_api_is_annotated():
    # mypy checks the annotations in CI; this keeps new public code annotated.
    import inspect

    unannotated = []
    for name, function in _public_callables():
        signature = inspect.signature(function)
        missing = [p.name for p in signature.parameters.values()
                   if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
        if signature.return_annotation is inspect.Signature.empty:
            missing.append("return")
        if missing:
            unannotated.append(f"{name}: {', '.join(missing)}")
    assert unannotated == []


def test_the_version_is_written_once():
    import pathlib

    import imageclef_concepts

    root = pathlib.Path(__file__).resolve().parents[1]
    assert 'dynamic = ["version"]' in (root / "pyproject.toml").read_text()
    citation = (root / "CITATION.cff").read_text()
    assert f'version: "{imageclef_concepts.__version__}"' in citation


@pytest.mark.slow  # a wheel built and installed in a new environment
def test_the_wheel_installs_and_runs(tmp_path):
    """Build the wheel, install it on its own and run it (CI also installs it with its
    dependencies into a clean virtual environment)."""
    import pathlib
    import zipfile

    import imageclef_concepts

    root = pathlib.Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(root)], check=True,
                   capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("imageclef_concepts-*.whl")
    assert wheel.name.startswith(f"imageclef_concepts-{imageclef_concepts.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "imageclef_concepts/py.typed" in names
    assert "imageclef_concepts/keras/_network.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "imageclef-concepts = imageclef_concepts.cli:main" in \
        zipfile.ZipFile(wheel).read(entry_points).decode()
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-c", "import imageclef_concepts, sys; from imageclef_concepts.cli._main "
         "import main; print(imageclef_concepts.__file__); sys.exit(main(['--version']))"],
        cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(target)},
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(str(target))  # the installed copy ran
    assert done.stdout.strip().endswith(imageclef_concepts.__version__)


def test_lazy_names_type_checker_imports_and_all_agree():
    # Three lists name the public API in __init__: keep them the same set.
    import ast
    import pathlib

    import imageclef_concepts

    source = pathlib.Path(imageclef_concepts.__file__).read_text()
    checked = next(node for node in ast.parse(source).body
                   if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    for_type_checkers = {alias.name for node in checked.body for alias in node.names}
    assert for_type_checkers == set(imageclef_concepts._MODULE_OF) == \
        set(imageclef_concepts.__all__)


# Every name importable from the package before its modules moved into
# subpackages (0.1.0): each still is, from the root, as the same object its
# subpackage exports.
PUBLIC_NAMES = [
    "BackboneEmbedding",
    "CheckpointError",
    "ConceptCNNClassifier",
    "ConceptCountRegressor",
    "ConceptEncoder",
    "ConceptEnsemble",
    "ConceptFile",
    "ConceptKNNClassifier",
    "ConceptFileError",
    "ConceptSpecialists",
    "DatasetMismatchWarning",
    "DecisionRule",
    "EnsembleTuner",
    "ImageDecodeError",
    "ImageLoader",
    "ImageStore",
    "ImageStoreError",
    "ImageStoreWarning",
    "ModelFileError",
    "MostFrequentConcepts",
    "PreparedImages",
    "Recipe2026",
    "RecipeResult",
    "RunEvaluation",
    "SkippedImagesWarning",
    "SplitBounds",
    "ThresholdTuner",
    "UnknownConceptWarning",
    "concept_sample_weight",
    "decode_image",
    "evaluate_run",
    "find_imageclef_layout",
    "imageclef_f1",
    "imageclef_f1_score",
    "imageclef_f1_scorer",
    "load_imageclef",
    "make_concept_images",
    "make_imageclef_2019_layout",
    "make_imageclef_layout",
    "oracle_bounds",
    "per_image_f1_scores",
    "plot_concept_frequencies",
    "plot_per_concept_f1",
    "plot_threshold_curve",
    "plot_training_history",
    "prepare_images",
    "read_concepts",
    "refine_grid",
    "remove_checkpoint",
    "reproduce_2019",
    "run_recipe_2026",
    "write_report",
    "write_run",
]


def test_every_public_name_of_before_the_move_is_still_importable():
    import importlib

    import imageclef_concepts
    from imageclef_concepts._api import HOME_OF

    assert set(PUBLIC_NAMES) <= set(imageclef_concepts.__all__)
    for name in PUBLIC_NAMES:
        home = importlib.import_module(f"imageclef_concepts.{HOME_OF[name]}")
        assert getattr(imageclef_concepts, name) is getattr(home, name), name


def test_each_subpackage_lists_its_names_once_for_import_type_checkers_and_all():
    import ast
    import importlib
    import pathlib

    from imageclef_concepts._api import HOMES

    for home, names in HOMES.items():
        package = importlib.import_module(f"imageclef_concepts.{home}")
        tree = ast.parse(pathlib.Path(package.__file__).read_text())
        checked = next(node for node in tree.body
                       if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
        for_type_checkers = {alias.name for node in checked.body for alias in node.names}
        assert set(names) <= for_type_checkers, home
        assert for_type_checkers <= set(package.__all__), home
