import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEncoder,
    DatasetMismatchWarning,
    find_imageclef_layout,
    load_imageclef,
    make_concept_images,
    make_imageclef_2019_layout,
    make_imageclef_layout,
)

from ..conftest import TINY, shared_data


def test_synthetic_images_are_deterministic_and_shaped():
    first = make_concept_images(30, 8, 48, random_state=1)
    again = make_concept_images(30, 8, 48, random_state=1)
    other = make_concept_images(30, 8, 48, random_state=2)
    np.testing.assert_array_equal(first.images, again.images)
    assert first.concepts == again.concepts
    assert not np.array_equal(first.images, other.images)
    assert first.images.shape == (30, 48, 48, 3) and first.images.dtype == np.uint8
    # grey as RGB
    assert (first.images[..., 0] == first.images[..., 2]).all()
    assert all(re.fullmatch(r"C\d{7}", name) for name in first.concept_names)
    assert all(len(concepts) >= 1 for concepts in first.concepts)


def test_synthetic_frequencies_have_a_long_tail_and_non_visual_concepts():
    data = make_concept_images(3000, 20, 16, random_state=0)
    counts = ConceptEncoder().fit(data.concepts)
    by_name = dict(zip(counts.classes_, counts.concept_counts_))
    observed = np.array([by_name.get(name, 0) for name in data.concept_names]) / 3000
    assert observed[0] > 0.5 and observed[-1] < 0.06
    assert (np.diff(data.frequencies) < 0).all()
    assert data.is_visual.sum() == 15  # 25% of 20 draw nothing


def test_non_visual_concepts_leave_no_mark():
    data = make_concept_images(200, 4, 32, non_visual_fraction=0.5, noise=0.0, random_state=0)
    invisible = set(data.concept_names[~data.is_visual])
    visible = set(data.concept_names[data.is_visual])
    # Images whose concepts are all non-visual look like the plain background.
    plain = [i for i, c in enumerate(data.concepts) if set(c) <= invisible]
    marked = [i for i, c in enumerate(data.concepts) if set(c) & visible]
    extremes = lambda i: ((data.images[i] > 235) | (data.images[i] < 15)).mean()  # noqa: E731
    inside = lambda i: data.images[i][8:24, 8:24]  # noqa: E731
    assert max(((inside(i) > 235) | (inside(i) < 15)).mean() for i in plain) == 0
    assert np.mean([extremes(i) for i in marked]) > 0


def test_written_dataset_is_read_back(tmp_path):
    data = make_concept_images(12, 5, 32, random_state=0, directory=tmp_path)
    loaded = load_imageclef(tmp_path / "images", data.concepts_file)
    assert loaded.ids == data.ids and loaded.concepts == data.concepts
    assert loaded.paths == data.paths
    decoded = np.asarray(Image.open(loaded.paths[0]))
    assert np.abs(decoded.astype(int) - data.images[0].astype(int)).mean() < 3  # JPEG


def test_loader_reports_mismatches(tmp_path):
    data = make_concept_images(6, 3, 32, random_state=0, directory=tmp_path)
    images = tmp_path / "images"
    (images / f"{data.ids[0]}.jpg").unlink()                       # label without image
    Image.fromarray(data.images[1]).save(images / "extra.png")      # image without label
    Image.fromarray(data.images[2]).save(images / f"{data.ids[2]}.png")  # duplicate id
    (images / "notes.txt").write_text("not an image extension: ignored")
    with pytest.warns(DatasetMismatchWarning) as caught:
        loaded = load_imageclef(images, data.concepts_file)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("1 image(s)") and "extra" in m for m in messages)
    assert any(m.startswith("1 line(s)") and data.ids[0] in m for m in messages)
    assert any(m.startswith("1 id(s) have several") and data.ids[2] in m for m in messages)
    assert loaded.ids == data.ids[1:]
    assert loaded.paths[1].endswith(f"{data.ids[2]}.jpg")  # first by name
    with pytest.raises(ValueError, match="have no image"):
        load_imageclef(images, data.concepts_file, strict=True)
    with pytest.raises(FileNotFoundError, match="Image folder not found"):
        load_imageclef(tmp_path / "nowhere", data.concepts_file)


