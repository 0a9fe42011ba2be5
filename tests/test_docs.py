"""The README and the documentation say what the library does.

The tutorials' ``>>>`` lines run as doctests; the README's Python runs as
written; every other Python block of ``docs/*.rst`` compiles and names only
what the library has (its imports, the keyword arguments of its calls);
every command line and option the README names parses with the real
command-line parser; every measured number in the README names the
benchmark or example that produces it; and every text that says which
editions have a secondary score says it in the words of
:func:`~imageclef_concepts.concept_files._editions.secondary_score_note`.
"""

import ast
import builtins
import doctest
import inspect
import pathlib
import re
import shlex

import pytest

from imageclef_concepts.cli._main import _build_parser
from imageclef_concepts.concept_files._editions import (
    SECONDARY_REPORTED_FROM,
    secondary_score_editions,
    secondary_score_note,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.glob("*.rst"))


# ----------------------------------------------------------- code blocks

def markdown_blocks(text, language):
    """The fenced blocks of ``language`` in a Markdown text."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def rst_python_blocks(text):
    """The Python blocks of a reStructuredText page that are not doctests: each
    ``.. code-block:: python`` and each ``::`` literal block that starts with an
    import."""
    blocks = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not (stripped == ".. code-block:: python" or stripped.endswith("::")):
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for following in lines[number + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        code = inspect.cleandoc("\n".join(body)) if any(b.strip() for b in body) else ""
        code = "\n".join(line for line in code.splitlines() if not line.startswith(":"))
        code = code.strip("\n")
        if code.startswith(">>>") or not code:
            continue
        if stripped.startswith(".. code-block:: python") or re.match(r"(from|import) ", code):
            blocks.append(code)
    return blocks


def every_python_block():
    blocks = [("README.md", code) for code in markdown_blocks(README.read_text(), "python")]
    for page in PAGES:
        blocks += [(page.name, code) for code in rst_python_blocks(page.read_text())]
    return blocks


def test_the_block_finder_finds_the_known_blocks():
    found = {name for name, _ in every_python_block()}
    assert {"README.md", "getting_started.rst", "scaling.rst"} <= found


@pytest.mark.parametrize(("source", "code"), every_python_block(),
                         ids=lambda value: value if value.endswith(("md", "rst")) else "")
def test_python_blocks_compile_and_name_only_what_the_library_has(source, code):
    tree = ast.parse(code, filename=source)
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "imageclef_concepts"):
            module = __import__(node.module, fromlist=["_"])
            for alias in node.names:
                assert hasattr(module, alias.name), f"{source}: {node.module}.{alias.name}"
                imported[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in imported and callable(imported[node.func.id])):
            continue
        parameters = inspect.signature(imported[node.func.id]).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            continue
        for keyword in node.keywords:
            assert keyword.arg is None or keyword.arg in parameters, (
                f"{source}: {node.func.id}() has no parameter {keyword.arg!r}")


def test_readme_python_names_every_name_it_uses():
    """The README's examples are complete: no name is used that the block does not define
    (the stale ``predicted_concepts``)."""
    for code in markdown_blocks(README.read_text(), "python"):
        tree = ast.parse(code)
        defined = set(dir(builtins))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
        used = {node.id for node in ast.walk(tree)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        assert used <= defined, sorted(used - defined)


@pytest.mark.slow
def test_readme_python_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = markdown_blocks(README.read_text(), "python")
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "model.keras").is_file()


# Slow by nature: every tutorial page run as written, trainings included (run by `pytest -m slow`).
TUTORIAL_PAGES = ("winning_system.rst", "foundation_encoders.rst", "model_files.rst",
                  "concept_files.rst", "user_guide.rst", "faq.rst")


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIAL_PAGES)
def test_tutorial_page_runs_as_written(page):
    result = doctest.testfile(str(DOCS / page), module_relative=False, verbose=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5  # the page has code, and all of it ran
    assert result.failed == 0


def test_every_page_with_doctests_runs_in_the_tests():
    run = set(TUTORIAL_PAGES)
    with_doctests = {page.name for page in PAGES if re.search(r"^\s*>>> ", page.read_text(),
                                                              flags=re.M)}
    assert with_doctests <= run


# ---------------------------------------------------------- command lines

def _subcommands():
    parser = _build_parser()
    action = next(a for a in parser._actions if a.choices and "evaluate" in a.choices)
    return parser, action.choices


def readme_command_lines():
    """Every full command line of the README's shell blocks that runs this library."""
    lines = []
    for block in markdown_blocks(README.read_text(), "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0].endswith("imageclef-concepts"):
                    lines.append(words[1:])
    return lines


def test_readme_command_lines_parse_with_the_real_parser():
    parser, _ = _subcommands()
    lines = readme_command_lines()
    assert {words[0] for words in lines} >= {"demo", "train", "predict", "evaluate"}
    for words in lines:
        parser.parse_args(words)  # argparse exits (SystemExit) on an unknown option


def test_every_option_the_readme_names_exists():
    """Each ``--option`` of an inline command belongs to the subcommand it follows, or,
    alone, to some subcommand."""
    _, subcommands = _subcommands()
    options = {name: {o for a in sub._actions for o in a.option_strings}
               for name, sub in subcommands.items()}
    every = set().union(*options.values())
    text = README.read_text()
    spans = re.findall(r"`([^`\n]*(?:\n[^`\n]*)?)`", re.sub(r"```.*?```", "", text, flags=re.S))
    checked = 0
    for span in spans:
        words = span.split()
        if not any(word.startswith("--") for word in words) or (
                words[0] in ("python", "pip") or words[0].startswith(".venv")):
            continue
        words = words[1:] if words[0] == "imageclef-concepts" else words
        allowed = options.get(words[0], every)
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in allowed, f"README: {span!r}: {word}"
                checked += 1
    assert checked >= 4


# ---------------------------------------------------------- numbers

_MEASURE = re.compile(
    r"\b\d+(?:[.,]\d+)?\s*(?:s|ms|min|minutes?|hours?|seconds?)\b|\b0\.\d+\b|\b\d+(?:\.\d+)?x\b")
_SOURCE = re.compile(r"benchmarks/\w+\.py|examples/\w+\.py|docs/results\.rst|\bdemo\b")


def readme_paragraphs():
    """The README's paragraphs and list items, and each comment line of its shell blocks."""
    text = README.read_text()
    comments = [line for block in markdown_blocks(text, "bash") for line in block.splitlines()
                if line.lstrip().startswith("#")]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    items = re.split(r"\n\s*\n|\n(?=- )", prose)
    return comments + [item for item in items if item.strip()]


def test_every_number_in_the_readme_names_what_produced_it():
    measured = [p for p in readme_paragraphs() if _MEASURE.search(p)]
    assert measured  # the README does give numbers
    for paragraph in measured:
        assert _SOURCE.search(paragraph), f"README: a number without its source: {paragraph!r}"


def test_the_number_check_catches_an_unsourced_number():
    assert _MEASURE.search("about 60 ms for concept lists") and not _SOURCE.search(
        "about 60 ms for concept lists")


# ---------------------------------------------- the secondary score's editions

_YEAR_CLAIM = re.compile(r"\b(?:from|before|since) (?:20\d\d)\b|\b20\d\d(?:\+| on\b)"
                         r"|\b20\d\d-20\d\d secondary\b", re.IGNORECASE)


def _secondary_texts():
    from imageclef_concepts.concept_files._evaluation import evaluate_run
    from imageclef_concepts.concepts._metrics import imageclef_f1_score, imageclef_f1_scorer

    _, subcommands = _subcommands()
    texts = {"README.md": README.read_text(),
             "evaluate --help": subcommands["evaluate"].format_help()}
    texts |= {page.name: page.read_text() for page in PAGES}
    texts |= {function.__name__: function.__doc__
              for function in (evaluate_run, imageclef_f1_score, imageclef_f1_scorer)}
    return texts | _package_docstrings()


def _package_docstrings():
    """Every docstring of the package but the editions table's own (the one source)."""
    texts = {}
    for module in sorted((ROOT / "imageclef_concepts").rglob("*.py")):
        if module.name == "_editions.py":
            continue
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)) and ast.get_docstring(node):
                name = getattr(node, "name", "")
                texts[f"{module.relative_to(ROOT)}:{name}"] = ast.get_docstring(node)
    return texts


