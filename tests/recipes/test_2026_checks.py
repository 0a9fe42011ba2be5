"""The 2026 recipe's checks before training: here, the disk its members' files take."""

import re
import shutil
from collections import namedtuple

import numpy as np
import pytest

from imageclef_concepts.recipes import _2026_parts as _recipe_parts
from imageclef_concepts.recipes._2026_checks import members_bytes, members_demands

_Usage = namedtuple("_Usage", "total used free")


@pytest.mark.parametrize(("params", "overhead"), [
    (dict(backbone="paper", image_size=16, filters=(4, 8), dense_units=(16,)), True),
    pytest.param(dict(backbone="efficientnetb0", weights=None, image_size=32), False,
                 marks=pytest.mark.slow),
])
@pytest.mark.slow
def test_the_members_bytes_are_an_upper_bound_of_the_saved_files(tmp_path, tiny_images,
                                                                 params, overhead):
    from imageclef_concepts import ConceptCNNClassifier
    from imageclef_concepts.recipes._workflows import save_model

    from ..conftest import labels_of

    member = ConceptCNNClassifier(epochs=1, random_state=0, **params)
    n_concepts = len({c for cs in tiny_images.concepts for c in cs})
    asked = members_bytes([member, member], n_concepts)
    save_model(member.fit(tiny_images.images, labels_of(tiny_images)), tmp_path / "m.zip")
    saved = (tmp_path / "m.zip").stat().st_size
    assert asked >= saved * 2  # both counted
    assert overhead or asked < saved * 2 * 1.3  # a large network: the weights are the file


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_members_whose_files_the_disk_cannot_take_are_refused_before_any_trains(
        tmp_path, monkeypatch):
    # Every member trained and was saved; then the test images found no room in the image
    # store on that disk, and the run was refused (a rerun loaded the members).
    import dataclasses

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.images._folder_store import index_bytes
    from imageclef_concepts.recipes import _2026 as recipe

    n_images = 80 + 40 + 40  # the dry run's three splits, at 16 px
    images = n_images * 16 * 16 * 3 + index_bytes(n_images, n_images * 200)
    wide = dataclasses.replace(recipe.DRY_RUN, estimator_params={  # wider members
        **recipe.DRY_RUN.estimator_params, "dense_units": (512,)})
    asked = []
    monkeypatch.setattr(recipe, "members_demands", lambda *args: asked.append(
        members_demands(*args)[0][0]) or members_demands(*args))
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: _Usage(2**40, 2**40, images))
    monkeypatch.setattr(_recipe_parts, "fit_member", lambda *a: pytest.fail("trained"))
    with pytest.raises(ValueError) as raised:
        run_recipe_2026(None, tmp_path / "out", recipe=wide, dry_run=True, say=print)
    error = str(raised.value)
    assert error.startswith("image_size=16: storing 160 image(s) at each of 1 size(s) and "
                            "filter(s), and saving the members still to train takes"), error
    assert "train fewer members" in error
    # the run's own store cannot be left out, only moved
    assert "give image_store= a folder on another disk" in error
    assert "give no image store" not in error
    assert asked and asked[0] > 0
    assert not list((tmp_path / "out" / "members").glob("*"))


def test_members_alone_are_named_when_every_image_is_stored_already(tmp_path, monkeypatch):
    from imageclef_concepts.recipes._2026_checks import check_store_room

    from ..conftest import tiny_cnn

    members = [("a", tiny_cnn(image_size=16)), ("b", tiny_cnn(image_size=16))]
    store = tmp_path / "store"
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: _Usage(2**40, 2**40, 1000))
    saved = ("the grid", "saving the members still to train", "train fewer members")
    check_store_room(members, store, [[]], written=[(999, tmp_path, *saved)])  # it fits
    with pytest.raises(ValueError, match=r"^the grid: saving the members still to train "
                                         r"takes 1,001 bytes, more than"):
        check_store_room(members, store, [[]], written=[(1001, tmp_path, *saved)])


