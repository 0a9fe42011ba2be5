"""The package's shape, read from its own imports: modules, subpackages, edges, cycles.

    python benchmarks/package_shape.py [REPOSITORY]

Prints the modules at the root, each subpackage's module count, the import
edges between the package's modules (imports inside functions included, not
those for type checkers only), the edges that cross subpackages, the cycles
between subpackages and the imports of the root package, as
tests/test_imports.py walks them. REPOSITORY defaults to this checkout; give
an older checkout (git worktree) to compare.
"""

import pathlib
import sys


def main(repository):
    root = repository / "imageclef_concepts"
    source = (repository / "tests" / "test_imports.py").read_text()
    # The test's walk, pointed at the given tree without importing it.
    source = source.replace("import imageclef_concepts\n", "").replace(
        "pathlib.Path(imageclef_concepts.__file__).parent", f"pathlib.Path({str(root)!r})")
    walk = {}
    exec(compile(source, "test_imports", "exec"), walk)
    modules = walk["MODULES"]

    def part(name):
        parts = name.split(".")
        return "(root)" if len(parts) == 1 or parts[1].startswith("_") else parts[1]

    part = walk.get("_part", part)  # the test's own parts where it has them
    edges = [(a, b) for a, path in modules.items() for b in walk["_imports_of"](a, path)]
    crossing = [(a, b) for a, b in edges if part(a) != part(b)]
    graph = {}
    for a, b in crossing:
        graph.setdefault(part(a), set()).add(part(b))
    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a]
                     if a in graph.get(b, ())})
    sizes = {path.parent.name: len(list(path.parent.glob("*.py")))
             for path in root.glob("*/__init__.py")}
    print(f"modules: {len(modules)}; at the root: {len(list(root.glob('*.py')))}")
    print(f"subpackages: {len(sizes)} {dict(sorted(sizes.items()))}")
    print(f"import edges: {len(edges)}; crossing subpackages: {len(crossing)}")
    print(f"subpackages importing each other: {cycles or 'none'}")
    print(f"imports of the root package: "
          f"{sorted({a for a, b in edges if b == 'imageclef_concepts'}) or 'none'}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[1]))
