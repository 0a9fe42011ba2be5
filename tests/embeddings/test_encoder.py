"""FoundationEncoder on tiny same-architecture ViTs with random weights, written by the tests."""

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from dataclasses import replace

import joblib
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from sklearn.base import clone

from imageclef_concepts import ConceptKNNClassifier, FoundationEncoder
from imageclef_concepts.embeddings._presets import PRESETS

from .onnx_models import TINY, TINY_VIT, tiny_models, write_vit  # noqa: F401 (fixture)

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (5, 50, 70, 3), dtype=np.uint8)


@pytest.fixture
def vit_file(tmp_path, tiny_models):  # noqa: F811
    return write_vit(tmp_path / "tiny.onnx")


def _by_hand(path, images, preset=TINY, output="image_embeds"):
    """The authors' pipeline written out: square resize, centre crop, scale, normalise."""
    crops = []
    for image in images:
        square = np.asarray(Image.fromarray(image).resize((preset.resize, preset.resize),
                                                          Image.Resampling[preset.resample.upper()]))
        top = (preset.resize - preset.crop) // 2
        crops.append(square[top:top + preset.crop, top:top + preset.crop])
    batch = (np.stack(crops) / 255.0 - np.array(preset.mean)) / np.array(preset.std)
    batch = batch.transpose(0, 3, 1, 2).astype(np.float32)
    (out,) = ort.InferenceSession(path).run([output], {"pixel_values": batch})
    out = out[:, 0] if out.ndim == 3 else out
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_embeddings_are_unit_float32_rows_of_the_model_width(vit_file):
    vectors = FoundationEncoder("tiny", vit_file, batch_size=2).fit().transform(IMAGES)
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])  # images differ, so do their vectors


def test_the_authors_preprocessing_is_applied(vit_file):
    vectors = FoundationEncoder("tiny", vit_file, batch_size=3).embed(IMAGES)
    np.testing.assert_allclose(vectors, _by_hand(vit_file, IMAGES), atol=2e-5)
    # A pipeline without the crop or the mean/std gives other vectors: the check can fail.
    plain = np.stack([np.asarray(Image.fromarray(i).resize((32, 32))) for i in IMAGES])
    (raw,) = ort.InferenceSession(vit_file).run(
        None, {"pixel_values": (plain / 255.0).transpose(0, 3, 1, 2).astype(np.float32)})
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    assert np.abs(raw - vectors).max() > 1e-3


def test_a_token_output_gives_its_cls_token(tmp_path, tiny_models):  # noqa: F811
    path = write_vit(tmp_path / "tokens.onnx", {**TINY_VIT, "projection": None},
                     output="last_hidden_state", tokens=True)
    vectors = FoundationEncoder("tiny-tokens", path).embed(IMAGES)
    assert vectors.shape == (5, 32)
    np.testing.assert_allclose(vectors, _by_hand(path, IMAGES, tiny_models["tiny-tokens"],
                                                 "last_hidden_state"), atol=2e-5)


def test_paths_grey_and_float_images_embed_as_their_pixels(vit_file, tmp_path):
    square = RNG.integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    paths = []
    for i, image in enumerate(square):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    encoder = FoundationEncoder("tiny", vit_file, image_store=tmp_path / "store")
    expected = encoder.embed(square)
    np.testing.assert_allclose(encoder.embed(paths), expected, atol=1e-6)
    np.testing.assert_allclose(encoder.embed(square / 255.0), expected, atol=1e-6)
    grey = square[..., 0]
    np.testing.assert_allclose(encoder.embed(grey), encoder.embed(np.repeat(
        grey[..., None], 3, axis=-1)), atol=1e-6)


