"""Inputs that must never give a silently wrong answer, and files that must read back as written."""

import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from imageclef_concepts import (
    ConceptFileError,
    ImageDecodeError,
    decode_image,
    evaluate_run,
    imageclef_f1_score,
    load_imageclef,
    read_concepts,
    write_run,
)
from imageclef_concepts.cli._main import main
from imageclef_concepts.concepts._lists import canonical_concept

# ----------------------------------------------------------- write_run refuses

@pytest.mark.parametrize("bad_id", ["a\rb", "a\x85b", "a\u2028b", "a\x00b", "a\tb", " a", ""])
def test_write_run_refuses_ids_that_would_not_read_back(tmp_path, bad_id):
    with pytest.raises(ValueError, match="Image id"):
        write_run(tmp_path / "run.tsv", [bad_id], [["C1"]])
    assert not (tmp_path / "run.tsv").exists()


@pytest.mark.parametrize("bad_concept", ["C\r1", "C\u20281", "C\x0c1", "C1;C2"])
def test_write_run_refuses_concepts_that_would_not_read_back(tmp_path, bad_concept):
    with pytest.raises(ValueError, match="Concept"):
        write_run(tmp_path / "run.tsv", ["img"], [[bad_concept]])


def test_write_run_refuses_duplicate_ids_and_a_header_lookalike_from_2023(tmp_path):
    with pytest.raises(ValueError, match="duplicate image id"):
        write_run(tmp_path / "run.tsv", ["a", "b", "a"], ["C1", "C2", "C3"])
    with pytest.raises(ValueError, match="header"):
        write_run(tmp_path / "run.txt", ["ID", "b"], ["C1", "C2"], edition="2023")
    # No header in 2019, but a line "ID<TAB>..." reads as one: refused in every edition.
    with pytest.raises(ValueError, match="header"):
        write_run(tmp_path / "run.tsv", ["id"], ["C1"], layout="2019")


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "run.tsv"
    write_run(path, ["a"], ["C1"])
    with pytest.raises(ValueError):
        write_run(path, ["a", "a"], ["C1", "C2"])
    assert read_concepts(path).ids == ["a"]


# ----------------------------------------------------------- readers never lie

@pytest.mark.parametrize("breaker", ["\u2028", "\x85", "\x0c", "\x00"])
def test_other_line_breaks_do_not_shift_line_numbers(tmp_path, breaker):
    path = tmp_path / "gt.tsv"
    path.write_bytes(f"a\tC1\nb\tC2{breaker}C3\nc\tC4\nd\tC5;;\n".encode())
    with pytest.raises(ConceptFileError) as caught:
        read_concepts(path)
    problems = caught.value.problems
    assert problems[0].startswith(f"{path}:2: contains ")
    assert f"U+{ord(breaker):04X}" in problems[0]
    assert problems[1].startswith(f"{path}:4: empty concept")  # the true line number


def test_a_bare_cr_ends_a_line_as_in_the_evaluators(tmp_path):
    # The evaluators open files with universal newlines: \r, \r\n and \n end lines.
    path = tmp_path / "gt.tsv"
    path.write_bytes(b"a\tC1\rb\tC2\r\nc\tC3\n")
    assert read_concepts(path).ids == ["a", "b", "c"]


def test_a_control_character_that_breaks_no_line_is_kept(tmp_path):
    path = tmp_path / "gt.tsv"
    path.write_bytes(b"a\tC1\x01\n")
    assert read_concepts(path).concepts == [("C1\x01",)]


def test_crlf_files_read_as_lf_files(tmp_path):
    path = tmp_path / "gt.tsv"
    path.write_bytes(b"a\tC1\r\nb\tC2\r\n")
    assert read_concepts(path).concepts == [("C1",), ("C2",)]


@pytest.mark.parametrize("content", ["", "   \n\n", "\n"])
def test_an_empty_ground_truth_is_an_error_not_a_zero(tmp_path, content):
    truth, run = tmp_path / "gt.tsv", tmp_path / "run.tsv"
    truth.write_text(content)
    run.write_text("a\tC1\n")
    with pytest.raises(ConceptFileError, match="holds no line"):
        evaluate_run(run, truth)


