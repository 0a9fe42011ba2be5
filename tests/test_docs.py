"""The tutorials' code runs as written: each page's ``>>>`` lines are a doctest."""

import doctest
import pathlib

import pytest

# Slow by nature: every tutorial page run as written, trainings included (run by `pytest -m slow`).
pytestmark = pytest.mark.slow


DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("page", ["winning_system.rst", "foundation_encoders.rst",
                                  "model_files.rst", "concept_files.rst", "user_guide.rst",
                                  "faq.rst"])
def test_tutorial_page_runs_as_written(page):
    result = doctest.testfile(str(DOCS / page), module_relative=False, verbose=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5  # the page has code, and all of it ran
    assert result.failed == 0
