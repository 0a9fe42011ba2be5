"""Ctrl-C noticed where Python drops it or a library turns it into another error."""

import os
import signal

import pytest

from imageclef_concepts.utils._interrupts import (
    noticing_interrupts,
    raise_if_interrupted,
    was_interrupted,
)


class _SwallowsInterrupts:  # as TensorFlow's AtomicFunction.__del__ does
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("raise_at_exit", [True, False])
def test_a_ctrl_c_dropped_in_a_finalizer_is_noticed(monkeypatch, raise_at_exit, sigint_raises):
    ignored = []  # what Python would print as "Exception ignored in ..."
    monkeypatch.setattr("sys.unraisablehook", ignored.append)
    before = signal.getsignal(signal.SIGINT)
    try:
        with noticing_interrupts(raise_at_exit=raise_at_exit):
            assert not was_interrupted()
            _SwallowsInterrupts()  # the KeyboardInterrupt is raised in __del__ and dropped
            assert was_interrupted()
            with pytest.raises(KeyboardInterrupt):
                raise_if_interrupted()
    except KeyboardInterrupt:
        assert raise_at_exit
    else:
        assert not raise_at_exit
    assert ignored == [] and was_interrupted()  # noted, no traceback printed for it
    assert signal.getsignal(signal.SIGINT) is before  # the handler put back
    with noticing_interrupts():
        assert not was_interrupted()  # each block starts afresh


def test_a_ctrl_c_the_caller_ignores_stays_ignored():
    # A command started with SIGINT ignored (a background job of a script: the shell
    # ignores it there, so that a Ctrl-C for the script leaves the job running) was
    # stopped by one, as its handler replaced the ignoring (issue 30 review 13).
    import time

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with noticing_interrupts():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert not was_interrupted()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_of_an_ended_run_does_not_stop_a_later_run_in_a_thread(monkeypatch,
                                                                        sigint_raises):
    # A notebook's run_recipe_2026 stopped by Ctrl-C left the flag set; the next run, from a
    # thread (which installs no handler), was stopped as "interrupted" with no Ctrl-C
    # (issue 30 review 14).
    import threading

    monkeypatch.setattr("sys.unraisablehook", lambda report: None)
    with noticing_interrupts(raise_at_exit=False):
        _SwallowsInterrupts()
    assert was_interrupted()  # the main thread's block that ended by it still tells so
    seen = []

    def later_run():
        with noticing_interrupts():
            seen.append(was_interrupted())
            raise_if_interrupted()
            seen.append("ran")

    thread = threading.Thread(target=later_run)
    thread.start()
    thread.join()
    assert seen == [False, "ran"]
