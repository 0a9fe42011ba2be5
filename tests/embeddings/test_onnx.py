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
