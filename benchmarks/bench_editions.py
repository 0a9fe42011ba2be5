"""Reading and scoring 100k-line concept files: a fixed edition against ``edition="auto"``.

``python -m benchmarks.bench_editions [N_LINES [REPEAT]]`` writes a ground truth and a
run of N_LINES images (default 100,000) as a comma CSV (2025) and as a tab
file (2019), then times ``read_concepts`` and ``evaluate_run`` with the
fixed edition and with ``"auto"`` (best of REPEAT, default 3), and prints the ratio
auto / fixed. ``auto`` tries every edition, so the ratio is what choosing
costs over naming the edition.
"""

import os
import random
import sys
import tempfile
import time
import warnings

from imageclef_concepts import evaluate_run, read_concepts


def _files(folder, n_lines):
    rng = random.Random(5)
    concepts = [f"C{k:07d}" for k in range(3000)]
    ids = [f"ImageCLEFmedical_2025_{k:06d}" for k in range(n_lines)]
    truth = {i: rng.sample(concepts, rng.randint(1, 8)) for i in ids}
    run = {i: rng.sample(concepts, rng.randint(0, 10)) for i in ids}
    paths = {}
    for name, header, delimiter in (("csv", "ID,CUIs\n", ","), ("tab", "", "\t")):
        for role, table in (("truth", truth), ("run", run)):
            path = os.path.join(folder, f"{role}.{name}")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(header + "".join(f"{i}{delimiter}{';'.join(table[i])}\n"
                                              for i in ids))
            paths[name, role] = path
    return paths


def _best(function, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv):
    n_lines = int(argv[0]) if argv else 100_000
    repeat = int(argv[1]) if len(argv) > 1 else 3
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as folder:
        paths = _files(folder, n_lines)
        print(f"{n_lines} lines; best of {repeat}, seconds")
        print(f"{'what':34} {'fixed':>7} {'auto':>7} {'auto/fixed':>10}")
        for layout, fixed in (("csv", "2025"), ("tab", "2019")):
            truth, run = paths[layout, "truth"], paths[layout, "run"]
            for what, call in (
                ("read_concepts", lambda e, r=run: read_concepts(r, edition=e)),
                ("evaluate_run", lambda e, r=run, t=truth: evaluate_run(r, t, edition=e)),
            ):
                fixed_time = _best(lambda c=call, e=fixed: c(e), repeat)
                auto_time = _best(lambda c=call: c("auto"), repeat)
                print(f"{what + ' ' + layout + ' (' + fixed + ')':34} {fixed_time:7.2f} "
                      f"{auto_time:7.2f} {auto_time / fixed_time:10.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