def test_training_images_too_few_for_the_validation_split_are_refused_naming_the_file(
        tmp_path, monkeypatch):
    # The compute estimate's probe failed with "Use validation_fraction=None or pass
    # validation_data": advice the command line cannot take.
    from imageclef_concepts import make_imageclef_layout, run_recipe_2026
    from imageclef_concepts.keras import _training_loop
    from imageclef_concepts.recipes._2026 import DRY_RUN

    make_imageclef_layout(tmp_path / "data", n_train=5, n_valid=40, n_test=4, image_size=16,
                          random_state=0)
    monkeypatch.setattr(_training_loop, "split_validation",
                        lambda *a, **k: pytest.fail("a member trained"))
    with pytest.raises(ValueError, match=r"train.*concepts\.csv: 5 training image\(s\) have a "
                                         r"line; member .* validation_fraction=0\.1 .* give 6 "
                                         r"training images or more"):
        run_recipe_2026(tmp_path / "data", tmp_path / "out", recipe=DRY_RUN,
                        say=lambda line: None)


@pytest.mark.parametrize("params", [
    dict(backbone="paper", image_size=16, filters=(8,), dense_units=(512,)),
    # a backbone fine-tuned (all trained at last), whose state deflates least: 3.7 bytes
    pytest.param(dict(backbone="mobilenetv3small", weights=None, image_size=32,
                      freeze_epochs=1, epochs=2), marks=pytest.mark.slow),
    # the same with a patience early stopping could end the frozen stage with: it seldom
    # does, and the backbone's state was left out (the estimate 0.45 of the file)
    pytest.param(dict(backbone="mobilenetv3small", weights=None, image_size=32,
                      freeze_epochs=1, epochs=2, early_stopping_patience=0),
                 marks=pytest.mark.slow),
])
@pytest.mark.slow
def test_the_members_bytes_count_the_optimizers_state_the_files_hold(tmp_path, tiny_images,
                                                                     params):
    # A member's file holds Adam's two numbers a weight for every weight it trained: the
    # weights alone were a third of the file of the paper's network or of a fine-tuned
    # backbone, so a disk the members would fill passed the check (and counted at 2 bytes a
    # number, the state of a fine-tuned MobileNet made the estimate 0.63 of its file).
    from imageclef_concepts import ConceptCNNClassifier
    from imageclef_concepts.recipes._workflows import save_model

    from ..conftest import labels_of

    member = ConceptCNNClassifier(**{"epochs": 1, "random_state": 0, **params})
    n_concepts = len({c for cs in tiny_images.concepts for c in cs})
    asked = members_bytes([member], n_concepts)
    save_model(member.fit(tiny_images.images, labels_of(tiny_images)), tmp_path / "m.zip")
    saved = (tmp_path / "m.zip").stat().st_size
    assert saved <= asked < saved * 1.8


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_the_members_bytes_need_no_data_for_a_members_loss():
    # The state is counted without compiling the loss: pos_weight="balanced" (or an
    # array) is sized by the training data, which an unfitted member has not seen.
    from imageclef_concepts import ConceptCNNClassifier

    member = ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(16,))
    plain = members_bytes([member], 3)
    assert members_bytes([member.set_params(pos_weight="balanced")], 3) == plain
    assert members_bytes([member.set_params(pos_weight=[2.0] * 3)], 3) == plain


@pytest.mark.parametrize("fraction", [5e-324, 1 - 2**-53])
def test_a_validation_fraction_no_training_set_can_split_is_named(fraction):
    # 0.5 / 5e-324 overflowed: OverflowError, naming nothing.
    from types import SimpleNamespace

    from imageclef_concepts.recipes._2026_checks import check_training_size

    with pytest.raises(ValueError, match=r"^member 'm': validation_fraction=.* leaves no image"):
        check_training_size([("member 'm'", SimpleNamespace(validation_fraction=fraction))],
                            80, "c.csv: 80 training image(s) have a line")


