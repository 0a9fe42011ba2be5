"""Chunks written in the background: a batch decoded for a store goes on to training at once.

Writing a chunk of freshly decoded images (the ``.npy`` file, then the
index's rows) used to happen in the batch's path, so that the first epoch
over files a store did not hold yet waited for the disk at every batch.
Each store folder now has one writer thread, started when there is something to
write and ended as soon as there is nothing left, fed by a bounded queue:
when :data:`QUEUE_BATCHES` batches or :data:`QUEUE_BYTES` of pixels wait, the
next one waits for room (memory stays bounded, whatever the image size). The
writes themselves are unchanged (:meth:`~._shelf.Shelf.add`: the chunk
atomically, then the index, every check before it).

Every pending write is done (:func:`flush`) before anything that needs it:

* a source that reads the store's index (:meth:`FolderStore._query`);
  the source that asked for the writes serves its own pending rows from
  memory meanwhile;
* the removal of a meta-estimator's temporary store (``_shared.py``);
* a fork: the child starts with no writer and nothing half written
  (:func:`os.register_at_fork`);
* the interpreter's exit: the thread is not a daemon, so Python waits for it.

A job reports its own errors (the one warning a store that cannot be written
gives); what escapes it (that warning made an error by ``-W error``) goes to
:func:`threading.excepthook`, as any thread's uncaught error, and the writer
goes on.
"""

import collections
import os
import sys
import threading
import weakref

QUEUE_BATCHES = 4
"""Batches that may wait for one store's writer before the next waits for room."""
QUEUE_BYTES = 256 * 2**20
"""Pixels that may wait for one store's writer (one batch always may, however large)."""

# One writer per store folder (its device and inode, whatever path names it), not per
# store object: an estimator given a path opens its own ImageStore, a clone deep-copies
# one, and each must wait for the rows the others queued before it reads the index
# (else they are decoded again).
_writers: "weakref.WeakValueDictionary[object, _Writer]" = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


class _Writer:
    """One store's writer: a bounded queue of jobs and a thread that runs while it is not empty."""

    def __init__(self, name):
        self.name = name
        self._condition = threading.Condition()
        self._jobs = collections.deque()
        self._unfinished = 0  # queued or running
        self._bytes = 0  # their pixels
        self._thread = None

    def submit(self, job, n_bytes=0):
        """Queue ``job`` (a callable that handles its own errors); wait while the queue is full.

        Full: :data:`QUEUE_BATCHES` jobs, or :data:`QUEUE_BYTES` with this job's
        ``n_bytes`` (the pixels it holds), so that big images keep memory bounded.

        From the writer's own thread (a job that writes more), it runs at once.
        """
        if threading.current_thread() is self._thread:
            _run(job)
            return
        with self._condition:
            while self._unfinished and (self._unfinished >= QUEUE_BATCHES
                                        or self._bytes + n_bytes > QUEUE_BYTES):
                self._condition.wait()
            self._jobs.append((job, n_bytes))
            self._unfinished += 1
            self._bytes += n_bytes
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name,
                                                daemon=False)
                self._thread.start()

    def _work(self):
        while True:
            with self._condition:
                if not self._jobs:  # nothing left: the thread ends (a new one starts later)
                    self._thread = None
                    self._condition.notify_all()
                    return
                job, n_bytes = self._jobs.popleft()
            try:
                _run(job)
            finally:
                with self._condition:
                    self._unfinished -= 1
                    self._bytes -= n_bytes
                    self._condition.notify_all()

    def flush(self):
        """Wait until every job submitted so far is done and the thread has ended."""
        with self._condition:
            thread = self._thread
            if thread is threading.current_thread():
                return  # a job that reads the store: what it waits for is itself
            while self._unfinished or self._thread is not None:
                self._condition.wait()
        if thread is not None:
            thread.join()

    def busy(self):
        """Whether a write is queued or running (or its thread still alive)."""
        with self._condition:
            return bool(self._unfinished) or self._thread is not None


def _run(job):
    try:
        job()
    except Exception:  # jobs report their own errors; what escapes them (a warning made an
        # error by ``-W error``, a bug) is reported as any thread's, and training goes on
        uncaught = (*sys.exc_info(), threading.current_thread())
        threading.excepthook(threading.ExceptHookArgs(uncaught))


def writer_of(store):
    """The writer of ``store``'s folder (every store object opened there shares it)."""
    with _registry_lock:
        writer = _writers.get(_folder(store))
        if writer is None:
            writer = _Writer(f"imageclef_concepts store writer ({store.path})")
            _writers[_folder(store)] = writer
        store._writer = writer  # alive while a store of the folder is (or a job is queued)
    return writer


def flush(store):
    """Wait for every write queued for ``store``'s folder (nothing when none ever was)."""
    writer = _writers.get(_folder(store))
    if writer is not None:
        writer.flush()


def _folder(store):
    """What names a store's folder for its writer: the device and inode it opened (one folder
    by two paths, a linked parent's, is one), else its path."""
    return getattr(store, "_identity", None) or getattr(store, "path", None)


def _flush_all():
    for writer in list(_writers.values()):
        writer.flush()


def _forget_in_child():
    # A forked child writes nothing the parent queued (the parent does) and keeps no
    # lock a parent thread held: its stores start new writers when they need one.
    global _registry_lock
    _registry_lock = threading.Lock()
    for writer in list(_writers.values()):
        writer.__init__(writer.name)


# Before a fork, what is queued is written: the child's sources and stores see
# every row in the index, none half written, and no writer seemingly running.
os.register_at_fork(before=_flush_all, after_in_child=_forget_in_child)
