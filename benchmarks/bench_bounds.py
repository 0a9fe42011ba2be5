"""The ceilings of real splits, and the time and memory of oracle_bounds at the 2019 scale.

Usage (from the repository root)::

    python -m benchmarks.bench_bounds [--nih DIR] [--roco FILE] [--skip-timing]

``--nih``: a folder with ``train_concepts.tsv`` and ``valid_concepts.tsv``;
``--roco``: a concept file, split at random 80/20 with three seeds. The
timing draws 60,000 training and 10,000 test images over 5,528 concepts with
a power-law long tail (about six concepts per image) and prints the best of
two runs and the peak memory that ``oracle_bounds`` allocates.
"""

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np

from imageclef_concepts import oracle_bounds, read_concepts

from .bench_metric import long_tail_indicators

FIELDS = ("vocabulary_f1", "retrieval_f1", "top_k_f1", "k", "unseen_concepts",
          "images_with_unseen")


def show(name, rows):
    print(name)
    for field in FIELDS:
        values = np.array([getattr(row, field) for row in rows], dtype=float)
        spread = f" (range {values.min():.4f}-{values.max():.4f})" if len(rows) > 1 else ""
        print(f"  {field:20s} {values.mean():.4f}{spread}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nih", type=Path)
    parser.add_argument("--roco", type=Path)
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args(argv)
    if args.nih:
        train = read_concepts(args.nih / "train_concepts.tsv").concepts
        valid = read_concepts(args.nih / "valid_concepts.tsv").concepts
        show(f"NIH ChestX-ray14 sample: {len(train)} training vs {len(valid)} validation images",
             [oracle_bounds(train, valid)])
    if args.roco:
        concepts = np.array(read_concepts(args.roco).concepts, dtype=object)
        rows = []
        for seed in (0, 1, 2):
            order = np.random.default_rng(seed).permutation(len(concepts))
            cut = int(0.8 * len(concepts))
            rows.append(oracle_bounds(concepts[order[:cut]], concepts[order[cut:]]))
        show(f"ROCO v1 concepts, {len(concepts)} images split 80/20, seeds 0-2", rows)
    if not args.skip_timing:
        rng = np.random.default_rng(0)
        train = long_tail_indicators(60_000, 5_528, 6, rng)
        test = long_tail_indicators(10_000, 5_528, 6, rng)
        times, cpu = [], []
        for _ in range(2):  # CPU time too: on a shared machine the wall clock waits
            start, start_cpu = time.perf_counter(), time.process_time()
            bounds = oracle_bounds(train, test)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        tracemalloc.start()
        oracle_bounds(train, test)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"oracle_bounds, 10,000 test x 60,000 training images, 5,528 concepts "
              f"({train.nnz / train.shape[0]:.1f} per image): best of 2 {min(times):.2f} s "
              f"({min(cpu):.2f} s of CPU), peak allocated {peak / 2**20:.0f} MiB")
        print(f"  {bounds!r}")


if __name__ == "__main__":
    main()