def test_real_chest_xrays_load_and_train():
    NIH = shared_data("nih-chestxray")
    with pytest.warns(DatasetMismatchWarning, match="200 image"):
        train = load_imageclef(NIH / "images", NIH / "train_concepts.tsv")
    assert len(train.paths) == 600
    assert "NO FINDING" in {c for concepts in train.concepts for c in concepts}
    model = ConceptCNNClassifier(**{**TINY, "image_size": 64, "epochs": 1})
    model.fit(train.paths[:200], train.concepts[:200])
    proba = model.predict_proba(train.paths[200:260])
    assert proba.shape == (60, len(model.classes_)) and np.isfinite(proba).all()


@pytest.mark.slow
def test_cnn_learns_visual_concepts_and_not_the_others():
    data = make_concept_images(900, 6, 32, non_visual_fraction=0.34, most_common_frequency=0.5,
                               tail_exponent=0.3, random_state=3)
    X, y = data.images, data.concepts
    model = ConceptCNNClassifier(**{**TINY, "filters": (8, 16), "dense_units": (32,),
                                    "conv_dropout": 0.1, "dense_dropout": 0.2,
                                    "learning_rate": 3e-3, "decay": 0.0, "epochs": 12})
    model.fit(X[:700], y[:700])
    proba = model.predict_proba(X[700:])
    truth = ConceptEncoder().fit(y).transform(y[700:])
    columns = {name: j for j, name in enumerate(model.classes_)}
    for name, visual in zip(data.concept_names, data.is_visual):
        auc = roc_auc_score(truth[:, columns[name]], proba[:, columns[name]])
        if visual:
            assert auc > 0.95, (name, auc)
        else:
            assert 0.3 < auc < 0.7, (name, auc)


def test_lines_giving_no_concept_are_named_and_a_file_without_any_refused(tmp_path):
    data = make_concept_images(4, 3, 16, random_state=0, directory=tmp_path)
    images, concepts = tmp_path / "images", tmp_path / "given.csv"
    rows = [f"{image_id},{';'.join(c)}" for image_id, c in zip(data.ids, data.concepts)]
    concepts.write_text("\n".join(["ID,CUIs", rows[0], f"{data.ids[1]},", *rows[2:]]) + "\n")
    with pytest.warns(DatasetMismatchWarning, match=r"given.csv: 1 line\(s\) give an image no "
                                                   r"concept .*lines 3\)"):
        loaded = load_imageclef(images, concepts, edition="2026")
    assert loaded.concepts[1] == ()
    with pytest.raises(ValueError, match="lines 3"):
        load_imageclef(images, concepts, edition="2026", strict=True)
    concepts.write_text("ID,CUIs\n" + "".join(f"{image_id},\n" for image_id in data.ids))
    with pytest.raises(ValueError, match="given.csv: none of its 4 image"):
        load_imageclef(images, concepts, edition="2026")


@pytest.mark.parametrize("image_size, error, said", [
    (10**5, ValueError, r"^image_size=100000: .* more than this machine's memory"),
    (True, TypeError, r"^image_size=True: image_size must be a whole number of pixels.*bool"),
    (64.0, TypeError, r"^image_size=64.0: image_size must be a whole number"),
])
def test_an_image_size_that_cannot_be_drawn_is_refused_by_name(image_size, error, said):
    with pytest.raises(error, match=said):
        make_concept_images(n_samples=2, image_size=image_size)


@pytest.mark.parametrize("make", [make_imageclef_layout, make_imageclef_2019_layout])
def test_a_layout_folder_no_file_name_can_be_is_refused_by_name(tmp_path, make):
    with pytest.raises(ValueError, match=r"directory .*\\ud800 is not a file name"):
        make(tmp_path / "data\ud800", n_train=4, n_valid=2, n_test=2)
    assert list(tmp_path.iterdir()) == []