def test_identity_follows_weights_model_and_preprocessing(vit_file, tmp_path, monkeypatch):
    identity = FoundationEncoder("tiny", vit_file).embedding_identity()
    fields = json.loads(identity)
    assert identity == json.dumps(fields, sort_keys=True)
    assert fields["model"] == "tiny" and fields["backend"] == "onnxruntime"
    assert fields["preprocessing"]["mean"] == [0.4, 0.5, 0.6]
    assert fields["preprocessing"]["crop"] == 32 and fields["preprocessing"]["resize"] == 40
    assert fields["format"] == 1 and fields["output"] == "image_embeds"
    copy = shutil.copy(vit_file, tmp_path / "copy.onnx")  # the same weights: the same identity
    assert FoundationEncoder("tiny", copy).embedding_identity() == identity
    other = write_vit(tmp_path / "other.onnx", seed=2)
    assert FoundationEncoder("tiny", other).embedding_identity() != identity
    monkeypatch.setitem(PRESETS, "tiny-mean", replace(TINY, mean=(0.5,) * 3))
    assert FoundationEncoder("tiny-mean", vit_file).embedding_identity() != identity
    random = FoundationEncoder("tiny", "random").embedding_identity()
    assert random != identity and json.loads(random)["random_weights"] is True
    assert FoundationEncoder("tiny", "random").embedding_identity() == random


def test_joblib_round_trip_embeds_the_same_without_a_session(vit_file, tmp_path):
    encoder = FoundationEncoder("tiny", vit_file)
    before = encoder.embed(IMAGES)
    joblib.dump(encoder, tmp_path / "encoder.joblib")
    assert os.path.getsize(tmp_path / "encoder.joblib") < 5000  # parameters, no network
    loaded = joblib.load(tmp_path / "encoder.joblib")
    np.testing.assert_array_equal(loaded.embed(IMAGES), before)
    assert loaded.embedding_identity() == encoder.embedding_identity()
    random = FoundationEncoder("tiny", "random")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(random)).embed(IMAGES),
                                  random.embed(IMAGES))


def test_a_weights_file_changed_after_saving_is_refused(vit_file, tmp_path):
    encoder = FoundationEncoder("tiny", vit_file).fit()
    saved = pickle.dumps(encoder)
    write_vit(vit_file, seed=5)
    os.utime(vit_file, ns=(1, 1))  # another version even on a coarse clock
    with pytest.raises(ValueError, match="the file changed since"):
        pickle.loads(saved).embed(IMAGES)
    assert FoundationEncoder("tiny", vit_file).embed(IMAGES).shape == (5, 16)  # a new one works


def test_it_joins_a_knn_and_is_cloned(vit_file):
    encoder = FoundationEncoder("tiny", vit_file, batch_size=4)
    assert clone(encoder).get_params() == encoder.get_params()
    y = [["a"], ["b"], ["a", "c"], ["b"], ["c"]]
    knn = ConceptKNNClassifier(n_neighbors=1, embedding=encoder).fit(IMAGES, y)
    assert knn.embeddings_.shape == (5, 16)
    assert knn.predict(IMAGES[:2]).shape[0] == 2
    np.testing.assert_allclose(knn.embeddings_, encoder.embed(IMAGES), atol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: None, "weights=None: name the ONNX file"),
    (lambda tmp: str(tmp / "absent.onnx"), "weights=.*absent.onnx.*not found"),
    (lambda tmp: str(tmp), "weights=.*is a folder"),
    (lambda tmp: ".", "weights='.': . is a folder"),
    (lambda tmp: "/dev/null", "weights='/dev/null': /dev/null is a"),
    (lambda tmp: (tmp / "text.onnx").write_text("not a model") and str(tmp / "text.onnx"),
     "weights=.*text.onnx.*not an ONNX model"),
    (lambda tmp: write_vit(tmp / "small.onnx", {**TINY_VIT, "image_size": 16}),
     "weights=.*small.onnx.*16 x 16 pixels.*gives 32 x 32"),
    (lambda tmp: write_vit(tmp / "named.onnx", output="features"),
     None),  # one output: taken whatever its name
])
def test_bad_weights_are_refused_naming_the_parameter(tmp_path, tiny_models, make, message):  # noqa: F811
    encoder = FoundationEncoder("tiny", make(tmp_path))
    if message is None:
        assert encoder.embed(IMAGES).shape == (5, 16)
        return
    with pytest.raises(ValueError, match=message):
        encoder.fit()
        encoder.embed(IMAGES)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, tiny_models):  # noqa: F811
    os.mkfifo(tmp_path / "pipe.onnx")
    with pytest.raises(ValueError, match="weights=.*pipe.onnx.*pipe"):
        FoundationEncoder("tiny", str(tmp_path / "pipe.onnx")).fit()


