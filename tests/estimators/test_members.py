"""Ensembles at scale: members from a template and a grid, their random parts, their weights."""

import os

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.multioutput import MultiOutputClassifier

from imageclef_concepts import ConceptEnsemble, ConceptKNNClassifier, MostFrequentConcepts
from imageclef_concepts.models._archive import ArchiveWriter

from ..doubles import FixedConcepts

FOREST = MultiOutputClassifier(RandomForestClassifier(n_estimators=3))
GRID = {"estimator__random_state": [0, 1], "estimator__max_depth": [2, None]}


def _tabular(n=30, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 4))
    return features, np.c_[features[:, 0] > 0, features[:, 1] + features[:, 2] > 0].astype(int)


def test_from_grid_builds_the_product_with_its_parameters_and_readable_names():
    ensemble = ConceptEnsemble.from_grid(FOREST, GRID, combine="vote", min_votes=3)
    names = [name for name, _ in ensemble.estimators]
    # ParameterGrid's order (keys sorted, the last varying fastest); named in the grid's order.
    assert names == ["random_state=0,max_depth=2", "random_state=1,max_depth=2",
                     "random_state=0,max_depth=None", "random_state=1,max_depth=None"]
    for name, member in ensemble.estimators:
        params = member.get_params()
        assert name == (f"random_state={params['estimator__random_state']},"
                        f"max_depth={params['estimator__max_depth']}")
        assert params["estimator__n_estimators"] == 3  # the rest is the template's
    assert FOREST.get_params()["estimator__random_state"] is None  # the template is untouched
    assert ensemble.get_params()["min_votes"] == 3
    # Members are ordinary parameters: nested get/set_params and clone work.
    ensemble.set_params(**{"random_state=1,max_depth=None__estimator__n_estimators": 5})
    assert ensemble.get_params()["random_state=1,max_depth=None__estimator__n_estimators"] == 5
    assert [n for n, _ in clone(ensemble).estimators] == names


def test_members_with_other_seeds_really_differ_and_two_jobs_give_one_jobs_result():
    features, Y = _tabular()
    ensembles = [ConceptEnsemble.from_grid(FOREST, GRID, n_jobs=n_jobs, subsample=0.8,
                                           random_state=0).fit(features, Y)
                 for n_jobs in (1, 2)]
    probabilities = [[member.predict_proba(features) for member in ensemble.estimators_]
                     for ensemble in ensembles]
    seed0, seed1 = probabilities[0][2], probabilities[0][3]  # max_depth=None, seeds 0 and 1
    assert any(not np.array_equal(a, b) for a, b in zip(seed0, seed1))
    for one, two in zip(*probabilities):
        for a, b in zip(one, two):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(*(e.estimators_samples_ for e in ensembles)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ensembles[0].predict_proba(features),
                                  ensembles[1].predict_proba(features))


class RecordsRows(MostFrequentConcepts):
    """MostFrequentConcepts that keeps the rows it was fitted on (X is a column of row ids)."""

    def fit(self, X, y):
        self.rows_ = np.asarray(X)[:, 0].copy()
        return super().fit(X, y)


def test_subsample_members_each_see_their_own_random_rows():
    rows = np.arange(20)[:, None]
    y = ["C1;C2" if i % 2 else "C1" for i in range(20)]
    ensemble = ConceptEnsemble.from_grid(RecordsRows(k=1), {"k": [1, 1, 1]}, subsample=0.5,
                                         random_state=3, combine="intersection").fit(rows, y)
    seen = [member.rows_ for member in ensemble.estimators_]
    for member_rows, drawn in zip(seen, ensemble.estimators_samples_):
        np.testing.assert_array_equal(member_rows, drawn)  # fitted on exactly its draw
        assert len(drawn) == 10 and len(set(drawn)) == 10
    assert len({tuple(s) for s in seen}) == 3  # three different parts
    again = clone(ensemble).fit(rows, y)  # the same random_state: the same parts
    for a, b in zip(again.estimators_samples_, ensemble.estimators_samples_):
        np.testing.assert_array_equal(a, b)
    everyone = ConceptEnsemble(ensemble.estimators).fit(rows, y)
    assert everyone.estimators_samples_ is None
    assert all(len(m.rows_) == 20 for m in everyone.estimators_)


