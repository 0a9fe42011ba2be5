"""The ONNX Runtime backend: weights digests and the sessions kept."""

import hashlib

import pytest

from imageclef_concepts.embeddings import _onnx

from .onnx_models import write_vit


def test_the_digest_is_the_files_sha256_computed_once_per_version(tmp_path, monkeypatch):
    path = write_vit(tmp_path / "a.onnx")
    expected = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert _onnx.weights_digest(path) == expected
    monkeypatch.setattr(_onnx.hashlib, "sha256", None)  # a second hash would fail
    assert _onnx.weights_digest(path) == expected


def test_clones_share_one_session_and_at_most_two_are_kept(tmp_path):
    paths = [write_vit(tmp_path / f"{i}.onnx", seed=i) for i in range(3)]
    digests = [_onnx.weights_digest(p) for p in paths]
    first = _onnx.network(paths[0], digests[0], "w", 32, ("image_embeds",))
    assert _onnx.network(paths[0], digests[0], "w", 32, ("image_embeds",)) is first
    for path, digest in zip(paths[1:], digests[1:]):
        _onnx.network(path, digest, "w", 32, ("image_embeds",))
    assert len(_onnx._SESSIONS) <= 2
    assert _onnx.network(paths[0], digests[0], "w", 32, ("image_embeds",)) is not first


def test_a_missing_output_name_is_refused_naming_the_outputs(tmp_path):
    import onnx

    model = onnx.load(write_vit(tmp_path / "a.onnx"))
    extra = onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, None)
    model.graph.node.append(onnx.helper.make_node("Identity", ["image_embeds"], ["extra"]))
    model.graph.output.append(extra)
    onnx.save(model, tmp_path / "b.onnx")
    with pytest.raises(ValueError, match=r"no output named pooler_output; its outputs are "
                                         r"\['image_embeds', 'extra'\]"):
        _onnx.Network(str(tmp_path / "b.onnx"), "w", 32, ("pooler_output",))


def _pooling(path, shape=("n", 3, 32, 32), dtype=None, scale=1.0, reshape=None):
    """A network that averages each channel (times ``scale``): its (n, 3) output, or
    that output reshaped to ``reshape``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dtype = dtype or TensorProto.FLOAT
    nodes = [helper.make_node("Cast", ["pixel_values"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("Mul", ["m", "scale"], ["image_embeds"])]
    weights = [numpy_helper.from_array(np.array([scale], dtype=np.float32), "scale")]
    if reshape is not None:
        nodes[-1].output[0] = "y"
        nodes.append(helper.make_node("Reshape", ["y", "shape"], ["image_embeds"]))
        weights.append(numpy_helper.from_array(np.array(reshape, dtype=np.int64), "shape"))
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("pixel_values", dtype, list(shape))],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, None)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


def _batch(n=3):
    import numpy as np

    return np.random.default_rng(0).standard_normal((n, 3, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("scale, message", [
    (float("nan"), "gives NaN or infinite values for 3 of the 3 images"),
    (float("inf"), "gives NaN or infinite values for 3 of the 3 images"),
    (0.0, "gives a zero vector for 3 of the 3 images"),
])
def test_an_output_with_no_direction_is_refused_naming_the_file(tmp_path, scale, message):
    path = _pooling(tmp_path / "p.onnx", scale=scale)
    with pytest.raises(ValueError, match=f"weights='p.onnx': .*{message}"):
        _onnx.Network(path, "weights='p.onnx'", 32, ("image_embeds",)).run(_batch())


def test_an_output_of_another_batch_or_rank_is_refused_naming_the_file(tmp_path):
    one_row = _pooling(tmp_path / "one.onnx", reshape=[1, -1])  # 3 images give 1 row
    with pytest.raises(ValueError, match="weights='w': .*gives 1 row.* for 3 images"):
        _onnx.Network(one_row, "weights='w'", 32, ("image_embeds",)).run(_batch())
    flat = _pooling(tmp_path / "flat.onnx", reshape=[-1])
    with pytest.raises(ValueError, match=r"weights='w': the network's output 'image_embeds' "
                                         r"has shape \(9,\)"):
        _onnx.Network(flat, "weights='w'", 32, ("image_embeds",)).run(_batch())


def test_half_and_double_inputs_are_fed_their_type_others_refused(tmp_path):
    from onnx import TensorProto

    expected = _batch().mean(axis=(2, 3))
    for dtype in (TensorProto.FLOAT16, TensorProto.DOUBLE):
        path = _pooling(tmp_path / f"{dtype}.onnx", dtype=dtype)
        values = _onnx.Network(path, "w", 32, ("image_embeds",)).run(_batch())
        assert abs(values - expected).max() < 1e-2
    path = _pooling(tmp_path / "u8.onnx", dtype=TensorProto.UINT8)
    with pytest.raises(ValueError, match=r"weights='u8': the network takes tensor\(uint8\) "
                                         r"pixels.*float"):
        _onnx.Network(path, "weights='u8'", 32, ("image_embeds",))


def test_a_fixed_batch_size_and_symbolic_dims_are_run(tmp_path):
    expected = _batch(5).mean(axis=(2, 3))
    for shape in ((1, 3, 32, 32), (2, 3, 32, 32), ("a", "b", "c", "d"), (None,) * 4):
        network = _onnx.Network(_pooling(tmp_path / "f.onnx", shape), "w", 32, ("image_embeds",))
        assert abs(network.run(_batch(5)) - expected).max() < 1e-5, shape


def test_a_file_changed_under_a_kept_digest_is_never_run_as_the_old_one(tmp_path):
    """Rewritten in place with its size and time kept (cp -p, an unpacked archive): the
    digest kept for its version is stale; the bytes loaded are checked against it."""
    import os

    path = write_vit(tmp_path / "a.onnx", seed=1)
    status = os.stat(path)
    digest = _onnx.weights_digest(path)
    write_vit(path, seed=2)  # same architecture: the same size
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert os.stat(path).st_size == status.st_size
    # Its status-change time moved (file_version): hashed again, not the kept digest; the
    # old digest, still held elsewhere (an encoder pinned to it), is checked at loading.
    assert _onnx.weights_digest(path) != digest
    _onnx._SESSIONS.clear()
    with pytest.raises(ValueError, match="weights='a': the file changed while"):
        _onnx.network(path, digest, "weights='a'", 32, ("image_embeds",))
    assert _onnx.weights_digest(path) != digest  # hashed again: the next read is right
    assert not _onnx._SESSIONS


def test_external_data_is_refused(tmp_path, monkeypatch):
    """A file whose tensors live in another file: its SHA-256 would not cover them, and
    read from bytes, ONNX Runtime would look for them in the working directory."""
    import onnx

    model = onnx.load(write_vit(tmp_path / "a.onnx"))
    onnx.save_model(model, tmp_path / "ext.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.data", size_threshold=1024)
    path = str(tmp_path / "ext.onnx")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="weights='ext': .*keeps .* tensors in other files"):
        _onnx.network(path, _onnx.weights_digest(path), "weights='ext'", 32, ("image_embeds",))