@pytest.mark.parametrize("where", ["grid", "estimator_params", "retrieval_params"])
def test_a_setting_the_plan_cannot_record_is_named_before_the_output_is_made(tmp_path,
                                                                             where):
    # A user's network (model=) or optimizer object: 'TypeError: Object of type function
    # is not JSON serializable', naming nothing, and an empty output folder made. So was
    # an ImageStore given to the retrieval encoder ('Object of type ImageStore').
    import dataclasses

    from imageclef_concepts import ImageStore, run_recipe_2026
    from imageclef_concepts.recipes import _2026 as recipe

    def network(n_concepts, image_size):
        raise AssertionError("built")

    changed = ({"grid": {**recipe.DRY_RUN.grid, "model": [network]}} if where == "grid" else
               {"estimator_params": {**recipe.DRY_RUN.estimator_params, "model": network}})
    if where == "retrieval_params":
        changed = {"retrieval_encoder": "mobilenetv3small", "retrieval_params": {
            "weights": None, "image_size": 32, "image_store": ImageStore(tmp_path / "store")}}
    name = "image_store" if where == "retrieval_params" else "model"
    with pytest.raises(ValueError, match=rf"^recipe {where}\['{name}'\]=\[?<function .*: "
                                         r"not a value plan.json can record"
                       if name == "model" else r"^recipe retrieval_params\['image_store'\]="
                                               r"ImageStore\(.*not a value plan.json can"):
        run_recipe_2026(None, tmp_path / "out", dry_run=True, say=print,
                        recipe=dataclasses.replace(recipe.DRY_RUN, **changed))
    assert not (tmp_path / "out").exists()


def test_members_trained_at_once_may_not_share_a_checkpoint_folder(tmp_path):
    # checkpoint_dir in the recipe's estimator_params with n_jobs=2: the second member was
    # refused as it started ("the checkpoint of another training"), the first stopped.
    from imageclef_concepts.recipes._2026_checks import check_members

    from ..conftest import tiny_cnn

    folder = str(tmp_path / "ckpt")
    members = [(name, tiny_cnn(image_size=16, checkpoint_dir=folder, random_state=seed))
               for seed, name in enumerate("ab")]  # two seeds: two trainings
    check_members(members, n_jobs=1)  # one after another: each in turn
    with pytest.raises(ValueError, match=r"^b__checkpoint_dir and a__checkpoint_dir name one "
                                         r"checkpoint folder.* n_jobs=2 trains the members at "
                                         r"once; n_jobs=1 trains them one after another"):
        check_members(members, n_jobs=2)
    assert not (tmp_path / "ckpt").exists()


def test_retrieval_params_without_a_retrieval_encoder_are_named_before_the_output_is_made(
        tmp_path):
    # No encoder, so no retrieval member: its parameters were dropped silently (neither used
    # nor in plan.json) and the members trained; the command line refuses the flags.
    import dataclasses

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.recipes import _2026 as recipe

    with pytest.raises(ValueError, match=r"^recipe retrieval_params=\{'image_size': 64\}: "
                                         r"given without a retrieval_encoder"):
        run_recipe_2026(None, tmp_path / "out", dry_run=True, say=print, recipe=dataclasses.
                        replace(recipe.DRY_RUN, retrieval_params={"image_size": 64}))
    # retrieval_neighbors likewise (issue 30 review 13)
    with pytest.raises(ValueError, match=r"^recipe retrieval_neighbors=5: given without a "
                                         r"retrieval_encoder"):
        run_recipe_2026(None, tmp_path / "out", dry_run=True, say=print, recipe=dataclasses.
                        replace(recipe.DRY_RUN, retrieval_neighbors=5))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_members_checkpoint_folder_is_asked_for_their_largest_checkpoint(tmp_path):
    # A checkpoint_dir in the recipe's estimator_params was not counted: its disk filled
    # at the first epoch of a member, after the members before it had trained.
    from imageclef_concepts.keras._training_loop import checkpoint_bytes, count_weights

    from ..conftest import tiny_cnn

    small, wide = tiny_cnn(image_size=16), tiny_cnn(image_size=16, dense_units=(64,))
    assert members_demands([small, wide], 3, tmp_path)[1:] == []  # no checkpoint: none
    for member in (small, wide):
        member.set_params(checkpoint_dir=tmp_path / "link" / "ck")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    saved, *checkpoints = members_demands([small, wide], 3, tmp_path / "out")
    assert saved[0] == members_bytes([small, wide], 3)
    (needed, folder, setting, what, advice), = checkpoints  # one folder: one at a time
    assert needed == checkpoint_bytes(count_weights(wide, 3)) > checkpoint_bytes(
        count_weights(small, 3))
    assert folder == tmp_path / "real" / "ck"
    assert setting.startswith("checkpoint_dir=") and "another disk" in advice