def test_subsample_rows_and_per_concept_weights_survive_save_and_joblib(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 3), dtype=np.uint8)
    y = ["C1;C2" if i % 3 else "C1;C3" for i in range(16)]
    ensemble = ConceptEnsemble.from_grid(
        ConceptKNNClassifier(3, pixel_size=4), {"n_neighbors": [1, 3]}, subsample=0.75,
        random_state=0, weights=[[1, 0, 2], [1, 1, 0]]).fit(images, y)
    ensemble.save(tmp_path / "mc.zip")
    joblib.dump(ensemble, tmp_path / "mc.joblib")
    for loaded in (ConceptEnsemble.load(tmp_path / "mc.zip"), joblib.load(tmp_path / "mc.joblib")):
        for a, b in zip(loaded.estimators_samples_, ensemble.estimators_samples_):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.predict_proba(images), ensemble.predict_proba(images))


@pytest.mark.parametrize("grid, message", [
    ({"estimator__randomstate": [0]}, r"'estimator__randomstate' that MultiOutputClassifier "
                                      r"does not have; its parameters are .*estimator__"),
    ({"estimator__random_state": []}, r"grid\['estimator__random_state'\] is an empty list"),
    ({"estimator__random_state": 0}, r"must be a list of values; got 0 .*\[0\]"),
    ({"estimator__criterion": "gini"}, "must be a list of values; got 'gini'"),
    ({}, "non-empty dict"),
    ([], "grid must be a dict of parameter lists"),
    ([{"n_jobs": [1]}, {}], "non-empty dict"),
])
def test_bad_grids_are_named_before_anything_is_built(grid, message):
    with pytest.raises(ValueError, match=message):
        ConceptEnsemble.from_grid(FOREST, grid)


def test_ensemble_settings_are_checked_when_the_grid_is_built():
    with pytest.raises(ValueError, match="min_votes=5 is more than the 4 estimators"):
        ConceptEnsemble.from_grid(FOREST, GRID, combine="vote", min_votes=5)
    with pytest.raises(ValueError, match="weights has 2 values for 4 estimators"):
        ConceptEnsemble.from_grid(FOREST, GRID, weights=[1, 2])
    with pytest.raises(ValueError, match="subsample"):
        ConceptEnsemble.from_grid(FOREST, GRID, subsample=1.5)
    with pytest.raises(ValueError, match=r"subsample=0.01 of 30 images is no image"):
        ConceptEnsemble.from_grid(FOREST, GRID, subsample=0.01).fit(*_tabular())


def test_names_stay_unique_and_free_of_double_underscores():
    ensemble = ConceptEnsemble.from_grid(FixedConcepts(["A"]), [
        {"scores": [[[0.5]] * 3, [[0.7]] * 3]}, {"classes": [["A"], ["a__b"]]}])
    names = [name for name, _ in ensemble.estimators]
    # Values shown by their class when not plain; repeated names numbered.
    assert names == ["scores=list", "scores=list#2", "classes=A", "classes=a_b"]
    ConceptEnsemble(ensemble.estimators)._check_members()  # valid member names


def test_names_made_of_paths_are_one_archive_folder_each(tmp_path):
    ensemble = ConceptEnsemble.from_grid(FixedConcepts(["A"]), {
        "classes": [["/data/x"], ["a\\b\nc"], [".."]]})
    names = [name for name, _ in ensemble.estimators]
    assert names == ["classes=_data_x", "classes=a_b_c", "classes=.."]


