"""The 2026 recipe's parts: the members trained, loaded and saved."""

from imageclef_concepts.recipes import _2026_parts as _recipe_parts


def test_more_workers_than_members_are_not_asked_of_joblib(tmp_path):
    # joblib sizes its workers' queue by n_jobs: --n-jobs 99999999999999999999 was an
    # OverflowError traceback from recipe-2026.
    from sklearn.utils import Bunch

    from imageclef_concepts import MostFrequentConcepts

    files = _recipe_parts.member_files(tmp_path, 2)
    members = [(name, MostFrequentConcepts()) for name in "ab"]
    train = Bunch(paths=[[0], [1]], concepts=[("C1",), ("C2",)])
    for n_jobs in (10**20, 4):  # the second run loads both: nothing left to train
        fitted, trained, loaded = _recipe_parts.train_members(members, files, train, n_jobs,
                                                              lambda line: None)
        assert len(fitted) == 2 and (trained, loaded) == ((2, 0) if n_jobs > 4 else (0, 2))
