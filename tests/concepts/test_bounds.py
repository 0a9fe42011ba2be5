"""The ceiling of a split: oracle_bounds against brute force on small random label sets."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from imageclef_concepts import MostFrequentConcepts, imageclef_f1_score, oracle_bounds
from imageclef_concepts.concepts import _bounds

CONCEPTS = ["C1", "C2", "C3", "C4", "C5", "C6"]
image_sets = st.lists(st.frozensets(st.sampled_from(CONCEPTS), max_size=4), min_size=1,
                      max_size=7)


def _f1(true, predicted):
    return 2 * len(true & predicted) / (len(true) + len(predicted)) if predicted else 0.0


def _official(true_sets, per_image):
    """The official mean of per-image values, over images with a true concept."""
    return float(np.mean([value for true, value in zip(true_sets, per_image) if true]))


def _top_k_runs(train, n_test):
    """Every k's prediction of MostFrequentConcepts fitted on ``train``, for ``n_test`` images."""
    n_vocabulary = len(set().union(*train))
    return {k: MostFrequentConcepts(k=k).fit(np.zeros((len(train), 1)), [sorted(s) for s in train])
            .predict(np.zeros((n_test, 1))) for k in range(1, n_vocabulary + 1)}


@settings(max_examples=60, deadline=None)
@given(train=image_sets, test=image_sets)
def test_bounds_equal_brute_force(train, test):
    if not any(test):
        with pytest.raises(ValueError, match="no image with a true concept"):
            oracle_bounds([sorted(s) for s in train], [sorted(s) for s in test])
        return
    bounds = oracle_bounds([sorted(s) for s in train], [sorted(s) for s in test])
    vocabulary = set().union(*train)
    assert bounds.vocabulary_f1 == pytest.approx(
        _official(test, [_f1(t, t & vocabulary) for t in test]), abs=1e-12)
    assert bounds.retrieval_f1 == pytest.approx(
        _official(test, [max(_f1(t, r) for r in train) for t in test]), abs=1e-12)
    runs = _top_k_runs(train, len(test))
    scores = {k: imageclef_f1_score([sorted(s) for s in test], run) for k, run in runs.items()}
    assert bounds.top_k_f1 == pytest.approx(max(scores.values(), default=0.0), abs=1e-12)
    if scores:  # the k reported is one that reaches the bound
        assert scores[bounds.k] == pytest.approx(bounds.top_k_f1, abs=1e-12)
    else:
        assert bounds.k == 0
    in_test = set().union(*test)
    assert bounds.unseen_concepts == pytest.approx(len(in_test - vocabulary) / len(in_test))
    scored = [t for t in test if t]
    assert bounds.n_scored == len(scored)
    assert bounds.images_with_unseen == pytest.approx(
        sum(bool(t - vocabulary) for t in scored) / len(scored))
    assert bounds.images_all_unseen == pytest.approx(
        sum(not (t & vocabulary) for t in scored) / len(scored))


@settings(max_examples=60, deadline=None)
@given(train=image_sets, test=image_sets, data=st.data())
def test_no_run_of_the_oracles_kind_beats_its_bound(train, test, data):
    if not any(test):
        return
    as_lists = [sorted(s) for s in test]
    bounds = oracle_bounds([sorted(s) for s in train], as_lists)
    vocabulary = sorted(set().union(*train))
    # Any run predicting training concepts only, any copy of one training image per image.
    restricted = [data.draw(st.frozensets(st.sampled_from(vocabulary)) if vocabulary
                            else st.just(frozenset())) for _ in test]
    copies = [train[data.draw(st.integers(0, len(train) - 1))] for _ in test]
    assert imageclef_f1_score(as_lists, [sorted(s) for s in restricted]) <= \
        bounds.vocabulary_f1 + 1e-12
    assert imageclef_f1_score(as_lists, [sorted(s) for s in copies]) <= bounds.retrieval_f1 + 1e-12
    for run in _top_k_runs(train, len(test)).values():
        assert imageclef_f1_score(as_lists, run) <= bounds.top_k_f1 + 1e-12
    assert 0 <= bounds.top_k_f1 <= bounds.vocabulary_f1 <= 1
    assert 0 <= bounds.retrieval_f1 <= bounds.vocabulary_f1