@pytest.mark.slow  # a dry run with a retrieval member: about 20 s
def test_the_retrieval_members_file_is_asked_of_the_outputs_disk(tmp_path, monkeypatch):
    # The k-NN's file holds the training images' embeddings and concepts once more; it was
    # not counted, so the disk filled as it was saved, after every network had trained
    # (issue 30 review 13).
    import dataclasses

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.files import _sizes
    from imageclef_concepts.recipes import _2026 as recipe

    asked, check = [], _sizes.check_disks
    monkeypatch.setattr(_sizes, "check_disks",
                        lambda demands, **kw: asked.append(demands) or check(demands, **kw))
    with_retrieval = dataclasses.replace(
        recipe.DRY_RUN, retrieval_encoder="mobilenetv3small", retrieval_neighbors=3,
        retrieval_params={"weights": None, "image_size": 32})
    run_recipe_2026(None, tmp_path / "out", dry_run=True, say=lambda line: None,
                    recipe=with_retrieval)
    demand, = [d for d in asked[-1] if d[3] == "the retrieval member's file"]
    assert demand[0] >= (tmp_path / "out" / "members" / "retrieval.zip").stat().st_size
    assert demand[1] == tmp_path / "out" and demand[2] == "retrieval_encoder='mobilenetv3small'"
    asked.clear()  # the rerun loads it: nothing to ask
    run_recipe_2026(None, tmp_path / "out", dry_run=True, say=lambda line: None,
                    recipe=with_retrieval)
    assert all(d[3] != "the retrieval member's file" for d in asked[-1])


_RETRIEVAL = {"retrieval_encoder": "mobilenetv3small",
              "retrieval_params": {"weights": None, "image_size": 32}}


@pytest.mark.parametrize("changed, error, message", [
    # refused by the tuners after every member had trained, and the rerun with a corrected
    # value refused as 'other settings' (hostile review, item 1)
    (dict(thresholds=[-0.1]), ValueError, r"^recipe: thresholds must lie in \[0, 1\].*got -0.1"),
    (dict(thresholds=[1.5]), ValueError, r"^recipe: thresholds must lie in \[0, 1\].*got 1.5"),
    (dict(thresholds=[[0.2]]), ValueError, r"^recipe: thresholds must be .* flat list .*\[\[0.2"),
    (dict(thresholds=[0.2, float("nan")]), ValueError, r"^recipe: thresholds .*not NaN"),
    (dict(thresholds=1), ValueError, r"^recipe: The 'thresholds' parameter of ThresholdTuner "
                                     r"must be a whole number .* in the range \[2, inf\).* "
                                     r"Got 1 instead"),
    (dict(thresholds=5000), ValueError, r"^recipe: The 'thresholds' parameter of EnsembleTuner "
                                        r"must be a whole number .* in the range \[2, 1000\]"),
    (dict(count_coverage=(None, 1.5)), ValueError,
     r"^recipe: count_coverage must hold coverages strictly between 0 and 1.*got 1.5"),
    ({**_RETRIEVAL, "retrieval_neighbors": 0}, ValueError,
     r"^recipe retrieval_neighbors=0: The 'n_neighbors' parameter of ConceptKNNClassifier must "
     r"be a whole number .* in the range \[1, inf\)"),
    ({**_RETRIEVAL, "retrieval_neighbors": -1}, ValueError, r"^recipe retrieval_neighbors=-1: "),
    # each field of the wrong type: a TypeError deep inside, naming nothing (item 4)
    (dict(thresholds="0.5"), TypeError, r"^recipe thresholds='0.5': must be a number of "
                                        r"candidate thresholds, or a list of them, not str"),
    (dict(thresholds=True), TypeError, r"^recipe thresholds=True: .* not bool"),
    (dict(count_coverage=0.8), TypeError, r"^recipe count_coverage=0.8: must be a tuple of "
                                          r"coverages, None for no count model .*, not float"),
    (dict(count_coverage="0.8"), TypeError, r"^recipe count_coverage='0.8': .* not str"),
    ({**_RETRIEVAL, "retrieval_neighbors": 2.5}, TypeError,
     r"^recipe retrieval_neighbors=2.5: must be a whole number of neighbours, not float"),
    ({**_RETRIEVAL, "retrieval_neighbors": "5"}, TypeError, r"^recipe retrieval_neighbors='5'"),
    (dict(retrieval_encoder=5), TypeError, r"^recipe retrieval_encoder=5: must be an encoder's "
                                           r"name or None, not int"),
    (dict(retrieval_params=[("weights", None)]), TypeError, r"^recipe retrieval_params=\[\("),
    (dict(estimator_params="image_size=16"), TypeError, r"^recipe estimator_params='image_siz"),
    (dict(grid="filters"), TypeError, r"^recipe grid='filters': must be a dict of parameter "),
])
def test_recipe_settings_are_refused_naming_the_field_before_anything_is_made(
        tmp_path, monkeypatch, changed, error, message):
    import dataclasses

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.recipes import _2026 as recipe

    monkeypatch.setattr(_recipe_parts, "fit_member", lambda *a: pytest.fail("trained"))
    monkeypatch.setattr(_recipe_parts, "estimate_compute", lambda *a: pytest.fail("timed"))
    with pytest.raises(error, match=message):
        run_recipe_2026(None, tmp_path / "out", dry_run=True, say=lambda line: None,
                        recipe=dataclasses.replace(recipe.DRY_RUN, **changed))
    assert not (tmp_path / "out").exists()


