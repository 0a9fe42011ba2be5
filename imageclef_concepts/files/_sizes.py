"""Sizes in bytes: said in words, and checked against this machine's memory before allocating.

Every parameter that sizes an allocation (``image_size``, ``batch_size`` with
``image_size``, the image store's chunks, a model file's members inflating)
is checked here before the allocation, so that a mistake is one line naming
the parameter instead of an out-of-memory error after minutes of work.
"""

import functools
import os
import shutil
import stat
from pathlib import Path

# The most one allocation may take where the machine's memory cannot be told (no
# os.sysconf, as on Windows): more than any workstation gives a batch of images.
_UNKNOWN_MEMORY = 2**38  # 256 GiB


@functools.lru_cache(maxsize=1)
def memory_limit():
    """The most memory this process could ever get, in bytes: the machine's physical memory.

    Physical memory (``SC_PHYS_PAGES * SC_PAGE_SIZE``), or a container's
    cgroup limit when it is lower, and not the memory free at the moment:
    what is free changes with other programs and the page cache, so a check
    against it would refuse or accept the same call by chance, while an
    allocation larger than the machine's memory can never be served (the
    kernel refuses it, kills the process or swaps it to a crawl). So the
    check refuses only what cannot fit, never what might. Where the platform
    cannot tell, ``_UNKNOWN_MEMORY`` (256 GiB).
    """
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return _UNKNOWN_MEMORY
    for cgroup in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(cgroup) as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < limit:
            limit = int(text)
    return limit if limit > 0 else _UNKNOWN_MEMORY


def check_allocation(n_bytes, setting, what, advice):
    """Refuse, before allocating it, what this machine's memory cannot hold.

    The one check of every parameter that sizes an allocation (``image_size``;
    ``batch_size`` with ``image_size``; the image store's chunks, which are
    batches): estimators' ``fit`` and ``predict``, ``prepare_images``,
    image sources and the command line call it before any work.

    Parameters
    ----------
    n_bytes : int
        What the setting allocates, at least.
    setting : str
        The parameter(s) as the user gave them (``"image_size=100000"``, or
        ``"--image-size 100000"`` on the command line).
    what : str
        What takes the bytes.
    advice : str
        What to do instead.

    Raises
    ------
    ValueError
        One line naming the setting, the bytes and the limit (:func:`memory_limit`).
    """
    limit = memory_limit()
    if n_bytes > limit:
        raise ValueError(f"{setting}: {what} takes {in_bytes(n_bytes)}, more than this "
                         f"machine's memory ({in_bytes(limit, exact=False)}): {advice}.")


def check_disk_space(n_bytes, folder, setting, what, advice):
    """Refuse, before writing them, ``n_bytes`` that the free space of ``folder``'s disk cannot
    take (``shutil.disk_usage``); nothing is refused where the space cannot be told.

    Raises
    ------
    ValueError
        One line naming the setting, the bytes and the free space.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if n_bytes > free:  # the free space exactly where rounded it would read as the need
        shown = in_bytes(free, exact=in_bytes(free, False) == in_bytes(n_bytes, False))
        raise ValueError(f"{setting}: {what} takes {in_bytes(n_bytes)}, more than the free "
                         f"space of the disk of {os.fsdecode(folder)} ({shown}): {advice}.")


def check_disks(demands, asked=()):
    """Ask each disk for the ``demands`` ``(bytes, folder, setting, what, advice)`` it takes
    together (``folder``: where the bytes go, made or not yet), naming the first one's
    setting; a disk whose demands are all in ``asked`` (checked alone already) and a demand
    of nothing are left out."""
    disks = {}
    for demand in demands:
        if demand[0]:
            disks.setdefault(_device(demand[1]), []).append(demand)
    for together in disks.values():
        if all(any(demand is done for done in asked) for demand in together):
            continue
        _, folder, shown, _, _ = together[0]
        check_disk_space(sum(n for n, *_ in together), nearest_folder(folder), shown,
                         ", and ".join(what for *_, what, _ in together),
                         "free space there, " + " or ".join(dict.fromkeys(  # each once
                             a for *_, a in together)))


def _device(path):
    """The device of ``path``, or of its nearest folder there is."""
    try:
        return nearest_folder(path).stat().st_dev
    except OSError:
        return None


def nearest_folder(path):
    """``path``, or the nearest of its folders there is (the folder a file will be made in)."""
    path = Path(path)
    for folder in (path, *path.parents):
        try:
            folder.stat()
        except OSError:
            continue
        return folder
    return path


def setting(name, value):
    """How a parameter was set: ``--name value`` for a command-line flag, else ``name=value``."""
    value = value.tolist() if hasattr(value, "tolist") else value  # NumPy's: [2, 4], as given
    if not name.startswith("--"):
        return f"{name}={value!r}"
    if isinstance(value, (tuple, list)):  # as the flag takes it: 32,64
        value = ",".join(map(str, value))
    return f"{name} {value}"


def in_bytes(n, exact=True):
    """``n`` bytes in words: in the largest binary unit under it, and exactly."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" + (f" ({n:,} bytes)" if exact else "")
    return f"{n:,} bytes"


def bytes_held(folder):
    """The bytes of the files in ``folder`` (links not followed), 0 when there is none: what
    a checkpoint to be resumed holds already."""
    held = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                status = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            held += status.st_size if stat.S_ISREG(status.st_mode) else 0
    return held