@pytest.mark.parametrize("name", ["a/members/b", "", ".", "..", "a\\b", "tab\there"])
def test_names_that_are_not_one_archive_folder_are_refused(name):
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    members = [("a", MostFrequentConcepts(k=1)), (name, MostFrequentConcepts(k=1))]
    with pytest.raises(ValueError, match="cannot name a member"):
        ConceptEnsemble(members).fit(images, ["C1", "C1"])
    ensemble = ConceptEnsemble(members[:1]).fit(images, ["C1", "C1"])
    fitted = ensemble.estimators_[0]
    ensemble.set_params(estimators=[("a", fitted), (name, fitted)], prefit=True)
    with pytest.raises(ValueError, match="cannot name a member"):  # as at fit
        ensemble.predict(images)


def test_the_archive_refuses_two_parts_under_one_name():
    writer = ArchiveWriter()
    writer.estimator("members/a/members/b", MostFrequentConcepts(k=1).fit(
        np.zeros((1, 4, 4, 3)), ["C1"]))
    with pytest.raises(ValueError, match="saved as 'members/a/members/b/.*rename a member"):
        writer.estimator("members/a/members/b", MostFrequentConcepts(k=1).fit(
            np.zeros((1, 4, 4, 3)), ["C2"]))


def test_members_sharing_a_checkpoint_folder_are_refused_before_any_training(tmp_path):
    # from_grid clones the template's checkpoint_dir into every member: the first member
    # trained whole, then the second was refused ("the checkpoint of another training").
    from imageclef_concepts import ConceptCNNClassifier

    X = np.zeros((8, 16, 16, 3), dtype=np.uint8)
    folder = tmp_path / "checkpoint"
    cnn = ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(2,), epochs=1,
                               checkpoint_dir=str(folder))
    ensemble = ConceptEnsemble.from_grid(cnn, {"random_state": [0, 1]})
    with pytest.raises(ValueError, match=r"^random_state=1__checkpoint_dir and "
                                         r"random_state=0__checkpoint_dir name one"):
        ensemble.fit(X, ["C1", "C2"] * 4)
    assert not folder.exists()


def test_members_naming_one_checkpoint_folder_through_a_linked_parent_are_refused(tmp_path):
    # real/ck and link/ck (link -> real) are one folder: told apart by their paths, the
    # first member trained whole, then the second was refused ("the checkpoint of another
    # training").
    from imageclef_concepts import ConceptCNNClassifier

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    members = [(name, ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(2,),
                                           epochs=1, random_state=seed,
                                           checkpoint_dir=str(tmp_path / name / "ck")))
               for seed, name in enumerate(("real", "link"))]
    with pytest.raises(ValueError, match=r"^link__checkpoint_dir and real__checkpoint_dir "
                                         r"name one checkpoint folder"):
        ConceptEnsemble(members).fit(np.zeros((8, 16, 16, 3), dtype=np.uint8),
                                     ["C1", "C2"] * 4)
    assert not (tmp_path / "real" / "ck").exists()


@pytest.mark.parametrize("second", ["link", "file"])
def test_a_members_checkpoint_folder_is_checked_before_any_member_trains(tmp_path, second):
    # The second member's checkpoint_dir (a link, a file) was refused at its turn, once the
    # first member had trained whole.
    from imageclef_concepts import CheckpointError, ConceptCNNClassifier

    X = np.zeros((8, 16, 16, 3), dtype=np.uint8)
    (tmp_path / "real").mkdir()
    if second == "link":
        (tmp_path / "b").symlink_to(tmp_path / "real")
    else:
        (tmp_path / "b").write_text("mine")
    members = [(name, ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(2,),
                                           epochs=1, checkpoint_dir=str(tmp_path / name)))
               for name in "ab"]
    with pytest.raises(CheckpointError, match=rf"^checkpoint folder {tmp_path / 'b'} "):
        ConceptEnsemble(members).fit(X, ["C1", "C2"] * 4)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("fit", ["ensemble", "threshold_tuner", "ensemble_tuner"])
