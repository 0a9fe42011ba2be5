"""One split's checks before anything trains, shared by reproduce-2019 and recipe-2026."""

import pytest
from sklearn.utils import Bunch

from imageclef_concepts import make_imageclef_2019_layout
from imageclef_concepts.datasets._split_checks import check_split_images, check_split_lines


@pytest.fixture
def split(tmp_path):
    make_imageclef_2019_layout(tmp_path, n_train=4, n_valid=2, n_test=2, n_concepts=3,
                               image_size=16)
    with (tmp_path / "train_concepts.tsv").open("a") as truth:
        truth.write("train_99999\tC1070287\n")  # a line without an image
    return Bunch(images=tmp_path / "train", concepts=tmp_path / "train_concepts.tsv")


def test_lines_without_images_are_left_out_when_learned_and_refused_when_not(split):
    files = check_split_lines("train", split, learned=True, edition="auto")
    assert sorted(files) == [f"train_{row:05d}" for row in range(4)]
    with pytest.raises(ValueError, match=r"train_concepts.tsv: 1 image\(s\) without a file in "
                                         r".*train:\n  train_99999"):
        check_split_lines("test", split, learned=False, edition="auto")


def test_a_learned_split_of_which_no_line_has_an_image_is_refused(split):
    for image in list(split.images.iterdir()):
        image.rename(split.images / f"x{image.name}")
    with pytest.raises(ValueError, match="none of its 5 image ids has a file in .*train: "
                                         "there is nothing to train on"):
        check_split_lines("train", split, learned=True, edition="auto")


def test_image_files_that_cannot_be_used_are_each_named(split):
    files = check_split_lines("train", split, learned=True, edition="auto")
    (split.images / "train_00001.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"1 train image file\(s\) cannot be used; remove or "
                                         r"fix them:\n  .*train_00001.jpg: empty file"):
        check_split_images({"train": files})
