"""Side-by-side timing: each row runs ours and the reference in the same process."""

import time
from dataclasses import asdict, dataclass


@dataclass
class Row:
    """One line of the benchmark table.

    ``ratio`` is what the row's ``meaning`` says (a speed-up, a throughput
    ratio, a memory ratio...), measured in this run, both sides alternating.
    """

    capability: str
    name: str
    ours: float
    reference: float
    unit: str
    ratio: float
    meaning: str

    def as_dict(self):
        return asdict(self)


def best_time(function, repeat):
    """The fastest of ``repeat`` calls, in seconds (the least disturbed by noise)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def alternate(ours, reference, repeat):
    """Best times of two functions, called in alternation so that drift hits both."""
    ours_times, reference_times = [], []
    for _ in range(repeat):
        ours_times.append(best_time(ours, 1))
        reference_times.append(best_time(reference, 1))
    return min(ours_times), min(reference_times)


def alternate_all(functions, repeat):
    """Best times of several functions, called in turn ``repeat`` times (drift hits all)."""
    times = [[] for _ in functions]
    for _ in range(repeat):
        for function, kept in zip(functions, times):
            kept.append(best_time(function, 1))
    return [min(kept) for kept in times]


# Prepended to the scripts that benchmarks run in a fresh interpreter: the peak
# resident memory of that process, in MB, from /proc (VmHWM), which starts
# afresh at exec; ru_maxrss would carry over the peak of the forking parent.
PEAK_RSS_FUNCTION = """
def peak_rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
"""
