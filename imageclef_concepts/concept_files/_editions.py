"""The ImageCLEF editions' rules: how each year's evaluator reads and scores concept files.

Every edition of ImageCLEFmed Caption's concept detection published an
evaluator, and each reads files its own way: the delimiter of the ground
truth and of the run, header lines, an image id alone on a line, white
space, the per-line maximum, the secondary score. :data:`EDITIONS` holds
those rules, one :class:`Edition` per year, with the evaluator each comes
from (the table of ``docs/concept_files.rst``). The readers
(``_concept_lines``), the writer (:func:`write_run`) and the scorer
(:func:`evaluate_run`) read them from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

MAX_CONCEPTS_PER_IMAGE = 100
"""The per-line maximum of run files from 2022 on (``max_num_concepts``)."""

_MAX_CONCEPTS_2018 = 1286  # the 2018 evaluator's max_num_concepts (the largest ground truth)

SECONDARY_CUIS = frozenset({
    "C0000726", "C0002978", "C0006141", "C0023216", "C0024485",
    "C0030797", "C0032743", "C0037303", "C0037949", "C0040405",
    "C0041618", "C0817096", "C0920367", "C1140618", "C1306645",
})
"""The 15 CUIs of the 2025 and 2026 secondary score (``allowed_concepts``)."""

# The 2024 list is the 2025 one before the OCT CUI was added ("new OCT cui",
# taubsity/clef-caption-evaluation db68dc8, 2025-02-13).
_SECONDARY_CUIS_2024 = SECONDARY_CUIS - {"C0920367"}

SECONDARY_REPORTED_FROM = "2022"
"""The first edition whose organisers report a secondary F1 (on manually validated concepts,
in the overview papers; the task brief's "from 2022")."""

HEADER_CELL = "ID"  # a header line's first cell (2023+ skip every row whose first cell contains it)
HEADER_2026 = ("ID", "CUIs")  # the 2026 submission check's exact header


@dataclass(frozen=True)
class Edition:
    """How one year's published evaluator reads and scores concept files.

    Attributes
    ----------
    name : str
        The year.
    truth_delimiter, run_delimiter : str
        ``"\\t"``, ``"|"`` or ``","`` (a comma CSV with quoting); ``"detect"``
        is ``"|"`` when the file's first line holds one, else a tab (2023).
    truth_header, run_header : {"none", "first", "optional", "exact"}
        ``"first"``: the first line is always skipped (it must be a header);
        ``"optional"``: skipped when its first cell contains ``ID``;
        ``"exact"``: the header ``ID,CUIs`` is required.
    skips_id_rows : bool
        The evaluator skips *every* row whose first cell contains ``ID``;
        such a row after the first is refused here (an image would vanish).
    truth_id_alone, run_id_alone : bool
        Whether a line holding only an image id is accepted.
    first_line_id_alone : bool
        False when the evaluator crashes on a run whose first line is an id
        alone (2018: its duplicate check reads an unset variable).
    strip : bool
        Concepts are stripped of white space before comparing (2022 on);
        before that, white space around a concept is refused here, since the
        evaluator would compare it as part of the concept.
    duplicates_refused : bool
        A run line naming the same concept twice (exact text) is refused.
    max_concepts : int
        The most concepts a run line may hold.
    strict_run_check : bool
        The 2026 submission check: run concepts must be ``C`` followed by
        digits, with no white space around the concept field.
    run_in_truth_order : bool
        The run lists the images in the ground truth's order (2026).
    secondary_cuis : frozenset of str or None
        The fixed concepts of the secondary score, against a second ground
        truth (:func:`secondary_score_editions`); None when the evaluator has none.
    source : str
        Where the rules come from.
    secondary_header : str
        The secondary ground truth's header rule, when not the ground
        truth's (2026: its evaluator skips a header, its check needs none).
    checker : str
        Whose checks refuse a run line, in messages (2019-2021: the 2018
        grader's, an assumption), when not the edition's own evaluator.
    """

    name: str
    truth_delimiter: str
    run_delimiter: str
    truth_header: str
    run_header: str
    skips_id_rows: bool
    truth_id_alone: bool
    run_id_alone: bool
    first_line_id_alone: bool
    strip: bool
    duplicates_refused: bool
    max_concepts: int
    strict_run_check: bool
    run_in_truth_order: bool
    secondary_cuis: frozenset | None
    source: str = field(compare=False)
    secondary_header: str = ""
    checker: str = field(default="", compare=False)

    def rules(self):
        """The reading and scoring rules alone: editions with equal rules read files alike."""
        return replace(self, name="")

    def header_rule(self, role):
        """The header rule of a ``"truth"``, ``"run"`` or ``"secondary"`` file."""
        if role == "run":
            return self.run_header
        if role == "secondary" and self.secondary_header:
            return self.secondary_header
        return self.truth_header

    @property
    def refuser(self):
        """Who refuses a bad run line, for messages: the evaluator or the checks assumed."""
        return self.checker or f"the {self.name} evaluator"

    @property
    def run_layout(self):
        """The delimiter :func:`write_run` writes for this edition."""
        return "|" if self.run_delimiter == "detect" else self.run_delimiter


_CROWDAI_2018 = Edition(
    name="2018", truth_delimiter="\t", run_delimiter="\t", truth_header="none",
    run_header="none", skips_id_rows=False, truth_id_alone=True, run_id_alone=True,
    first_line_id_alone=False, strip=False, duplicates_refused=True,
    max_concepts=_MAX_CONCEPTS_2018, strict_run_check=False, run_in_truth_order=False,
    secondary_cuis=None,
    source="crowdAI/CLEF_evaluators_2018, concept_detection/concept_detection_evaluator.py",
)
_ASSUMED_2019 = replace(
    _CROWDAI_2018, name="2019", first_line_id_alone=True,
    checker="the 2018 grader's checks (assumed for 2019-2021; 2019's evaluate-f1.py checks "
            "less)",
    source="assumed: the 2018 crowdAI checks (the 2019 grader is unpublished) without "
           "their first-line crash; scored as evaluate-f1.py (2019) scores",
)
_AICROWD_2022 = Edition(
    name="2022", truth_delimiter="\t", run_delimiter="|", truth_header="first",
    run_header="none", skips_id_rows=False, truth_id_alone=False, run_id_alone=True,
    first_line_id_alone=True, strip=True, duplicates_refused=True,
    max_concepts=MAX_CONCEPTS_PER_IMAGE, strict_run_check=False, run_in_truth_order=False,
    secondary_cuis=None,
    source="the AIcrowd 2022 evaluator (copy: icrto/ImageClefMedical at 5dd0f9d, "
           "concept_detection/multilabel_baseline/evaluator.py; concept_detection/"
           "evaluator.py at its HEAD)",
)
_EVALUATOR_2023 = replace(
    _AICROWD_2022, name="2023", truth_delimiter="detect", run_delimiter="detect",
    truth_header="optional", run_header="optional", skips_id_rows=True,
    source="the 2023 evaluator (copy: TiagoFilipeSousaGoncalves/ImageCLEFmedical2023VCMI, "
           "concept_detection/evaluator.py)",
)
_EVALUATOR_2024 = replace(
    _EVALUATOR_2023, name="2024", truth_delimiter=",", run_delimiter=",",
    secondary_cuis=_SECONDARY_CUIS_2024,
    source="assumed: taubsity/clef-caption-evaluation at its first commit (720c808, "
           "2024-11-29, the evaluator carried over from 2024)",
)
_EVALUATOR_2025 = replace(
    _EVALUATOR_2024, name="2025", secondary_cuis=SECONDARY_CUIS,
    source="taubsity/clef-caption-evaluation, concept_detection/evaluator.py",
)
_EVALUATOR_2026 = replace(
    _EVALUATOR_2025, name="2026", truth_header="first", run_header="exact",
    run_id_alone=False, strict_run_check=True, run_in_truth_order=True,
    secondary_header="optional",
    source="taubsity/clef-caption-evaluation-2026, concept_detection/evaluator.py and "
           "submission_check.py",
)

EDITIONS = {edition.name: edition for edition in (
    _CROWDAI_2018,
    _ASSUMED_2019,
    replace(_ASSUMED_2019, name="2020", source="assumed: as 2019 (no evaluator published)"),
    replace(_ASSUMED_2019, name="2021", source="assumed: as 2019 (no evaluator published)"),
    _AICROWD_2022,
    _EVALUATOR_2023,
    _EVALUATOR_2024,
    _EVALUATOR_2025,
    _EVALUATOR_2026,
)}
"""Every edition's rules, by year (:class:`Edition`)."""

EDITION_CHOICES = ("auto", *EDITIONS)

# When several editions read a file alike, the one named: the project's
# historical layout names first (tab 2019, pipe 2022, comma 2024).
_PREFERRED = ("2019", "2022", "2024")
DELIMITER_NAMES = {"\t": "a tab", "|": "'|'", ",": "','"}


def edition_of(name):
    """The :class:`Edition` of a name, or a clear error."""
    name = str(name)
    if name == "auto":
        raise ValueError("edition='auto' chooses how to read a file; to write one, name an "
                         f"edition: one of {', '.join(EDITIONS)}.")
    if name not in EDITIONS:
        raise ValueError(f"Unknown edition {name!r}; expected 'auto' or one of "
                         f"{', '.join(EDITIONS)}.")
    return EDITIONS[name]


def rule_groups():
    """Editions grouped by equal rules, oldest first: each group reads files alike."""
    groups = {}
    for edition in EDITIONS.values():
        groups.setdefault(edition.rules(), []).append(edition)
    return [tuple(group) for group in groups.values()]


def span(names):
    """Edition names, consecutive years as a range: ``2018-2021, 2023``."""
    years = sorted(int(name) for name in names)
    runs = []
    for year in years:
        if runs and year == runs[-1][1] + 1:
            runs[-1][1] = year
        else:
            runs.append([year, year])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def secondary_score_editions():
    """The editions whose published evaluator computes the secondary score, as a span.

    Read from :data:`EDITIONS` (an edition with ``secondary_cuis``): ``"2024-2026"``.
    """
    return span(edition.name for edition in EDITIONS.values()
                if edition.secondary_cuis is not None)


def secondary_score_note():
    """Which editions have a secondary score, in the words every text about it uses.

    The one source of the fact for docstrings, ``evaluate --help``, the
    README and the documentation (``tests/test_docs.py`` checks that they
    agree with it).

    Examples
    --------
    >>> from imageclef_concepts.concept_files._editions import secondary_score_note
    >>> secondary_score_note()
    'secondary F1 reported from 2022, computed by the published evaluators 2024-2026'
    """
    return (f"secondary F1 reported from {SECONDARY_REPORTED_FROM}, computed by the "
            f"published evaluators {secondary_score_editions()}")


def reported_name(group):
    """The name reported for a group of editions that read the files alike."""
    names = [edition.name for edition in group]
    return next((name for name in _PREFERRED if name in names), names[-1])


__all__ = ["EDITIONS", "EDITION_CHOICES", "Edition", "MAX_CONCEPTS_PER_IMAGE", "SECONDARY_CUIS"]
