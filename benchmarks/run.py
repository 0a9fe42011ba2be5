"""Run every benchmark and print a table of ratios measured side by side.

Usage: ``python benchmarks/run.py [--quick] [--only NAME ...] [--json PATH]``

Each row times our code and a reference in the same run, alternating, so
that the ratio holds on a shared, noisy machine where absolute times do not.
"""

import argparse
import importlib
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# One module per capability; each has ``run(quick) -> list[Row]``.
BENCHMARKS = ["metric", "thresholds", "cnn", "images", "store", "cluster", "shared",
              "encoders"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--json", type=Path,
                        default=ROOT / "benchmarks" / "results" / "latest.json",
                        help="where to write the rows as JSON")
    args = parser.parse_args(argv)
    rows = []
    for name in args.only or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(module.run(args.quick))
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "processor": platform.processor(),
                    "cores": __import__("os").cpu_count()},
        "rows": [row.as_dict() for row in rows],
    }, indent=2))
    print(f"\nwritten to {args.json}")


def print_table(rows):
    header = (f"{'capability':<12} {'benchmark':<52} {'ours':>10} {'reference':>10} "
              f"{'ratio':>8}  meaning")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row.capability:<12} {row.name:<52} {row.ours:>10.4g} {row.reference:>10.4g} "
              f"{row.ratio:>8.2f}  {row.meaning} ({row.unit})")


if __name__ == "__main__":
    main()
