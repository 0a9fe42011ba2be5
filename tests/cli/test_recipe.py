"""The recipe-2026 command's own arguments, refused in one line before any work."""

import argparse
import re
import time

import pytest

from imageclef_concepts.cli import main


def test_more_seeds_than_any_ensemble_trains_is_one_line_before_any_work(tmp_path, capsys):
    # A billion seeds made list(range(...)) fill the memory; more than an int64 overflowed.
    for seeds in ("1000000000", "99999999999999999999"):
        started = time.monotonic()
        code = main(["recipe-2026", "--dry-run", "--seeds", seeds,
                     "--output", str(tmp_path / "out")])
        error = capsys.readouterr().err
        assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
        assert f"--seeds {seeds}: at most 1000 seeds per backbone" in error
        assert time.monotonic() - started < 10
        assert not (tmp_path / "out").exists()


def test_backbones_naming_none_is_refused_not_the_default_three(tmp_path, capsys):
    code = main(["recipe-2026", "--dry-run", "--backbones", " , ", "--output", str(tmp_path / "o")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "names no backbone" in error
    assert not (tmp_path / "o").exists()


def test_a_grid_of_one_member_is_refused_before_any_training(tmp_path, capsys):
    # It used to train the member, then fail tuning the votes (min_votes=2 of 1).
    code = main(["recipe-2026", "--dry-run", "--seeds", "1", "--backbones", "densenet121",
                 "--output", str(tmp_path / "o")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "makes 1 member(s)" in error
    assert not (tmp_path / "o").exists()


def test_sizes_are_named_by_the_flags_the_command_takes_and_by_parameter_in_python(
        tmp_path, capsys):
    # The members' check said image_size=1000000 to a user who typed --image-size.
    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.recipes._2026 import DRY_RUN

    code = main(["recipe-2026", "--dry-run", "--image-size", "1000000",
                 "--output", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
    assert ": --image-size 1000000: decoding one image at that size takes" in error, error
    assert "choose a smaller --image-size." in error and "image_size" not in error
    assert not (tmp_path / "out").exists()
    recipe = DRY_RUN.__class__(**{**vars(DRY_RUN), "estimator_params": {
        **DRY_RUN.estimator_params, "image_size": 1000000}})
    with pytest.raises(ValueError, match=r": image_size=1000000: decoding one image .*"
                                         r"choose a smaller image_size\.$"):
        run_recipe_2026(None, tmp_path / "out", recipe=recipe, dry_run=True)
    code = main(["recipe-2026", "--dry-run", "--backbones", "nonet",
                 "--output", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and "The --backbones option of ConceptCNNClassifier must be" in error
    assert "'backbone'" not in error and "Got 'nonet' instead" in error


def test_a_store_whose_disk_cannot_take_every_split_is_refused_before_any_member_trains(
        tmp_path, capsys, monkeypatch):
    # The members fill the store with the training images, then the validation and test
    # images after all the training: the disk must take them all, asked before training.
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, 1000))
    out = tmp_path / "out"
    code = main(["recipe-2026", "--dry-run", "--image-size", "16", "--output", str(out)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
    n_images = len(list((out / "data").glob("*/images/*")))  # every split's
    assert f"error: --image-size 16: storing {n_images} image(s) at that size" in error, error
    assert "choose a smaller --image-size." in error
    assert not (out / "members").exists() or not any((out / "members").iterdir())
    assert not list((out / "image-store").glob("*px-*"))


def test_a_grid_of_two_image_sizes_needs_room_for_both_before_any_member_trains(
        tmp_path, monkeypatch):
    # Each size fills its own shelf: the disk must take the images at both sizes, not only
    # at the first member's (the second member's fit refused it after the first trained).
    import shutil
    from collections import namedtuple

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.recipes._2026 import Recipe2026

    usage = namedtuple("usage", "total used free")
    n_images = 80 + 40 + 40  # the dry run's three splits
    free = n_images * 24 * 24 * 3 + 1000  # either shelf fits alone, not both together
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, free))
    recipe = Recipe2026(grid={"filters": [(4,)], "image_size": [16, 24]},
                        estimator_params=dict(dense_units=(8,), epochs=1, batch_size=16),
                        thresholds=4, count_coverage=(None,))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"image_size=24: storing 160 image\(s\) at each of 2 "
                                         r"sizes and filters takes"):
        run_recipe_2026(None, out, recipe=recipe, dry_run=True, say=lambda line: None)
    assert not (out / "members").exists() or not any((out / "members").iterdir())


@pytest.mark.parametrize("kind", ["a folder of theirs", "a file"])
def test_an_image_store_refused_is_refused_before_the_output_folder_is_claimed(
        tmp_path, capsys, kind):
    # It was refused after the output folder and its plan were written.
    theirs = tmp_path / "theirs"
    if kind == "a file":
        theirs.write_text("mine")
    else:
        theirs.mkdir()
        (theirs / "notes.txt").write_text("mine")
    out = tmp_path / "out"
    code = main(["recipe-2026", "--dry-run", "--output", str(out), "--image-store", str(theirs)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
    assert f"image store {theirs}" in error and not out.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["theirs"]


@pytest.mark.parametrize("argument", ["output_dir", "image_store", "data_dir"])
def test_recipe_folders_no_file_name_can_hold_are_refused_by_name_before_anything(
        tmp_path, argument):
    # A lone surrogate (Python only: the command line's names are bytes): one error naming
    # the folder, nothing written; the output folder raised UnicodeEncodeError naming none.
    from imageclef_concepts import run_recipe_2026

    folders = {"output_dir": tmp_path / "out", "image_store": None, "data_dir": None}
    folders[argument] = str(tmp_path / "x\ud800")
    with pytest.raises(ValueError, match=r"x\\ud800 is not a file name this system can hold"):
        run_recipe_2026(folders["data_dir"], folders["output_dir"], dry_run=True,
                        image_store=folders["image_store"], say=lambda line: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("place", ["the output folder", "in the data folder",
                                   "in the training images", "linked into the data folder",
                                   "the output's run file", "in the output's members"])
def test_an_image_store_in_the_data_folder_or_at_the_output_is_refused_before_anything(
        tmp_path, place):
    # One inside the data folder was made and filled there (in train/images even, beside the
    # images it stores); the output folder itself was refused only after it was claimed.
    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.datasets._layout_2026 import make_imageclef_layout
    from imageclef_concepts.recipes._2026 import DRY_RUN

    data, out = tmp_path / "data", tmp_path / "out"
    make_imageclef_layout(data, n_train=12, n_valid=40, n_test=4, image_size=16)
    (tmp_path / "link").symlink_to(data)
    store = {"the output folder": out, "in the data folder": data / "store",
             "in the training images": data / "train" / "images" / "store",
             "linked into the data folder": tmp_path / "link" / "store",
             # trained every member, then failed writing run.csv (a folder)
             "the output's run file": out / "run.csv",
             "in the output's members": out / "members" / "store"}[place]
    before = sorted(data.rglob("*"))

    def planned(line):
        raise AssertionError(f"not refused: {line}")

    with pytest.raises(ValueError, match=f"^image store {store} is "):
        run_recipe_2026(data, out, recipe=DRY_RUN, image_store=store, say=planned)
    assert not out.exists() and sorted(data.rglob("*")) == before


def test_an_image_store_at_the_output_folder_is_one_line_naming_it(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["recipe-2026", "--dry-run", "--output", str(out), "--image-store", str(out)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
    assert "is the output folder" in error and not out.exists()


def test_a_users_store_without_room_for_the_data_is_refused_before_the_claim(tmp_path,
                                                                            monkeypatch):
    # It was refused after the output folder was claimed and its plan written: a rerun
    # with a smaller image size then found another run's plan there.
    import shutil
    from collections import namedtuple

    from imageclef_concepts import run_recipe_2026
    from imageclef_concepts.datasets._layout_2026 import make_imageclef_layout
    from imageclef_concepts.recipes._2026 import DRY_RUN

    data, out, store = tmp_path / "data", tmp_path / "out", tmp_path / "store"
    make_imageclef_layout(data, n_train=12, n_valid=40, n_test=4, image_size=16)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, 1000))
    with pytest.raises(ValueError, match=r"^image_size=16: storing 56 image\(s\) at that "):
        run_recipe_2026(data, out, recipe=DRY_RUN, image_store=store, say=lambda line: None)
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--retrieval-weights", "none"],
                                   ["--retrieval-neighbors", "3"],
                                   ["--retrieval-neighbors", "3", "--retrieval-weights", "x.h5"]])
def test_retrieval_settings_without_a_retrieval_encoder_are_refused_not_dropped(
        tmp_path, capsys, flags):
    # They set the retrieval member, which only --retrieval-encoder adds: the recipe ran
    # without one, silently (even --retrieval-weights naming no file).
    code = main(["recipe-2026", "--dry-run", "--output", str(tmp_path / "out"), *flags])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert f"{flags[0]} " in error and "only --retrieval-encoder NAME adds" in error
    assert not (tmp_path / "out").exists()


def test_retrieval_weights_on_a_dry_run_are_refused_not_dropped(tmp_path, capsys, monkeypatch):
    # The dry run's encoder has random weights: a weights file given was ignored, silently.
    from imageclef_concepts.recipes import _2026_parts

    monkeypatch.setattr(_2026_parts, "fit_member", lambda *a: pytest.fail("trained"))
    weights = tmp_path / "w.keras"
    weights.write_bytes(b"")
    code = main(["recipe-2026", "--dry-run", "--output", str(tmp_path / "out"),
                 "--retrieval-encoder", "efficientnetb0", "--retrieval-weights", str(weights)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1, error
    assert f"--retrieval-weights {weights}: the dry run's encoder has random weights" in error
    assert not (tmp_path / "out").exists()


def test_an_unreachable_ray_address_is_refused_at_once():
    import socket
    import time

    from imageclef_concepts.cli._arguments import UserError
    from imageclef_concepts.cli._recipe import _check_reachable

    with socket.socket() as probe:  # a port nobody listens at once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(UserError, match=f"--ray 127.0.0.1:{port}: cannot reach it"):
        _check_reachable(f"127.0.0.1:{port}")
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("address, match", [
    ("127.0.0.1:{port} ", r"cannot reach it"), ("127.0.0.1:-1", r"-1 is not a port"),
    ("ray://127.0.0.1:99999", r"99999 is not a port"), ("127.0.0.1:{port_}", r"cannot reach it")])
def test_a_ray_port_python_reads_but_no_socket_has_is_refused_at_once(address, match):
    # A port int() reads (a trailing space, a sign) was left to ray.init, which retried
    # for about 5 minutes, then exited (SystemExit 15), naming nothing
    import socket
    import time

    from imageclef_concepts.cli._arguments import UserError
    from imageclef_concepts.cli._recipe import _check_reachable

    with socket.socket() as probe:  # a port nobody listens at once it is closed
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])  # and '6_379', which int() and ray.init read
        address = address.format(port=port, port_=f"{port[0]}_{port[1:]}")
    start = time.perf_counter()
    with pytest.raises(UserError, match=rf"^--ray {re.escape(address)}: {match}"):
        _check_reachable(address)
    assert time.perf_counter() - start < 5


def test_an_ipv6_ray_address_in_brackets_is_reached_as_ray_reads_it():
    # '--ray [::1]:6379' (the form ray.init reads) was refused as unreachable: the host was
    # asked for with its brackets
    import socket

    from imageclef_concepts.cli._arguments import UserError
    from imageclef_concepts.cli._recipe import _check_reachable

    try:
        listening = socket.socket(socket.AF_INET6)
        listening.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    with listening:
        listening.listen()
        port = listening.getsockname()[1]
        assert _check_reachable(f"[::1]:{port}") is None
        assert _check_reachable(f"ray://[::1]:{port}") is None
    with pytest.raises(UserError, match=rf"^--ray \[::1\]:{port}: cannot reach it"):
        _check_reachable(f"[::1]:{port}")


@pytest.mark.parametrize("address", ["127.0.0.1:\u00b2", "127.0.0.1:1" + "0" * 5000])
def test_a_ray_port_int_cannot_read_is_left_to_ray(address):
    # 'isdigit' took '\u00b2' (a superscript two), then int() raised "invalid literal for
    # int() with base 10", naming neither --ray nor the address
    from imageclef_concepts.cli._recipe import _check_reachable

    assert _check_reachable(address) is None  # ray.init's parse error is named by the flag


def test_a_ray_address_ray_cannot_read_is_named_by_its_flag():
    # 'recipe-2026 --ray bogus' said only 'Invalid address format: bogus' (ray's words)

    pytest.importorskip("ray")
    from imageclef_concepts.cli._arguments import UserError
    from imageclef_concepts.cli._recipe import _cluster

    with pytest.raises(UserError, match="^--ray bogus: Invalid address format"):
        with _cluster(argparse.Namespace(dask=None, ray="bogus")):
            pass


@pytest.mark.parametrize("address", ["bogus", "", "inproc://x", "ucx://127.0.0.1:8786"])
def test_a_dask_address_dask_cannot_read_is_named_by_its_flag(address):
    # '--dask bogus' said only 'missing port number in address ...' (distributed's words);
    # 'inproc://x' a ValueError of tuple unpacking, 'ucx://...' a TypeError, neither naming it

    pytest.importorskip("distributed")
    from imageclef_concepts.cli._arguments import UserError
    from imageclef_concepts.cli._recipe import _cluster

    with pytest.raises(UserError, match=rf"^--dask {re.escape(address)}: "):
        with _cluster(argparse.Namespace(dask=address, ray=None)):
            pass


def test_a_dry_runs_backbones_start_from_random_weights(tmp_path, monkeypatch):
    # --dry-run --backbones efficientnetb0 downloaded ImageNet weights (offline: an error
    # after the output folder was claimed, which then refused a rerun with other settings);
    # the dry run's retrieval encoder already had random weights, none downloaded.
    from imageclef_concepts.recipes import _2026

    given = {}

    def planned(data_dir, output_dir, *, recipe, **options):
        given.update(recipe.estimator_params)
        raise KeyboardInterrupt  # nothing runs

    monkeypatch.setattr(_2026, "run_recipe_2026", planned)
    main(["recipe-2026", "--dry-run", "--backbones", "efficientnetb0", "--output",
          str(tmp_path / "out")])
    assert "weights" in given and given["weights"] is None
    given.clear()  # with --data, the recipe's own (ImageNet's)
    main(["recipe-2026", "--data", str(tmp_path), "--backbones", "efficientnetb0", "--output",
          str(tmp_path / "out")])
    assert given["weights"] == _2026.Recipe2026().estimator_params["weights"] != None  # noqa: E711
