"""Checks anyone can run on the package's shape: import cost, import cycles, module size."""

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


def test_importing_the_package_imports_no_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, imageclef_concepts; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"],
        capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_walk_sees_imports_inside_functions():
    # _workflows imports the Keras estimator inside a function only.
    assert "imageclef_concepts.keras" in _imports_of("imageclef_concepts._workflows",
                                                      MODULES["imageclef_concepts._workflows"])


def test_no_import_cycle_among_the_modules():
    assert _cycle() is None, " -> ".join(_cycle())


def test_no_module_is_over_450_lines():
    long = {name: count for name, path in MODULES.items()
            if (count := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