def test_an_unbalanced_quote_is_an_error(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text('ID,CUIs\na,C1\n"b,C2\n')
    with pytest.raises(ConceptFileError, match=r":3: not a valid CSV line"):
        read_concepts(path)


def test_very_long_lines_read(tmp_path):
    concepts = [f"C{i:07d}" for i in range(20_000)]  # a line of 180 KiB
    path = tmp_path / "truth.csv"
    path.write_text(f"ID,CUIs\na,{';'.join(concepts)}\n")
    assert len(read_concepts(path).concepts[0]) == 20_000


def test_folders_and_pipes_are_refused_before_reading(tmp_path):
    with pytest.raises(ConceptFileError, match="a folder"):
        read_concepts(tmp_path)
    pipe = tmp_path / "pipe.tsv"
    os.mkfifo(pipe)
    outcome = {}

    def read():
        try:
            read_concepts(pipe)
        except ConceptFileError as error:
            outcome["error"] = str(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "reading a named pipe hung"
    assert "is a named pipe, not a concept file" in outcome["error"]


def test_a_symlink_loop_in_an_image_folder_is_a_bad_file(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(images / "good.png")
    os.symlink("loop.png", images / "loop.png")
    (tmp_path / "gt.tsv").write_text("good\tC1\nloop\tC2\n")
    data = load_imageclef(images, tmp_path / "gt.tsv")
    assert sorted(data.ids) == ["good", "loop"]
    from imageclef_concepts.images._sources import ImageFiles

    with pytest.raises(ImageDecodeError, match="loop.png"):
        ImageFiles(data.paths, 16)
    skipping = pytest.warns(UserWarning, match="loop.png")
    with skipping:
        files = ImageFiles(data.paths, 16, on_error="skip")
    assert len(files.usable_indices()) == 1


def test_only_raster_formats_are_read(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(images / "a.png")
    (images / "b.eps").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    (tmp_path / "gt.tsv").write_text("a\tC1\n")
    assert load_imageclef(images, tmp_path / "gt.tsv").ids == ["a"]
    with pytest.raises(ImageDecodeError):
        decode_image(images / "b.eps", 16)


# ----------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from imageclef_concepts import ConceptCNNClassifier

    folder = tmp_path_factory.mktemp("model")
    X = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    model = ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(4,), epochs=1,
                                 random_state=0).fit(X, ["C1", "C2"] * 3)
    model.save(folder / "m.keras")
    images = folder / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(X[i]).save(images / f"img{i}.png")
    return folder / "m.keras", images


def _run_cli(*argv):
    done = subprocess.run([sys.executable, "-m", "imageclef_concepts", *map(str, argv)],
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_a_damaged_model_file_is_one_clear_line(tmp_path, model_file, damage):
    model, images = model_file
    broken = tmp_path / "broken.keras"
    content = {"truncated": model.read_bytes()[:500], "empty": b"", "text": b"hello"}[damage]
    broken.write_bytes(content)
    code, err = _run_cli("predict", "--model", broken, "--images", images,
                         "--output", tmp_path / "run.tsv")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(broken) in err


@pytest.mark.slow
def test_a_corrupt_pickle_is_one_clear_line(tmp_path, model_file):
    _, images = model_file
    broken = tmp_path / "m.joblib"
    broken.write_bytes(b"\x80\x04garbage")
    code, err = _run_cli("predict", "--model", broken, "--images", images,
                         "--output", tmp_path / "run.tsv", "--allow-pickle")
    assert code == 2 and "Traceback" not in err and "cannot be loaded" in err


@pytest.mark.parametrize("output", ["model", "folder", "missing_folder"])
def test_predict_refuses_an_output_that_would_destroy_or_fail(tmp_path, model_file, output,
                                                              capsys):
    model, images = model_file
    target = {"model": model, "folder": tmp_path,
              "missing_folder": tmp_path / "no" / "such" / "run.tsv"}[output]
    before = model.read_bytes()
    assert main(["predict", "--model", str(model), "--images", str(images),
                 "--output", str(target)]) == 2
    err = capsys.readouterr().err
    assert "--output" in err and len(err.strip().splitlines()) == 1
    assert model.read_bytes() == before


def test_train_refuses_an_unwritable_output_before_training(tmp_path, model_file, capsys):
    _, images = model_file
    (tmp_path / "gt.tsv").write_text("img0\tC1\nimg1\tC2\nimg2\tC1\n")
    assert main(["train", "--images", str(images), "--concepts", str(tmp_path / "gt.tsv"),
                 "--output", str(tmp_path / "no" / "such" / "m.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1"])
def test_batch_size_must_be_positive(model_file, value, capsys):
    model, images = model_file
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--model", str(model), "--images", str(images), "--output", "r.tsv",
              "--batch-size", value])
    assert caught.value.code == 2
    assert "expected a number >= 1" in capsys.readouterr().err


# ----------------------------------------------------------- properties

_FORBIDDEN = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00,|;"
_field = st.text(st.characters(blacklist_characters=_FORBIDDEN, blacklist_categories=("Cs",)),
                 min_size=1, max_size=12).map(str.strip).filter(bool)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.tuples(_field, st.lists(_field, max_size=4)), min_size=1,
                      max_size=6, unique_by=lambda line: line[0]),
       layout=st.sampled_from(["2019", "2022", "2024"]))
def test_write_then_read_is_the_identity(tmp_path, lines, layout):
    ids = [image_id for image_id, _ in lines]
    # "ID" alone is a header line's first cell in every layout (the writer refuses it); from
    # 2022, the evaluators skip every row whose id holds it
    assume(not any(image_id.upper() == "ID" for image_id in ids))
    assume(layout == "2019" or not any("ID" in image_id for image_id in ids))
    concepts = [concepts for _, concepts in lines]
    path = tmp_path / f"run-{layout}.txt"
    write_run(path, ids, concepts, layout=layout)
    read = read_concepts(path, edition=layout)
    assert read.ids == ids and read.layout == layout
    expected = [tuple(dict.fromkeys(canonical_concept(c) for c in image)) for image in concepts]
    assert read.concepts == expected


_concept = st.sampled_from(["C1", "c2", "C3", "C4", "c5"])
_image = st.lists(_concept, max_size=4)


@settings(max_examples=100, deadline=None)
@given(truth=st.lists(_image, min_size=1, max_size=8), data=st.data())
def test_the_metric_ignores_image_order_concept_order_case_and_duplicates(truth, data):
    predicted = data.draw(st.lists(_image, min_size=len(truth), max_size=len(truth)))
    assume(any(truth))
    score = imageclef_f1_score(truth, predicted)
    order = data.draw(st.permutations(range(len(truth))))
    assert imageclef_f1_score([truth[i] for i in order],
                              [predicted[i] for i in order]) == pytest.approx(score)
    shuffled = [list(reversed(p)) + p[:1] for p in predicted]  # order and a duplicate
    swapped = [[c.swapcase() for c in t] for t in truth]
    assert imageclef_f1_score(swapped, shuffled) == pytest.approx(score)


def _png_bytes():
    buffer = io.BytesIO()
    pixels = np.arange(24 * 24 * 3, dtype=np.uint8).reshape(24, 24, 3)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png_bytes()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(PNG)),
       flips=st.lists(st.tuples(st.integers(0, len(PNG) - 1), st.integers(1, 255)),
                      max_size=4))
def test_damaged_image_bytes_raise_only_the_library_error(tmp_path, cut, flips):
    damaged = bytearray(PNG[:cut])
    for position, mask in flips:
        if position < len(damaged):
            damaged[position] ^= mask
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(damaged))
    try:
        pixels = decode_image(path, 16)
    except ImageDecodeError as error:
        assert str(path) in str(error)
    else:
        assert pixels.shape == (16, 16, 3)
