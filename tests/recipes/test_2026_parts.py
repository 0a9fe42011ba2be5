"""The 2026 recipe's parts: the members trained, loaded and saved."""

import pytest

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


@pytest.mark.slow  # an end-to-end recipe run: several seconds
@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_an_output_folder_deleted_or_replaced_during_the_run_is_never_written_into(
        tmp_path, monkeypatch, change):
    # The members, the run file, the report and the summary went to whatever was at the
    # output's path by then: a user's folder put there, or the folder made again.
    import dataclasses

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.recipes import _2026_parts
    from imageclef_concepts.recipes._2026 import DRY_RUN

    recipe = dataclasses.replace(DRY_RUN, grid={"filters": [(8,)], "random_state": [0, 1]})
    out = tmp_path / "out"
    real_fit = _2026_parts.fit_member

    def fit_then_lose_the_output(*args):
        fitted = real_fit(*args)
        if out.exists():
            out.rename(tmp_path / "moved")
            if change == "replaced":
                out.mkdir()
                (out / "notes.txt").write_text("mine")
        return fitted

    monkeypatch.setattr(_2026_parts, "fit_member", fit_then_lose_the_output)
    with pytest.raises(ValueError, match=rf"^output {out} is no longer the folder this run "
                                         rf"claimed \((it was deleted|another folder is at "
                                         rf"its path now)\)"):
        run_recipe_2026(None, out, recipe=recipe, dry_run=True, say=lambda line: None)
    if change == "replaced":
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    else:
        assert not out.exists()
    assert not list((tmp_path / "moved" / "members").glob("*.zip"))  # nothing saved after


@pytest.mark.slow  # an end-to-end recipe run: several seconds
@pytest.mark.parametrize("after", ["Member 1/2", "Member 2/2"])
def test_a_member_started_after_the_output_was_replaced_makes_no_store_in_it(tmp_path, after):
    # The output replaced by a user's folder once a member was saved: the next member's
    # training (or the tuning's predictions) opened the run's image store at its path,
    # <output>/image-store, and made it in the user's folder (or made the deleted output
    # again), with every training image decoded into it, before the save was refused.
    import dataclasses

    from imageclef_concepts import make_imageclef_layout, run_recipe_2026
    from imageclef_concepts.recipes._2026 import DRY_RUN

    make_imageclef_layout(tmp_path / "data", n_train=16, n_valid=8, n_test=8, image_size=16)
    recipe = dataclasses.replace(DRY_RUN, grid={"filters": [(4,)], "random_state": [0, 1]},
                                 count_coverage=(None,))
    out = tmp_path / "out"

    def say(line):
        if line.startswith(after) and not (tmp_path / "moved").exists():
            out.rename(tmp_path / "moved")
            out.mkdir()
            (out / "notes.txt").write_text("mine")

    with pytest.raises(ValueError, match=rf"^output {out} is no longer the folder this run "
                                         r"claimed \(another folder is at its path now\)"):
        run_recipe_2026(tmp_path / "data", out, recipe=recipe, say=say)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.slow  # an end-to-end recipe run: several seconds
@pytest.mark.parametrize("step", ["members_demands", "fit_member", "tune_decisions",
                                  "predict_folder"])
def test_an_output_replaced_as_members_train_tune_or_predict_gets_no_store(tmp_path,
                                                                          monkeypatch, step):
    # The members were handed the run's image store by path, and opened it anew (making it)
    # at each fit and predict: a user's folder put at the output's path while the members
    # were tuned or predicted got <output>/image-store made in it, every image decoded into
    # it. They share the store the run opened, which writes only into its own folder. The
    # disk check opened it by path too: a folder put there as the members' files were
    # counted (seconds to a minute for big backbones) got the store's manifest and index.
    import dataclasses

    from imageclef_concepts import ImageStoreWarning, make_imageclef_layout, run_recipe_2026
    from imageclef_concepts.recipes import _2026, _workflows
    from imageclef_concepts.recipes._2026 import DRY_RUN

    make_imageclef_layout(tmp_path / "data", n_train=16, n_valid=8, n_test=8, image_size=16)
    recipe = dataclasses.replace(DRY_RUN, grid={"filters": [(4,)], "random_state": [0, 1]},
                                 count_coverage=(None,))
    out = tmp_path / "out"
    module = {"fit_member": _recipe_parts, "tune_decisions": _2026,
              "members_demands": _2026}.get(step, _workflows)
    real = getattr(module, step)

    def replace_the_output_then(*args, **kwargs):
        if not (tmp_path / "moved").exists():  # once: as the first member starts, say
            out.rename(tmp_path / "moved")
            out.mkdir()
            (out / "notes.txt").write_text("mine")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, step, replace_the_output_then)
    with pytest.warns(ImageStoreWarning, match="no longer the folder it opened"), \
            pytest.raises(ValueError, match=rf"^output {out} is no longer the folder this run "
                                            r"claimed \(another folder is at its path now\)"):
        run_recipe_2026(tmp_path / "data", out, recipe=recipe, say=lambda line: None)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_plan_nested_past_the_recursion_limit_is_refused_not_a_traceback(tmp_path):
    from imageclef_concepts.recipes._2026_parts import claim_output

    (tmp_path / "plan.json").write_text("[" * 100_000)  # json: RecursionError, no ValueError
    with pytest.raises(ValueError, match="not the recipe's"):
        claim_output(tmp_path, {"procedure": "imageclef-concepts recipe-2026"}, "plan.json")
    assert (tmp_path / "plan.json").read_text() == "[" * 100_000