def test_no_more_workers_than_fits(fit, monkeypatch):
    # joblib's loky starts every worker at once: n_jobs=10**5 for two members started
    # processes until the system refused (issue 30 review 12); n_jobs=16, 16 processes.
    n_jobs = 64  # threads below (the failure is cheap): 10**5 made 21,649 before failing
    from imageclef_concepts import EnsembleTuner, ThresholdTuner

    asked = []
    init = joblib.Parallel.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        asked.append(self.n_jobs)

    monkeypatch.setattr(joblib.Parallel, "__init__", recording)
    X, y = np.zeros((8, 2, 2, 3), np.uint8), ["C1", "C1;C2"] * 4
    ensemble = ConceptEnsemble.from_grid(ConceptKNNClassifier(pixel_size=2, n_neighbors=1),
                                         {"threshold": [0.4, 0.6]}, combine="vote")
    with joblib.parallel_config(backend="threading"):
        if fit == "ensemble":
            ensemble.set_params(n_jobs=n_jobs).fit(X, y)
        elif fit == "threshold_tuner":
            ThresholdTuner(ConceptKNNClassifier(pixel_size=2, n_neighbors=1), cv=2,
                           n_jobs=n_jobs).fit(X, y)
        else:
            EnsembleTuner(ensemble, cv=2, thresholds=3, n_jobs=n_jobs).fit(X, y)
    assert asked and max(asked) == 2


def test_names_that_are_not_utf8_are_refused_or_never_made(tmp_path):
    # A grid over paths named in bytes that are not UTF-8 (os.fsdecode's lone surrogates) made
    # member names every member trained under, then the save failed with a UnicodeEncodeError
    # naming nothing (the names are the archive's folders; issue 30 review 12).
    path = os.fsdecode(b"/data/caf\xe9")
    ensemble = ConceptEnsemble.from_grid(MostFrequentConcepts(), {"k": [1, 2],
                                                                  "min_count": [1, 2]})
    names = ConceptEnsemble.from_grid(ConceptKNNClassifier(pixel_size=2), {
        "embedding_store": [None, path]}).estimators
    assert [name for name, _ in names] == ["embedding_store=None", "embedding_store=_data_caf_"]
    X, y = np.zeros((4, 1)), ["C1", "C1;C2"] * 2
    ensemble.fit(X, y).save(tmp_path / "kept.zip")
    ensemble.set_params(estimators=[(os.fsdecode(b"r\xe9sidu"), MostFrequentConcepts()),
                                    ("other", MostFrequentConcepts())])
    with pytest.raises(ValueError, match=r"^The name 'r\\udce9sidu' in estimators cannot"):
        ensemble.fit(X, y)


@pytest.mark.parametrize("value, shown", [("/data/a/_b", "_data_a_b"), ("a__b", "a_b"),
                                          ("/data/run_/x", "_data_run_x"),
                                          ("/data/r___1", "_data_r_1")])
def test_grid_names_never_hold_the_nested_parameter_separator(value, shown):
    # '/' became '_' after '__' was collapsed, so a path holding '/_' or '_/' (a folder
    # _cache, run_/), or '___', made a name holding '__': from_grid then refused the
    # library's own name ('Estimator names must not contain __', issue 30 review 13).
    ensemble = ConceptEnsemble.from_grid(ConceptKNNClassifier(pixel_size=2),
                                         {"embedding_store": [None, value]})
    assert [name for name, _ in ensemble.estimators] == ["embedding_store=None",
                                                         f"embedding_store={shown}"]


@pytest.mark.parametrize("n_jobs", [-1, -2, None])
def test_every_core_or_the_configured_workers_are_capped_by_the_fits(n_jobs):
    # n_jobs=-1 started one loky process a core for two fits (issue 30's known-left list);
    # None reads parallel_config's n_jobs, which may be as large.
    from imageclef_concepts.estimators._members import workers_for

    with joblib.parallel_config(backend="loky", n_jobs=64 if n_jobs is None else None):
        assert workers_for(n_jobs, 1) == 1
        assert workers_for(n_jobs, 64) == max(1, joblib.effective_n_jobs(n_jobs))
    assert workers_for(0, 3) == 0  # joblib's own refusal names n_jobs