def test_a_hand_computed_split():
    # Vocabulary {C1, C2, C4}. Test: {C1, C2} (all seen), {C3} (unseen), {C1}; one empty image.
    bounds = oracle_bounds(["C1;C2", "C1", "C1;C4"], ["C1;C2", "C3", "C1", ""])
    assert bounds.vocabulary_f1 == pytest.approx((1 + 0 + 1) / 3)
    # Best copies: {C1, C2} for the first (1), nothing for C3 (0), {C1} for the third (1).
    assert bounds.retrieval_f1 == pytest.approx(2 / 3)
    # k=1 predicts {C1}: 2/3, 0, 1 -> 5/9; k=2 predicts {C1, C2}: 1, 0, 2/3 -> 5/9: the first.
    assert (bounds.k, bounds.top_k_f1) == (1, pytest.approx(5 / 9))
    assert bounds.n_scored == 3
    assert bounds.unseen_concepts == pytest.approx(1 / 3)
    assert bounds.images_with_unseen == bounds.images_all_unseen == pytest.approx(1 / 3)
    assert bounds.to_dict()["k"] == 1 and "vocabulary_f1=0.6667" in repr(bounds)
    assert "k=1, chosen on the test set" in bounds.lines()[2]


def test_every_target_form_gives_the_same_bounds():
    train = ["c1;C2", "C1", "C1;C4"]
    test = [["C1", "C2"], ["C3"], ["C1"]]
    expected = oracle_bounds(train, test)
    names = ["C1", "C2", "C3", "C4"]

    def indicator(lists):
        return np.array([[name in str(image).upper() for name in names] for image in lists],
                        dtype=int)
    train_matrix, test_matrix = indicator(train), indicator(test)
    assert oracle_bounds(train_matrix, test_matrix) == expected
    assert oracle_bounds(sparse.csr_matrix(train_matrix), sparse.csr_matrix(test_matrix)) == \
        expected
    assert oracle_bounds(pd.DataFrame(train_matrix, columns=names),
                         pd.DataFrame(test_matrix, columns=names)) == expected


def test_the_secondary_score_restricts_every_set_first():
    train = ["C1;C2;C3", "C2", "C1"]
    test = ["C1;C2;C5", "C3;C5", "C5"]
    kept = ["C1", "C3", "C5"]
    by_hand = oracle_bounds([[c for c in s.split(";") if c in kept] for s in train],
                            [[c for c in s.split(";") if c in kept] for s in test])
    assert oracle_bounds(train, test, concepts=["c1", "C3", "C5"]) == by_hand
    names = ["C1", "C2", "C3", "C5"]

    def indicator(lists):
        return np.array([[name in s.split(";") for name in names] for s in lists], dtype=int)
    assert oracle_bounds(indicator(train), indicator(test), concepts=[0, 2, 3]) == by_hand
    with pytest.raises(ValueError, match="column indices"):
        oracle_bounds(indicator(train), indicator(test), concepts=["C1"])


@pytest.mark.parametrize("elements", [1, 7 * 40, 24 * 40])
def test_blocks_of_any_size_give_the_same_retrieval_bound(monkeypatch, elements):
    train = sparse.random(40, 12, density=0.3, random_state=1, format="csr")
    test = sparse.random(25, 12, density=0.3, random_state=2, format="csr")
    train.data[:], test.data[:] = 1, 1
    whole = oracle_bounds(train, test)  # one block: 2**24 numbers
    monkeypatch.setattr(_bounds, "_BLOCK_ELEMENTS", elements)  # 1, 7 and 24 test images
    assert oracle_bounds(train, test) == whole


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="y_train and y_test must both be"):
        oracle_bounds(["C1"], np.array([[1]]))
    with pytest.raises(ValueError, match="y_train has 2 columns but y_test has 3"):
        oracle_bounds(np.eye(2, dtype=int), np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="among concepts="):
        oracle_bounds(["C1"], ["C2"], concepts=["C1"])


def test_a_training_set_without_concepts_has_ceilings_of_zero():
    bounds = oracle_bounds(["", ""], ["C1", "C2"])
    assert (bounds.vocabulary_f1, bounds.retrieval_f1, bounds.top_k_f1, bounds.k) == \
        (0.0, 0.0, 0.0, 0)
    assert bounds.images_all_unseen == 1.0


def test_the_retrieval_oracle_chooses_exactly_among_nearly_equal_copies():
    # 2106/4319 and 2107/4322 of |T| + |R| round to one float32: the better copy must win.
    truth = [f"C{i}" for i in range(3000)]
    worse = truth[:2106] + [f"X{i}" for i in range(1213)]
    better = truth[:2107] + [f"Y{i}" for i in range(1215)]
    assert 2 * 2107 / (3000 + 3322) > 2 * 2106 / (3000 + 3319)
    for train in ([worse, better], [better, worse]):
        bound = oracle_bounds(train, [truth]).retrieval_f1
        assert bound == imageclef_f1_score([truth], [better])