def test_the_compute_estimates_probe_leaves_the_members_checkpoint_folder_alone(
        tmp_path, tiny_images):
    # The probe (one epoch of a few images) fitted a clone of the first member, with its
    # checkpoint_dir: the folder then held the probe's checkpoint, and that member was
    # refused as "the checkpoint of another training" (recipe-2026 with a checkpoint_dir
    # in estimator_params never trained; issue 30 review 13).
    from sklearn.utils import Bunch

    from ..conftest import tiny_cnn

    folder = tmp_path / "checkpoint"
    members = [("a", tiny_cnn(checkpoint_dir=folder))]
    train = Bunch(paths=tiny_images.images[:12], concepts=tiny_images.concepts[:12])
    line = _recipe_parts.estimate_compute(members, [tmp_path / "a.zip"], train, {})
    assert line.startswith("Estimate: 1 members") and not folder.exists()


@pytest.mark.parametrize("fraction", [0.02, 0.97])
def test_the_compute_estimates_probe_takes_a_validation_fraction_the_training_takes(
        tiny_images, tmp_path, fraction):
    # 80,000 training images hold out validation_fraction=0.02 well, but the probe's 16
    # images hold out round(0.32) = 0: the probe refused the recipe ("validation_fraction=0.02
    # of 16 images leaves 0 for validation") before any member trained (issue 30 review 14).
    from sklearn.utils import Bunch

    from ..conftest import tiny_cnn

    members = [("a", tiny_cnn(validation_fraction=fraction))]
    train = Bunch(paths=tiny_images.images[:12], concepts=tiny_images.concepts[:12])
    line = _recipe_parts.estimate_compute(members, [tmp_path / "a.zip"], train, {})
    assert line.startswith("Estimate: 1 members")


@pytest.mark.parametrize("changed, named", [
    ({"retrieval_params": {"weights": None, "image_size": 32, "batch_size": True}},
     "'batch_size' parameter of BackboneEmbedding"),
    ({"retrieval_params": {"weights": None, "image_size": 32.0}},
     "'image_size' parameter of BackboneEmbedding"),
    ({"retrieval_params": {"weights": None, "image_size": 32}, "retrieval_neighbors": 0},
     "'n_neighbors' parameter of ConceptKNNClassifier"),
])
def test_the_retrieval_members_sizes_are_checked_before_the_output_is_made(tmp_path, changed,
                                                                          named):
    # The encoder's and the k-NN's parameters were first checked when the retrieval member
    # was fitted, after the output folder was claimed (issue 30 review 15).
    import dataclasses

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.recipes import _2026 as recipe

    dry_run = dataclasses.replace(recipe.DRY_RUN, retrieval_encoder="mobilenetv3small",
                                  **changed)
    with pytest.raises(ValueError, match=named):
        run_recipe_2026(None, tmp_path / "out", dry_run=True, say=print, recipe=dry_run)
    assert not (tmp_path / "out").exists()


def test_a_member_saved_from_a_grid_value_given_as_a_list_is_the_plans_member(monkeypatch):
    # A grid {"filters": [[2]]} trained and saved its members; the same call again refused
    # them ("filters=(2,) (the plan: [2])") and said to delete them: the saved model holds
    # the tuple its parameters were restored as, the plan the list it was given. Compared as
    # the plan stores them (and as the grid's own "same training" check compares them).
    from imageclef_concepts import ConceptCNNClassifier
    from imageclef_concepts.recipes import _workflows

    saved = ConceptCNNClassifier(filters=(2,), kernel_size=3, dense_units=(4,),
                                 conv_dropout=0.0)
    monkeypatch.setattr(_workflows, "load_model", lambda path: saved)
    for template in (ConceptCNNClassifier(filters=[2], kernel_size=[3], dense_units=[4],
                                          conv_dropout=0),
                     ConceptCNNClassifier(filters=(2,), kernel_size=(3,), dense_units=(4,),
                                          conv_dropout=0.0)):
        assert _recipe_parts.load_member("member-00.zip", template) is saved
    with pytest.raises(ValueError, match=r"not the plan's member \(filters=\(2,\) \(the plan: "
                                         r"\[3\]\)\): delete member-00\.zip"):
        _recipe_parts.load_member("member-00.zip", ConceptCNNClassifier(
            filters=[3], kernel_size=3, dense_units=[4], conv_dropout=0))
