"""Ctrl-C noticed wherever it lands: in a finalizer that drops it, or in a library that
turns it into an error of its own."""

import signal
import sys
import threading
from contextlib import contextmanager

_interrupted = threading.Event()
_noticing = threading.Event()  # a main thread's block is running: its Ctrl-C is every thread's


@contextmanager
def noticing_interrupts(raise_at_exit=True):
    """Remember every Ctrl-C, so that one swallowed or turned into another error still counts.

    TensorFlow's finalizers (``AtomicFunction.__del__``) run during training;
    a KeyboardInterrupt raised in one is printed and dropped. The flag it
    leaves makes :func:`raise_if_interrupted` end the run at the next check
    (and the block's end, with ``raise_at_exit``). Keras, building a network,
    turns one into an error of its own (a TypeError): :func:`was_interrupted`
    tells that error from a user's mistake.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupted.clear()
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # a SIGINT the caller ignores (a script's background job) stays ignored
        return

    def handler(signum, frame):
        _interrupted.set()
        raise KeyboardInterrupt

    hook = sys.unraisablehook

    def unraisable(report):  # the Ctrl-C is noted: no "Exception ignored" traceback for it
        if not isinstance(report.exc_value, KeyboardInterrupt):
            hook(report)

    previous, sys.unraisablehook = signal.signal(signal.SIGINT, handler), unraisable
    outer = _noticing.is_set()
    _noticing.set()
    try:
        yield
        if raise_at_exit:
            raise_if_interrupted()
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = hook
        if not outer:
            _noticing.clear()


def raise_if_interrupted():
    if was_interrupted():
        raise KeyboardInterrupt


def was_interrupted():
    """Whether a Ctrl-C came since the last :func:`noticing_interrupts` began; in another
    thread, only while the main thread's block runs (one that ended by a Ctrl-C does not stop
    a later run in a thread)."""
    return _interrupted.is_set() and (_noticing.is_set()
                                      or threading.current_thread() is threading.main_thread())
