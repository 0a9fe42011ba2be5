"""The command line's argument types and output checks, tested directly."""

import argparse

import pytest

from imageclef_concepts.cli._arguments import (
    UserError,
    check_output,
    int_tuple,
    one_line,
    positive_int,
    probability,
)


def test_argument_types_take_what_they_name_and_refuse_the_rest():
    assert positive_int("3") == 3 and probability("0.25") == 0.25
    assert int_tuple("8,16") == (8, 16)
    for parse, text in [(positive_int, "0"), (positive_int, "x"), (probability, "1.5"),
                        (probability, "nan"), (int_tuple, "8,0"), (int_tuple, "8,,16")]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_an_output_that_is_an_input_is_refused(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    image = images / "a.png"
    image.write_bytes(b"x")
    with pytest.raises(UserError, match="is also an input"):
        check_output(image, inputs=[images])
    with pytest.raises(UserError, match="does not exist"):
        check_output(tmp_path / "nowhere" / "run.tsv", inputs=[])
    check_output(tmp_path / "run.tsv", inputs=[images])  # a new file: fine


def test_an_output_at_a_looping_link_is_refused_naming_the_flag(tmp_path):
    # 'Too many levels of symbolic links: m.keras.card.md' did not say that this is the
    # model card train writes beside --output (review 19).
    loop = tmp_path / "m.keras.card.md"
    loop.symlink_to(loop.name)
    with pytest.raises(UserError, match=r"^--output's model card .*m.keras.card.md: Too many "
                                        r"levels of symbolic links\.$"):
        check_output(loop, inputs=[], flag="--output's model card")
    assert loop.is_symlink()


def test_a_multi_line_error_becomes_one_line():
    assert one_line(ValueError("Problems:\n  a\n\n  b")) == "Problems: | a | b"
    assert one_line(FileNotFoundError(2, "No such file", "x.tsv")) == "No such file: x.tsv"


def test_python_parameters_become_the_commands_flags():
    from imageclef_concepts.cli._arguments import as_flags

    flags = {"image_size": "--image-size", "filters": "--filters", "epochs": "--epochs",
             "backbone": "--backbones"}
    assert as_flags("image_size=64: choose a smaller image_size.", flags) == \
        "--image-size 64: choose a smaller --image-size."
    assert as_flags("filters=(4, 8) and backbone='x', 2 epochs", flags) == \
        "--filters 4,8 and --backbones x, 2 epochs"
    kept = "member 'epochs=2,image_size=32': params['image_size'], max_image_size=3"
    assert as_flags(kept, flags) == kept
    assert as_flags("The 'backbone' parameter of X must be", flags) == \
        "The --backbones option of X must be"