def test_layouts_named_by_bytes_are_read(tmp_path):
    # A data folder whose name is not UTF-8 comes as bytes (os.listdir(b"...")): read as
    # make_imageclef_layout writes it (pathlib's TypeError before).
    folder = os.path.join(os.fsencode(tmp_path), b"donn\xe9es")
    splits = make_imageclef_layout(folder, n_train=4, n_valid=2, n_test=2, image_size=16)
    layout = find_imageclef_layout(folder)
    assert sorted(layout) == ["test", "train", "valid"]
    train = os.path.join(folder, b"train")
    loaded = load_imageclef(os.path.join(train, b"images"), os.path.join(train, b"concepts.csv"),
                            edition="2026")
    assert loaded.ids == splits["train"].ids


def test_a_synthetic_image_that_cannot_be_written_names_its_file(tmp_path, monkeypatch):
    # PIL wrote each image in place: on a full disk, demo said only "[Errno 28] No space
    # left on device", and left a truncated image behind.
    import errno

    from PIL import Image

    from imageclef_concepts import make_concept_images

    def full(self, fp, *args, **kwargs):
        fp.write(b"\xff\xd8")  # a part of the image, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OSError, match="No space left on device") as raised:
        make_concept_images(3, 2, 16, random_state=0, directory=tmp_path / "data")
    named = raised.value.filename  # the image's own name, not the library's temporary one
    assert os.path.dirname(named) == str(tmp_path / "data" / "images")
    assert named.endswith(".jpg") and not os.path.basename(named).startswith(".saving-")
    assert list((tmp_path / "data" / "images").iterdir()) == []  # nothing half-written


def test_one_concept_file_for_two_folders_of_other_images_is_no_shared_split(tmp_path):
    # A concept file listing every image of a dataset, given for the training and the
    # validation folders (each holding its own images, lines without one left out, as
    # load_imageclef does): refused as "the same text" (review 16), though no image is shared.
    from sklearn.utils import Bunch

    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    data = make_concept_images(6, 3, 16, random_state=0, directory=tmp_path / "all")
    for name, paths in (("train", data.paths[:4]), ("valid", data.paths[4:])):
        (tmp_path / name).mkdir()
        for path in paths:
            shutil.copy(path, tmp_path / name)
    concepts = tmp_path / "all" / "concepts.tsv"
    splits = {"train": Bunch(images=tmp_path / "train", concepts=concepts),
              "valid": Bunch(images=tmp_path / "valid", concepts=concepts)}
    check_distinct_splits(splits)  # other images: each split its own
    shutil.copytree(tmp_path / "train", tmp_path / "copy")  # the same images: refused
    splits["valid"].images = tmp_path / "copy"
    with pytest.raises(ValueError, match=r"the same text\): the validation split needs images"):
        check_distinct_splits(splits)


def test_splits_sharing_images_or_a_truths_text_are_refused_naming_both(tmp_path):
    # One check for recipe-2026's data folder and the train command's options (issue 30
    # review 15: train tuned on its training images without a word).
    from sklearn.utils import Bunch

    from imageclef_concepts import find_imageclef_layout
    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    make_imageclef_layout(tmp_path / "d", n_train=4, n_valid=2, n_test=2, image_size=16)
    splits = find_imageclef_layout(tmp_path / "d")
    check_distinct_splits(splits)  # the layout's own splits: each its own
    splits["test"].images = splits["train"].images
    with pytest.raises(ValueError, match=r"^.*train/images is the train split's image folder "
                                         r"\(.*, the same folder\): the test split needs images "
                                         r"of its own \(or no test folder"):
        check_distinct_splits(splits)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # a pipe given as a concept file is never read (it would block)
    valid = Bunch(images=tmp_path / "nowhere", concepts=fifo)
    check_distinct_splits({"train": splits["train"], "valid": valid})
    check_distinct_splits({"train": splits["train"],  # a missing folder: its own check's
                           "valid": Bunch(images=tmp_path / "nowhere",
                                          concepts=splits["train"].concepts)})
    shutil.copytree(splits["train"].images, tmp_path / "copy")
    valid = Bunch(images=tmp_path / "copy", concepts=tmp_path / "copy.csv")
    valid.concepts.write_bytes(splits["train"].concepts.read_bytes())
    with pytest.raises(ValueError, match=r"^--validation-concepts .*copy.csv is the --concepts "
                                         r"file \(.*train/concepts.csv, the same text\): the "
                                         r"validation split needs images of its own\.$"):
        check_distinct_splits({"train": splits["train"], "valid": valid},
                              flags={"train": ("--images", "--concepts"),
                                     "valid": ("--validation-images", "--validation-concepts")})