def test_the_recipes_thresholds_may_be_a_list_in_0_1(tmp_path):
    # What the tuners take passes the checks made before training.
    import dataclasses

    from imageclef_concepts.recipes import _2026 as recipe
    from imageclef_concepts.recipes._2026_checks import check_recipe_fields, check_tuning_settings

    from ..conftest import tiny_cnn

    taken = dataclasses.replace(recipe.DRY_RUN, thresholds=[0.0, 0.3, 1.0],
                                count_coverage=[None, 0.5])
    check_recipe_fields(taken)
    check_tuning_settings(taken, [(name, tiny_cnn(image_size=16)) for name in "ab"])


def test_the_recipes_thresholds_and_coverages_may_be_a_series_or_an_array(tmp_path):
    # The tuners take any array-like; the recipe refused a pandas Series of thresholds
    # (printing its repr over lines) and an array of coverages, and its plan could not be
    # written as JSON. The plan is the one the lists give: a rerun with either resumes.
    import dataclasses
    import json

    pd = pytest.importorskip("pandas")
    from imageclef_concepts.recipes import _2026 as recipe
    from imageclef_concepts.recipes._2026_checks import check_recipe_fields, check_tuning_settings

    from ..conftest import tiny_cnn

    taken = dataclasses.replace(recipe.DRY_RUN, thresholds=pd.Series([0.2, 0.4]),
                                count_coverage=np.array([None, 0.8]))
    check_recipe_fields(taken)
    check_tuning_settings(taken, [(name, tiny_cnn(image_size=16)) for name in "ab"])
    as_lists = dataclasses.replace(recipe.DRY_RUN, thresholds=[0.2, 0.4],
                                   count_coverage=(None, 0.8))
    plan = recipe._plan(taken, tmp_path)
    assert json.dumps(plan) == json.dumps(recipe._plan(as_lists, tmp_path))
    table = dataclasses.replace(recipe.DRY_RUN, thresholds=pd.DataFrame({"a": [0.2, 0.3]}))
    with pytest.raises(ValueError, match=r"^recipe: thresholds must be .* flat list .*; got "
                                         r"\[\[0.2\], \[0.3\]\]\.$"):  # one line, not its repr
        check_tuning_settings(table, [(name, tiny_cnn(image_size=16)) for name in "ab"])


@pytest.mark.parametrize("grid, named", [
    ({"filters": [(2.0,), (4,)]}, "filters=(2.0,)"),
    ({"filters": [(4,)], "epochs": [True, 1]}, "'epochs'"),
])
def test_a_members_size_of_the_wrong_kind_is_refused_before_the_output_is_made(
        tmp_path, grid, named):
    # filters=(2.0,) passed the member check and failed at the compute probe ('Cannot
    # convert (5, 5, 3, 2.0) to a shape'), after the output folder was claimed; epochs=True
    # trained one epoch (issue 30 review 15).
    import dataclasses

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.recipes import _2026 as recipe

    with pytest.raises(ValueError, match=r"^member '.*': .*" + re.escape(named)):
        run_recipe_2026(None, tmp_path / "out", dry_run=True, say=print,
                        recipe=dataclasses.replace(recipe.DRY_RUN, grid=grid))
    assert not (tmp_path / "out").exists()


