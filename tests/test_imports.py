"""Checks anyone can run on the package's shape: layers, import cycles, import cost, sizes.

The package is cut into subpackages by the data flow (paths -> images ->
network -> scores -> decision -> concepts -> run file -> score), each
importing only those of lower layers; the walk below reads every import,
those inside functions included (not those only for type checkers).
"""

import ast
import pathlib
import subprocess
import sys

import imageclef_concepts

ROOT = pathlib.Path(imageclef_concepts.__file__).parent
MAX_LINES = 450


def _module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree):
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks (names for annotations)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imports_of(name, path):
    """The package's modules that ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = (f"{base}.{node.module}" if node.module else base) if node.level \
                else node.module
            # "from . import x": the submodule x when there is one, else the package.
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES
                       else module for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in MODULES and target != name)
    return found


def _cycle():
    """One import cycle among the package's modules, as a list of names, or None."""
    graph = {name: _imports_of(name, path) for name, path in MODULES.items()}
    state = {}

    def visit(name, trail):
        state[name] = "open"
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                return trail[trail.index(imported):] + [imported]
            if imported not in state:
                cycle = visit(imported, trail + [imported])
                if cycle:
                    return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [name])
            if cycle:
                return cycle
    return None


# The layers, lowest first. A module may import its own subpackage and those of
# lower layers; subpackages of one layer never import each other. The root's
# leaf modules (_api, _version, _typing) are below everything, __main__ above.
LAYERS = (
    ("(leaves)",),
    ("files", "concepts"),
    ("concept_files", "images", "models"),
    ("datasets", "keras", "utils"),
    ("embeddings",),
    ("estimators", "report"),
    ("tuning",),
    ("recipes",),
    ("cli",),
    ("(main)",),
)
LAYER_OF = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
PACKAGE = ROOT.name
MAX_ROOT_MODULES = 5
MAX_SUBPACKAGE_MODULES = 16


def _part(name):
    """The subpackage a module belongs to, or the root's part: (leaves), (root), (main)."""
    parts = name.split(".")
    if len(parts) == 1:
        return "(root)"
    if parts[1] == "__main__":
        return "(main)"
    return "(leaves)" if parts[1].startswith("_") else parts[1]


def _edges():
    return [(name, imported) for name, path in MODULES.items()
            for imported in sorted(_imports_of(name, path))]


def test_every_subpackage_has_a_layer():
    assert {_part(name) for name in MODULES} - {"(root)"} == set(LAYER_OF)


def test_no_subpackage_imports_one_of_its_layer_or_above():
    upward = [f"{name} -> {imported}" for name, imported in _edges()
              if _part(name) not in ("(root)", _part(imported))
              and LAYER_OF[_part(imported)] >= LAYER_OF[_part(name)]]
    assert upward == []


def test_the_layer_check_sees_an_upward_import():
    # images is below models' neighbours' users: an images module importing tuning is upward.
    name, imported = f"{PACKAGE}.images._store", f"{PACKAGE}.tuning._thresholds"
    assert LAYER_OF[_part(imported)] >= LAYER_OF[_part(name)]


def test_no_cycle_between_subpackages():
    graph = {}
    for name, imported in _edges():
        if _part(name) != _part(imported):
            graph.setdefault(_part(name), set()).add(_part(imported))
    state = {}

    def cycle_from(part, trail):
        state[part] = "open"
        for nxt in sorted(graph.get(part, ())):
            if state.get(nxt) == "open":
                return trail + [nxt]
            if nxt not in state and (found := cycle_from(nxt, trail + [nxt])):
                return found
        state[part] = "done"
        return None

    cycles = [c for part in sorted(graph) if part not in state
              if (c := cycle_from(part, [part]))]
    assert cycles == []


def test_no_module_imports_the_root_package():
    # The root imports its subpackages lazily; __version__ lives in the leaf _version.
    importers = [name for name, imported in _edges() if imported == PACKAGE]
    assert importers == []


def test_the_root_holds_few_modules_and_no_subpackage_is_large():
    root = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root
    sizes = {path.parent.name: len(list(path.parent.glob("*.py")))
             for path in ROOT.glob("*/__init__.py")}
    assert {part: size for part, size in sizes.items() if size > MAX_SUBPACKAGE_MODULES} == {}


def test_every_module_has_its_tests_where_the_package_says():
    # tests/<subpackage>/test_<module>.py, or tests named for what they check across.
    tests = pathlib.Path(__file__).parent
    for path in ROOT.glob("*/__init__.py"):
        assert (tests / path.parent.name).is_dir(), f"no tests/{path.parent.name}/"


def test_importing_the_package_imports_no_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, imageclef_concepts; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"],
        capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_walk_sees_imports_inside_functions():
    # _workflows imports the Keras estimator inside a function only.
    assert "imageclef_concepts.keras" in _imports_of("imageclef_concepts.recipes._workflows",
                                                      MODULES["imageclef_concepts.recipes._workflows"])


def test_no_import_cycle_among_the_modules():
    assert _cycle() is None, " -> ".join(_cycle())


def test_no_module_is_over_450_lines():
    long = {name: count for name, path in MODULES.items()
            if (count := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