_FLAGS = {"train": ("--images", "--concepts"),
          "valid": ("--validation-images", "--validation-concepts")}
_TRUTH = "ID,CUIs\nimg_0,C0000001\nimg_1,C0000002;C0000003\nimg_2,C0000001\nimg_3,C0000004\n"
# The training truth's text as another hand may have written it: not its bytes.
_REWRITTEN = {
    "no final newline": lambda text: text.rstrip("\n"),
    "CRLF": lambda text: text.replace("\n", "\r\n"),
    "BOM": lambda text: "\ufeff" + text,
    "rows reordered": lambda text: "\n".join(text.splitlines()[:1]
                                             + text.splitlines()[:0:-1]) + "\n",
    "TSV": lambda text: "".join(line.replace(",", "\t", 1) + "\n"
                                for line in text.splitlines()[1:]),
}


def _fake_split(folder, names, prefix=b"fake image "):
    """A folder of files named as images holding a few bytes each (no check decodes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(prefix + name.encode())
    return folder


def _split(images, concepts):
    from sklearn.utils import Bunch

    return Bunch(images=images, concepts=concepts)


@pytest.mark.parametrize("copy", ["hard links (cp -al)", "a plain copy", "symbolic links"])
@pytest.mark.parametrize("rewrite", list(_REWRITTEN))
def test_a_copy_of_the_training_images_under_a_rewritten_truth_is_refused(tmp_path, copy,
                                                                          rewrite):
    # Folders compared by inode and truths by their bytes let a copy of the training
    # folder through under a truth differing in one byte (a hostile review): the model
    # was then tuned on the very images it learned. The image files are compared.
    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    train = _fake_split(tmp_path / "train", [f"img_{i}.jpg" for i in range(4)])
    (tmp_path / "train.csv").write_text(_TRUTH, encoding="utf-8", newline="")
    (tmp_path / "valid").mkdir()
    for image in sorted(train.iterdir()):
        made = tmp_path / "valid" / image.name
        {"hard links (cp -al)": lambda: os.link(image, made),
         "a plain copy": lambda: shutil.copy2(image, made),
         "symbolic links": lambda: made.symlink_to(image)}[copy]()
    (tmp_path / "valid.csv").write_text(_REWRITTEN[rewrite](_TRUTH), encoding="utf-8",
                                        newline="")
    splits = {"train": _split(train, tmp_path / "train.csv"),
              "valid": _split(tmp_path / "valid", tmp_path / "valid.csv")}
    with pytest.raises(ValueError, match=r"^--validation-images .*valid: 4 of the 4 image "
                                         r"files it reads \(100%\) are files of the --images "
                                         r"folder "
                                         r"\(.*train, the same bytes: img_0.jpg, img_1.jpg, "
                                         r"img_2.jpg, \.\.\.\): the validation split needs "
                                         r"images of its own\.$"):
        check_distinct_splits(splits, flags=_FLAGS)


def test_half_the_training_images_among_the_validation_ones_are_refused(tmp_path):
    # The common leak: a validation folder of its own images and half the training ones.
    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    train = _fake_split(tmp_path / "train", [f"t{i}.png" for i in range(8)])
    valid = _fake_split(tmp_path / "valid", [f"v{i}.png" for i in range(4)])
    for image in sorted(train.iterdir())[::2]:
        shutil.copy(image, valid / f"copied_{image.name}")  # renamed: the bytes tell
    splits = {"train": _split(train, None),  # no lines given: every image of its folder
              "valid": _split(valid, None),
              "test": _split(_fake_split(tmp_path / "test", ["x.png"]), None)}
    with pytest.raises(ValueError, match=r"^.*valid: 4 of the 8 image files it reads \(50%\) "
                                         r"are files "
                                         r"of the train split's image folder \(.*train, the "
                                         r"same bytes: copied_t0.png, copied_t2.png, "
                                         r"copied_t4.png, \.\.\.\): the validation split"):
        check_distinct_splits(splits)
    for image in sorted(valid.glob("copied_*"))[1:]:
        image.unlink()
    splits["test"].images = valid  # the validation images, scored as the test ones
    with pytest.raises(ValueError, match=r"test split needs images of its own \(or no test"):
        check_distinct_splits(splits)


def test_a_few_training_images_among_many_others_are_named_in_a_warning(tmp_path):
    # Official data may hold a few exact duplicates across splits: under a tenth of the
    # validation images they are kept, counted and named.
    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    train = _fake_split(tmp_path / "train", [f"t{i}.jpg" for i in range(20)])
    valid = _fake_split(tmp_path / "valid", [f"v{i:02d}.jpg" for i in range(19)])
    shutil.copy(train / "t3.jpg", valid / "dup.jpg")
    splits = {"train": _split(train, None), "valid": _split(valid, None)}
    with pytest.warns(DatasetMismatchWarning, match=r"^--validation-images .*valid: 1 of the "
                                                    r"20 image files it reads \(5%\) is a file "
                                                    r"of the "
                                                    r"--images folder \(.*train, the same "
                                                    r"bytes: dup.jpg\): kept, .* validation"):
        check_distinct_splits(splits, flags=_FLAGS)


def test_files_of_equal_sizes_or_beginnings_but_other_bytes_are_no_copies(tmp_path):
    # Candidates found by size and the digest of their first bytes are confirmed on all of
    # them: files alike up to their last byte are other images.
    import warnings

    from imageclef_concepts.datasets import _overlap
    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    train = _fake_split(tmp_path / "train", ["a.jpg", "b.jpg"], prefix=b"\xff" * 5)
    valid = _fake_split(tmp_path / "valid", ["c.jpg", "d.jpg"], prefix=b"\xfe" * 5)  # sizes
    beginning = b"\xff\xd8" * _overlap.PREFIX_BYTES
    (train / "long.jpg").write_bytes(beginning + b"end")
    (valid / "long.jpg").write_bytes(beginning + b"END")
    splits = {"train": _split(train, None), "valid": _split(valid, None)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_distinct_splits(splits)


def test_the_legitimate_splits_pass_without_reading_what_is_not_a_file(tmp_path):
    # One truth of the whole dataset for folders of other images, header-only truths, an
    # empty validation folder, a missing one (left to its own check), a pipe or a broken
    # link named as an image (never opened: a pipe would block).
    import warnings

    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    train = _fake_split(tmp_path / "train", ["a.jpg", "b.jpg"])
    valid = _fake_split(tmp_path / "valid", ["c.jpg"])
    os.mkfifo(valid / "pipe.jpg")
    (valid / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "all.csv").write_text("ID,CUIs\na,C0000001\nb,C0000002\nc,C0000001\n")
    (tmp_path / "header.csv").write_text("ID,CUIs\n")
    (tmp_path / "header2.csv").write_text("ID,CUIs\n")
    (tmp_path / "empty").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for images, concepts in [(valid, tmp_path / "all.csv"), (tmp_path / "empty", None),
                                 (tmp_path / "nowhere", tmp_path / "all.csv")]:
            check_distinct_splits({"train": _split(train, tmp_path / "all.csv"),
                                   "valid": _split(images, concepts)}, flags=_FLAGS)
        check_distinct_splits({"train": _split(train, tmp_path / "header.csv"),
                               "valid": _split(valid, tmp_path / "header2.csv")})


@pytest.mark.parametrize("value, error", [(True, TypeError), (np.array(4), TypeError),
                                          (2.0, TypeError), (0, ValueError),
                                          (-3, ValueError)])
@pytest.mark.parametrize("maker, name", [
    ("concept_images", "n_samples"), ("concept_images", "n_concepts"),
    ("layout", "n_train"), ("layout", "n_valid"), ("layout", "n_test"),
    ("layout_2019", "n_train"), ("layout_2019", "n_test")])
def test_the_synthetic_data_counts_are_whole_numbers_named(tmp_path, maker, name, value, error):
    # make_imageclef_layout(n_train=0) wrote a layout without training images, n_train=-3
    # ended in 'index -3 is out of bounds', n_train=True drew one image; make_concept_images
    # said 'an integer is required' for n_samples=True, naming nothing (review 16).
    make, given = {"concept_images": (make_concept_images, {}),
                   "layout": (make_imageclef_layout, dict(n_train=4, n_valid=2, n_test=2)),
                   "layout_2019": (make_imageclef_2019_layout,
                                   dict(n_train=4, n_valid=2, n_test=2))}[maker]
    where = () if maker == "concept_images" else (tmp_path / "d",)
    with pytest.raises(error, match=rf"^{name}={re.escape(repr(value))}: {name} must be a "
                                    "whole number, at least 1"):
        make(*where, **{**given, name: value, "image_size": 16})
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("maker", ["layout", "layout_2019"])
def test_a_layout_too_large_to_draw_names_its_own_counts(tmp_path, maker, monkeypatch):
    # The drawing's memory check named make_concept_images' n_samples, which the layout
    # makers have no parameter of.
    from imageclef_concepts.files import _sizes

    monkeypatch.setattr(_sizes, "memory_limit", lambda: 2**20)
    make = {"layout": make_imageclef_layout, "layout_2019": make_imageclef_2019_layout}[maker]
    with pytest.raises(ValueError, match=r"^image_size=64: drawing 10000 image\(s\) at that "
                                         r"size takes .*: choose a smaller image_size or "
                                         r"n_train, n_valid or n_test\.$"):
        make(tmp_path / "d", n_train=8000, n_valid=1000, n_test=1000, image_size=64)
    assert not (tmp_path / "d").exists()


def test_one_folder_of_all_images_with_each_splits_own_lines_is_distinct(tmp_path):
    # The NIH sample's layout: one image folder, a concept file for each split naming its
    # own images. It was refused as "the same folder" though no image is read by both.
    from sklearn.utils import Bunch

    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    data = make_concept_images(10, 3, 16, random_state=0, directory=tmp_path / "all")
    ids = [os.path.splitext(os.path.basename(path))[0] for path in data.paths]
    train, valid = tmp_path / "train.tsv", tmp_path / "valid.tsv"
    train.write_text("".join(f"{image}\tC0000001\n" for image in ids[:6]))
    valid.write_text("".join(f"{image}\tC0000002\n" for image in ids[6:]))
    splits = {"train": Bunch(images=tmp_path / "all" / "images", concepts=train),
              "valid": Bunch(images=tmp_path / "all" / "images", concepts=valid)}
    check_distinct_splits(splits, flags=_FLAGS)
    valid.write_text("".join(f"{image}\tC0000002\n" for image in ids[4:]))  # 2 of 6 learned
    with pytest.raises(ValueError, match=r"^--validation-images .*images is the --images "
                                         r"folder \(.*, the same folder\)"):
        check_distinct_splits(splits, flags=_FLAGS)


def test_the_nih_samples_splits_in_one_folder_are_distinct():
    from sklearn.utils import Bunch

    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    folder = shared_data("nih-chestxray")
    check_distinct_splits({
        "train": Bunch(images=folder / "images", concepts=folder / "train_concepts.tsv"),
        "valid": Bunch(images=folder / "images", concepts=folder / "valid_concepts.tsv")})


def test_the_share_counts_the_files_a_split_reads_over_every_earlier_split(tmp_path):
    # Review 19: an id's unread second files diluted the share (a whole copy passed with a
    # warning), an unread second file that is a copy was counted, and the tenth was counted
    # per pair of splits (9% of each, 18% in all, passed).
    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    train = _fake_split(tmp_path / "train", [f"t{i}.png" for i in range(20)])
    valid = _fake_split(tmp_path / "valid", [f"v{i}.png" for i in range(20)])
    (tmp_path / "v.csv").write_text("ID,CUIs\n" + "".join(f"c{i},C1\n" for i in range(4)))
    diluted = _fake_split(tmp_path / "d", [f"c{i}.zzz{j}" for i in range(4) for j in range(3)])
    for i in range(4):  # each read image (its first file by name) a training copy
        shutil.copy(train / f"t{i}.png", diluted / f"c{i}.png")
    splits = {"train": _split(train, None), "valid": _split(diluted, tmp_path / "v.csv")}
    with pytest.raises(ValueError, match=r"4 of the 4 image files it reads \(100%\)"):
        check_distinct_splits(splits)
    test = _fake_split(tmp_path / "test", [f"x{i:02d}.png" for i in range(20)])
    for i in range(2):  # 2 of 22 from each earlier split: 9.1% each, 18.2% together
        shutil.copy(train / f"t{i}.png", test / f"from_train{i}.png")
        shutil.copy(valid / f"v{i}.png", test / f"from_valid{i}.png")
    splits = {"train": _split(train, None), "valid": _split(valid, None),
              "test": _split(test, None)}
    with pytest.raises(ValueError, match=r"test: 4 of the 24 image files it reads \(16.7%\) "
                                         r"are files of the train split's image folder \(.*\) "
                                         r"or the valid split's image folder \(.*\), the same "
                                         r"bytes"):
        check_distinct_splits(splits)


def test_one_folder_with_an_image_named_by_both_splits_is_a_duplicate_not_the_same_folder(
        tmp_path):
    # Review 19: one id in both concept files of a one-folder layout was refused as "the
    # same folder", naming no image (in two folders it was a warning); a concept file not
    # there was called "the same folder" too.
    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    images = _fake_split(tmp_path / "all", [f"i{i:02d}.png" for i in range(30)])
    (tmp_path / "t.csv").write_text("ID,CUIs\n" + "".join(f"i{i:02d},C1\n" for i in range(20)))
    (tmp_path / "v.csv").write_text("ID,CUIs\n" + "".join(f"i{i:02d},C1\n"
                                                          for i in range(19, 30)))
    splits = {"train": _split(images, tmp_path / "t.csv"),
              "valid": _split(images, tmp_path / "v.csv")}
    with pytest.warns(DatasetMismatchWarning, match=r"1 of the 11 image files it reads "
                                                    r"\(9.1%\) is a file of .*the same "
                                                    r"bytes: i19.png\)"):
        check_distinct_splits(splits, flags=_FLAGS)
    splits["valid"].concepts = tmp_path / "missing.csv"  # its own check names it
    check_distinct_splits(splits, flags=_FLAGS)


def test_empty_files_in_two_splits_are_no_shared_image(tmp_path):
    # Review 19: two empty files (no image: the image checks name them) were called a
    # training image among the validation ones.
    from imageclef_concepts.datasets._layout_2026 import check_distinct_splits

    train = _fake_split(tmp_path / "train", ["a.png"], prefix=b"")
    valid = _fake_split(tmp_path / "valid", ["b.png"], prefix=b"")
    (train / "a.png").write_bytes(b"")
    (valid / "b.png").write_bytes(b"")
    check_distinct_splits({"train": _split(train, None), "valid": _split(valid, None)})


def test_a_huge_id_without_an_image_is_warned_of_capped(tmp_path):
    # Review 20 r20b R2: ids are shown capped (files._atomic.shown_capped), not whole.
    from imageclef_concepts import DatasetMismatchWarning, load_imageclef, make_concept_images

    found = make_concept_images(4, 2, 16, random_state=0, directory=tmp_path)
    with open(found.concepts_file, "a") as concepts:
        concepts.write(f"{'x' * 1_000_000}\tC1\n")
    with pytest.warns(DatasetMismatchWarning) as caught:
        load_imageclef(tmp_path / "images", found.concepts_file)
    message = str(caught[0].message)
    assert len(message) < 2_000 and message.endswith("(1,000,000 characters)")