def test_random_weights_need_an_architecture(tiny_models):  # noqa: F811
    with pytest.raises(ValueError, match="weights='random': model='convnext-base' has no"):
        FoundationEncoder("convnext-base", "random").fit()
    with pytest.raises(ValueError, match="model='no-such-model' is not a known model"):
        FoundationEncoder("no-such-model", "random").fit()


def test_no_network_access_is_attempted(vit_file, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert FoundationEncoder("tiny", vit_file).embed(IMAGES).shape == (5, 16)


def test_importing_the_package_imports_no_runtime():
    code = ("import sys, imageclef_concepts, imageclef_concepts.embeddings; "
            "imageclef_concepts.FoundationEncoder; "
            "print(sorted(m for m in ('onnxruntime', 'onnx', 'torch', 'keras_hub', 'tensorflow')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout
    assert out.strip() == "[]"


def test_batch_size_is_a_whole_number_not_a_bool(vit_file):
    with pytest.raises(TypeError, match=r"'batch_size' parameter of FoundationEncoder must be "
                                        r"a whole number \(an int, not a bool\).* Got True"):
        FoundationEncoder("tiny", vit_file, batch_size=True).fit()
    assert FoundationEncoder("tiny", vit_file, batch_size=np.int64(2)).fit().batch_size == 2


def test_a_rewritten_file_never_lends_its_session_to_an_unchanged_one(vit_file, tmp_path):
    """The copy of a file rewritten in place keeping size and time must not serve the
    session of its new content to the encoders of the original (same digest)."""
    from imageclef_concepts.embeddings import _onnx

    original = FoundationEncoder("tiny", vit_file)
    expected = original.embed(IMAGES)
    copy = shutil.copy(vit_file, tmp_path / "copy.onnx")
    status = os.stat(copy)
    pinned = FoundationEncoder("tiny", copy).fit()  # its digest kept for this version
    write_vit(copy, seed=9)
    os.utime(copy, ns=(status.st_atime_ns, status.st_mtime_ns))
    _onnx._SESSIONS.clear()  # evicted by other files
    with pytest.raises(ValueError, match="copy.onnx.*changed"):
        pinned.embed(IMAGES)  # the encoder that read the old content
    # A new encoder hashes the new content (its status-change time moved): its own session.
    np.testing.assert_allclose(FoundationEncoder("tiny", copy).embed(IMAGES),
                               _by_hand(copy, IMAGES), atol=1e-5)
    np.testing.assert_array_equal(original.embed(IMAGES), expected)


def test_a_batch_beyond_memory_is_refused_before_the_network_loads(vit_file, monkeypatch):
    from imageclef_concepts.embeddings._encoder import FoundationEncoder as Encoder
    from imageclef_concepts.files import _sizes

    # The tiny model's batch takes about 47 kB an image: 5 images do not fit, 1 does.
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 150_000)
    load = Encoder._network
    monkeypatch.setattr(Encoder, "_network", None)  # never reached
    with pytest.raises(ValueError, match="batch_size=1000000000: .*choose a smaller batch_"):
        FoundationEncoder("tiny", vit_file, batch_size=10**9).embed(IMAGES)
    monkeypatch.setattr(Encoder, "_network", load)
    assert FoundationEncoder("tiny", vit_file, batch_size=1).embed(IMAGES).shape == (5, 16)


def test_a_file_of_another_width_is_refused_naming_the_model(tmp_path, tiny_models):  # noqa: F811
    path = write_vit(tmp_path / "tiny.onnx")  # 16 values; tiny-tokens' are 32, its crop 32
    with pytest.raises(ValueError, match="tiny.onnx.*embeddings of 16 values; tiny-tokens's "
                                         "have 32 .wrong model name"):
        FoundationEncoder("tiny-tokens", path).embed(IMAGES)


def test_weights_replaced_by_a_pipe_after_hashing_never_block(vit_file, monkeypatch, tmp_path):
    import threading

    from imageclef_concepts.embeddings import _encoder

    pipe = tmp_path / "pipe.onnx"
    os.mkfifo(pipe)
    monkeypatch.setattr(_encoder, "weights_digest", lambda path: "0" * 64)  # hashed before
    outcome = []

    def identity():
        try:
            FoundationEncoder("tiny", str(pipe)).embedding_identity()
        except ValueError as error:
            outcome.append(str(error))

    thread = threading.Thread(target=identity, daemon=True)
    thread.start()
    thread.join(5)
    blocked = thread.is_alive()
    if blocked:  # waiting in open() for a writer: give it one so that it ends
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
    assert not blocked
    assert outcome and "pipe.onnx is a named pipe" in outcome[0]


def test_weights_rewritten_in_place_with_their_time_put_back_get_their_own_embeddings(
        vit_file, tmp_path):
    """A weights file rewritten keeping its size and modification time (fine-tuned weights
    of the same network, the time put back) is another file, as the image store tells its
    images apart (status-change time): the store served the old weights' embeddings for it."""
    from imageclef_concepts import EmbeddingStore, embed_images

    paths = []
    for index, image in enumerate(IMAGES):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(image).save(paths[-1])
    store = EmbeddingStore(tmp_path / "store")
    old = embed_images(FoundationEncoder("tiny", vit_file), paths, store=store)
    status = os.stat(vit_file)
    write_vit(vit_file, seed=2)  # same architecture: the same size
    os.utime(vit_file, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert os.stat(vit_file).st_size == status.st_size
    new = embed_images(FoundationEncoder("tiny", vit_file), paths, store=store)
    np.testing.assert_allclose(new, _by_hand(vit_file, IMAGES), atol=1e-5)
    assert not np.allclose(new, old)


def test_a_small_numpy_integer_batch_size_embeds_as_its_int(vit_file):
    # np.uint8 sizes are whole numbers (accepted as scikit-learn does) but wrapped in the
    # memory check's arithmetic: an OverflowError naming nothing (issue 30 review 17)
    vectors = FoundationEncoder("tiny", vit_file, batch_size=np.uint8(2)).embed(IMAGES)
    np.testing.assert_array_equal(vectors, FoundationEncoder("tiny", vit_file,
                                                             batch_size=2).embed(IMAGES))


def test_a_batch_whose_attention_exceeds_memory_is_refused_before_the_network(monkeypatch):
    # Review 18 F8: the batch check counted the pixels and their float32 copies only, while
    # the image tower holds about 9 times more (rad-dino: 216 MB an image measured, 11 MB
    # counted), so batch sizes needing several times the memory were accepted.
    from imageclef_concepts.files import _sizes

    monkeypatch.setattr(_sizes, "memory_limit", lambda: 2**30)  # the old count: 90 MB
    encoder = FoundationEncoder("rad-dino", weights="random", batch_size=8)
    monkeypatch.setattr(encoder, "_network", lambda: pytest.fail("built before the check"))
    with pytest.raises(ValueError, match=r"^batch_size=8: running a batch of 8 images through "
                                         r"rad-dino \(the pixels, their float32 input and, for "
                                         r"a ViT, its attention scores and hidden layers\) "
                                         r"takes 2.3 GiB"):
        encoder.embed(np.zeros((8, 8, 8, 3), np.uint8))


def test_a_convnext_batch_counts_its_first_stage_activations(tmp_path, monkeypatch):
    # ConvNeXt's architecture is not described (no random build), and its activations were
    # counted as none: ConvNeXt-Base's first stage alone holds 56 x 56 x 512 float32 (6.4 MB)
    # an image in its MLP, and a batch needing several GiB was checked at ~2 MB an image.
    from imageclef_concepts.embeddings._presets import PRESETS
    from imageclef_concepts.files import _sizes

    hidden = 4 * 56 * 56 * 4 * 128  # one tensor of the first stage's MLP width, an image
    assert PRESETS["convnext-base"].activation_bytes() >= 4 * hidden
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 2**30)
    weights = tmp_path / "convnext.onnx"
    weights.write_bytes(b"not read: refused before")
    encoder = FoundationEncoder("convnext-base", weights=str(weights), batch_size=32)
    monkeypatch.setattr(encoder, "_network", lambda: pytest.fail("built before the check"))
    with pytest.raises(ValueError, match=r"^batch_size=32: running a batch of 32 images "
                                         r"through convnext-base"):
        encoder.embed(np.zeros((32, 8, 8, 3), np.uint8))