def test_every_docstring_is_checked_for_the_secondary_score_editions():
    assert "imageclef_concepts/concepts/_bounds.py:oracle_bounds" in _package_docstrings()


def _sentences_on_the_secondary_score(text):
    flat = " ".join(text.split())
    return [s for s in re.split(r"(?<=[.;:])\s", flat) if "secondary" in s.lower()]


def test_the_secondary_score_editions_come_from_the_editions_table():
    assert secondary_score_editions() == "2024-2026"
    assert SECONDARY_REPORTED_FROM in secondary_score_note()


def test_every_text_names_the_secondary_score_editions_alike():
    note = secondary_score_note()
    saying_it = []
    for name, text in _secondary_texts().items():
        for sentence in _sentences_on_the_secondary_score(text):
            if note in sentence:
                saying_it.append(name)
            rest = sentence.replace(note, "")
            assert not _YEAR_CLAIM.search(rest), (
                f"{name}: says which editions have a secondary score in other words than "
                f"{note!r}: {sentence!r}")
    assert {"evaluate --help", "evaluate_run", "imageclef_f1_score", "imageclef_f1_scorer",
            "user_guide.rst", "concept_files.rst"} <= set(saying_it)


@pytest.mark.parametrize("claim", [
    "the scorer gives the 2022+ secondary F1.",
    "Before 2024 no evaluator computed a secondary score;",
    "the secondary F1 against this second ground truth (2024 on: concepts_manual.csv)",
    "the 2025-2026 secondary score against concepts_manual.csv",
])
def test_the_check_catches_each_claim_that_was_inconsistent(claim):
    sentences = _sentences_on_the_secondary_score(claim)
    assert any(_YEAR_CLAIM.search(s.replace(secondary_score_note(), "")) for s in sentences)



