"""What every test item shares, the package's docstring examples among them (a hook of
``tests/conftest.py`` reaches only the items under ``tests/``)."""

import shutil
import tempfile

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Docstring examples write under ``tempfile.mkdtemp()``, as a reader would; under the
    tests that is a folder of the example's own, removed when it ends (each run of the
    suite left about twenty folders in the system's temporary folder)."""
    if not isinstance(item, pytest.DoctestItem):
        return (yield)
    folder = tempfile.tempdir = tempfile.mkdtemp(prefix="imageclef-doctest-")
    try:
        return (yield)
    finally:
        tempfile.tempdir = None  # the system's again, read afresh
        shutil.rmtree(folder, ignore_errors=True)