def test_a_grid_naming_a_value_twice_is_refused_before_the_output_is_made(tmp_path):
    # --backbones paper,paper (or a grid list holding a value twice) trained each member
    # twice, the same network and seed, and the votes counted each of them twice.
    import dataclasses

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.recipes import _2026 as recipe

    grid = {"filters": [(4, 8), (4, 8)], "random_state": [0, 1]}
    with pytest.raises(ValueError, match=r"^members 'random_state=0' and "
                                         r"'random_state=0#2' are the same training"):
        run_recipe_2026(None, tmp_path / "out", dry_run=True, say=print,
                        recipe=dataclasses.replace(recipe.DRY_RUN, grid=grid))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("grid", [
    {"filters": [(4,), [4]], "random_state": [0]},
    {"filters": [(4,), np.array([4])], "random_state": [0]},
    {"filters": [(4,)], "random_state": [0, np.int64(0)]},
    {"filters": [(4,)], "image_size": [16, np.uint8(16)], "random_state": [0]},
    {"filters": [(4,)], "threshold": [0.3, 0.5], "random_state": [0]},
    {"filters": [(4,)], "verbose": [0, 1], "random_state": [0]},
    {"filters": [(4,)], "learning_rate": [1, 1.0], "random_state": [0]},
    {"filters": [(4,)], "conv_dropout": [0, np.float32(0.0)], "random_state": [0]},
    {"filters": [(4, 8)], "kernel_size": [3, (3, 3)], "random_state": [0]},
], ids=["tuple-list", "tuple-array", "numpy-seed", "numpy-size", "threshold", "verbose",
        "int-float", "int-numpy-float", "kernel-per-block"])
def test_members_differing_only_in_form_or_in_what_trains_nothing_are_one_training(grid):
    # The check compared repr: (4,) and [4], or 0 and np.int64(0), are one value in the
    # plan but two in repr, and threshold or verbose train no other network; each pair
    # trained one network twice and counted its votes twice. 1 and 1.0, or one kernel side
    # for all blocks and the same side per block, are one network too (review 19 F8).
    import dataclasses

    from imageclef_concepts.recipes import _2026 as recipe
    from imageclef_concepts.recipes._2026_checks import check_members

    members = recipe._grid_ensemble(dataclasses.replace(recipe.DRY_RUN, grid=grid),
                                    "store").estimators
    with pytest.raises(ValueError, match="are the same training"):
        check_members(members)


def test_members_of_other_epochs_or_seeds_are_other_trainings():
    import dataclasses

    from imageclef_concepts.recipes import _2026 as recipe
    from imageclef_concepts.recipes._2026_checks import check_members

    grid = {"filters": [(4,)], "epochs": [1, 2], "random_state": [0, 1]}
    members = recipe._grid_ensemble(dataclasses.replace(recipe.DRY_RUN, grid=grid),
                                    "store").estimators
    check_members(members)
    assert len(members) == 4
    # Test-time augmentation predicts otherwise; callbacks may train otherwise (review 19).
    for grid in ({"filters": [(4,)], "test_time_augmentation": [False, True],
                  "random_state": [0]},
                 {"filters": [(4, 8)], "kernel_size": [3, (3, 5)], "random_state": [0]},
                 {"filters": [(4,)], "learning_rate": [1, 1.5], "random_state": [0]},
                 {"filters": [(4,)], "callbacks": [None, []], "random_state": [0]}):
        members = recipe._grid_ensemble(dataclasses.replace(recipe.DRY_RUN, grid=grid),
                                        "store").estimators
        check_members(members)


def test_a_store_or_output_through_a_looping_link_is_named_in_one_line(tmp_path):
    # Review 20 r20b T1: Path.resolve() raised "RuntimeError: Symlink loop" (a traceback).
    from imageclef_concepts.recipes._2026_checks import check_store_place

    (tmp_path / "loopA").symlink_to("loopB")
    (tmp_path / "loopB").symlink_to("loopA")
    (tmp_path / "data").mkdir()
    looping = tmp_path / "loopA" / "st"
    with pytest.raises(OSError, match=r"^image store .*loopA/st: too many levels of symbolic "
                                      r"links \(a link loop\)\.$"):
        check_store_place(looping, tmp_path / "out", tmp_path / "data")
    with pytest.raises(OSError, match=r"^output .*loopA/out: too many levels of symbolic"):
        check_store_place(tmp_path / "st", tmp_path / "loopA" / "out", tmp_path / "data")