def test_no_name_with_an_at_sign_becomes_a_mail_link():
    """reStructuredText makes ``Mean@k-NN`` or ``DS@GT`` a ``mailto:`` link unless the
    ``@`` is escaped or in a literal."""
    for page in PAGES:
        prose = re.sub(r"``.*?``", "", page.read_text(), flags=re.S)
        prose = "\n".join(line for line in prose.splitlines()
                          if not line.lstrip().startswith(">>>"))
        assert not re.search(r"\w(?<!\\)@\w", prose), page.name


# At 1280 px the article holds about 110 characters of code (the left sidebar
# hidden on these pages, docs/_static/readable.css); docs/screenshots.py shows it.
MAX_CODE_LINE = 100


def _literal_lines(text):
    """The lines of a page's literal and code blocks (doctests included), unindented."""
    lines, block_indent = [], None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if block_indent is not None and line.strip() and indent < block_indent:
            block_indent = None
        if block_indent is not None and line.strip():
            lines.append(line[block_indent:])
        elif line.rstrip().endswith("::") or line.lstrip().startswith(".. code-block::"):
            block_indent = indent + 1
        elif line.lstrip().startswith(">>>") or line.lstrip().startswith("..."):
            lines.append(line.lstrip())
    return lines


def test_code_lines_fit_the_page_at_1280_px():
    for page in PAGES:
        long = [line for line in _literal_lines(page.read_text()) if len(line) > MAX_CODE_LINE]
        assert not long, f"{page.name}: {long[:3]}"
    for example in (ROOT / "examples").glob("*.py"):
        long = [line for line in example.read_text().splitlines() if len(line) > MAX_CODE_LINE]
        assert not long, f"{example.name}: {long[:3]}"


# ------------------------------------------------- what a newcomer reads first

def test_readme_is_short_and_starts_with_the_own_folder_commands():
    """Under 900 words, and the train/predict/evaluate commands within the first 300."""
    words = README.read_text().split()
    assert len(words) < 900, len(words)
    first = " ".join(words[:300])
    for command in ("imageclef-concepts train", "imageclef-concepts predict",
                    "imageclef-concepts evaluate"):
        assert command in first, command


@pytest.mark.parametrize("name", ["FoundationEncoder", "EmbeddingStore", "ConceptMLPClassifier",
                                  "embed", "foundation_encoders", "decode"])
def test_readme_and_front_page_name_the_embedding_features(name):
    """The foundation encoders, the embedding store and ``embed``, heads on embeddings and
    decoding shared by default are in the README and in the front page's table."""
    front = (DOCS / "index.rst").read_text()
    table = front.split("list-table::", 1)[1]
    assert name in README.read_text(), f"README.md does not name {name}"
    if name != "foundation_encoders":
        assert name in table, f"index.rst's capability table does not name {name}"
    else:
        assert name in front


def test_the_front_page_table_names_only_public_names():
    import imageclef_concepts
    table = (DOCS / "index.rst").read_text().split("list-table::", 1)[1]
    for name in re.findall(r":(?:class|func):`~imageclef_concepts\.(\w+)`", table):
        assert hasattr(imageclef_concepts, name), name
    _, subcommands = _subcommands()
    for command in re.findall(r"``imageclef-concepts ([\w-]+)", table):
        assert command in subcommands, command


def test_every_page_without_pages_under_it_hides_the_empty_left_sidebar():
    """pydata's "Section Navigation" is empty on a page with no pages under it: such
    pages (every one but the API's, foundation_encoders.rst added later included) hide it."""
    import runpy
    sidebars = runpy.run_path(str(DOCS / "conf.py"))["html_sidebars"]
    for page in PAGES:
        if ":toctree:" not in page.read_text():
            assert sidebars.get(page.stem) == [], page.name
    assert "api" not in sidebars and "foundation_encoders" in sidebars


def test_every_encoder_a_command_line_names_is_one_the_command_takes():
    """``embed --encoder biomedclip`` was in the docs while the command knew only Keras
    backbones: each ``--encoder`` of a documented command line is a known encoder, a
    foundation model's given its weights (``--weights``, ``--retrieval-weights``)."""
    from imageclef_concepts.embeddings._names import encoder_names
    from imageclef_concepts.embeddings._presets import PRESETS

    found = 0
    for source in [README, *PAGES]:
        text = source.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            for option, name in re.findall(r"(--(?:retrieval-)?encoder)[ =]([a-z][\w-]*)", line):
                found += 1
                assert name in encoder_names(), f"{source.name}: {option} {name}"
                if name in PRESETS:
                    weights = "--weights" if option == "--encoder" else "--retrieval-weights"
                    assert f"{weights} " in line, f"{source.name}: {line.strip()}"
    assert found
