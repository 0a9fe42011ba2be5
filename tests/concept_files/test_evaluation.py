"""evaluate_run: a run file scored against the ground truth, its problems listed by line."""

import os

import pytest

from imageclef_concepts import ConceptFileError, evaluate_run, write_run

from ..official_f1 import official_mean_f1


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_evaluate_run_matches_official_script(tmp_path):
    truth = ["C1;C2", "C3", "", "C4;C5;C6"]
    predicted = ["C1", "C3;C7", "C9", "c4;C5"]
    gt = _write(tmp_path / "gt.tsv", [f"i{k}\t{c}" for k, c in enumerate(truth)])
    # the run in another order
    run = tmp_path / "run.tsv"
    write_run(run, ["i3", "i0", "i2", "i1"],
              [predicted[3], predicted[0], predicted[2], predicted[1]], edition="2019")
    result = evaluate_run(run, gt)
    assert result.score == pytest.approx(official_mean_f1(truth, predicted))
    assert float(result) == result.score
    assert (result.n_images, result.n_scored) == (4, 3)


def test_evaluate_run_lists_every_problem_with_line_numbers(tmp_path):
    gt = _write(tmp_path / "gt.tsv", ["a\tC1", "b\tC2", "c\tC3"])
    run = _write(tmp_path / "run.tsv", ["a\tC1", "a\tC2", "x\tC1", "d\tC1\tC2", "e\tC1;;C2"])
    with pytest.raises(ConceptFileError) as caught:
        evaluate_run(run, gt)
    problems = caught.value.problems
    assert f"{run}:2: duplicate image id 'a' (first on line 1)" in problems
    assert f"{run}:3: image id 'x' is not in the ground truth" in problems
    assert any(p.startswith(f"{run}:4: 3 fields") for p in problems)
    assert any(p.startswith(f"{run}:5: empty concept") for p in problems)
    assert f"{gt}:2: image id 'b' is missing from the run" in problems
    assert f"{gt}:3: image id 'c' is missing from the run" in problems


def test_evaluate_run_refuses_a_repeated_concept_and_counts_a_case_variant_once(tmp_path):
    gt = _write(tmp_path / "gt.tsv", ["a\tC1;C2"])
    run = _write(tmp_path / "run.tsv", ["a\tC1;C1"])
    with pytest.raises(ConceptFileError, match="run.tsv:1: concept 'C1' named twice"):
        evaluate_run(run, gt)
    run = _write(tmp_path / "run.tsv", ["a\tC1;c1"])
    result = evaluate_run(run, gt)
    assert result.score == pytest.approx(2 / 3)
    assert result.warnings == [f"{run}:1: concept(s) c1 repeated in another case, counted once"]


def test_evaluate_run_strict_options(tmp_path):
    gt = _write(tmp_path / "gt.tsv", ["a\tC1", "b\tC2"])
    run = _write(tmp_path / "run.tsv", ["a\tC1;C2;C3", "b\tC2;advertisement"])
    assert evaluate_run(run, gt).score == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(ConceptFileError, match=":1: 3 concepts; at most 2"):
        evaluate_run(run, gt, max_concepts=2)
    with pytest.raises(ConceptFileError, match=":2: not UMLS CUIs: ADVERTISEMENT"):
        evaluate_run(run, gt, cui_only=True)


def test_secondary_score_on_a_file_of_concepts(tmp_path):
    gt = _write(tmp_path / "gt.tsv", ["a\tC1;C2", "b\tC3", "c\tC2"])
    run = _write(tmp_path / "run.tsv", ["a\tC1", "b\tC3", "c\tC1"])
    subset = _write(tmp_path / "validated.txt", ["c2", "C3", ""])
    result = evaluate_run(run, gt, secondary_concepts=subset)
    assert result.score == pytest.approx((2 / 3 + 1 + 0) / 3)
    # On {C2, C3}: a: T={C2} P={} -> 0; b: 1; c: T={C2} P={} -> 0.
    assert result.secondary_score == pytest.approx(1 / 3)
    assert evaluate_run(run, gt).secondary_score is None
    empty = _write(tmp_path / "empty.txt", [""])
    with pytest.raises(ConceptFileError, match="no concept in the file"):
        evaluate_run(run, gt, secondary_concepts=empty)
    # Named by bytes (a name that is not UTF-8), the file is read, not taken for a
    # collection of its bytes (an AttributeError on int.strip).
    named = os.path.join(os.fsencode(tmp_path), b"valid\xe9.txt")
    os.rename(subset, named)
    assert evaluate_run(os.fsencode(run), gt, secondary_concepts=named).secondary_score == \
        pytest.approx(1 / 3)


@pytest.mark.parametrize("max_concepts, error", [(True, TypeError), (2.0, TypeError),
                                                 (float("nan"), TypeError), (0, ValueError),
                                                 ("2", TypeError)])
def test_max_concepts_is_a_whole_number_named(tmp_path, max_concepts, error):
    # max_concepts=nan checked nothing and True refused a second concept, silently; 2.0 was
    # taken as 2 (review 16).
    import numpy as np

    gt = _write(tmp_path / "gt.tsv", ["a\tC1", "b\tC2"])
    run = _write(tmp_path / "run.tsv", ["a\tC1;C2", "b\tC2"])
    with pytest.raises(error, match=r"^max_concepts=.*: max_concepts must be a whole number, "
                                    "at least 1"):
        evaluate_run(run, gt, max_concepts=max_concepts)
    assert evaluate_run(run, gt, max_concepts=np.int64(2)).score == pytest.approx(5 / 6)
